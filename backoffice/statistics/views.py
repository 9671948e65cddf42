"""Views: the 異動集計 page (a period of months), its CSV export (POST, logged, formula-escaped) and the list of
notifications past the 14 days (届出期間経過) for the notice to the summary court."""

from __future__ import annotations

from typing import Any

from flask import Response, render_template, request

from backoffice.extensions import db
from backoffice.messages import KIND_LABELS
from backoffice.models import Role
from backoffice.security import access
from backoffice.services import filing, statistics
from backoffice.statistics import bp
from core import clock
from core.csvsafe import to_csv
from core.i18n import format_date

READERS = (Role.CLERK, Role.APPROVER, Role.AUDITOR)


def _default_months() -> tuple[str, str]:
    """The last twelve months, this one included."""
    today = clock.today_jst()
    index = today.year * 12 + today.month - 1 - 11
    return f"{index // 12:04d}-{index % 12 + 1:02d}", today.strftime("%Y-%m")


@bp.route("/", methods=["GET", "POST"])
@access(*READERS)
def moves() -> Any:
    """Counts by reason and month, and by 町字, for the months chosen (the last twelve by default)."""
    first, last = _default_months()
    first = request.values.get("first", first)
    last = request.values.get("last", last)
    counts, error, late = None, None, None
    try:
        when = statistics.period(first, last)
    except statistics.StatisticsError as exc:
        error = exc
    else:
        if request.method == "POST" and request.form.get("export") == "csv":
            header, rows = statistics.export(db.session, when)
            db.session.commit()
            return Response(to_csv(header, rows), mimetype="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f"attachment; filename=ido-{first}-{last}.csv"})
        counts = statistics.view(db.session, when)
        late = statistics.late_notifications(db.session, when)
        db.session.commit()
    return render_template("backoffice/statistics/moves.html", counts=counts, error=error, first=first, last=last,
                           late=late), 400 if error else 200


@bp.route("/late")
@access(Role.CLERK, Role.APPROVER)
def late() -> Any:
    """届出期間経過: each 転入 or 転居 notified after the 14 days, with the people and the days, for the clerk's
    notice to the summary court (住民基本台帳法第52条第2項 過料通知). Personal data: the list is logged."""
    rows = filing.late_list(db.session)
    db.session.commit()
    return render_template("backoffice/statistics/late.html", rows=rows, kind_labels=KIND_LABELS,
                           format_date=format_date)
