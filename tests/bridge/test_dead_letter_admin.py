"""The dead-letter page of the back office: an administrator lists, inspects, retries and discards; all audited."""

from __future__ import annotations

import datetime as dt

from bs4 import BeautifulSoup

from bridge.queues import get_queue
from core.envelope import KeyRegistry, seal
from tests.bridge.conftest import BO_PARTY, INTAKE
from tests.conftest import Backoffice

SECRET = "秘密の申請内容"


class RealClock:
    """The Backoffice helper's clock, left at real time (worker processes use the real clock too)."""

    @property
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def advance(self, **_kwargs: float) -> None:
        """Nothing to move: each account signs in once."""


def _page(client, path):
    response = client.get(path)
    assert response.status_code == 200, response.status_code
    return BeautifulSoup(response.text, "html.parser")


def _post(client, path):
    page = _page(client, path.rsplit("/", 1)[0])
    token = page.select_one("input[name=csrf_token]")["value"]
    return client.post(path, data={"csrf_token": token})


def _dead_letters(bridged):
    return {d.reason: d for d in bridged.rows(bridged.bo_app, "dead")}


def test_an_administrator_inspects_retries_and_discards_dead_letters_and_each_action_is_audited(bridged, bridge_keys):
    [schema_id] = bridged.send("test.schema", [{"marker": SECRET}])
    stranger = KeyRegistry.generate("peer:muni-standin").with_public(BO_PARTY, bridge_keys.backoffice.public_pem())
    refused = seal({"marker": SECRET}, message_type="test.note", sender=stranger.party, recipient=BO_PARTY,
                   keys=stranger)
    queue = get_queue(INTAKE, bridged.redis.client())
    queue.enqueue_call("bridge.jobs.deliver.deliver", args=(refused.message_id, refused.token),
                       job_id=refused.message_id)
    assert bridged.relay(bridged.portal_app) == 1
    bridged.run_burst("backoffice", INTAKE)
    letters = _dead_letters(bridged)
    assert set(letters) == {"schema_error", "unknown_sender"}

    office = Backoffice(bridged.bo_app, RealClock())
    clerk = office.client_for("clerk1", "clerk")
    assert clerk.get("/admin/dead-letters").status_code == 403
    admin = office.client_for("admin1", "admin")
    listing = _page(admin, "/admin/dead-letters")
    assert {row.select("td")[1].text for row in listing.select("tr.dead-letter")} == set(letters)
    assert SECRET not in listing.text

    detail = _page(admin, f"/admin/dead-letters/{letters['unknown_sender'].id}")
    assert detail.select_one("dd.reason").text == "unknown_sender"
    assert "peer:muni-standin" in detail.select_one("dl.header").text and SECRET not in detail.text
    assert [r.target_id for r in bridged.audit_actions(bridged.bo_app, "bridge.dead_letter.view")] == [
        str(letters["unknown_sender"].id)]

    # Retry: the envelope goes back on its queue as received; refused again, it is a new dead letter.
    response = _post(admin, f"/admin/dead-letters/{letters['unknown_sender'].id}/retry")
    assert response.status_code == 302
    assert bridged.redis.client().llen(queue.key) == 1
    bridged.run_burst("backoffice", INTAKE)
    rows = bridged.rows(bridged.bo_app, "dead")
    assert sorted((r.reason, r.resolution or "") for r in rows) == [
        ("schema_error", ""), ("unknown_sender", ""), ("unknown_sender", "retried")]

    # Discard: the verified sender is acknowledged and a copy arriving later changes nothing.
    response = _post(admin, f"/admin/dead-letters/{letters['schema_error'].id}/discard")
    assert response.status_code == 302
    assert schema_id in {p.message_id for p in bridged.rows(bridged.bo_app, "processed")}
    acks = [r for r in bridged.rows(bridged.bo_app, "outbox") if r.message_type == "ack"]
    assert [a.recipient for a in acks] == ["portal"]
    bridged.redis.client().flushdb()
    assert bridged.relay(bridged.portal_app, now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)) == 1
    bridged.run_burst("backoffice", INTAKE)
    assert [(r.reason, r.resolution) for r in bridged.rows(bridged.bo_app, "dead") if r.reason == "schema_error"] == [
        ("schema_error", "discarded")]

    # A closed dead letter cannot be handled twice.
    again = _post(admin, f"/admin/dead-letters/{letters['schema_error'].id}/retry")
    assert again.status_code == 302 and again.location.endswith(f"/admin/dead-letters/{letters['schema_error'].id}")
    assert len(bridged.audit_actions(bridged.bo_app, "bridge.dead_letter.retry")) == 1
    [discarded] = bridged.audit_actions(bridged.bo_app, "bridge.dead_letter.discard")
    assert discarded.target_id == str(letters["schema_error"].id)
    assert SECRET not in str(discarded.detail)
    remaining = _page(admin, "/admin/dead-letters")
    assert [row.select("td")[1].text for row in remaining.select("tr.dead-letter")] == ["unknown_sender"]


def test_each_dead_letter_action_names_the_administrator_who_took_it(bridged, bridge_keys):
    """Two administrators open and handle dead letters: the operation log tells them apart, never "bridge"."""
    bridged.send("test.schema", [{"marker": SECRET}, {"marker": SECRET}])
    assert bridged.relay(bridged.portal_app) == 2
    bridged.run_burst("backoffice", INTAKE)
    first, second = sorted(d.id for d in bridged.rows(bridged.bo_app, "dead"))

    office = Backoffice(bridged.bo_app, RealClock())
    alice, bob = office.client_for("admin1", "admin"), office.client_for("admin2", "admin")
    assert _post(alice, f"/admin/dead-letters/{first}/discard").status_code == 302
    assert _post(bob, f"/admin/dead-letters/{second}/retry").status_code == 302

    staff, logged = _staff_and_log(bridged.bo_app)
    assert set(logged) == {
        ("bridge.dead_letter.view", str(first), "admin1", staff["admin1"]),
        ("bridge.dead_letter.discard", str(first), "admin1", staff["admin1"]),
        ("bridge.dead_letter.view", str(second), "admin2", staff["admin2"]),
        ("bridge.dead_letter.retry", str(second), "admin2", staff["admin2"]),
    }
    # What the bridge did on its own (the worker dead-lettering) stays the bridge's.
    assert bridged.audit_actions(bridged.bo_app, "bridge.dead_letter")
    assert _actors(bridged.bo_app, "bridge.dead_letter") == {"bridge"}


def _staff_and_log(app):
    from sqlalchemy import text

    with app.app_context():
        session = app.extensions["bridge"].session
        staff = dict(session.execute(text("SELECT login_id, id FROM staff")).all())
        logged = sorted(session.execute(text(
            "SELECT action, target_id, actor, actor_id FROM audit_log WHERE action IN "
            "('bridge.dead_letter.view', 'bridge.dead_letter.discard', 'bridge.dead_letter.retry')")).all())
        session.rollback()
    return staff, [tuple(r) for r in logged]


def _actors(app, action):
    from sqlalchemy import text

    with app.app_context():
        session = app.extensions["bridge"].session
        actors = set(session.execute(text("SELECT actor FROM audit_log WHERE action = :a"), {"a": action}).scalars())
        session.rollback()
    return actors


def test_a_retry_while_the_job_that_dead_lettered_the_message_still_runs_loses_nothing(bridged, bridge_keys,
                                                                                       monkeypatch):
    """rq marks a job finished only after it returned: a retry in that moment must not close the row for nothing."""
    from rq.job import Job, JobStatus
    from rq.serializers import JSONSerializer

    from bridge import deadletters

    monkeypatch.setattr(deadletters, "SETTLE_SECONDS", 0.3)
    bridged.send("test.schema", [{"marker": SECRET}])
    assert bridged.relay(bridged.portal_app) == 1
    bridged.run_burst("backoffice", INTAKE)
    [letter] = bridged.rows(bridged.bo_app, "dead")
    client = bridged.redis.client()
    job = Job.fetch(letter.message_id, connection=client, serializer=JSONSerializer)
    job.set_status(JobStatus.STARTED)  # the work-horse that dead-lettered it has not returned yet

    admin = Backoffice(bridged.bo_app, RealClock()).client_for("admin1", "admin")
    busy = _post(admin, f"/admin/dead-letters/{letter.id}/retry")
    assert busy.status_code == 302 and busy.location.endswith(f"/admin/dead-letters/{letter.id}")
    [still] = bridged.rows(bridged.bo_app, "dead")
    assert (still.resolution, still.resolved_at) == (None, None), "the row was closed but nothing was queued"
    assert not bridged.audit_actions(bridged.bo_app, "bridge.dead_letter.retry")
    notice = _page(admin, f"/admin/dead-letters/{letter.id}")
    assert "まだ処理中" in notice.text

    job.set_status(JobStatus.FAILED)  # the job has now ended: the same retry goes through
    assert _post(admin, f"/admin/dead-letters/{letter.id}/retry").status_code == 302
    assert client.llen(get_queue(INTAKE, client).key) == 1
    [closed] = bridged.rows(bridged.bo_app, "dead")
    assert closed.resolution == "retried"
