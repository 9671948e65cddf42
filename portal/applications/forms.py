"""One form per question page of the moving and certificate journeys."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.i18n import translations as wtforms_translations
from wtforms import (
    BooleanField,
    DateField,
    FieldList,
    Form,
    FormField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, Regexp, ValidationError

from core import clock
from core.registertext import birth_date_on_record, unrecordable
from portal.services.applications import BIRTH_DATE_RANGE, unrecordable_message

KANA = r"^[ァ-ヶー・　 ぁ-ゖ]+$"


def recordable(_form: object, field: object) -> None:
    """Refuse a character a resident register cannot record, naming it."""
    char = unrecordable(getattr(field, "data", None) or "")
    if char is not None:
        raise ValidationError(unrecordable_message(char))


def birth_date_on_ledger(_form: object, field: object) -> None:
    """Refuse a birth date before 1900 or after today: the ledger could never hold it."""
    born = getattr(field, "data", None)
    if born is not None and not birth_date_on_record(born, clock.today_jst()):
        raise ValidationError(BIRTH_DATE_RANGE)


class WhereForm(FlaskForm):
    """Moving within the city, or to another municipality."""

    kind = RadioField(_l("Where are you moving to?"), choices=[
        SelectChoice("in_city", _l("Within my current municipality")),
        SelectChoice("elsewhere", _l("To another municipality in Japan")),
    ], validators=[InputRequired(_l("Choose where you are moving to"))])


class InCityAddressForm(FlaskForm):
    """A new address in the same municipality, from its address master."""

    machiaza_code = SelectField(_l("Town area (町字)"), validators=[DataRequired(_l("Choose the town area"))])
    banchi = StringField(_l("Block and lot number (番地)"), validators=[
        DataRequired(_l("Enter the block and lot number")), Length(max=50), recordable])
    katagaki = StringField(_l("Building and room (方書)"), validators=[Optional(), Length(max=100), recordable])


class ElsewhereAddressForm(FlaskForm):
    """A new address in another municipality."""

    postal_code = StringField(_l("Postal code"), validators=[
        DataRequired(_l("Enter the postal code")),
        Regexp(r"^\d{3}-?\d{4}$", message=_l("Enter a postal code like 024-0061"))])
    prefecture = SelectField(_l("Prefecture"), validators=[DataRequired(_l("Choose the prefecture"))])
    municipality = StringField(_l("Municipality"), validators=[
        DataRequired(_l("Enter the municipality")), Length(max=50), recordable])
    address = StringField(_l("Rest of the address"), validators=[
        DataRequired(_l("Enter the rest of the address")), Length(max=100), recordable])
    katagaki = StringField(_l("Building and room (方書)"), validators=[Optional(), Length(max=100), recordable])


class DatesForm(FlaskForm):
    """The move date and the planned visit to the counter."""

    move_date = DateField(_l("Date of the move"), validators=[InputRequired(_l("Enter the date of the move"))])
    visit_date = DateField(_l("Planned visit to the counter"), validators=[
        InputRequired(_l("Enter the date you plan to visit the counter"))])


class MoverForm(Form):
    """One person moving."""

    class Meta:
        """A subform is a plain wtforms Form: its built-in messages in the page's language too, like FlaskForm's."""

        def get_translations(self, form: Form) -> object:
            return wtforms_translations

    name = StringField(_l("Name"), validators=[Optional(), Length(max=100), recordable])
    kana = StringField(_l("Name in katakana"), validators=[Optional(), Length(max=100),
                       Regexp(KANA, message=_l("Enter the name in kana"))])
    birth_date = DateField(_l("Date of birth"), validators=[Optional(), birth_date_on_ledger])
    relationship = StringField(_l("Relationship to you"), validators=[Optional(), Length(max=20), recordable])
    keeps_card = BooleanField(_l("Keeps using their My Number Card"), default=True)


class PeopleForm(FlaskForm):
    """Who moves: the applicant first, then household members moving together."""

    movers = FieldList(FormField(MoverForm), min_entries=4, max_entries=10)


class HouseholderForm(FlaskForm):
    """Who will be the householder at the new address."""

    new_householder = RadioField(_l("Who will be the householder at the new address?"), validators=[
        InputRequired(_l("Choose the new householder"))])


class ContactForm(FlaskForm):
    """How the city can reach the resident about the move."""

    contact_phone = StringField(_l("Phone number"), validators=[
        DataRequired(_l("Enter a phone number")),
        Regexp(r"^0\d{1,4}-?\d{1,4}-?\d{3,4}$", message=_l("Enter a phone number like 0198-24-2111"))])


class CertificateForm(FlaskForm):
    """What certificate, for whom, with which items, how many copies and why."""

    kind = RadioField(_l("Which certificate"), choices=[
        SelectChoice("juminhyo", _l("Copy of the resident record (住民票の写し)")),
        SelectChoice("kisai_jiko", _l("Certificate of record items (住民票記載事項証明書)")),
    ], validators=[InputRequired(_l("Choose the certificate"))])
    persons = RadioField(_l("For whom"), choices=[
        SelectChoice("self", _l("Me only")),
        SelectChoice("household", _l("Everyone in my household")),
    ], validators=[InputRequired(_l("Choose for whom"))])
    householder = BooleanField(_l("Householder and relationship (世帯主・続柄)"))
    honseki = BooleanField(_l("Registered domicile and head of the family register (本籍・筆頭者)"))
    foreign_resident = BooleanField(_l(
        "For a foreign resident: category, status and period of residence, residence card number "
        "(第30条の45の区分・在留資格・在留期間・在留カード等の番号)"))
    juminhyo_code = BooleanField(_l("Resident record code (住民票コード)"))
    my_number = BooleanField(_l("My Number (個人番号)"))
    copies = IntegerField(_l("Number of copies"), validators=[
        InputRequired(_l("Enter the number of copies")),
        NumberRange(min=1, max=10, message=_l("Enter a number of copies from 1 to 10"))])
    purpose = StringField(_l("Purpose"), validators=[DataRequired(_l("Enter the purpose")), Length(max=200)])


class RequestForm(FlaskForm):
    """A request about one's own record (R20): disclosure, correction of one item, or suspension of its use."""

    kind = RadioField(_l("What do you ask for?"), choices=[
        SelectChoice("disclosure_request", _l("Disclosure (開示): my record and who accessed it")),
        SelectChoice("correction_request", _l("Correction (訂正) of an item of my record")),
        SelectChoice("suspension_request", _l("Suspension (利用停止) of the use of my record")),
    ], validators=[InputRequired(_l("Choose what you ask for"))])
    item = SelectField(_l("Item to correct"), validators=[Optional()])
    correct_value = StringField(_l("The correct value"), validators=[Optional(), Length(max=200), recordable])
    use = RadioField(_l("What should stop"), validators=[Optional()])
    reason = StringField(_l("Your reason"), validators=[Optional(), Length(max=1000)])
