"""Views: list staff, unlock, disable; list and revoke terminals."""

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
