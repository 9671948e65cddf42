"""Moves between municipalities (F5, F8, F9, F12, R4, R10): the national one-stop move, one city at each end.

This city as the **origin**: approving a 転出届 removes each mover's record as of the planned date
(消除: a 除票 with 事由 転出 and the 転出予定地), sends the 転出証明書情報 to the destination (another
back office ``muni:<code>``, or the stand-in for a municipality that runs no back office of this
code), the identity-information update to the prefecture and notices to the departments concerned.
The destination's 転入通知 later records the 転出確定 on the 除票 and completes the 転出届 case.

This city as the **destination**: the 転出証明書情報 is stored encrypted and matched with the
転入予約 (by the move id of the online application, and the folded name and birth date of each
person); approving a 転入予約 prepares the counter case, flagged while information is missing. At
the counter, ``completion.complete_move_in`` creates the records, sends the 転入通知 back, updates the
prefecture, has J-LIS revoke the signature certificate (the address changed) and tells the departments.

What every move tells the others is written here once, for this module, the completion at the
counter (``backoffice/services/completion.py``) and the 転出取消 (``cancellation.py``): the full
address, ``identity_update`` (the prefecture) and ``notify_departments`` (each department concerned).

Every provision goes through ``provision.send``: only the recipients and items data/recipients.json
names, each recorded with its legal basis (R4). Services flush; the caller commits.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app
from flask_babel import LazyString
from flask_babel import lazy_gettext as _l
from markupsafe import escape
from sqlalchemy import select
from sqlalchemy.orm import Session

from backoffice.models import (
    Case,
    CaseStatus,
    IdoReason,
    MoveoutCertificate,
    RecordStatus,
    Resident,
    Staff,
)
from backoffice.services import audit, cards, filing, households, provision, records
from backoffice.services.cases import (
    CaseError,
    add_event,
    complete,
    signature_digest,
    signature_refused,
    signed_application,
)
from bridge import messages, reasons
from bridge.handlers import PermanentFailure, register
from core import clock
from core.addressmaster import Machiaza, load_machiaza, municipality_by_code
from core.config import connected_municipalities
from core.envelope import Opened
from core.fieldcrypto import FieldCipher, blind_index
from core.textfold import fold

MOVEOUT_CERTIFICATE = messages.MOVEOUT_CERTIFICATE  # 転出証明書情報 (住基法第24条の2)
MOVEIN_NOTICE = messages.MOVEIN_NOTICE  # 転入通知 (住基法第9条第1項)
IDENTITY_UPDATE = messages.IDENTITY_UPDATE  # 本人確認情報の更新 (住基法第30条の6)
DEPT_NOTICE = {"move_out": "dept.notice.move_out", "move_in": "dept.notice.move_in"}
MUNICIPALITY, STANDIN = "municipality", "municipality:standin"
# Findings on a 転入予約 case, shown to the clerk beside what intake found.
AWAITING, MATCHED = "awaiting_moveout_certificate", "moveout_certificate_matched"
WAITING_STATUSES = (CaseStatus.RECEIVED, CaseStatus.IN_REVIEW, CaseStatus.CONFIRMED, CaseStatus.APPROVED)
_CERT_CONTEXT = b"moveout_certificate"
_KANJI_DIGITS = {c: i for i, c in enumerate("〇一二三四五六七八九")}
_CHOME = re.compile(r"^(.*?)([一二三四五六七八九十]+)丁目$")

# What the clerk reads when a move step is refused, in the catalogue (English source, Japanese in translations/ja):
# the page's language. ``refusal`` fills the placeholders when the message is read.
MESSAGES = {
    "unknown_mover": _l("Mover %(n)s is not a current resident of this city."),
    "already_planned": _l("A move-out is already recorded for one of the movers."),
    "not_move_in": _l("This step is only for a move-in reservation."),
    "not_approved": _l("Only an approved move-in reservation can be completed."),
    "certificate_missing": _l("The move-out certificate information has not arrived yet for: %(names)s."),
    "already_resident": _l("%(name)s is already a resident of this city: a move-in is not possible "
                           "(this is an in-city move)."),
    "number_in_use": _l("The My Number of %(name)s is on another current record of this city. Please check it."),
    "address_unknown": _l("The new address does not match a town area of the address master. Please check it."),
    "move_date_ahead": _l("The day the resident moved in is after today: a move-in is notified once it happened."),
    "tokurei_expired": _l("The time for a move-in with the move-out certificate information (the earlier of 14 days "
                          "after the move and 30 days after the planned move-out date: %(limit)s) has passed. "
                          "Record the paper 転出証明書's number and issuer."),
    "paper_incomplete": _l("Enter both the number and the issuing municipality of the paper 転出証明書."),
    "no_household": _l("There is no household with a householder at the new address. Please check the householder."),
}


class _Filled(LazyString):
    """A catalogue message with values filled in when read; on a page it is escaped like any text, values and all."""

    def __html__(self) -> str:
        return str(escape(str(self)))


def refusal(field: str, code: str, **values: Any) -> CaseError:
    """The refusal of a move step, its message from ``MESSAGES`` (the 転入 at the counter's too)."""
    message = MESSAGES[code]
    return CaseError(field, _Filled(lambda: message % values) if values else message, code=code)


# -- small helpers ------------------------------------------------------------------------------------


def _own_code() -> str:
    return str(current_app.config["MUNICIPALITY_CODE"])


def _jst(moment: dt.datetime) -> dt.date:
    return moment.astimezone(dt.timezone(dt.timedelta(hours=9))).date()


def person_index(name: str, birth_date: str) -> str:
    """Keyed index of a person's folded name and birth date: matches without keeping either in the clear."""
    return blind_index(current_app.config["BLIND_INDEX_KEY"], f"{fold(name)}|{birth_date}", purpose="move_person")


def _cipher() -> FieldCipher:
    return FieldCipher(current_app.config["FIELD_ENCRYPTION_KEY"])


def certificate_items(certificate: MoveoutCertificate) -> dict[str, Any]:
    """The items of a received 転出証明書情報 (decrypted; the My Number among them)."""
    items: dict[str, Any] = json.loads(_cipher().decrypt(certificate.items_encrypted, context=_CERT_CONTEXT))
    return items


def _item_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


def _card_items(card: Any) -> dict[str, Any]:
    """The live card's number, authentication certificate serial and dates (all None without a card)."""
    if card is None:
        return dict.fromkeys(messages.CARD_ITEMS)
    return {"card_number": card.card_number, "card_auth_serial": card.auth_cert_serial,
            "card_issued_on": card.issued_on.isoformat(), "card_expires_on": card.expires_on.isoformat()}


def full_address(resident: Resident) -> str:
    """The address in full (prefecture, municipality, 町字, 番地, 方書), as the card and other cities write it."""
    return cards.holder_for(resident).address


def _destination_text(destination: Mapping[str, Any]) -> str:
    text = f"{destination['prefecture']}{destination['municipality']}{destination['address']}"
    return f"{text}　{destination['katagaki']}" if destination.get("katagaki") else text


def _kanji_number(text: str) -> int:
    if text == "十":
        return 10
    if "十" in text:
        tens, _, ones = text.partition("十")
        return (_KANJI_DIGITS[tens] if tens else 1) * 10 + (_KANJI_DIGITS[ones] if ones else 0)
    return int("".join(str(_KANJI_DIGITS[c]) for c in text))


def parse_address(municipality_code: str, text: str) -> tuple[Machiaza, str] | None:
    """Split an address within the municipality into its 町字 and the rest (番地), or None.

    Accepts the 町字 as the master writes it, and 丁目 in figures: 大通り一丁目3-1, 大通り1丁目3-1, 大通り1-3-1.
    """
    normalised = unicodedata.normalize("NFKC", text).replace(" ", "").replace("−", "-")
    best: tuple[int, Machiaza, str] | None = None
    for machiaza in load_machiaza(municipality_code):
        variants = [machiaza.name]
        chome = _CHOME.match(machiaza.name)
        if chome:
            number = _kanji_number(chome.group(2))
            variants += [f"{chome.group(1)}{number}丁目", f"{chome.group(1)}{number}-"]
        for variant in variants:
            if normalised.startswith(variant) and (best is None or len(variant) > best[0]):
                best = (len(variant), machiaza, normalised[len(variant):].lstrip("-"))
    if best is None or not best[2]:
        return None
    return best[1], best[2]


# -- departments (F12): each gets the movers its affairs concern, and only its listed items -------------


def concerned_departments(resident: Resident, on: dt.date) -> list[str]:
    """The departments (ids of data/recipients.json) whose affairs concern this person on ``on``."""
    age = clock.age_on(resident.birth_date, on)
    wanted = ["dept:tax"]  # the residents' tax follows every resident
    if resident.nhi_since:
        wanted.append("dept:nhi")
    if resident.pension_since or 20 <= age < 60:
        wanted.append("dept:pension")
    if resident.child_allowance_since:
        wanted.append("dept:child_allowance")
    if resident.ltc_since or age >= 65:
        wanted.append("dept:ltc")
    if 6 <= age <= 15:
        wanted.append("dept:school")
    return wanted


def notify_departments(session: Session, resident: Resident, *, message_type: str, data: Mapping[str, Any],
                       on: dt.date, reason: str, actor: str) -> list[str]:
    """Tell each department concerned with this person (``concerned_departments``) what a move changed."""
    sent = []
    for recipient_id in concerned_departments(resident, on):
        provision.send(session, recipient_id=recipient_id, message_type=message_type, data=data,
                       reason=reason, resident_id=resident.id, actor=actor)
        sent.append(recipient_id)
    return sent


def identity_update(session: Session, resident: Resident, *, reason: IdoReason, on: dt.date, why: str,
                    actor: str) -> None:
    """The 本人確認情報 after the change, to the prefecture (住基法第30条の6): every move, its 取消 too."""
    provision.send(session, recipient_id="prefecture", message_type=IDENTITY_UPDATE, data={
        "juminhyo_code": resident.juminhyo_code, "name": resident.name, "birth_date": resident.birth_date.isoformat(),
        "sex": resident.sex.value, "address": full_address(resident), "my_number": records.my_number(resident),
        "change_reason": reason.value, "change_date": on.isoformat(),
    }, reason=why, resident_id=resident.id, actor=actor)


# -- 1. the 転出届 is approved (this city is the origin) ------------------------------------------------


def _movers_of(session: Session, case: Case) -> list[Resident]:
    movers = []
    for n, resident_id in enumerate(json.loads(case.mover_resident_ids), start=1):
        resident = session.get(Resident, resident_id) if resident_id is not None else None
        if resident is None or resident.status is not RecordStatus.CURRENT:
            raise refusal("movers", "unknown_mover", n=n)
        movers.append(resident)
    if not movers:
        raise refusal("movers", "unknown_mover", n=1)
    require_may_file(session, case, movers)
    return movers


def require_may_file(session: Session, case: Case, movers: list[Resident]) -> None:
    """第26条 again at approval: the ledger may have changed since intake (refused with the reason)."""
    signer = session.get(Resident, case.applicant_resident_id) if case.applicant_resident_id is not None else None
    refusal = filing.approval_refusal(session, signer, movers)
    if refusal is not None:
        raise CaseError("movers", reasons.label(refusal), code=refusal)


def approve_move_out(session: Session, case: Case, staff: Staff) -> None:
    """転出予定 on each mover; 転出証明書情報 to the destination; prefecture update; department notices."""
    application = signed_application(case)
    movers = _movers_of(session, case)
    move_date = dt.date.fromisoformat(application["moveDate"])
    destination = application["destination"]
    new_address = _destination_text(destination)
    code = destination.get("municipalityCode")
    party = f"muni:{code}" if code and code != _own_code() and code in connected_municipalities() else None
    notified_on = _jst(case.received_at)
    why = f"転出届 {case.receipt_number}"
    actor = staff.login_id
    for resident in movers:
        if resident.planned_moveout_on is not None:
            raise refusal("movers", "already_planned")
    _householder_left_behind(session, case, movers, move_date=move_date, by=actor)
    for resident in movers:
        address = full_address(resident)
        card = cards.live_card(session, resident)
        certificate = {
            "juminhyo_code": resident.juminhyo_code, "my_number": records.my_number(resident), "name": resident.name,
            "name_kana": resident.name_kana, "birth_date": resident.birth_date.isoformat(),
            "sex": resident.sex.value, "address": address, "householder_name": resident.household.householder_name,
            "relationship": resident.relationship_to_head, "honseki": resident.honseki,
            "hittosha": resident.hittosha, "move_date": move_date.isoformat(),
            "previous_address": resident.previous_address, "new_address": new_address, "move_id": case.move_id,
            "move_signature": signature_digest(case.signed_jws) if case.move_id else None,
            "card_serial": card.sign_cert_serial if card is not None else None,
            # The card, so the destination takes its record over when the person keeps using it (継続利用).
            **_card_items(card),
            # 施行令第24条: the 国民健康保険・後期高齢者医療・介護保険・国民年金・児童手当 items and, for a
            # foreign resident, the 第30条の45 items, so the destination records them at the 転入.
            **{item: _item_value(getattr(resident, item)) for item in messages.CERTIFICATE_EXTRA
               if item != "residence_card_number"},
            "residence_card_number": records.residence_card_number(resident),
        }
        if party is not None:
            provision.send(session, recipient_id=MUNICIPALITY, party=party, message_type=MOVEOUT_CERTIFICATE,
                           data=certificate, reason=why, resident_id=resident.id, actor=actor)
        else:
            provision.send(session, recipient_id=STANDIN, message_type=MOVEOUT_CERTIFICATE, data=certificate,
                           reason=why, resident_id=resident.id, actor=actor)
        identity_update(session, resident, reason=IdoReason.MOVE_OUT, on=move_date, why=why, actor=actor)
        notify_departments(session, resident, message_type=DEPT_NOTICE["move_out"], on=move_date, reason=why,
                           actor=actor, data={
            "name": resident.name, "name_kana": resident.name_kana, "birth_date": resident.birth_date.isoformat(),
            "sex": resident.sex.value, "address": address, "my_number": records.my_number(resident),
            "household_number": resident.household.household_number,
            "householder_name": resident.household.householder_name, "relationship": resident.relationship_to_head,
            "change_reason": IdoReason.MOVE_OUT.value, "change_date": move_date.isoformat(),
            "new_address": new_address,
        })
        # 消除 as of the planned date (住民基本台帳法施行令第8条, 第12条): a 除票 with 事由 転出 and the 転出予定地.
        records.remove_record(session, resident, reason=IdoReason.MOVE_OUT, changed_on=move_date,
                              notified_on=notified_on, by=actor, planned_moveout_address=new_address,
                              planned_moveout_on=move_date)


def _householder_left_behind(session: Session, case: Case, movers: list[Resident], *, move_date: dt.date,
                             by: str) -> None:
    """The householder moving out from members who stay (第25条): the only possible one heads the household
    without a 届出; when several could, the members file a 世帯主変更届 and the case says so."""
    leaving = {m.id for m in movers}
    seen: set[int] = set()
    for resident in movers:
        if resident.household_id in seen:
            continue
        seen.add(resident.household_id)
        succession = households.succession(session, resident.household, leaving=leaving, on=move_date)
        if succession is None:
            continue
        if succession.automatic is None:
            add_event(session, case, "householder_needed", by=None, detail={"resident": resident.id})
            audit.record("household.householder_needed", actor=by, target_type="household",
                         target_id=resident.household_id, detail={"staying": len(succession.staying)})
        else:
            # No 届出 is needed for the only possible householder (第25条 only asks one when there is a choice).
            households.change_householder(session, succession, chosen=None, on=move_date, notified_on=None, by=by)


# -- 2. the 転出証明書情報 arrives (this city is the destination) and is matched ---------------------------


def reservation_indexes(case: Case) -> list[str]:
    """Keyed indexes of the people a 転入予約 names, in its order."""
    movers = signed_application(case).get("movers", [])
    return [person_index(str(m.get("name", "")), str(m.get("birthDate", ""))) for m in movers]


def matched_certificates(session: Session, case: Case) -> list[MoveoutCertificate]:
    """The 転出証明書情報 matched to this 転入予約, in the order they arrived."""
    return list(session.execute(select(MoveoutCertificate).where(MoveoutCertificate.case_id == case.id)
                                .order_by(MoveoutCertificate.id)).scalars())


def _set_finding(case: Case, code: str | None, detail: str = "") -> None:
    findings = [f for f in json.loads(case.findings or "[]") if f.get("code") not in (AWAITING, MATCHED)]
    if code is not None:
        findings.append({"code": code, "detail": detail})
    case.findings = json.dumps(findings, ensure_ascii=False)


@dataclass(frozen=True)
class Readiness:
    """Whether a 転入予約 can be completed at the counter: the 転出証明書情報 of every person has arrived."""

    ready: bool
    missing: tuple[str, ...]  # names (as the reservation gives them) still without information


def match_certificates(session: Session, case: Case) -> Readiness:
    """Attach every unmatched 転出証明書情報 that belongs to this 転入予約, and flag the case accordingly."""
    # Locked, so two certificates arriving at once on two workers each see the other's before flagging.
    session.execute(select(Case.id).where(Case.id == case.id).with_for_update())
    indexes = reservation_indexes(case)
    unmatched = select(MoveoutCertificate).where(MoveoutCertificate.case_id.is_(None),
                                                 MoveoutCertificate.person_index.in_(indexes))
    if case.move_id:
        unmatched = unmatched.where((MoveoutCertificate.move_id == case.move_id)
                                    | MoveoutCertificate.move_id.is_(None))
    # A certificate of an online move goes only to the 転入予約 the movers signed with it, never to one that
    # someone else signed with their move id (a compromised portal sees every move id).
    unmatched = unmatched.where(MoveoutCertificate.move_signature.is_(None)
                                | (MoveoutCertificate.move_signature == signature_digest(case.signed_jws)))
    newly = []
    for certificate in session.execute(unmatched.order_by(MoveoutCertificate.id)).scalars():
        certificate.case_id, certificate.matched_at = case.id, clock.utcnow()
        newly.append(certificate)
    session.flush()
    have = {c.person_index for c in matched_certificates(session, case)}
    movers = signed_application(case).get("movers", [])
    missing = tuple(str(m.get("name", "")) for m, index in zip(movers, indexes, strict=True) if index not in have)
    if newly:
        audit.record("move.certificate_matched", target_type="case", target_id=case.id,
                     detail={"certificates": [c.id for c in newly], "complete": not missing})
        add_event(session, case, "moveout_certificate_matched", by=None,
                  detail={"persons": len(newly), "complete": not missing})
    if not missing:
        _set_finding(case, MATCHED, "転出証明書情報を受信し、全員分を照合しました / "
                                    "move-out certificate information received for everyone")
    elif case.status is CaseStatus.APPROVED:
        _set_finding(case, AWAITING, "転出証明書情報の到着待ち / waiting for the move-out certificate information")
    session.flush()
    return Readiness(ready=not missing, missing=missing)


def _candidate_cases(session: Session, certificate: MoveoutCertificate) -> list[Case]:
    stmt = select(Case).where(Case.kind == "move_in_reservation", Case.status.in_(WAITING_STATUSES))
    if certificate.move_id:
        by_move = [case for case in session.execute(stmt.where(Case.move_id == certificate.move_id)
                                                    .order_by(Case.id)).scalars()
                   if certificate.move_signature in (None, signature_digest(case.signed_jws))]
        if by_move:
            return by_move
    return list(session.execute(stmt.order_by(Case.received_at, Case.id).limit(1000)).scalars())


def receive_moveout_certificate(session: Session, opened: Opened) -> MoveoutCertificate:
    """Store a 転出証明書情報 (encrypted) and match it with its 転入予約 if that has arrived."""
    # The 住民票コード (check digit), name, dates, sex and address were checked against bridge.messages on arrival.
    items = opened.payload["items"]
    certificate = MoveoutCertificate(
        message_id=opened.message_id, origin=opened.sender, move_id=items.get("move_id"),
        move_signature=items.get("move_signature"),
        juminhyo_code=items["juminhyo_code"], person_index=person_index(items["name"], items["birth_date"]),
        items_encrypted=_cipher().encrypt(json.dumps(items, ensure_ascii=False), context=_CERT_CONTEXT),
        received_at=clock.utcnow())
    session.add(certificate)
    session.flush()
    audit.record("move.certificate_received", actor="bridge", target_type="moveout_certificate",
                 target_id=certificate.id, detail={"origin": opened.sender, "items": sorted(items)})
    for case in _candidate_cases(session, certificate):
        if certificate.person_index in reservation_indexes(case) and not signature_refused(case):
            match_certificates(session, case)
            break
    return certificate


def approve_move_in_reservation(session: Session, case: Case, staff: Staff) -> None:
    """Prepare the counter case: matched with the 転出証明書情報, or flagged as waiting for it."""
    ready = match_certificates(session, case)
    add_event(session, case, "counter_prepared" if ready.ready else AWAITING, by=staff,
              detail={"missing": len(ready.missing)})


def approve_in_city_reservation(session: Session, case: Case, staff: Staff) -> None:
    """Prepare the counter case of a 転居予約 (the 転居 itself is completed at the counter)."""
    _movers_of(session, case)
    add_event(session, case, "counter_prepared", by=staff)


# -- 3. the 転入 at the counter: ``complete_move_in`` in backoffice/services/completion.py ---------------


# -- 4. the 転入通知 arrives (this city is the origin): 転出確定 -----------------------------------------


def receive_movein_notice(session: Session, opened: Opened) -> Resident | None:
    """転出確定: the person moved in elsewhere; the record becomes a 除票 and the 転出届 case is completed.

    Refused (dead-lettered for an administrator, nothing changed) for a person this city has no
    record of, and for one whose recorded 転出 does not go to the sending municipality.
    """
    items = opened.payload["items"]  # its shape was checked against bridge.messages on arrival
    new_address = items["new_address"]
    # A person who lived here before has older 除票 beside this one: the record of the planned 転出 is the one
    # (a 除票 awaiting its 転出確定, else a current record), else the latest, to say "already confirmed".
    same_code = session.execute(select(Resident).where(Resident.juminhyo_code == items["juminhyo_code"])
                                .order_by(Resident.id.desc())).scalars().all()
    awaiting = [r for r in same_code if r.planned_moveout_on is not None and r.confirmed_moveout_address is None
                and (r.status is RecordStatus.CURRENT or r.removal_reason is IdoReason.MOVE_OUT)]
    resident = next(iter(awaiting), same_code[0] if same_code else None)
    if resident is None or resident.birth_date.isoformat() != items["birth_date"]:
        raise PermanentFailure("unknown_resident", "no record with this 住民票コード and birth date")
    if resident.confirmed_moveout_address is not None:
        return None  # already confirmed
    # Only the municipality the recorded 転出 goes to confirms it; anything else is for a person to look at.
    sender = municipality_by_code(opened.sender.removeprefix("muni:"))
    if (resident.planned_moveout_on is None or sender is None
            or (resident.status is RecordStatus.REMOVED and resident.removal_reason is not IdoReason.MOVE_OUT)
            or not (resident.planned_moveout_address or "").startswith(sender.prefecture + sender.name)):
        raise PermanentFailure("unexpected_notice", "no 転出 to the sending municipality is recorded for this person")
    move_date = dt.date.fromisoformat(items["move_date"])
    if resident.status is RecordStatus.CURRENT:
        # A 転出 approved before the record was removed at approval: removed now, as before.
        records.remove_record(session, resident, reason=IdoReason.MOVE_OUT, changed_on=resident.planned_moveout_on,
                              notified_on=resident.last_notified_on, by="bridge")
    records.confirm_moveout(session, resident, moved_on=move_date, address=new_address, by="bridge")
    if items.get("card_number"):
        # The card stays in use (継続利用): the destination keeps its record now.
        cards.hand_over_card(session, card_number=items["card_number"], resident=resident,
                             to=opened.sender.removeprefix("muni:"), by="bridge")
    why = f"転出確定 {opened.sender}"
    identity_update(session, resident, reason=IdoReason.MOVE_OUT, on=move_date, why=why, actor="bridge")
    audit.record("move.confirmed", actor="bridge", target_type="resident", target_id=resident.id,
                 detail={"from": opened.sender, "message_id": opened.message_id})
    _complete_move_out_cases(session, resident, items.get("move_id"), opened.message_id)
    return resident


def _complete_move_out_cases(session: Session, resident: Resident, move_id: str | None, message_id: str) -> None:
    stmt = select(Case).where(Case.kind == "move_out", Case.status == CaseStatus.APPROVED)
    if move_id:
        stmt = stmt.where(Case.move_id == move_id)
    for case in session.execute(stmt.order_by(Case.id)).scalars():
        ids = [i for i in json.loads(case.mover_resident_ids) if i is not None]
        if resident.id not in ids:
            continue
        movers = [session.get(Resident, i) for i in ids]
        if all(m is not None and m.confirmed_moveout_address is not None for m in movers):
            complete(session, case, by=None, detail={"movein_notice": message_id})
        else:
            add_event(session, case, "movein_notice", by=None, detail={"resident": resident.id})


def register_handlers() -> None:
    """The message types one back office takes from another."""
    register(MOVEOUT_CERTIFICATE, receive_moveout_certificate, zone="backoffice", senders={"muni:*"})
    register(MOVEIN_NOTICE, receive_movein_notice, zone="backoffice", senders={"muni:*"})

