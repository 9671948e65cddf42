"""Online applications: the rules of the national moving service, signed submission, status, withdrawal.

A submission is accepted only when the whole of it is valid and signed; then one transaction writes
every part (転出届, 転入予約 or 転居予約, a certificate request, or one of the resident's own requests:
開示・訂正・利用停止請求), its first status, and an outbox
row per part for the bridge to carry to the recipient municipality. Checks that need the ledger
(is this person a resident, is the household right) run in the back office on arrival.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import jsonschema
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core import clock, officecalendar, residentrequests
from core.addressmaster import load_machiaza, load_municipalities, municipality_by_code
from core.config import connected_municipalities
from core.jpki import SignedApplicationError, jws_claims, verify_signed_application
from core.jpki.appconfig import MINIMUM_SIGNER_AGE, max_signature_age
from core.registertext import birth_date_on_record, unrecordable
from portal.models import (
    Application,
    ApplicationEvent,
    ApplicationKind,
    ApplicationStatus,
    Move,
    Outbox,
    PortalAccount,
)
from portal.schemas import SCHEMAS
from portal.services import audit, cardauth, catalog, outbound

PREFECTURES = tuple(
    "北海道 青森県 岩手県 宮城県 秋田県 山形県 福島県 茨城県 栃木県 群馬県 埼玉県 千葉県 東京都 神奈川県 新潟県 富山県 "
    "石川県 福井県 山梨県 長野県 岐阜県 静岡県 愛知県 三重県 滋賀県 京都府 大阪府 兵庫県 奈良県 和歌山県 鳥取県 島根県 "
    "岡山県 広島県 山口県 徳島県 香川県 愛媛県 高知県 福岡県 佐賀県 長崎県 熊本県 大分県 宮崎県 鹿児島県 沖縄県".split()
)
MOVE_OUT_BEFORE_DAYS = 30  # an online 転出届 can be filed from 30 days before the move ...
MOVE_OUT_AFTER_DAYS = 10  # ... to 10 days after it
ARRIVAL_NOTICE_DAYS = 14  # 転入届・転居届 within 14 days of moving (住民基本台帳法 第22条・第23条)
WITHDRAWABLE = {ApplicationStatus.SUBMITTED, ApplicationStatus.RECEIVED}
# An approved move not yet completed can still be cancelled (転出取消 before the 転入, 予約取消): the same
# signed withdrawal, which the municipality verifies and acts on, or refuses with the reason after the 転入.
CANCELLABLE_KINDS = {ApplicationKind.MOVE_OUT, ApplicationKind.MOVE_IN_RESERVATION,
                     ApplicationKind.IN_CITY_RESERVATION}
# Every receipt number the portal issues (18 digits) fits, as does every one the bridge's messages may carry.
RECEIPT_NUMBER = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{0,29}")


def may_withdraw(application: Application) -> bool:
    """Whether the resident may sign a withdrawal (or a cancellation of an approved move) of ``application``.

    A request about one's own record (R20) never: the city has no withdrawal of a request case.
    """
    if application.kind.value in REQUEST_TYPES:
        return False
    return application.status in WITHDRAWABLE or (application.status is ApplicationStatus.APPROVED
                                                  and application.kind in CANCELLABLE_KINDS)


@dataclass(frozen=True)
class FieldError:
    """A refusal of one input; ``field`` is the JSON path of the application (and the form field's id)."""

    field: str
    message: Any

    @property
    def pointer(self) -> str:
        """The field as a JSON Pointer (RFC 6901) into the application: ``movers.1.name`` is ``/movers/1/name``."""
        if self.field == "application":
            return ""
        return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in self.field.split("."))


class ApplicationInvalid(ValueError):
    """The submission breaks a rule; nothing was stored."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def _date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        return None


def old_enough_to_sign(account: PortalAccount, today: dt.date) -> bool:
    """Only residents of 15 or older hold a signature certificate and may sign."""
    return account.birth_date is not None and clock.age_on(account.birth_date, today) >= MINIMUM_SIGNER_AGE


def next_business_day(day: dt.date) -> dt.date:
    """The first day after ``day`` on which the city office is open (the office calendar of ``core``)."""
    return officecalendar.next_open_day(day)


def home_municipality(account: PortalAccount) -> str | None:
    """The municipality of the address in the resident's signature certificate."""
    address = (account.address or "").replace(" ", "").replace("　", "")
    for m in load_municipalities():
        if address.startswith(m.prefecture + m.name):
            return m.code
    return None


def is_connected(code: str) -> bool:
    """Whether the municipality takes online applications through this portal."""
    return code in connected_municipalities()


def _schema_errors(kind: str, data: Any) -> list[FieldError]:
    validator = jsonschema.Draft202012Validator(SCHEMAS[kind], format_checker=jsonschema.FormatChecker())
    errors: list[FieldError] = []
    for error in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        errors += _named(error)
    return errors


BIRTH_DATE_RANGE = _l("Enter a date of birth from 1 January 1900 up to today.")


def unrecordable_message(char: str) -> Any:
    """The refusal of a character the register cannot record, naming it (and its code point)."""
    return _l("This contains a character a resident register cannot record: %(char)s (U+%(code)s).",
              char=char, code=f"{ord(char):04X}")


def unrecordable_errors(data: dict[str, Any]) -> list[FieldError]:
    """Every typed text the ledger would hold, refused naming the field when it has a character a register lacks."""
    texts = [(f"movers.{i}.{key}", str(mover[key]))
             for i, mover in enumerate(data["movers"]) for key in ("name", "relationship")]
    texts.append(("newHouseholder", str(data["newHouseholder"])))
    texts += [(f"destination.{key}", value) for key, value in data["destination"].items() if isinstance(value, str)]
    errors = []
    for field, text in texts:
        char = unrecordable(text)
        if char is not None:
            errors.append(FieldError(field, unrecordable_message(char)))
    return errors


def _named(error: Any) -> list[FieldError]:
    """One schema error as field errors, each naming the property concerned (a missing or unexpected one itself)."""
    parent = [str(p) for p in error.absolute_path]
    if error.context:
        # One of several shapes (a destination in the city or elsewhere): the errors of the shape it nearly is.
        branches: dict[Any, list[Any]] = {}
        for inner in error.context:
            branches.setdefault(inner.relative_schema_path[0], []).append(inner)
        return [named for inner in min(branches.values(), key=len) for named in _named(inner)]
    if error.validator == "required" and isinstance(error.instance, dict):
        return [FieldError(".".join([*parent, name]), _l("This property is missing."))
                for name in error.validator_value if name not in error.instance]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        return [FieldError(".".join([*parent, name]), _l("This property is not expected."))
                for name in sorted(set(error.instance) - known)]
    return [FieldError(".".join(parent) or "application", _l("This answer is not in the expected form."))]


def check_move(data: Any, *, account: PortalAccount, today: dt.date) -> list[FieldError]:
    """Every rule of the online moving service that can be checked without the ledger."""
    errors = _schema_errors("move", data)
    if errors:
        return errors
    origin = home_municipality(account)
    errors = _home_municipality_errors(
        data, account, "fromMunicipalityCode", _l("The current address must be the one on your card."),
        _l("Your municipality does not take online move notifications here yet."))
    if not old_enough_to_sign(account, today):
        errors.append(FieldError("movers", _l("The person who signs must be 15 or older.")))
    move_date, visit = _date(data["moveDate"]), _date(data["visitDate"])
    dest = data["destination"]
    in_city = dest["kind"] == "in_city"
    if move_date is None:
        errors.append(FieldError("moveDate", _l("Enter a real date.")))
    elif in_city:
        if not today - dt.timedelta(days=ARRIVAL_NOTICE_DAYS) <= move_date <= today + dt.timedelta(days=30):
            errors.append(FieldError("moveDate", _l(
                "A visit for a move within the city can be reserved from 30 days before to 14 days after the move.")))
    elif not (today - dt.timedelta(days=MOVE_OUT_AFTER_DAYS) <= move_date
              <= today + dt.timedelta(days=MOVE_OUT_BEFORE_DAYS)):
        errors.append(FieldError("moveDate", _l(
            "The online move-out notification can be sent from 30 days before to 10 days after the move date. "
            "For another date, please notify at the city office.")))
    if in_city:
        codes = {m.code for m in load_machiaza(origin)} if origin else set()
        if dest["machiazaCode"] not in codes:
            errors.append(FieldError("destination.machiazaCode", _l("Choose a town area from the list.")))
    else:
        if dest["prefecture"] not in PREFECTURES:
            errors.append(FieldError("destination.prefecture", _l(
                "Online notification is for moves within Japan. For a move abroad, please visit the city office.")))
        code = dest.get("municipalityCode")
        if code:
            known = municipality_by_code(code)
            if known is None or known.name != dest["municipality"] or known.prefecture != dest["prefecture"]:
                errors.append(FieldError("destination.municipality", _l("Choose the municipality from the list.")))
            elif code == origin:
                errors.append(FieldError("destination.kind", _l(
                    "This address is in your current municipality: choose a move within the city.")))
    if visit is None:
        errors.append(FieldError("visitDate", _l("Enter a real date.")))
    elif move_date is not None:
        if visit < move_date:
            errors.append(FieldError("visitDate", _l("The visit can only be on or after the move date.")))
        # A difference, not move_date + 14 days: that sum overflows for a move date near 9999-12-31.
        elif (visit - move_date).days > ARRIVAL_NOTICE_DAYS:
            errors.append(FieldError("visitDate", _l("The visit must be within 14 days after the move.")))
        if visit < next_business_day(today):
            errors.append(FieldError("visitDate", _l("The visit must be at least one business day from today.")))
        elif not officecalendar.is_open(visit):
            errors.append(FieldError("visitDate", _l(
                "The city office is closed on that day (weekends, national holidays and 29 December to 3 January). "
                "Choose a day when it is open.")))
    seen = set()
    for i, mover in enumerate(data["movers"]):
        born = _date(mover["birthDate"])
        if born is None:
            errors.append(FieldError(f"movers.{i}.birthDate", _l("Enter a real date of birth.")))
        elif not birth_date_on_record(born, today):
            errors.append(FieldError(f"movers.{i}.birthDate", BIRTH_DATE_RANGE))
        key = (mover["name"].replace(" ", "").replace("　", ""), mover["birthDate"])
        if key in seen:
            errors.append(FieldError(f"movers.{i}.name", _l("Each person can be listed only once.")))
        seen.add(key)
    # The signer need not move (第26条: a member of the household files for the others, a parent for a
    # child moving alone); whether the signer belongs to the movers' household is the ledger's to say.
    names = {m["name"].replace(" ", "").replace("　", "") for m in data["movers"]}
    errors += unrecordable_errors(data)
    head = data["newHouseholder"].replace(" ", "").replace("　", "")
    if head != "existing" and head not in names:
        errors.append(FieldError("newHouseholder", _l(
            "The new householder must be one of the people moving, or the householder already at the new address.")))
    return errors


def check_certificate(data: Any, *, account: PortalAccount, today: dt.date) -> list[FieldError]:
    """The rules of a certificate request (sent by post to the registered address)."""
    errors = _schema_errors("certificate", data)
    if errors:
        return errors
    return _home_municipality_errors(
        data, account, "municipalityCode",
        _l("Certificates can be requested from the municipality of the address on your card."),
        _l("Your municipality does not take online requests here yet."))


def _home_municipality_errors(data: dict[str, Any], account: PortalAccount, field: str, not_home: Any,
                              not_connected: Any) -> list[FieldError]:
    """The municipality ``field`` names must be the one of the address on the card, and take applications here."""
    origin = home_municipality(account)
    if origin is None or data[field] != origin:
        return [FieldError(field, not_home)]
    if not is_connected(origin):
        return [FieldError(field, not_connected)]
    return []


REQUEST_TYPES = tuple(residentrequests.KINDS)


def check_request(data: Any, *, account: PortalAccount, today: dt.date) -> list[FieldError]:
    """The rules of a disclosure, correction or suspension request about one's own record (R20)."""
    kind = data.get("type") if isinstance(data, dict) else None
    if kind not in REQUEST_TYPES:
        return [FieldError("type", _l("This answer is not in the expected form."))]
    errors = _schema_errors(str(kind), data)
    if errors:
        return errors
    errors = _home_municipality_errors(
        data, account, "municipalityCode",
        _l("Requests about your record go to the municipality of the address on your card."),
        _l("Your municipality does not take online requests here yet."))
    if not old_enough_to_sign(account, today):
        errors.append(FieldError("type", _l("The person who signs must be 15 or older.")))
    if kind == "correction_request":
        value = data["correctValue"]
        if data["item"] == "birth_date":
            born = _date(value)
            if born is None or not birth_date_on_record(born, today):
                errors.append(FieldError("correctValue", BIRTH_DATE_RANGE))
        else:
            char = unrecordable(value)
            if char is not None:
                errors.append(FieldError("correctValue", unrecordable_message(char)))
    return errors


def certificate_fee(data: dict[str, Any]) -> int:
    """The fee in yen: copies × the fee of that certificate at the municipality asked (the catalog's ``fee_for``)."""
    return int(data["copies"]) * catalog.certificate_fee(str(data.get("kind", "")), str(data.get("municipalityCode")))


def _parts(data: dict[str, Any], origin: str) -> list[tuple[ApplicationKind, str]]:
    if data["type"] == "certificate":
        return [(ApplicationKind.CERTIFICATE, data["municipalityCode"])]
    if data["type"] in REQUEST_TYPES:
        return [(ApplicationKind(data["type"]), data["municipalityCode"])]
    dest = data["destination"]
    if dest["kind"] == "in_city":
        return [(ApplicationKind.IN_CITY_RESERVATION, origin)]
    parts = [(ApplicationKind.MOVE_OUT, origin)]
    code = dest.get("municipalityCode")
    if code and is_connected(code):
        parts.append((ApplicationKind.MOVE_IN_RESERVATION, code))
    return parts


def signing_claims(data: Any, account: PortalAccount) -> dict[str, Any]:
    """What the card signs besides the application: the signing time, the move id and every part.

    Each municipality acts only on the signed values (issue 10): which part of the application it
    receives, the move that ties a 転出届 to its 転入予約, and when it was signed. The move id is
    drawn here, before signing, so that the resident's signature covers it.
    """
    claims: dict[str, Any] = {"iat": int(clock.utcnow().timestamp()), "moveId": None, "parts": []}
    if isinstance(data, dict) and data.get("type") in ("move", "certificate", *REQUEST_TYPES):
        try:
            parts = _parts(data, home_municipality(account) or "")
        except (KeyError, TypeError, AttributeError):
            parts = []
        claims["parts"] = [{"kind": kind.value, "municipalityCode": code} for kind, code in parts]
        if data["type"] == "move":
            claims["moveId"] = str(uuid.uuid4())
    return claims


def _signed_claims_errors(session: Session, claims: dict[str, Any], data: dict[str, Any],
                          origin: str) -> list[FieldError]:
    """The parts and move id signed must be exactly those this application makes (nothing stored otherwise)."""
    refused = [FieldError("signature", _l("What was signed is not what you checked. Please check your answers and "
                                          "sign again."))]
    if _schema_errors("signed_application", claims):
        return refused
    parts = [{"kind": kind.value, "municipalityCode": code} for kind, code in _parts(data, origin)]
    if claims["parts"] != parts:
        return refused
    move_id = claims["moveId"]
    if (data["type"] == "move") != (move_id is not None):
        return refused
    if move_id is not None and session.get(Move, move_id) is not None:
        return refused  # a move id is used once
    return []


def _summary(data: dict[str, Any]) -> dict[str, Any]:
    if data["type"] == "certificate":
        return {"certificate": data["kind"], "copies": data["copies"], "fee": certificate_fee(data)}
    if data["type"] in REQUEST_TYPES:
        return {key: data[key] for key in ("item", "use") if key in data}
    dest = data["destination"]
    where = dest.get("municipality") if dest["kind"] == "elsewhere" else None
    return {"moveDate": data["moveDate"], "visitDate": data["visitDate"], "to": where, "movers": len(data["movers"])}


def _verify(jws: str, nonce: str | None, account: PortalAccount) -> Any:
    store = cardauth.nonces("sign")
    source = functools.partial(store.take, nonce) if nonce else None
    verified = verify_signed_application(jws, expected_nonce=source, expected_aud=current_app.config["SITE_ORIGIN"],
                                         trust=cardauth.trust(), max_age=max_signature_age())
    items = verified.items
    same_person = (account.is_linked and items.name == account.name and items.birth_date == account.birth_date
                   and items.address == account.address and items.sex == account.sex)
    if not same_person:
        raise ApplicationInvalid([FieldError("signature", _l(
            "The card that signed is not the card of the person signed in."))])
    return verified


def submit(session: Session, *, account: PortalAccount, jws: str, nonce: str | None,
           expected: dict[str, Any] | None = None) -> list[Application]:
    """Verify a signed application and store every part of it with its outbox rows, or store nothing.

    ``expected`` is what the resident checked on the page: the signature must cover exactly that.
    """
    try:
        verified = _verify(jws, nonce, account)
    except SignedApplicationError as exc:
        audit.record(session, "application.submit", outcome="failure", actor=f"account:{account.id}",
                     actor_id=account.id, detail={"code": str(exc.code)})
        raise
    data = verified.application
    if expected is not None and data != expected:
        raise ApplicationInvalid([FieldError("signature", _l(
            "What was signed is not what you checked. Please check your answers and sign again."))])
    today = clock.today_jst()
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "move":
        errors = check_move(data, account=account, today=today)
    elif kind == "certificate":
        errors = check_certificate(data, account=account, today=today)
    elif kind in REQUEST_TYPES:
        errors = check_request(data, account=account, today=today)
    else:
        errors = [FieldError("type", _l("This answer is not in the expected form."))]
    if errors:
        raise ApplicationInvalid(errors)
    origin = home_municipality(account) or ""
    errors = _signed_claims_errors(session, verified.claims, data, origin)
    if errors:
        raise ApplicationInvalid(errors)
    now = clock.utcnow()
    move_id = verified.claims["moveId"]
    if move_id is not None:
        session.connection(bind_arguments={"mapper": Move}).execute(
            insert(Move.__table__).values(id=move_id, account_id=account.id, created_at=now))
    summary = json.dumps(_summary(data), ensure_ascii=False)
    stored = [_store(session, Application(
        account_id=account.id, move_id=move_id, kind=part, municipality_code=recipient,
        status=ApplicationStatus.SUBMITTED, version=1, signed_jws=jws, sign_cert_serial=str(verified.serial),
        summary=summary, submitted_at=now, updated_at=now), today) for part, recipient in _parts(data, origin)]
    audit.record(session, "application.submit", actor=f"account:{account.id}", actor_id=account.id,
                 detail={"receipts": [a.receipt_number for a in stored], "kind": kind})
    return stored


_APPLICATION_COLUMNS = ("receipt_number", "account_id", "move_id", "kind", "municipality_code", "status", "version",
                        "signed_jws", "sign_cert_serial", "summary", "submitted_at", "updated_at")
_EVENT_COLUMNS = ("status", "actor", "at")
_OUTBOX_COLUMNS = ("id", "message_type", "recipient", "queue", "envelope", "state", "attempts", "next_attempt_at",
                   "created_at")


@functools.cache
def _store_statement() -> Any:
    """The application, its first event and its outbox row in one statement (PostgreSQL), built once.

    The application is inserted only if its receipt number is new; the event and the outbox row are
    inserted once per application inserted, so a number already taken inserts nothing at all. Every
    parameter is prefixed: a key named like a column would be taken as a value to insert.
    """
    apps, events, outbox = Application.__table__, ApplicationEvent.__table__, Outbox.__table__
    inserted = postgresql_insert(apps).values({c: bindparam(f"app_{c}") for c in _APPLICATION_COLUMNS}) \
        .on_conflict_do_nothing(index_elements=[apps.c.receipt_number]).returning(apps.c.id).cte("inserted")
    add_event = insert(events).from_select(["application_id", *_EVENT_COLUMNS], select(
        inserted.c.id, *(bindparam(f"event_{c}", type_=events.c[c].type) for c in _EVENT_COLUMNS))).cte("add_event")
    add_message = insert(outbox).from_select(list(_OUTBOX_COLUMNS), select(
        *(bindparam(f"outbox_{c}", type_=outbox.c[c].type) for c in _OUTBOX_COLUMNS)).select_from(inserted)) \
        .cte("add_message")
    return select(inserted.c.id).add_cte(add_event, add_message)


def _store(session: Session, application: Application, today: dt.date) -> Application:
    """Insert ``application`` under a fresh receipt number, with its first event and its sealed outbox row.

    Written with Core, not through the unit of work (one statement on PostgreSQL: ``_store_statement``),
    drawing another number while the one drawn is taken. The object returned is not in the session.
    """
    connection = session.connection(bind_arguments={"mapper": Application})
    event = {"status": ApplicationStatus.SUBMITTED, "actor": "resident", "at": application.submitted_at}
    while True:
        application.receipt_number = today.strftime("%Y%m%d") + f"{secrets.randbelow(10**10):010d}"
        values = {column: getattr(application, column) for column in _APPLICATION_COLUMNS}
        message = outbound.submitted_row(session, application)
        if connection.dialect.name == "postgresql":
            application.id = connection.execute(_store_statement(), {
                **{f"app_{k}": v for k, v in values.items()}, **{f"event_{k}": v for k, v in event.items()},
                **{f"outbox_{k}": message[k] for k in _OUTBOX_COLUMNS}}).scalar()
            if application.id is not None:
                return application
            continue  # the receipt number was taken: draw another
        apps = Application.__table__
        application.id = connection.execute(sqlite_insert(apps).values(values).on_conflict_do_nothing(
            index_elements=[apps.c.receipt_number]).returning(apps.c.id)).scalar()
        if application.id is not None:
            connection.execute(insert(ApplicationEvent.__table__).values(application_id=application.id, **event))
            connection.execute(insert(Outbox.__table__).values(message))
            return application


def for_account(session: Session, account: PortalAccount) -> list[Application]:
    """The resident's applications, newest first."""
    return list(session.execute(
        select(Application).where(Application.account_id == account.id).order_by(Application.id.desc())).scalars())


def get_own(session: Session, account: PortalAccount, receipt_number: str) -> Application | None:
    """One application of this resident; another resident's is reported as absent, and the attempt logged.

    A receipt number of a form never issued (a NUL byte, which PostgreSQL refuses in text, or any other
    character) is absent too, without a query.
    """
    if not RECEIPT_NUMBER.fullmatch(receipt_number):
        return None
    application = session.execute(
        select(Application).where(Application.receipt_number == receipt_number)).scalar_one_or_none()
    if application is not None and application.account_id != account.id:
        audit.record(session, "application.access", outcome="denied", actor=f"account:{account.id}",
                     actor_id=account.id, target_type="application", target_id=str(application.id))
        return None
    return application


def move_parts(session: Session, application: Application) -> list[Application]:
    """Every part of the same move (the application itself when it is not a move)."""
    if application.move_id is None:
        return [application]
    return list(session.execute(
        select(Application).where(Application.move_id == application.move_id).order_by(Application.id)).scalars())


def signed_content(application: Application) -> dict[str, Any]:
    """The application as the resident signed it (the JWS was verified when it was stored)."""
    content: dict[str, Any] = jws_claims(application.signed_jws)["application"]
    return content


def set_status(session: Session, application: Application, status: ApplicationStatus, *, actor: str,
               reason: str | None = None, reason_code: str | None = None) -> None:
    """Record a status step (from the back office's status messages, or a withdrawal).

    ``reason_code`` is a reason of the city's own (bridge.reasons, shown in the reader's language);
    ``reason`` a clerk's words.
    """
    application.status, application.status_reason, application.updated_at = status, reason, clock.utcnow()
    application.status_reason_code = reason_code
    session.add(ApplicationEvent(application_id=application.id, status=status, reason=reason, reason_code=reason_code,
                                 actor=actor, at=application.updated_at))
    session.flush()


def withdraw(session: Session, *, account: PortalAccount, receipt_number: str, jws: str,
             nonce: str | None) -> Application:
    """Withdraw an application not yet in review, on the resident's signature."""
    application = get_own(session, account, receipt_number)
    if application is None:
        raise LookupError(receipt_number)
    verified = _verify(jws, nonce, account)
    data = verified.application
    if _schema_errors("signed_withdrawal", verified.claims) or data["receiptNumber"] != receipt_number:
        raise ApplicationInvalid([FieldError("receiptNumber", _l("The signed withdrawal names another application."))])
    if application.kind.value in REQUEST_TYPES:
        raise ApplicationInvalid([FieldError("kind", _l(
            "A request about your own record cannot be withdrawn online. Please contact the city."))])
    if not may_withdraw(application):
        raise ApplicationInvalid([FieldError("status", _l(
            "This application is already being handled and can no longer be withdrawn. Please contact the city."))])
    set_status(session, application, ApplicationStatus.WITHDRAWN, actor="resident")
    outbound.application_withdrawn(session, application, jws)
    audit.record(session, "application.withdraw", actor=f"account:{account.id}", actor_id=account.id,
                 target_type="application", target_id=str(application.id))
    return application
