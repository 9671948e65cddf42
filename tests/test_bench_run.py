"""`make bench`'s table: the ratio to the same-run baseline, whether each goal holds, absent modules named."""

from __future__ import annotations

import types

from bench import run as bench_run

ROW = {"figure": "portal", "value": 60.0, "unit": "req/s", "baseline": "echo", "baseline_value": 200.0,
       "goal": "ratio >= 0.3"}


def test_the_goal_is_judged_on_the_ratio_or_the_value_and_shown_in_the_table():
    assert bench_run.ratio(ROW) == 0.3
    assert bench_run.goal_holds(ROW) is True
    assert bench_run.goal_holds({**ROW, "value": 59.0}) is False
    assert bench_run.goal_holds({**ROW, "baseline": None, "baseline_value": None, "goal": "value <= 20",
                                 "value": 21.0}) is False
    assert bench_run.goal_holds({**ROW, "goal": "keep"}) is None
    lines = bench_run.table([ROW, {**ROW, "figure": "slow", "value": 10.0}]).splitlines()
    assert lines[2] == "| portal | 60.0 req/s | echo: 200 req/s | 0.30 | ratio >= 0.3 | yes |"
    assert lines[3].endswith("| 0.05 | ratio >= 0.3 | **no** |")


def test_an_absent_module_is_skipped_and_named_and_a_failing_one_is_a_row(monkeypatch, capsys):
    def boom(args):
        raise RuntimeError("no database")

    fake = {"bench.ok": types.SimpleNamespace(run=lambda args: [ROW]), "bench.broken": types.SimpleNamespace(run=boom)}
    monkeypatch.setattr(bench_run, "MODULES", ("bench.ok", "bench.broken", "bench.missing"))
    monkeypatch.setattr(bench_run, "_available", lambda name: name in fake)
    monkeypatch.setattr(bench_run.importlib, "import_module", lambda name: fake[name])
    assert bench_run.main(["--runs", "1"]) == 1
    out = capsys.readouterr().out
    assert "| portal | 60.0 req/s | echo: 200 req/s | 0.30 | ratio >= 0.3 | yes |" in out
    assert "| broken: failed (RuntimeError) |" in out
    assert "bench.missing is absent: its figures are skipped" in out


def test_end_to_end_rows_give_each_rate_its_p95_against_the_goal_and_a_lost_case_fails_it():
    from bench import e2e

    ok = {"p50": 0.4, "p95": 0.9, "max": 1.2, "refused": 0, "missing": 0, "answer_p95": 0.2}
    lost = {"p50": 0.5, "p95": 1.1, "max": 60.0, "refused": 0, "missing": 3, "answer_p95": 0.3}
    rows = e2e.rows({5.0: [ok, ok, ok], 30.0: [ok, lost, ok]},
                    {"seconds": e2e._per_rate("20,60", ["5", "30"]), "intake_workers": 2})
    p95 = [r for r in rows if r["goal"] == "value <= 2"]
    assert [r["value"] for r in p95] == [0.9, 0.9]
    assert bench_run.goal_holds(p95[0]) is True
    # The median p95 is under 2 s, but three applications never reached the inbox: the goal does not hold.
    assert bench_run.goal_holds(p95[1]) is False
    assert "3 not in the inbox" in p95[1]["figure"]
    table = bench_run.table(rows)
    assert "| e2e: submission -> case in the inbox, max, 30/s offered for 60 s (2 intake worker(s))" in table
    assert "| e2e: submission -> case in the inbox, p95, 5/s offered for 20 s (2 intake worker(s))" in table



def test_the_cpu_meter_counts_what_its_processes_burned_between_start_and_stop_and_not_the_others():
    import os
    import subprocess
    import sys

    from bench.baselines import CpuMeter, children, metered

    # Burns 0.3 s of CPU when told to, then waits for its stdin to close.
    burn = ("import sys, time\n"
            "sys.stdin.readline(); start = time.process_time()\n"
            "while time.process_time() - start < 0.3: pass\n"
            "print('done', flush=True); sys.stdin.read()")
    burner, sleeper = (subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                       for code in (burn, "import sys; sys.stdin.read()"))
    try:
        assert {burner.pid, sleeper.pid} <= set(children(os.getpid()))
        busy, quiet = CpuMeter(lambda: [burner.pid]), CpuMeter(lambda: [sleeper.pid])
        with metered(busy, quiet):
            burner.stdin.write(b"go\n")
            burner.stdin.flush()
            assert burner.stdout.readline() == b"done\n"
        # /proc counts in ticks of 10 ms: a process's reading may be short by one at each end.
        assert 0.28 <= busy.processes < 1.0, busy.processes
        assert quiet.processes <= 0.02, quiet.processes
        assert busy.machine >= 0.28, busy.machine  # the machine's busy time includes the burner's
    finally:
        for process in (burner, sleeper):
            process.stdin.close()
            process.wait(timeout=10)
            process.stdout.close()
