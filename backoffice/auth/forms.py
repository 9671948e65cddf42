"""Forms for sign-in and terminal enrollment."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length, Regexp


class SignInForm(FlaskForm):
    """Login ID, password and the one-time code from the authenticator app."""

    login_id = StringField(_l("Login ID"), validators=[DataRequired(_l("Enter your login ID")), Length(max=50)])
    password = PasswordField(_l("Password"), validators=[DataRequired(_l("Enter your password")), Length(max=128)])
    totp = StringField(
        _l("One-time code"),
        validators=[DataRequired(_l("Enter the 6-digit one-time code")),
                    Regexp(r"^\s*\d{6}\s*$", message=_l("The one-time code is 6 digits"))],
    )


class EnrollForm(FlaskForm):
    """The one-time enrollment code an administrator gave for this terminal."""

    code = StringField(
        _l("Enrollment code"),
        validators=[DataRequired(_l("Enter the enrollment code")), Length(min=12, max=20,
                    message=_l("The enrollment code has 12 letters and digits"))],
    )
