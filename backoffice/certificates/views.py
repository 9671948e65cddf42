"""Views: certificate requests, one request with its preview, and the issued certificate's actions (all POST)."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from backoffice.certificates import bp
from backoffice.extensions import db
from backoffice.models import Case, IssuedCertificate, Role
from backoffice.security import access
from backoffice.services import certificates
from backoffice.services import ledger as ledger_service
from core.i18n import format_date

WORKERS = (Role.CLERK, Role.APPROVER)


@bp.route("/")
@access(*WORKERS)
def requests() -> Any:
    """Certificate requests being worked and issued ones waiting for their mailing (no personal data)."""
    rows = certificates.certificate_cases(db.session)
    return render_template("backoffice/certificates/list.html", rows=rows)


def _case(case_id: int) -> Case:
    case = db.session.get(Case, case_id)
    if case is None or case.kind != "certificate":
        abort(404)
    return case


@bp.route("/cases/<int:case_id>")
@access(*WORKERS)
def case(case_id: int) -> Any:
    """Eligibility, what would be printed (My Number masked) and, once issued, the certificate's actions."""
    item = _case(case_id)
    eligibility, content = certificates.preview(db.session, item)
    issued = certificates.certificates_for(db.session, item)
    db.session.commit()
    return render_template("backoffice/certificates/case.html", case=item, eligibility=eligibility,
                           content=content, issued=issued, format_date=format_date,
                           may_print_numbers=ledger_service.may_see_my_number(current_user))


def _certificate(cert_id: int) -> IssuedCertificate:
    cert = db.session.get(IssuedCertificate, cert_id)
    if cert is None:
        abort(404)
    return cert


def _pdf(cert_id: int, purpose: str) -> Any:
    cert = _certificate(cert_id)
    try:
        pdf = certificates.render(db.session, cert, by=current_user, purpose=purpose)
    except certificates.CertificateError as exc:
        db.session.commit()  # the refusal itself is in the operation log
        flash(f"{exc.field}: {exc.message}", "error")
        return redirect(url_for("certificates.case", case_id=cert.case_id))
    db.session.commit()
    disposition = "inline" if purpose == "print" else "attachment"
    return Response(pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": f"{disposition}; filename=certificate-{cert.issue_number}.pdf"})


@bp.route("/<int:cert_id>/print", methods=["POST"])
@access(Role.CLERK, Role.APPROVER, Role.NUMBER_USE)
def print_certificate(cert_id: int) -> Any:
    """The PDF to print (shown in the browser); logged."""
    return _pdf(cert_id, "print")


@bp.route("/<int:cert_id>/download", methods=["POST"])
@access(Role.CLERK, Role.APPROVER, Role.NUMBER_USE)
def download(cert_id: int) -> Any:
    """The PDF as a file; logged as an output to media (R14)."""
    return _pdf(cert_id, "download")


@bp.route("/<int:cert_id>/mail", methods=["POST"])
@access(Role.CLERK)
def mail(cert_id: int) -> Any:
    """Record the mailing (発送日, optional 追跡番号): the case is completed and the resident told."""
    cert = _certificate(cert_id)
    try:
        certificates.record_mailing(db.session, cert, by=current_user, mailed_on=request.form.get("mailed_on", ""),
                                    tracking_number=request.form.get("tracking_number", ""))
    except (certificates.CertificateError, certificates.case_service.CaseError) as exc:
        db.session.rollback()
        flash(f"{exc.field}: {exc.message}", "error")
        return redirect(url_for("certificates.case", case_id=cert.case_id))
    db.session.commit()
    flash(_("The mailing is recorded; the case is completed and the resident is told."), "success")
    return redirect(url_for("certificates.case", case_id=cert.case_id))


@bp.route("/<int:cert_id>/revoke", methods=["POST"])
@access(Role.CLERK, Role.APPROVER)
def revoke(cert_id: int) -> Any:
    """Revoke a certificate (issued in error, or reported lost); the portal's verify page then says revoked."""
    cert = _certificate(cert_id)
    try:
        certificates.revoke(db.session, cert, by=current_user, reason=request.form.get("reason", ""))
    except certificates.CertificateError as exc:
        db.session.rollback()
        flash(f"{exc.field}: {exc.message}", "error")
        return redirect(url_for("certificates.case", case_id=cert.case_id))
    db.session.commit()
    flash(_("The certificate is revoked; the verification page will say so."), "success")
    return redirect(url_for("certificates.case", case_id=cert.case_id))
