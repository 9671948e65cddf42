"""The ledger search form; criteria travel in the POST body, never in the URL."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, IntegerField, SelectChoice, SelectField, StringField
from wtforms.validators import Length, NumberRange, Optional, Regexp


class SearchForm(FlaskForm):
    """Search by 住民票コード, or by at least two of name, address and birth date."""

    juminhyo_code = StringField(
        _l("Resident record code"),
        validators=[Optional(), Regexp(r"^\d{11}$", message=_l("The resident record code is 11 digits"))],
    )
    name = StringField(_l("Name (kanji or kana)"), validators=[Optional(), Length(max=100)])
    address = StringField(_l("Address"), validators=[Optional(), Length(max=100)])
    birth_date = DateField(_l("Date of birth"), validators=[Optional()],
                           render_kw={"placeholder": "1980-04-01"})
    sex = SelectField(
        _l("Sex"),
        choices=[SelectChoice("", _l("Any")), SelectChoice("1", _l("Male")), SelectChoice("2", _l("Female"))],
        validators=[Optional()],
    )
    page = IntegerField(validators=[Optional(), NumberRange(min=1, max=100000)], default=1)
    export = HiddenField()
