"""Why a municipality returned an application or kept it open: the code its status message carries and what
each code says to a person, in the reader's language.

The back office gives these reasons (``backoffice.services.intake.REASONS`` at intake and for a
withdrawal, ``backoffice.services.filing.REASONS`` for who may file, ``backoffice.services.support.PORTAL_REASONS``
when a case reaches a person under a support measure); the status message
(``bridge.messages.APPLICATION_STATUS``) carries the code, never the words; the portal's "My
applications" and the back office's case page both read the words from this one catalogue (English
source, Japanese in translations/ja). A reason a clerk typed travels as text and is shown as typed.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l

LABELS = {
    "signature": _l("The signature could not be verified (the certificate may be revoked). Please contact the "
                    "city."),
    "already_resident": _l("Someone in this move-in reservation is already a resident here; for a move within the "
                           "city send an in-city move reservation."),
    "not_all_resident": _l("Someone in this in-city move reservation is not recorded as a resident here. Please "
                           "check and send it again."),
    "stale": _l("The signature was made too long ago to be accepted. Please sign and send it again."),
    "withdrawal_signature": _l("The withdrawal's signature could not be verified, so the application was not "
                               "withdrawn and is still being handled."),
    "withdrawal_too_late": _l("The city has already started handling this application, so it could not be "
                              "withdrawn. Please contact the city."),
    "duplicate_move_out": _l("A move-out notification for the same person is already being handled."),
    "requester_not_found": _l("The record of the person who signed could not be confirmed, so the request was not "
                              "accepted. Please contact the city."),
    "movers_not_one_household": _l("The people named do not all belong to one household. Only members of one "
                                   "household can be notified together."),
    "more_movers_than_household": _l("The application names more people than the household has. Please check it "
                                     "and send it again."),
    "signer_not_in_household": _l("The person who signed is not a member of the movers' household. The person who "
                                  "moves or a member of their household must notify."),
    "cancellation_signer": _l("The person cancelling is not one of the movers or a member of their household, so "
                              "the move was not cancelled."),
    "cancellation_moved_in": _l("The move is already confirmed by the destination's move-in (転出確定), so it could "
                                "not be cancelled. Please contact the municipality you moved to."),
    "cancellation_householder": _l("The household has another householder since the move-out, so the move could "
                                   "not be cancelled online. Please cancel it at the counter together with a change "
                                   "of householder."),
    "city_will_contact": _l("The city will contact you directly about this application; you may also ask at the "
                            "counter or by phone."),
}
CODES = tuple(LABELS)


def label(code: str | None, text: str | None = None) -> Any:
    """What a person reads for a status reason: the catalogue's words for a code, else the text as given."""
    return LABELS[code] if code in LABELS else (text or "")
