"""The JPKI certificate profile: object identifiers, policies and the four basic items in the signature certificate.

Several values here are marked UNVERIFIED in research/card-auth.md §1.4 (policy OIDs, the order of
the address OIDs .5/.6, the birth-date and sex encodings). They are kept in this one module so they
can be corrected in one place once the J-LIS profile specification is available.
"""

from __future__ import annotations

import datetime as dt
import enum
import unicodedata
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import SignatureAlgorithmOID

from core.jpki.der import DerError, decode_string, encode_utf8_string


class CertificatePurpose(enum.StrEnum):
    """The two JPKI certificates: user authentication (利用者証明用) and digital signature (署名用)."""

    AUTH = "auth"
    SIGN = "sign"


# Certificate policy arcs (kjur/jsrsasign-oid-jpki); a certificate matches an arc when its policy is the
# arc itself or lies below it.
SIGN_POLICY_ARC = "1.2.392.200149.8.5.1.1"
AUTH_POLICY_ARC = "1.2.392.200149.8.5.1.3"
SIGN_POLICY = SIGN_POLICY_ARC + ".20"
AUTH_POLICY = AUTH_POLICY_ARC + ".30"

# subjectAltName otherName type ids for the basic items.
OID_NAME = x509.ObjectIdentifier("1.2.392.200149.8.5.5.1")
OID_NAME_ALT = x509.ObjectIdentifier("1.2.392.200149.8.5.5.2")
OID_SEX = x509.ObjectIdentifier("1.2.392.200149.8.5.5.3")
OID_BIRTH_DATE = x509.ObjectIdentifier("1.2.392.200149.8.5.5.4")
OID_ADDRESS = x509.ObjectIdentifier("1.2.392.200149.8.5.5.5")
OID_ADDRESS_ALT = x509.ObjectIdentifier("1.2.392.200149.8.5.5.6")

# The technical standard allows only sha256WithRSAEncryption for JPKI certificates and CRLs.
SIGNATURE_ALGORITHM = SignatureAlgorithmOID.RSA_WITH_SHA256

KEY_SIZE = 2048
PUBLIC_EXPONENT = 65537

# The subject organisation of the simulated CAs; production refuses anchors that carry it.
SIMULATED_ORGANIZATION = "JPKI-SIM"

# Sex codes as in the resident register (UNVERIFIED for JPKI: 1 male, 2 female, 3 not stated).
SEX_CODES = frozenset({"1", "2", "3"})

# Era codes used before the Gregorian date in the birth-date item (UNVERIFIED: era digit + YYYYMMDD).
_ERAS: tuple[tuple[dt.date, str], ...] = (
    (dt.date(2019, 5, 1), "5"),  # Reiwa
    (dt.date(1989, 1, 8), "4"),  # Heisei
    (dt.date(1926, 12, 25), "3"),  # Showa
    (dt.date(1912, 7, 30), "2"),  # Taisho
    (dt.date(1868, 1, 25), "1"),  # Meiji
)


def policy_in_arc(policy: str, arc: str) -> bool:
    """Return whether ``policy`` is ``arc`` or lies below it, comparing whole arcs (``…1.30`` is not under ``…1.3``)."""
    return policy == arc or policy.startswith(arc + ".")


def is_simulated(certificate: x509.Certificate) -> bool:
    """Return whether a CA certificate belongs to the simulated J-LIS (JPKI-SIM)."""
    names = certificate.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
    return any(attr.value == SIMULATED_ORGANIZATION for attr in names)


def encode_birth_date(birth_date: dt.date) -> str:
    """Encode a birth date the way the signature certificate carries it: era digit, then Gregorian YYYYMMDD."""
    for start, code in _ERAS:
        if birth_date >= start:
            return code + birth_date.strftime("%Y%m%d")
    raise ValueError("birth dates before the Meiji era are not representable")


def decode_birth_date(value: str) -> dt.date:
    """Decode the birth-date item (era digit + YYYYMMDD); the era digit must agree with the date."""
    if len(value) != 9 or not value.isascii() or not value.isdigit():
        raise ValueError("birth date must be an era digit followed by YYYYMMDD")
    date = dt.date(int(value[1:5]), int(value[5:7]), int(value[7:9]))
    if encode_birth_date(date) != value:
        raise ValueError("era digit does not match the date")
    return date


@dataclass(frozen=True)
class BasicItems:
    """The four basic items (基本4情報) as written in a signature certificate, with their substitute forms."""

    name: str
    sex: str
    birth_date: dt.date
    address: str
    name_alt: str | None = None
    address_alt: str | None = None

    def matches(self, other: BasicItems) -> bool:
        """Return whether both name the same person: the four items equal after Unicode NFC normalisation."""
        return _key(self) == _key(other)


def _key(items: BasicItems) -> tuple[str, str, dt.date, str]:
    # NFC only: it merges canonically equal code point sequences but never folds distinct characters,
    # which for names and addresses would be wrong (髙 and 高 are different names).
    return (
        unicodedata.normalize("NFC", items.name),
        items.sex,
        items.birth_date,
        unicodedata.normalize("NFC", items.address),
    )


def basic_items_other_names(items: BasicItems) -> list[x509.GeneralName]:
    """Return the subjectAltName otherNames that carry ``items`` (UTF8String values)."""
    values = [
        (OID_NAME, items.name),
        (OID_NAME_ALT, items.name_alt if items.name_alt is not None else items.name),
        (OID_SEX, items.sex),
        (OID_BIRTH_DATE, encode_birth_date(items.birth_date)),
        (OID_ADDRESS, items.address),
        (OID_ADDRESS_ALT, items.address_alt if items.address_alt is not None else items.address),
    ]
    return [x509.OtherName(oid, encode_utf8_string(value)) for oid, value in values]


def parse_basic_items(certificate: x509.Certificate) -> BasicItems:
    """Read the basic items from a signature certificate's subjectAltName; raise ValueError if any is missing."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise ValueError("the certificate has no subjectAltName") from exc
    found: dict[x509.ObjectIdentifier, str] = {}
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id in found:
            raise ValueError(f"otherName {other.type_id.dotted_string} appears twice")
        try:
            found[other.type_id] = decode_string(other.value)
        except DerError as exc:
            raise ValueError(f"otherName {other.type_id.dotted_string} is not a DER string") from exc
    for required in (OID_NAME, OID_SEX, OID_BIRTH_DATE, OID_ADDRESS):
        if not found.get(required):
            raise ValueError(f"otherName {required.dotted_string} is missing")
    if found[OID_SEX] not in SEX_CODES:
        raise ValueError("sex code is not one of 1, 2, 3")
    return BasicItems(
        name=found[OID_NAME],
        sex=found[OID_SEX],
        birth_date=decode_birth_date(found[OID_BIRTH_DATE]),
        address=found[OID_ADDRESS],
        name_alt=found.get(OID_NAME_ALT),
        address_alt=found.get(OID_ADDRESS_ALT),
    )
