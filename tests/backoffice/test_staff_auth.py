"""Staff sign-in (R5, R15, R19): second factor, lockout, idle timeout, server-side sessions."""

from __future__ import annotations

import pyotp
import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select

from backoffice.models import AuditLog, Staff, StaffSession
from tests.conftest import csrf_from


def _audit(bo_app, action):
    from backoffice.extensions import db

    with bo_app.app_context():
        stmt = select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.seq)
        return list(db.session.execute(stmt).scalars())


def _staff(bo_app, login_id):
    from backoffice.extensions import db

    with bo_app.app_context():
        return db.session.execute(select(Staff).where(Staff.login_id == login_id)).scalar_one()


def _error_text(response):
    summary = BeautifulSoup(response.text, "html.parser").select_one(".error-summary")
    return summary.get_text(" ", strip=True) if summary else ""


@pytest.mark.sqlite
def test_a_clerk_with_password_and_current_code_is_signed_in(backoffice):
    backoffice.add_staff("clerk1", "clerk")
    client = backoffice.enrolled_client()
    response = backoffice.sign_in(client, "clerk1")
    assert response.status_code == 302
    home = client.get("/")
    assert home.status_code == 200
    assert "clerk1" in BeautifulSoup(home.text, "html.parser").select_one(".who").text
    rows = _audit(backoffice.app, "staff.sign_in")
    assert [(r.actor, r.outcome) for r in rows] == [("clerk1", "success")]
    assert rows[0].terminal_id is not None


@pytest.mark.sqlite
def test_a_wrong_one_time_code_is_refused_and_no_session_is_opened(backoffice):
    backoffice.add_staff("clerk1", "clerk")
    client = backoffice.enrolled_client()
    good = backoffice.totp("clerk1")
    wrong = f"{(int(good) + 1) % 1000000:06d}"
    response = backoffice.sign_in(client, "clerk1", totp=wrong)
    assert response.status_code == 200
    assert "Sign-in failed" in _error_text(response) or "サインイン" in _error_text(response)
    assert client.get("/").status_code == 302  # still sent to sign-in
    assert [(r.outcome, r.detail_dict()["reason"]) for r in _audit(backoffice.app, "staff.sign_in")] == [
        ("failure", "bad_totp")]


def test_the_password_alone_never_opens_a_session(backoffice, bo_app):
    from backoffice.extensions import db

    backoffice.add_staff("clerk1", "clerk")
    client = backoffice.enrolled_client()
    token = csrf_from(client, "/sign-in")
    response = client.post("/sign-in", data={"login_id": "clerk1", "password": "correct horse battery",
                                             "totp": "", "csrf_token": token})
    assert response.status_code == 200
    with bo_app.app_context():
        assert db.session.execute(select(StaffSession)).first() is None


def test_a_one_time_code_cannot_be_used_twice(backoffice):
    backoffice.add_staff("clerk1", "clerk")
    client = backoffice.enrolled_client()
    code = backoffice.totp("clerk1")
    assert backoffice.sign_in(client, "clerk1", totp=code).status_code == 302
    other = backoffice.enrolled_client("counter-2")
    assert backoffice.sign_in(other, "clerk1", totp=code).status_code == 200


def test_an_unknown_login_gets_the_same_answer_as_a_wrong_password(backoffice):
    backoffice.add_staff("clerk1", "clerk")
    client = backoffice.enrolled_client()
    unknown = backoffice.sign_in(client, "nobody", totp="123456")
    wrong = backoffice.sign_in(client, "clerk1", password="wrong password here")
    assert unknown.status_code == wrong.status_code == 200
    assert _error_text(unknown) == _error_text(wrong) != ""


@pytest.mark.sqlite
def test_five_failures_lock_the_account_until_an_admin_unlocks_it(backoffice):
    backoffice.add_staff("clerk1", "clerk")
    client = backoffice.enrolled_client()
    for _ in range(5):
        assert backoffice.sign_in(client, "clerk1", password="wrong password here").status_code == 200
    assert _staff(backoffice.app, "clerk1").locked_at is not None
    # The right password and code are refused while locked, and the page says so.
    locked = backoffice.sign_in(client, "clerk1")
    assert locked.status_code == 200
    assert "locked" in _error_text(locked).lower() or "ロック" in _error_text(locked)

    admin = backoffice.client_for("admin1", "admin")
    staff_page = BeautifulSoup(admin.get("/admin/staff").text, "html.parser")
    form = staff_page.select_one("#staff-clerk1 form[action$='/unlock']")
    response = admin.post(form["action"], data={"csrf_token": form.select_one("input[name=csrf_token]")["value"]})
    assert response.status_code == 302
    assert _staff(backoffice.app, "clerk1").locked_at is None
    assert backoffice.sign_in(client, "clerk1").status_code == 302
    assert [r.actor for r in _audit(backoffice.app, "staff.unlock")] == ["admin1"]


def test_four_failures_do_not_lock_and_a_success_resets_the_count(backoffice):
    backoffice.add_staff("clerk1", "clerk")
    client = backoffice.enrolled_client()
    for _ in range(4):
        backoffice.sign_in(client, "clerk1", password="wrong password here")
    assert backoffice.sign_in(client, "clerk1").status_code == 302
    assert _staff(backoffice.app, "clerk1").failed_attempts == 0


def test_a_locked_screen_stays_locked_on_a_reload_until_the_one_time_code(bo_app, backoffice, tmp_path):
    # The attack: the page locked itself after five idle minutes; whoever walks up to the terminal presses F5,
    # or opens the same address in a new tab. The server must hold the lock too, and a locked request must not
    # keep the session alive.
    from tests.backoffice.case_fixtures import make_city

    city = make_city(bo_app, tmp_path)
    path = f"/ledger/residents/{city['head']}"
    clerk = backoffice.client_for("clerk1", "clerk")
    assert "宮沢　賢" in clerk.get(path).get_data(as_text=True)
    backoffice.clock.advance(minutes=6)
    for request in (lambda: clerk.get(path), lambda: clerk.get(f"/ledger/api/residents/{city['head']}")):
        locked = request()
        assert locked.status_code == 423 and "宮沢" not in locked.get_data(as_text=True)
    page = clerk.get(path).get_data(as_text=True)
    assert 'name="totp"' in page and f'value="{path}"' in page
    backoffice.clock.advance(minutes=8)  # 14 minutes since the last real activity: still locked, not ended
    assert clerk.get(path).status_code == 423
    unlocked = clerk.post("/screen/unlock", data={"csrf_token": csrf_from(clerk, path),  # the locked page's
                                                  "totp": backoffice.totp("clerk1"), "next": path})
    assert unlocked.status_code == 302 and unlocked.location.endswith(path)
    assert "宮沢　賢" in clerk.get(path).get_data(as_text=True)
    assert len(_audit(bo_app, "staff.screen_locked")) == 5  # every locked request is in the operation log

    other = backoffice.client_for("clerk2", "clerk")
    other.get("/")
    backoffice.clock.advance(minutes=10)
    assert other.get(path).status_code == 423
    backoffice.clock.advance(minutes=6)  # 16 minutes since the last real activity: the locked requests kept nothing
    ended = other.get(path)
    assert ended.status_code == 302 and ended.location.endswith("/sign-in")


@pytest.mark.sqlite
def test_an_idle_session_ends_after_the_timeout(backoffice):
    client = backoffice.client_for("clerk1", "clerk")
    backoffice.clock.advance(minutes=4)
    assert client.get("/").status_code == 200  # activity before the screen lock keeps it alive
    backoffice.clock.advance(minutes=16)
    response = client.get("/")
    assert response.status_code == 302 and response.location.endswith("/sign-in")
    # Coming back does not revive it.
    backoffice.clock.advance(seconds=1)
    assert client.get("/").status_code == 302
    assert [r.detail_dict()["reason"] for r in _audit(backoffice.app, "staff.session_end")] == ["idle"]


def test_an_active_session_still_ends_at_its_absolute_lifetime(backoffice):
    client = backoffice.client_for("clerk1", "clerk")
    statuses = []
    for _ in range(8 * 15 + 1):  # a request every 4 minutes (before the screen lock), past 8 hours
        backoffice.clock.advance(minutes=4)
        statuses.append(client.get("/").status_code)
    assert set(statuses[:-1]) == {200} and statuses[-1] == 302


def test_a_session_cookie_replayed_after_sign_out_is_refused(backoffice):
    client = backoffice.client_for("clerk1", "clerk")
    stolen = client.get_cookie("bo_session").value
    token = csrf_from(client, "/")
    assert client.post("/sign-out", data={"csrf_token": token}).status_code == 302
    client.set_cookie("bo_session", stolen)
    response = client.get("/")
    assert response.status_code == 302 and response.location.endswith("/sign-in")
    assert [r.actor for r in _audit(backoffice.app, "staff.sign_out")] == ["clerk1"]


def test_a_form_refused_for_its_csrf_token_keeps_the_clerk_signed_in(backoffice):
    """A stale form (e.g. left open past the token's lifetime) is refused, and the clerk is not signed out."""
    client = backoffice.client_for("clerk1", "clerk")
    refused = client.post("/sign-out", data={"csrf_token": "stale"})
    assert refused.status_code == 400
    assert client.get("/ledger/search").status_code == 200


def test_disabling_an_account_ends_its_live_session_at_once(backoffice):
    client = backoffice.client_for("clerk1", "clerk")
    assert client.get("/ledger/search").status_code == 200
    admin = backoffice.client_for("admin1", "admin")
    page = BeautifulSoup(admin.get("/admin/staff").text, "html.parser")
    form = page.select_one("#staff-clerk1 form[action$='/disable']")
    admin.post(form["action"], data={"csrf_token": form.select_one("input[name=csrf_token]")["value"]})
    response = client.get("/ledger/search")
    assert response.status_code == 302 and response.location.endswith("/sign-in")
    rows = _audit(backoffice.app, "staff.disable")
    assert rows[0].detail_dict()["sessions_ended"] == 1


def test_a_password_change_ends_every_live_session(backoffice, bo_app):
    from backoffice.extensions import db
    from backoffice.services import staff as staff_service

    client = backoffice.client_for("clerk1", "clerk")
    with bo_app.test_request_context("/"):
        staff = db.session.execute(select(Staff).where(Staff.login_id == "clerk1")).scalar_one()
        staff_service.change_password(db.session, staff, "another long passphrase")
        db.session.commit()
    assert client.get("/").status_code == 302


def test_the_session_id_changes_at_sign_in(backoffice):
    backoffice.add_staff("clerk1", "clerk")
    client = backoffice.enrolled_client()
    client.get("/sign-in")
    before = client.get_cookie("bo_session").value
    backoffice.sign_in(client, "clerk1")
    after = client.get_cookie("bo_session").value
    assert before != after


def test_a_session_cannot_move_to_another_terminal(backoffice):
    client = backoffice.client_for("clerk1", "clerk")
    other = backoffice.enrolled_client("counter-9")
    other.set_cookie("bo_session", client.get_cookie("bo_session").value)
    assert other.get("/").status_code == 302


def test_session_cookies_are_httponly_samesite_and_secure_outside_development(backoffice, bo_app):
    backoffice.add_staff("clerk1", "clerk")
    client = backoffice.enrolled_client()
    bo_app.config["SESSION_COOKIE_SECURE"] = True
    response = backoffice.sign_in(client, "clerk1")
    header = "; ".join(response.headers.getlist("Set-Cookie"))
    assert "bo_session=" in header
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Secure" in header


def test_a_short_password_is_refused_naming_the_field(bo_app):
    from backoffice.extensions import db
    from backoffice.services import staff as staff_service

    with bo_app.test_request_context("/"):
        with pytest.raises(staff_service.StaffError) as err:
            staff_service.add_staff(db.session, login_id="x", name="X", password="short", roles=["clerk"])
        assert err.value.field == "password"


def test_passwords_are_stored_as_argon2id(backoffice):
    backoffice.add_staff("clerk1", "clerk")
    assert _staff(backoffice.app, "clerk1").password_hash.startswith("$argon2id$")


def test_the_totp_secret_is_stored_encrypted(backoffice):
    backoffice.add_staff("clerk1", "clerk")
    stored = _staff(backoffice.app, "clerk1").totp_secret_encrypted
    assert backoffice.secrets["clerk1"].encode() not in stored
    assert pyotp.TOTP(backoffice.secrets["clerk1"]).now()  # the secret itself is a valid base32 key
