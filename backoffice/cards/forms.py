"""Forms for issuing a card and revoking one of its certificates; the rules themselves live in the service."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length

from core.jpki.cardauthority import RevocationReason


class IssueForm(FlaskForm):
    """Resident record code, and the PIN and password the resident chose at the counter."""

    resident_code = StringField(
        _l("Resident record code"),
        validators=[DataRequired(_l("Enter the resident record code")), Length(max=20)],
    )
    # PasswordField never writes the value back into the page, so a refused form does not echo the secrets.
    pin = PasswordField(_l("PIN (user authentication)"), validators=[DataRequired(_l("Enter the 4-digit PIN")),
                                                                     Length(max=20)])
    password = PasswordField(_l("Password (digital signature)"), validators=[Length(max=40)])


REASON_LABELS = {
    RevocationReason.KEY_COMPROMISE: _l("Key compromised (keyCompromise)"),
    RevocationReason.AFFILIATION_CHANGED: _l("Basic items changed (affiliationChanged)"),
    RevocationReason.CERTIFICATE_HOLD: _l("Card reported lost: hold (certificateHold)"),
    RevocationReason.SUPERSEDED: _l("Replaced by a new card (superseded)"),
}


class RevokeForm(FlaskForm):
    """One certificate of the card and the reason for revoking it."""

    serial = SelectField(_l("Certificate"), validators=[DataRequired(_l("Choose the certificate to revoke"))])
    reason = SelectField(
        _l("Reason for revoking"),
        choices=[SelectChoice("", _l("Choose a reason"))] + [SelectChoice(r.value, label)
                                                          for r, label in REASON_LABELS.items()],
        validators=[DataRequired(_l("Choose the reason for revoking"))],
    )
