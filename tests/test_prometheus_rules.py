"""deploy/prometheus/alerts.yml: promtool accepts it, and its unit tests fire every alert it defines."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"  # Debian's `prometheus` package; .ci/run installs it


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], cwd=RULES, capture_output=True, text=True, timeout=120)


def test_promtool_checks_the_alert_rules():
    result = _promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in result.stdout


def test_promtool_fires_each_alert_in_its_unit_tests_and_only_when_it_should():
    result = _promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = {rule["alert"] for group in yaml.safe_load((RULES / "alerts.yml").read_text())["groups"]
              for rule in group["rules"]}
    assert alerts == {"BridgeQueueWithoutWorker", "BridgeJobWaitingTooLong", "BridgeOutboxUnacknowledged",
                      "BridgeDeadLetterOpen", "BridgeRedisDataLost", "SecurityAlertUnacknowledged"}
    cases = [case for test in yaml.safe_load((RULES / "alerts_test.yml").read_text())["tests"]
             for case in test["alert_rule_test"]]
    assert {c["alertname"] for c in cases if c["exp_alerts"]} == alerts  # each fires somewhere
    assert {c["alertname"] for c in cases if not c["exp_alerts"]} == alerts  # and each is quiet before


def test_a_broken_rule_is_refused_by_the_check(tmp_path):
    # The check is real: the same file with one expression broken fails it.
    broken = (RULES / "alerts.yml").read_text().replace("bridge_dead_letters_open > 0", "bridge_dead_letters_open >")
    (tmp_path / "alerts.yml").write_text(broken)
    result = subprocess.run([PROMTOOL, "check", "rules", "alerts.yml"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0
