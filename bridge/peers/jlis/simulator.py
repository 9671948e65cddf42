"""The simulated J-LIS certificate authority (JPKI-SIM): CA generations, card issuance, revocation, CRLs, linkage.

State lives in a directory the caller chooses, so it survives restarts and can be shared by the
back office (which issues and revokes) and whoever publishes CRLs:

    <directory>/ca/<ca id>.key.pem     CA private keys (mode 0600; generated here, never committed)
    <directory>/ca/<ca id>.cert.pem    CA certificates
    <directory>/index.json             generations, CRL numbers, issued certificates, revocations, card linkage
    <directory>/.lock                  advisory lock serialising writers across processes

The index holds serials, dates, card ids and revocation reasons only; no holder's personal data.
Card private keys are generated here but never stored: they go into the virtual card file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.clock import age_on, utcnow

# Shared with every card authority (core/jpki/cardauthority.py), re-exported for the simulator's callers.
from core.jpki.cardauthority import (
    SIGNATURE_MINIMUM_AGE as SIGNATURE_MINIMUM_AGE,
)
from core.jpki.cardauthority import (
    CardLinkage as CardLinkage,
)
from core.jpki.cardauthority import (
    Holder as Holder,
)
from core.jpki.cardauthority import (
    IssuanceRefused as IssuanceRefused,
)
from core.jpki.cardauthority import (
    IssuedCard as IssuedCard,
)
from core.jpki.cardauthority import (
    IssuedCertificate as IssuedCertificate,
)
from core.jpki.cardauthority import (
    RevocationReason as RevocationReason,
)
from core.jpki.cardauthority import (
    validity_end_date as validity_end_date,
)
from core.jpki.profile import (
    AUTH_POLICY,
    KEY_SIZE,
    PUBLIC_EXPONENT,
    SIGN_POLICY,
    SIMULATED_ORGANIZATION,
    CertificatePurpose,
    basic_items_other_names,
)
from core.jpki.trust import crl_file_name

JST = dt.timezone(dt.timedelta(hours=9), "JST")
CA_VALIDITY_YEARS = 10
CRL_VALIDITY = dt.timedelta(hours=24)
RENEWAL_WINDOW_MONTHS = 3
_ALLOWED_ENVS = frozenset({"development", "test"})

_CA_UNITS = {
    CertificatePurpose.AUTH: "JPKI for user authentication (SIMULATED)",
    CertificatePurpose.SIGN: "JPKI for digital signature (SIMULATED)",
}


class SimulatorNotAllowed(RuntimeError):
    """Raised when the simulated CA is about to be used outside development and test."""


def assert_allowed(app_env: str) -> None:
    """Refuse the simulated J-LIS unless ``app_env`` is development or test (production must never trust it)."""
    if app_env not in _ALLOWED_ENVS:
        raise SimulatorNotAllowed(f"the simulated J-LIS CA (JPKI-SIM) is refused when APP_ENV={app_env!r}")


@dataclass(frozen=True)
class CaId:
    """One issuing CA: a purpose and a generation (``auth-1``, ``sign-2``)."""

    purpose: CertificatePurpose
    generation: int

    def __str__(self) -> str:
        return f"{self.purpose.value}-{self.generation}"

    @classmethod
    def parse(cls, value: CaId | str) -> CaId:
        """Accept a CaId or its string form."""
        if isinstance(value, CaId):
            return value
        purpose, _, generation = value.partition("-")
        return cls(CertificatePurpose(purpose), int(generation))


@dataclass(frozen=True)
class CertificateRecord:
    """What the CA remembers about one issued certificate."""

    serial: int
    ca: CaId
    card_id: str
    not_before: dt.datetime
    not_after: dt.datetime
    revocation_reason: RevocationReason | None
    revoked_at: dt.datetime | None


def _end_of_day_jst(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=JST).astimezone(dt.UTC)


def key_usage(**flags: bool) -> x509.KeyUsage:
    """Return a KeyUsage with the named flags set and every other flag clear."""
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    unknown = set(flags) - set(names)
    if unknown:
        raise ValueError(f"unknown KeyUsage flags {unknown}")
    return x509.KeyUsage(**{name: flags.get(name, False) for name in names})


def _add_years(moment: dt.datetime, years: int) -> dt.datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:
        return moment.replace(year=moment.year + years, day=28)


def _minus_months(day: dt.date, months: int) -> dt.date:
    month_index = day.year * 12 + day.month - 1 - months
    year, month = divmod(month_index, 12)
    for candidate in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month + 1, candidate)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def _ca_name(purpose: CertificatePurpose) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, SIMULATED_ORGANIZATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, _CA_UNITS[purpose]),
        ]
    )


def _write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    # Readers (portal, back office) must never see half a file: write beside it, then rename over it.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _empty_index() -> dict[str, Any]:
    return {"version": 1, "generations": [], "crl_numbers": {}, "certificates": {}, "cards": {}}


class JlisSimulator:
    """The simulated J-LIS CA: two roots (user authentication, digital signature) per generation, on disk.

    Opening an empty directory creates ``initial_generations`` generations; opening an existing one
    restores its state (keys, issued certificates, revocations, linkage).
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        initial_generations: int = 2,
    ) -> None:
        self.directory = Path(directory)
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[CaId, rsa.RSAPrivateKey] = {}
        self._certs: dict[CaId, x509.Certificate] = {}
        self.directory.mkdir(parents=True, exist_ok=True)
        # A new directory gets its CA generations now; an existing one is reopened exactly as it was.
        if not self._index_path.exists():
            for _ in range(initial_generations):
                self.add_generation()

    # -- state ------------------------------------------------------------------------------------

    @property
    def _index_path(self) -> Path:
        return self.directory / "index.json"

    def _read_index(self) -> dict[str, Any]:
        try:
            index: dict[str, Any] = json.loads(self._index_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return _empty_index()
        return index

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[dict[str, Any]]:
        with self._lock, open(self.directory / ".lock", "a+") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                index = self._read_index()
                yield index
                _write_atomically(self._index_path, json.dumps(index, indent=1, sort_keys=True).encode("utf-8"))
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _now(self) -> dt.datetime:
        # X.509 times have whole seconds; truncating keeps not_before <= the moment of issue.
        return self._clock().astimezone(dt.UTC).replace(microsecond=0)

    # -- CA generations ---------------------------------------------------------------------------

    @property
    def generations(self) -> list[int]:
        """Return the CA generations, oldest first."""
        return list(self._read_index()["generations"])

    @property
    def latest_generation(self) -> int:
        """Return the newest CA generation, used for new cards by default."""
        generations = self.generations
        if not generations:
            raise LookupError("the simulator has no CA generation yet")
        return generations[-1]

    def add_generation(self, *, years: int = CA_VALIDITY_YEARS) -> int:
        """Create a new generation: fresh keys for both roots, with the same subject DNs as every other generation."""
        with self._transaction() as index:
            generation = max(index["generations"], default=0) + 1
            now = self._now()
            for purpose in CertificatePurpose:
                ca = CaId(purpose, generation)
                key = rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_SIZE)
                name = _ca_name(purpose)
                ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
                cert = (
                    x509.CertificateBuilder()
                    .subject_name(name)
                    .issuer_name(name)
                    .public_key(key.public_key())
                    .serial_number(x509.random_serial_number())
                    # Back-dated an hour so a client clock slightly behind still accepts the new root.
                    .not_valid_before(now - dt.timedelta(hours=1))
                    .not_valid_after(_add_years(now, years))
                    .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                    .add_extension(key_usage(key_cert_sign=True, crl_sign=True), critical=True)
                    .add_extension(ski, critical=False)
                    .sign(key, hashes.SHA256())
                )
                key_pem = key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
                _write_atomically(self.directory / "ca" / f"{ca}.key.pem", key_pem, mode=0o600)
                _write_atomically(
                    self.directory / "ca" / f"{ca}.cert.pem", cert.public_bytes(serialization.Encoding.PEM)
                )
                index["crl_numbers"][str(ca)] = 0
            index["generations"].append(generation)
        return generation

    def ca_certificate(self, ca: CaId | str) -> x509.Certificate:
        """Return the certificate of one issuing CA."""
        ca = CaId.parse(ca)
        if ca not in self._certs:
            path = self.directory / "ca" / f"{ca}.cert.pem"
            self._certs[ca] = x509.load_pem_x509_certificate(path.read_bytes())
        return self._certs[ca]

    def signing_material(self, ca: CaId | str) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
        """Return a CA's certificate and private key; for the simulator's own test kit only (a real CA never would)."""
        ca = CaId.parse(ca)
        if ca not in self._keys:
            key = serialization.load_pem_private_key((self.directory / "ca" / f"{ca}.key.pem").read_bytes(), None)
            assert isinstance(key, rsa.RSAPrivateKey)
            self._keys[ca] = key
        return self.ca_certificate(ca), self._keys[ca]

    def all_cas(self) -> list[CaId]:
        """Return every issuing CA of every generation."""
        return [CaId(purpose, g) for g in self.generations for purpose in CertificatePurpose]

    def trust_anchors(self, purpose: CertificatePurpose | str) -> list[x509.Certificate]:
        """Return the root certificates of every generation for one purpose."""
        purpose = CertificatePurpose(purpose)
        return [self.ca_certificate(CaId(purpose, g)) for g in self.generations]

    def trust_anchors_pem(self, purpose: CertificatePurpose | str) -> bytes:
        """Return the roots of every generation for one purpose as one PEM bundle."""
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.trust_anchors(purpose))

    def export_trust_anchors(self, directory: Path | str) -> dict[CertificatePurpose, Path]:
        """Write ``jpki-sim-auth-anchors.pem`` and ``jpki-sim-sign-anchors.pem`` into ``directory``."""
        written = {}
        for purpose in CertificatePurpose:
            path = Path(directory) / f"jpki-sim-{purpose.value}-anchors.pem"
            _write_atomically(path, self.trust_anchors_pem(purpose))
            written[purpose] = path
        return written

    # -- issuance ---------------------------------------------------------------------------------

    def _new_serial(self, index: dict[str, Any]) -> int:
        while True:
            serial = x509.random_serial_number()
            if f"{serial:x}" not in index["certificates"]:
                return serial

    def _issue(
        self,
        index: dict[str, Any],
        ca: CaId,
        *,
        card_id: str,
        holder: Holder,
        not_after: dt.datetime,
        client_auth_eku: bool = False,
    ) -> IssuedCertificate:
        issuer, issuer_key = self.signing_material(ca)
        now = self._now()
        not_after = min(not_after, issuer.not_valid_after_utc)
        if not_after <= now:
            raise IssuanceRefused("the certificate would already have expired")
        key = rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_SIZE)
        serial = self._new_serial(index)
        # The CN is an opaque issue number: it must not reveal the holder or link the two certificates.
        common_name = x509.NameAttribute(NameOID.COMMON_NAME, secrets.token_hex(8).upper())
        if ca.purpose is CertificatePurpose.AUTH:
            subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"), common_name])
            usage = dict(digital_signature=True, content_commitment=False)
            policy = AUTH_POLICY
        else:
            attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "JP")]
            attributes += [
                x509.NameAttribute(NameOID.LOCALITY_NAME, place)
                for place in (holder.prefecture, holder.municipality)
                if place
            ]
            subject = x509.Name([*attributes, common_name])
            usage = dict(digital_signature=True, content_commitment=True)
            policy = SIGN_POLICY
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now)
            .not_valid_after(not_after)
            .add_extension(key_usage(**usage), critical=True)
            .add_extension(
                x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(policy), None)]),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                    issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
                ),
                critical=False,
            )
            .add_extension(
                # J-LIS names its CRL distribution point by directory name, not URL (research §1.2).
                x509.CRLDistributionPoints(
                    [x509.DistributionPoint([x509.DirectoryName(issuer.subject)], None, None, None)]
                ),
                critical=False,
            )
        )
        if ca.purpose is CertificatePurpose.SIGN:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(basic_items_other_names(holder.basic_items())), critical=False
            )
        elif client_auth_eku:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        certificate = builder.sign(issuer_key, hashes.SHA256())
        index["certificates"][f"{serial:x}"] = {
            "ca": str(ca),
            "card_id": card_id,
            "not_before": now.isoformat(),
            "not_after": certificate.not_valid_after_utc.isoformat(),
            "revocation": None,
        }
        return IssuedCertificate(certificate=certificate, private_key=key, issuer_certificate=issuer)

    def _validity_end(self, holder: Holder, card_expires_on: dt.date, *, birthdays: int) -> dt.datetime:
        issued_on = self._now().astimezone(JST).date()
        if holder.birth_date > issued_on:
            raise IssuanceRefused("the birth date is in the future")
        end = min(validity_end_date(holder.birth_date, issued_on, birthdays=birthdays), card_expires_on)
        return _end_of_day_jst(end)

    def _refuse_underage(self, holder: Holder) -> None:
        issued_on = self._now().astimezone(JST).date()
        if age_on(holder.birth_date, issued_on) < SIGNATURE_MINIMUM_AGE:
            raise IssuanceRefused("no signature certificate is issued to holders under 15")

    def issue_card(
        self,
        holder: Holder,
        *,
        card_expires_on: dt.date,
        generation: int | None = None,
        with_signature: bool = True,
        auth_client_auth_eku: bool = False,
        replaces: str | None = None,
    ) -> IssuedCard:
        """Generate both key pairs and certify them: valid to the 5th birthday after issue, never past the card.

        ``with_signature=False`` issues the authentication certificate only (what an under-15 card has);
        asking for a signature certificate for an under-15 raises IssuanceRefused. ``replaces`` names
        the card this one renews (新旧紐付け). ``auth_client_auth_eku`` adds EKU clientAuth, for the
        profile question the research note leaves open.
        """
        if with_signature:
            self._refuse_underage(holder)
        birthdays = 5
        if replaces is not None:
            birthdays = self._renewal_birthdays(replaces)
        not_after = self._validity_end(holder, card_expires_on, birthdays=birthdays)
        with self._transaction() as index:
            generation = generation or max(index["generations"])
            if generation not in index["generations"]:
                raise LookupError(f"no CA generation {generation}")
            if replaces is not None and replaces not in index["cards"]:
                raise LookupError(f"no card {replaces}")
            card_id = secrets.token_hex(6).upper()
            auth = self._issue(
                index,
                CaId(CertificatePurpose.AUTH, generation),
                card_id=card_id,
                holder=holder,
                not_after=not_after,
                client_auth_eku=auth_client_auth_eku,
            )
            sign = None
            if with_signature:
                # The signature certificate never outlives the authentication certificate (research §1.1).
                sign = self._issue(
                    index,
                    CaId(CertificatePurpose.SIGN, generation),
                    card_id=card_id,
                    holder=holder,
                    not_after=auth.certificate.not_valid_after_utc,
                )
            index["cards"][card_id] = {
                "auth_serial": f"{auth.serial:x}",
                "sign_serials": [f"{sign.serial:x}"] if sign else [],
                "generation": generation,
                "expires_on": card_expires_on.isoformat(),
                "replaces": replaces,
                "replaced_by": None,
            }
            if replaces is not None:
                index["cards"][replaces]["replaced_by"] = card_id
        return IssuedCard(card_id=card_id, auth=auth, sign=sign)

    def _renewal_birthdays(self, old_card_id: str) -> int:
        # Renewing within 3 months of expiry runs to the 6th birthday, so an early renewal loses nothing.
        card = self._read_index()["cards"].get(old_card_id)
        if card is None:
            raise LookupError(f"no card {old_card_id}")
        old_end = self._record(int(card["auth_serial"], 16)).not_after
        today = self._now().astimezone(JST).date()
        window_opens = _minus_months(old_end.astimezone(JST).date(), RENEWAL_WINDOW_MONTHS)
        return 6 if today >= window_opens else 5

    def renew_card(
        self, old_card_id: str, holder: Holder, *, card_expires_on: dt.date, generation: int | None = None
    ) -> IssuedCard:
        """Issue a card replacing ``old_card_id``, link old to new, and revoke the old certificates as superseded."""
        card = self.issue_card(
            holder,
            card_expires_on=card_expires_on,
            generation=generation,
            with_signature=age_on(holder.birth_date, self._now().astimezone(JST).date()) >= SIGNATURE_MINIMUM_AGE,
            replaces=old_card_id,
        )
        old = self.linkage(old_card_id)
        for serial in (old.auth_serial, old.sign_serial):
            if serial is not None and self._record(serial).revocation_reason is None:
                self.revoke(serial, RevocationReason.SUPERSEDED)
        return card

    def reissue_signature_certificate(self, card_id: str, holder: Holder) -> IssuedCertificate:
        """Issue a new signature certificate for an existing card (after the four items changed) and re-link it.

        A still-valid previous signature certificate is revoked as superseded; the new one never outlives
        the card's authentication certificate.
        """
        self._refuse_underage(holder)
        linkage = self.linkage(card_id)
        if linkage.sign_serial is not None and self._record(linkage.sign_serial).revocation_reason is None:
            self.revoke(linkage.sign_serial, RevocationReason.SUPERSEDED)
        auth_record = self._record(linkage.auth_serial)
        with self._transaction() as index:
            issued = self._issue(
                index,
                CaId(CertificatePurpose.SIGN, auth_record.ca.generation),
                card_id=card_id,
                holder=holder,
                not_after=auth_record.not_after,
            )
            index["cards"][card_id]["sign_serials"].append(f"{issued.serial:x}")
        return issued

    # -- records and linkage ----------------------------------------------------------------------

    def _record(self, serial: int) -> CertificateRecord:
        entry = self._read_index()["certificates"].get(f"{serial:x}")
        if entry is None:
            raise LookupError(f"no certificate with serial {serial:x}")
        return _to_record(serial, entry)

    def certificate_record(self, serial: int) -> CertificateRecord:
        """Return what the CA knows about the certificate with ``serial``."""
        return self._record(serial)

    def linkage(self, card_or_serial: str | int) -> CardLinkage:
        """Return the 証明書紐付け情報 of a card, found by card id or by the serial of any of its certificates."""
        index = self._read_index()
        if isinstance(card_or_serial, str):
            card_id = card_or_serial
        else:
            entry = index["certificates"].get(f"{card_or_serial:x}")
            if entry is None:
                raise LookupError(f"no certificate with serial {card_or_serial:x}")
            card_id = entry["card_id"]
        card = index["cards"].get(card_id)
        if card is None:
            raise LookupError(f"no card {card_id}")
        signs = [int(s, 16) for s in card["sign_serials"]]
        return CardLinkage(
            card_id=card_id,
            auth_serial=int(card["auth_serial"], 16),
            sign_serial=signs[-1] if signs else None,
            previous_sign_serials=tuple(signs[:-1]),
            replaces=card["replaces"],
            replaced_by=card["replaced_by"],
        )

    # -- revocation -------------------------------------------------------------------------------

    def revoke(self, serial: int, reason: RevocationReason | str) -> CertificateRecord:
        """Revoke a certificate; a hold may later become a permanent revocation, anything else is final."""
        reason = RevocationReason(reason)
        with self._transaction() as index:
            entry = index["certificates"].get(f"{serial:x}")
            if entry is None:
                raise LookupError(f"no certificate with serial {serial:x}")
            current = entry["revocation"]
            if current is None or (
                current["reason"] == RevocationReason.CERTIFICATE_HOLD and reason != RevocationReason.CERTIFICATE_HOLD
            ):
                entry["revocation"] = {"reason": reason.value, "at": self._now().isoformat()}
            return _to_record(serial, entry)

    def release_hold(self, serial: int) -> CertificateRecord:
        """Lift a certificateHold (a lost card was found); other revocations cannot be undone."""
        with self._transaction() as index:
            entry = index["certificates"].get(f"{serial:x}")
            if entry is None:
                raise LookupError(f"no certificate with serial {serial:x}")
            current = entry["revocation"]
            if current is None or current["reason"] != RevocationReason.CERTIFICATE_HOLD:
                raise ValueError("only a certificate on hold can be released")
            entry["revocation"] = None
            return _to_record(serial, entry)

    def crl_der(self, ca: CaId | str) -> bytes:
        """Return a fresh DER CRL of one issuing CA (next_update = this_update + 24 h, CRL number incremented)."""
        ca = CaId.parse(ca)
        issuer, issuer_key = self.signing_material(ca)
        with self._transaction() as index:
            number = index["crl_numbers"].get(str(ca), 0) + 1
            index["crl_numbers"][str(ca)] = number
            revoked = [
                (int(serial, 16), entry["revocation"])
                for serial, entry in index["certificates"].items()
                if entry["ca"] == str(ca) and entry["revocation"] is not None
            ]
        this_update = self._now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.subject)
            .last_update(this_update)
            .next_update(this_update + CRL_VALIDITY)
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                    issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
                ),
                critical=False,
            )
        )
        for serial, revocation in sorted(revoked, key=lambda item: item[0]):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(dt.datetime.fromisoformat(revocation["at"]))
                .add_extension(x509.CRLReason(RevocationReason(revocation["reason"]).flag), critical=False)
                .build()
            )
        return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def publish_crls(self, directory: Path | str) -> list[Path]:
        """Write a fresh CRL of every issuing CA into ``directory`` as ``<issuer key id>.crl`` for TrustConfig."""
        written = []
        for ca in self.all_cas():
            path = Path(directory) / crl_file_name(self.ca_certificate(ca))
            _write_atomically(path, self.crl_der(ca))
            written.append(path)
        return written


def _to_record(serial: int, entry: dict[str, Any]) -> CertificateRecord:
    revocation = entry["revocation"]
    return CertificateRecord(
        serial=serial,
        ca=CaId.parse(entry["ca"]),
        card_id=entry["card_id"],
        not_before=dt.datetime.fromisoformat(entry["not_before"]),
        not_after=dt.datetime.fromisoformat(entry["not_after"]),
        revocation_reason=RevocationReason(revocation["reason"]) if revocation else None,
        revoked_at=dt.datetime.fromisoformat(revocation["at"]) if revocation else None,
    )
