"""The virtual card file that stands in for the chip: two slots, each a certificate and a PIN-wrapped private key.

This is a protocol simulator, not a security boundary. A 4-digit PIN has 10⁴ values, so a stolen
file falls to an offline search in seconds whatever the PBKDF2 cost, and the try counters live in
the file itself, so copying the file resets them. The real card enforces its lock-out in hardware.
The format is described byte for byte in docs/virtual-card.md and is chosen so browser WebCrypto
can unwrap a key directly (PBKDF2 deriveKey, AES-GCM unwrapKey "pkcs8").
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import MutableMapping
from pathlib import Path
from typing import IO, Any

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from core.jpki.cardauthority import DEFAULT_CARD_FILE_ITERATIONS, IssuedCard, IssuedCertificate

FILE_FORMAT = "jpki-sim-card"
VERSION = 1
DEFAULT_ITERATIONS = DEFAULT_CARD_FILE_ITERATIONS
SALT_BYTES = 16
IV_BYTES = 12
KEY_BYTES = 32
SLOTS = ("auth", "sign")
MAX_TRIES = {"auth": 3, "sign": 5}
_PIN = re.compile(r"^[0-9]{4}$")
_PASSWORD = re.compile(r"^[A-Z0-9]{6,16}$")

CardDocument = MutableMapping[str, Any]


class CardError(Exception):
    """Something the card itself would refuse."""


class InvalidSecretFormat(CardError, ValueError):
    """The PIN or password has the wrong shape; refused before the key is touched, so no try is used."""


class WrongPin(CardError):
    """The PIN or password did not unlock the slot; ``tries_left`` more tries remain before the slot locks."""

    def __init__(self, slot: str, tries_left: int) -> None:
        what = "PIN" if slot == "auth" else "password"
        super().__init__(f"wrong {what} for the {slot} slot, {tries_left} tries left")
        self.slot = slot
        self.tries_left = tries_left


class CardLocked(CardError):
    """The slot is locked after too many wrong tries; only the city office can reset it."""

    def __init__(self, slot: str) -> None:
        super().__init__(f"the {slot} slot is locked; visit the city office to reset it")
        self.slot = slot


def normalize_secret(slot: str, secret: str) -> str:
    """Return the secret as the card compares it, or raise InvalidSecretFormat.

    auth: exactly 4 digits. sign: 6-16 of A-Z and 0-9, lower case taken as upper case (as jpki/myna does).
    """
    if slot == "auth":
        if not isinstance(secret, str) or not _PIN.match(secret):
            raise InvalidSecretFormat("the PIN must be exactly 4 digits")
        return secret
    if slot == "sign":
        value = secret.upper() if isinstance(secret, str) else ""
        if not _PASSWORD.match(value):
            raise InvalidSecretFormat("the password must be 6-16 characters of A-Z and 0-9")
        return value
    raise ValueError(f"unknown slot {slot!r}")


def _check_new_password(password: str) -> str:
    value = normalize_secret("sign", password)
    # Municipal guidance when a password is set: letters and digits must both appear.
    if value.isdigit() or value.isalpha():
        raise InvalidSecretFormat("the password must mix letters and digits")
    return value


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def derive_wrapping_key(secret: str, salt: bytes, iterations: int) -> bytes:
    """Return the AES-256 key PBKDF2-HMAC-SHA256 derives from the secret's UTF-8 bytes (= WebCrypto deriveKey)."""
    return PBKDF2HMAC(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, iterations=iterations).derive(
        secret.encode("utf-8")
    )


def _slot_document(slot: str, issued: IssuedCertificate, secret: str, iterations: int) -> dict[str, Any]:
    if iterations < 1:
        raise ValueError("iterations must be positive")
    salt = secrets.token_bytes(SALT_BYTES)
    iv = secrets.token_bytes(IV_BYTES)
    pkcs8 = issued.private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # AESGCM returns ciphertext ‖ 16-byte tag, exactly what WebCrypto's AES-GCM unwrapKey expects.
    wrapped = AESGCM(derive_wrapping_key(secret, salt, iterations)).encrypt(iv, pkcs8, None)
    return {
        "v": VERSION,
        "slot": slot,
        "cert": _b64(issued.certificate.public_bytes(serialization.Encoding.DER)),
        "ca": _b64(issued.issuer_certificate.public_bytes(serialization.Encoding.DER)),
        "kdf": {"alg": "PBKDF2-SHA256", "salt": _b64(salt), "iter": iterations},
        "wrap": {"alg": "AES-GCM", "iv": _b64(iv)},
        "wrappedKey": _b64(wrapped),
        "tries_left": MAX_TRIES[slot],
        "max_tries": MAX_TRIES[slot],
    }


def card_document(
    issued: IssuedCard, pin: str, password: str | None, *, iterations: int = DEFAULT_ITERATIONS
) -> dict[str, Any]:
    """Build the card file's JSON document; ``password`` is required exactly when the card has a sign slot."""
    pin = normalize_secret("auth", pin)
    document: dict[str, Any] = {
        "format": FILE_FORMAT,
        "v": VERSION,
        "cardId": issued.card_id,
        "auth": _slot_document("auth", issued.auth, pin, iterations),
        "sign": None,
    }
    if issued.sign is not None:
        if password is None:
            raise InvalidSecretFormat("a card with a signature certificate needs a password")
        document["sign"] = _slot_document("sign", issued.sign, _check_new_password(password), iterations)
    elif password is not None:
        raise ValueError("this card has no signature certificate, so it takes no password")
    return document


def _write_file(path: Path, text: str) -> None:
    # The file holds the holder's signature certificate: keep it private and never half-written.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def dumps(card: CardDocument) -> str:
    """Serialise a card document as the file stores it."""
    return json.dumps(card, indent=2, ensure_ascii=False) + "\n"


def write_card_file(
    issued: IssuedCard,
    pin: str,
    password: str | None,
    path_or_file: Path | str | IO[str],
    iterations: int = DEFAULT_ITERATIONS,
) -> dict[str, Any]:
    """Write the virtual card file for ``issued`` (PBKDF2 ``iterations``, default 600,000) and return its document."""
    document = card_document(issued, pin, password, iterations=iterations)
    if isinstance(path_or_file, (str, Path)):
        _write_file(Path(path_or_file), dumps(document))
    else:
        path_or_file.write(dumps(document))
    return document


def load_card(source: Path | str | bytes | CardDocument) -> CardDocument:
    """Return a card document from a path, JSON bytes or an already loaded document; check its format."""
    if isinstance(source, MutableMapping):
        card = source
    elif isinstance(source, bytes):
        card = json.loads(source)
    else:
        card = json.loads(Path(source).read_text(encoding="utf-8"))
    if not isinstance(card, MutableMapping) or card.get("format") != FILE_FORMAT or card.get("v") != VERSION:
        raise ValueError("not a version 1 jpki-sim-card file")
    return card


def _slot(card: CardDocument, slot: str) -> MutableMapping[str, Any]:
    if slot not in SLOTS:
        raise ValueError(f"unknown slot {slot!r}")
    document = card.get(slot)
    if document is None:
        raise CardError(f"this card has no {slot} certificate")
    if not isinstance(document, MutableMapping):
        raise ValueError(f"the {slot} slot is not a JSON object")
    return document


def slot_certificate(card: CardDocument, slot: str) -> x509.Certificate:
    """Return a slot's certificate (the simulator does not hide the sign certificate behind the password)."""
    return x509.load_der_x509_certificate(base64.b64decode(_slot(card, slot)["cert"]))


def open_slot(card: CardDocument, slot: str, secret: str) -> rsa.RSAPrivateKey:
    """Unlock a slot's private key with its PIN or password, updating the slot's try counter in ``card``.

    Raises InvalidSecretFormat (no try used), WrongPin (a try used), or CardLocked (no tries left, or
    this wrong try used the last one). A correct secret resets the counter. The caller persists
    ``card`` afterwards; open_slot_file does that for a card on disk.
    """
    document = _slot(card, slot)
    value = normalize_secret(slot, secret)
    if int(document["tries_left"]) <= 0:
        raise CardLocked(slot)
    salt = base64.b64decode(document["kdf"]["salt"], validate=True)
    iv = base64.b64decode(document["wrap"]["iv"], validate=True)
    wrapped = base64.b64decode(document["wrappedKey"], validate=True)
    try:
        pkcs8 = AESGCM(derive_wrapping_key(value, salt, int(document["kdf"]["iter"]))).decrypt(iv, wrapped, None)
    except InvalidTag:
        document["tries_left"] = int(document["tries_left"]) - 1
        if document["tries_left"] <= 0:
            raise CardLocked(slot) from None
        raise WrongPin(slot, document["tries_left"]) from None
    document["tries_left"] = int(document["max_tries"])
    key = serialization.load_der_private_key(pkcs8, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CardError("the slot does not hold an RSA key")
    return key


def open_slot_file(path: Path | str, slot: str, secret: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """Unlock a slot of a card file on disk, saving the try counter whatever the outcome (it survives restarts)."""
    path = Path(path)
    card = load_card(path)
    try:
        key = open_slot(card, slot, secret)
    finally:
        _write_file(path, dumps(card))
    return key, slot_certificate(card, slot)


def replace_sign_slot(
    card: CardDocument, issued: IssuedCertificate, password: str, *, iterations: int = DEFAULT_ITERATIONS
) -> CardDocument:
    """Put a newly issued signature certificate and key into ``card`` (after the four items changed)."""
    card["sign"] = _slot_document("sign", issued, _check_new_password(password), iterations)
    return card
