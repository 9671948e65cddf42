"""The bridge page's 24-hour chart: a sample per queue every 5 minutes, counts only, at most a day's worth kept."""

from __future__ import annotations

import datetime as dt
import re

from bs4 import BeautifulSoup

from bridge import monitor
from tests.bridge.conftest import INTAKE
from tests.bridge.test_dead_letter_admin import RealClock
from tests.conftest import Backoffice

SECRET = "秘密の申請内容"


def _sample(app, now):
    with app.app_context():
        binding = app.extensions["bridge"]
        connection = binding.redis()
        try:
            queues = monitor.queue_figures(connection, monitor.queues_of(binding))
            return monitor.take_samples(connection, queues, now=now)
        finally:
            connection.close()


def _allow_next_sample(bridged):
    client = bridged.redis.client()
    client.delete(*client.keys("*:metrics:sampled"))


def test_the_chart_shows_a_queues_depth_and_throughput_from_bounded_samples(bridged):
    office = bridged.bo_app
    now = dt.datetime.now(dt.UTC)
    ids = bridged.send("test.note", [{"marker": SECRET} for _ in range(3)])
    assert bridged.relay(bridged.portal_app) == 3
    assert _sample(office, now - dt.timedelta(minutes=10))  # three waiting
    assert not _sample(office, now - dt.timedelta(minutes=9))  # not yet 5 minutes: another relay took it
    bridged.run_burst("backoffice", INTAKE)
    _allow_next_sample(bridged)
    assert _sample(office, now - dt.timedelta(minutes=5))  # none waiting, three done

    with office.app_context():
        connection = office.extensions["bridge"].redis()
        found = monitor.samples(connection, INTAKE, now=now)
        connection.close()
    assert [(s.waiting, s.finished) for s in found] == [(3, 0), (0, 3)]

    admin = Backoffice(office, RealClock()).client_for("admin1", "admin")
    page = BeautifulSoup(admin.get("/admin/bridge").text, "html.parser")
    figure = page.select_one(f"figure.chart[data-queue='{INTAKE}']")
    assert figure["data-samples"] == "2"
    depth = [tuple(map(float, p.split(","))) for p in figure.select_one("polyline.depth")["points"].split()]
    done = [tuple(map(float, p.split(","))) for p in figure.select_one("polyline.throughput")["points"].split()]
    assert [y for _, y in depth] == [0.0, 100.0] and [y for _, y in done] == [100.0, 0.0]  # peak at the top
    assert 470 < depth[1][0] < 480  # five minutes before the right edge
    assert "待機は最大3件、処理は5分あたり最大3件" in figure.text
    assert not any(i in str(page) for i in ids) and SECRET not in str(page)

    # Bounded: a day of samples per queue at most, and nothing older than 24 hours is drawn.
    for minutes in range(300):
        _allow_next_sample(bridged)
        assert _sample(office, now - dt.timedelta(hours=30) + dt.timedelta(minutes=minutes))
    keys = bridged.redis.client().keys(f"*:metrics:samples:{INTAKE}")
    assert len(keys) == 1 and bridged.redis.client().llen(keys[0]) == monitor.SAMPLES_KEPT
    with office.app_context():
        connection = office.extensions["bridge"].redis()
        assert monitor.samples(connection, INTAKE, now=now) == []  # the newest kept is 25 hours old
        connection.close()


def test_the_page_shows_each_worker_with_its_running_job_and_heartbeat(bridged):
    admin = Backoffice(bridged.bo_app, RealClock()).client_for("admin1", "admin")
    bridged.send("test.note", [{"marker": SECRET, "sleep": 20}])
    assert bridged.relay(bridged.portal_app) == 1
    bridged.start_worker("backoffice", INTAKE)

    def busy_row():
        page = BeautifulSoup(admin.get("/admin/bridge").text, "html.parser")
        rows = [[td.text for td in row.select("td")] for row in page.select("tr.worker")]
        # The 20-second job, once it has run a few seconds, shows as running that long.
        ran = r"0分0[3-9]秒|0分[1-5]\d秒"
        return [r for r in rows if r[0] == INTAKE and r[3] == "busy" and re.fullmatch(ran, r[4])]

    bridged.wait_for(busy_row, timeout=60)
    [row] = busy_row()
    assert row[2].isdigit() and row[1]  # pid and host
    assert row[5].endswith(" JST")  # the last heartbeat, in Japan time
    page = BeautifulSoup(admin.get("/admin/bridge").text, "html.parser")
    intake = page.select_one(f"tr.queue[data-queue='{INTAKE}']")
    assert "unattended" not in intake["class"] and intake.select_one("td.running").text == "1"
