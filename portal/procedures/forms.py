"""The service search form; it travels in the query string because search words are not personal data."""

from __future__ import annotations

from typing import Any

from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectChoice, SelectField, StringField
from wtforms.validators import AnyOf, Length, Optional

from portal.services import catalog


class SearchForm(FlaskForm):
    """Keyword, category and life event; each may be left empty."""

    class Meta:
        csrf = False  # a GET search changes nothing, and its URL must be shareable

    q = StringField(
        _l("Search words"),
        validators=[Optional(), Length(max=catalog.MAX_QUERY_LENGTH,
                                       message=_l("Enter %(max)d characters or fewer"))],
    )
    category = SelectField(
        _l("Category"),
        validators=[Optional(), AnyOf([c.code for c in catalog.categories()],
                                      message=_l("Choose a category from the list"))],
        validate_choice=False,  # AnyOf above says what is wrong in words a resident understands
    )
    life_event = SelectField(
        _l("Life event"),
        validators=[Optional(), AnyOf([e.code for e in catalog.life_events()],
                                      message=_l("Choose a life event from the list"))],
        validate_choice=False,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Choices carry labels in the page's language, so they are built per request.
        lang = str(get_locale())
        self.category.choices = [SelectChoice("", _l("All categories"))] + [
            SelectChoice(c.code, c.label.in_lang(lang)) for c in catalog.categories()]
        self.life_event.choices = [SelectChoice("", _l("All life events"))] + [
            SelectChoice(e.code, e.label.in_lang(lang)) for e in catalog.life_events()]
