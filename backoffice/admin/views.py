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


def _staff_or_404(staff_id: int) -> Staff:
    staff = db.session.get(Staff, staff_id)
    if staff is None:
        abort(404)
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

    row = db.session.get(DeadLetter, letter_id)
    if row is None:
        abort(404)
    return row


@bp.route("/dead-letters")
@access(Role.ADMIN)
def dead_letters() -> Any:
    """Messages refused or failed for good, still open, newest first (ids and reasons only)."""
    from backoffice.models import DeadLetter
    from bridge import deadletters

    return render_template("backoffice/admin/dead_letters.html",
                           letters=deadletters.open_letters(db.session, DeadLetter))


@bp.route("/dead-letters/<int:letter_id>")
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


@bp.route("/dead-letters/<int:letter_id>/retry", methods=["POST"])
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
    except ValueError as exc:  # closed already, or nothing to retry
        db.session.rollback()
        flash(_("This message cannot be retried: %(reason)s", reason=str(exc)), "error")
        return redirect(url_for("admin.dead_letter", letter_id=letter_id))
    finally:
        connection.close()
    db.session.commit()
    flash(_("Message %(id)s is queued again.", id=row.message_id), "info")
    return redirect(url_for("admin.dead_letters"))


@bp.route("/dead-letters/<int:letter_id>/discard", methods=["POST"])
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
