"""Views: list staff, unlock, disable; list and revoke terminals; inspect, retry and discard dead letters."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _

from backoffice.admin import bp
from backoffice.extensions import db
from backoffice.models import Role, Staff
from backoffice.security import access
from backoffice.services import staff as staff_service
from backoffice.services import terminals


@bp.route("/staff")
@access(Role.ADMIN)
def staff_list() -> Any:
    """Every account with its roles and whether it is locked or disabled."""
    return render_template("backoffice/admin/staff.html", staff=staff_service.list_staff(db.session))


def _row_or_404(model: type[Any], key: int) -> Any:
    row = db.session.get(model, key)
    if row is None:
        abort(404)
    return row


def _staff_or_404(staff_id: int) -> Staff:
    staff: Staff = _row_or_404(Staff, staff_id)
    return staff


@bp.route("/staff/<int:staff_id>/unlock", methods=["POST"])
@access(Role.ADMIN)
def unlock(staff_id: int) -> Any:
    """Lift a lockout after repeated failures."""
    staff = _staff_or_404(staff_id)
    staff_service.unlock(db.session, staff)
    db.session.commit()
    flash(_("%(login)s is unlocked.", login=staff.login_id), "info")
    return redirect(url_for("admin.staff_list"))


@bp.route("/staff/<int:staff_id>/disable", methods=["POST"])
@access(Role.ADMIN)
def disable(staff_id: int) -> Any:
    """Disable an account; its live sessions end at once."""
    staff = _staff_or_404(staff_id)
    staff_service.disable(db.session, staff)
    db.session.commit()
    flash(_("%(login)s is disabled and signed out everywhere.", login=staff.login_id), "info")
    return redirect(url_for("admin.staff_list"))


@bp.route("/terminals")
@access(Role.ADMIN)
def terminal_list() -> Any:
    """Registered terminals and their state."""
    return render_template("backoffice/admin/terminals.html", terminals=terminals.list_terminals(db.session))


@bp.route("/terminals/<name>/revoke", methods=["POST"])
@access(Role.ADMIN)
def revoke_terminal(name: str) -> Any:
    """Revoke a terminal: it gets 403 from its next request on."""
    try:
        terminals.revoke(db.session, name)
    except terminals.TerminalError:
        abort(404)
    db.session.commit()
    flash(_("Terminal %(name)s is revoked.", name=name), "info")
    return redirect(url_for("admin.terminal_list"))


# -- dead letters (bridge/deadletters.py): messages the bridge could not apply ----------------------


def _dead_letter_or_404(letter_id: int) -> Any:
    from backoffice.models import DeadLetter

    return _row_or_404(DeadLetter, letter_id)


@bp.route("/dead-letters")
@access(Role.ADMIN)
def dead_letters() -> Any:
    """Messages refused or failed for good, still open, newest first (ids and reasons only)."""
    from backoffice.models import DeadLetter
    from bridge import deadletters

    return render_template("backoffice/admin/dead_letters.html",
                           letters=deadletters.open_letters(db.session, DeadLetter))


@bp.route("/dead-letters/<bigint:letter_id>")
@access(Role.ADMIN)
def dead_letter(letter_id: int) -> Any:
    """One dead letter: its reason and the envelope's header, never its contents (the view is logged)."""
    from bridge import deadletters
    from bridge.binding import current_bridge

    row = _dead_letter_or_404(letter_id)
    deadletters.view(current_bridge(), row)
    db.session.commit()
    return render_template("backoffice/admin/dead_letter.html", letter=row, header=deadletters.header(row),
                           size=len(row.envelope or ""))


@bp.route("/dead-letters/<bigint:letter_id>/retry", methods=["POST"])
@access(Role.ADMIN)
def retry_dead_letter(letter_id: int) -> Any:
    """Put the message back on its queue, as received."""
    from bridge import deadletters
    from bridge.binding import current_bridge

    row = _dead_letter_or_404(letter_id)
    binding = current_bridge()
    connection = binding.redis()
    try:
        deadletters.retry(binding, row, connection)
    except deadletters.DeadLetterBusy:
        db.session.rollback()
        flash(_("This message is still being processed. Try again in a moment."), "error")
        return redirect(url_for("admin.dead_letter", letter_id=letter_id))
    except ValueError as exc:  # closed already, or nothing to retry
        db.session.rollback()
        flash(_("This message cannot be retried: %(reason)s", reason=str(exc)), "error")
        return redirect(url_for("admin.dead_letter", letter_id=letter_id))
    finally:
        connection.close()
    db.session.commit()
    flash(_("Message %(id)s is queued again.", id=row.message_id), "info")
    return redirect(url_for("admin.dead_letters"))


@bp.route("/dead-letters/<bigint:letter_id>/discard", methods=["POST"])
@access(Role.ADMIN)
def discard_dead_letter(letter_id: int) -> Any:
    """Close the dead letter for good; a verified sender is acknowledged so it stops sending it."""
    from bridge import deadletters
    from bridge.binding import current_bridge

    row = _dead_letter_or_404(letter_id)
    try:
        acknowledged = deadletters.discard(current_bridge(), row)
    except deadletters.DeadLetterClosed:
        db.session.rollback()
        flash(_("This message was already handled."), "error")
        return redirect(url_for("admin.dead_letter", letter_id=letter_id))
    db.session.commit()
    if acknowledged:
        flash(_("Message %(id)s is discarded and its sender was told it arrived.", id=row.message_id), "info")
    else:
        flash(_("Message %(id)s is discarded; its sender is unproven, so nothing was sent back.",
                id=row.message_id), "info")
    return redirect(url_for("admin.dead_letters"))


# -- the bridge page (bridge/monitor.py, bridge/alerting.py): queues, workers, outbox, alerts ---------


@bp.route("/bridge")
@access(Role.ADMIN)
def bridge() -> Any:
    """Queues, workers, outbox, open dead letters and alerts; the page refreshes its figures itself."""
    from backoffice.cases.views import KIND_LABELS, jst
    from backoffice.models import DeadLetter
    from backoffice.services import intake_pause
    from bridge import alerting, deadletters, monitor
    from bridge.binding import current_bridge

    binding = current_bridge()
    connection = binding.redis()
    try:
        names = monitor.queues_of(binding)
        workers = monitor.workers(connection, names)
        queues = monitor.queue_figures(connection, names, workers)
        charts = [monitor.chart(name, monitor.samples(connection, name)) for name in names]
    finally:
        connection.close()
    page = render_template(
        "backoffice/admin/bridge.html", queues=queues, workers=workers, outbox=monitor.outbox_figures(binding),
        letters=deadletters.open_letters(db.session, DeadLetter, limit=20), alerts=alerting.open_alerts(binding),
        paused=intake_pause.paused(db.session), held=intake_pause.held_counts(db.session), charts=charts,
        kinds=intake_pause.KINDS, kind_labels=KIND_LABELS, party=binding.party, jst=jst, minutes=_minutes)
    db.session.rollback()
    return page


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return _("%(minutes)d min %(seconds)02d s", minutes=int(seconds // 60), seconds=int(seconds % 60))


@bp.route("/bridge/alerts/<bigint:alert_id>/acknowledge", methods=["POST"])
@access(Role.ADMIN)
def acknowledge_alert(alert_id: int) -> Any:
    """The administrator has seen the alert: no more mail for it."""
    return _alert_action(alert_id, "acknowledge")


@bp.route("/bridge/alerts/<bigint:alert_id>/resolve", methods=["POST"])
@access(Role.ADMIN)
def resolve_alert(alert_id: int) -> Any:
    """The condition is dealt with; seen again, it opens a new alert."""
    return _alert_action(alert_id, "resolve")


def _alert_action(alert_id: int, action: str) -> Any:
    from flask_login import current_user

    from backoffice.models import BridgeAlert
    from bridge import alerting
    from bridge.binding import current_bridge

    row = _row_or_404(BridgeAlert, alert_id)
    if row.kind in alerting.SECURITY_KINDS:
        abort(404)  # the security officer's alerts are not the administrators' to see or close
    try:
        getattr(alerting, action)(current_bridge(), row, by=current_user.login_id)
    except alerting.AlertClosed:
        db.session.rollback()
        flash(_("This alert was already handled."), "error")
        return redirect(url_for("admin.bridge"))
    db.session.commit()
    if action == "acknowledge":
        flash(_("Alert %(id)s is acknowledged.", id=alert_id), "info")
    else:
        flash(_("Alert %(id)s is resolved.", id=alert_id), "info")
    return redirect(url_for("admin.bridge"))


@bp.route("/bridge/intake/pause", methods=["POST"])
@access(Role.ADMIN)
def pause_intake() -> Any:
    """Pause one application kind's intake, with a reason: the portal keeps accepting, this office holds them."""
    from flask import request
    from flask_login import current_user

    from backoffice.services import intake_pause

    try:
        intake_pause.pause(db.session, request.form.get("kind", ""), request.form.get("reason", ""),
                           by=current_user.login_id)
    except intake_pause.PauseError as exc:
        db.session.rollback()
        messages = {"kind": _("Kind: choose an application kind that is not paused yet."),
                    "reason": _("Reason: say why, in at most %(max)d characters.", max=intake_pause.REASON_MAX)}
        flash(messages[exc.field], "error")
        return redirect(url_for("admin.bridge"))
    db.session.commit()
    flash(_("Intake is paused; the applications wait here until it is resumed."), "info")
    return redirect(url_for("admin.bridge"))


@bp.route("/bridge/intake/<kind>/resume", methods=["POST"])
@access(Role.ADMIN)
def resume_intake(kind: str) -> Any:
    """Resume a paused kind: what was held goes back on the intake queue in arrival order."""
    from backoffice.services import intake_pause
    from bridge.binding import current_bridge

    connection = current_bridge().redis()
    try:
        released = intake_pause.resume(db.session, kind, connection)
    except intake_pause.PauseError as exc:
        db.session.rollback()
        if str(exc) == "busy":
            flash(_("Some held applications are still being processed; nothing changed. Resume again in a moment."),
                  "error")
        else:
            flash(_("Kind: choose an application kind that is paused."), "error")
        return redirect(url_for("admin.bridge"))
    finally:
        connection.close()
    db.session.commit()
    flash(_("Intake is resumed; %(count)d held application(s) are queued in the order they arrived.",
            count=released), "info")
    return redirect(url_for("admin.bridge"))
