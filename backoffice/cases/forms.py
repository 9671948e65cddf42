"""Forms of the case page: each step is a POST with a CSRF token; the rules themselves live in the service."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField


class StepForm(FlaskForm):
    """Claim, release or confirm: nothing to type, only the CSRF token."""


class ReasonForm(FlaskForm):
    """Return (差戻し) or reject (却下): the reason goes to the resident."""

    reason = TextAreaField(_l("Reason (shown to the applicant)"))


class ApproveForm(FlaskForm):
    """Approve (承認): a fresh one-time code from the approver's authenticator (step-up)."""

    totp_code = StringField(_l("One-time code"), render_kw={"inputmode": "numeric", "autocomplete": "one-time-code",
                                                            "maxlength": "6"})


class NoteForm(FlaskForm):
    """A note for other staff; never sent to the resident."""

    text = TextAreaField(_l("Note for other staff"))
