"""The bridge envelope: a JWS signed by the sender inside a JWE encrypted to the recipient (python-jose).

A message is ``JWE(RSA-OAEP-256, A256GCM)`` to the recipient's RSA key, whose protected header
carries ``mid`` (message id, a UUID4), ``typ`` (message type), ``iss`` (sender), ``aud``
(recipient) and ``iat`` (created at, seconds since the epoch). Inside is a JWS (ES256) made with
the sender's EC key over ``{mid, typ, iss, aud, iat, payload}``: the signed claims repeat the
header, so a party that could read a message cannot re-wrap it under another header.

Each party holds two key pairs, one to sign (EC P-256) and one to decrypt (RSA 3072), so a
signature key is never used for encryption. ``instance/keys/<party>.pem`` holds this party's
private keys (PEM blocks, told apart by their type); ``instance/keys/public/<party>.pub.pem``
holds each known party's two public keys. The directory is ``BRIDGE_KEY_DIRECTORY`` when set.
Every algorithm is fixed: no header may choose one.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwe, jwk, jws
from jose.constants import JWE_SIZE_LIMIT
from jose.exceptions import JOSEError
from jose.utils import base64url_decode, base64url_encode

from core import clock
from core.config import ConfigError

SIGNING_ALGORITHM = "ES256"
SIGNING_ALGORITHMS = [SIGNING_ALGORITHM]
KEY_ALGORITHM = "RSA-OAEP-256"
CONTENT_ALGORITHM = "A256GCM"
RSA_KEY_BITS = 3072
MIN_RSA_KEY_BITS = 2048
# A sender's clock may run a little ahead of ours; more than this is refused.
MAX_CLOCK_SKEW = dt.timedelta(minutes=5)

REFUSAL_REASONS = frozenset({
    "bad_ciphertext", "wrong_recipient", "unknown_sender", "bad_signature", "type_not_accepted", "too_old",
    "header_mismatch",
})
HEADER_FIELDS = ("mid", "typ", "iss", "aud", "iat")
# Nothing else may appear in the JWE header: no "zip" (decompression bombs), no "crit", no "jku".
ALLOWED_HEADER = frozenset({"alg", "enc", "kid", *HEADER_FIELDS})

PARTY_PATTERN = re.compile(
    r"^(portal|muni:\d{6}|peer:prefecture|peer:jlis|peer:dept:[a-z][a-z0-9-]{0,30}|peer:muni-standin)$"
)
MESSAGE_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_.-]{0,49}$")
UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----", re.DOTALL)


class EnvelopeRefused(Exception):
    """A message that must not be acted on; ``reason`` is one of ``REFUSAL_REASONS``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in REFUSAL_REASONS:
            raise ValueError(f"unknown refusal reason {reason!r}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class UnknownParty(KeyError):
    """No public key is registered for this party."""


@dataclass(frozen=True)
class Sealed:
    """A sealed message: its id and the compact JWE to store and send."""

    message_id: str
    token: str


@dataclass(frozen=True)
class Opened:
    """A message that passed every check, with its verified header and payload."""

    message_id: str
    message_type: str
    sender: str
    recipient: str
    created_at: dt.datetime
    payload: dict[str, Any]
    # The id of a message of the recipient's that this one acknowledges too (a reply carrying the ack), if any.
    acknowledges: str | None = None


def validate_party(party: str) -> str:
    """Return ``party`` if it names a party of the bridge, else raise ValueError."""
    if not isinstance(party, str) or not PARTY_PATTERN.match(party):
        raise ValueError(f"not a bridge party: {party!r}")
    return party


def party_of(config: Mapping[str, Any]) -> str:
    """This app's own party, as the factory recorded it in ``BRIDGE_PARTY``."""
    party = config.get("BRIDGE_PARTY")
    if not party:
        raise ConfigError("BRIDGE_PARTY is not set: the app was built without the bridge")
    return validate_party(str(party))


# -- keys ------------------------------------------------------------------------------------------


def thumbprint(public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url) that names a key in ``kid``."""
    alg = SIGNING_ALGORITHM if isinstance(public_key, ec.EllipticCurvePublicKey) else KEY_ALGORITHM
    jwk_dict = jwk.construct(public_key, alg).to_dict()
    members = ("crv", "kty", "x", "y") if jwk_dict["kty"] == "EC" else ("e", "kty", "n")
    canonical = json.dumps({k: jwk_dict[k] for k in members}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


@dataclass(frozen=True)
class PartyKeys:
    """The two public keys of one party: one verifies its signatures, one encrypts to it."""

    verify: ec.EllipticCurvePublicKey
    encrypt: rsa.RSAPublicKey
    verify_kid: str = field(init=False)
    encrypt_kid: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "verify_kid", thumbprint(self.verify))
        object.__setattr__(self, "encrypt_kid", thumbprint(self.encrypt))

    def pem(self) -> str:
        """Both public keys as one PEM text (what ``keys import`` takes)."""
        return "".join(
            k.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
            for k in (self.verify, self.encrypt)
        )

    @classmethod
    def from_pem(cls, text: str) -> PartyKeys:
        """Parse a public bundle: exactly one EC P-256 key and one RSA key of at least 2048 bits."""
        keys = [serialization.load_pem_public_key(block.encode()) for block in _pem_blocks(text)]
        ecs = [k for k in keys if isinstance(k, ec.EllipticCurvePublicKey)]
        rsas = [k for k in keys if isinstance(k, rsa.RSAPublicKey)]
        if len(ecs) != 1 or len(rsas) != 1 or len(keys) != 2:
            raise ValueError("a public key file holds exactly one EC P-256 key and one RSA key")
        _check_key_sizes(ecs[0], rsas[0])
        return cls(verify=ecs[0], encrypt=rsas[0])


@dataclass(frozen=True)
class KeyRegistry:
    """This party's private keys and the public keys of the parties it talks to."""

    party: str
    signing_key: ec.EllipticCurvePrivateKey
    decryption_keys: tuple[rsa.RSAPrivateKey, ...]
    public_keys: Mapping[str, PartyKeys]
    signing_kid: str = field(init=False)

    def __post_init__(self) -> None:
        validate_party(self.party)
        if not self.decryption_keys:
            raise ValueError("at least one decryption key is needed")
        object.__setattr__(self, "signing_kid", thumbprint(self.signing_key.public_key()))

    @classmethod
    def generate(cls, party: str) -> KeyRegistry:
        """New key pairs for ``party`` (in memory; ``private_pem`` writes them out)."""
        return cls.from_private_pem(party, generate_private_pem())

    @classmethod
    def from_private_pem(cls, party: str, text: str, public_keys: Mapping[str, PartyKeys] | None = None) -> KeyRegistry:
        """Load this party's private keys: one EC P-256 signing key, one or more RSA decryption keys."""
        keys = [serialization.load_pem_private_key(block.encode(), password=None) for block in _pem_blocks(text)]
        ecs = [k for k in keys if isinstance(k, ec.EllipticCurvePrivateKey)]
        rsas = tuple(k for k in keys if isinstance(k, rsa.RSAPrivateKey))
        if len(ecs) != 1 or not rsas or len(ecs) + len(rsas) != len(keys):
            raise ValueError("a private key file holds one EC P-256 key and at least one RSA key")
        for key in rsas:
            _check_key_sizes(ecs[0].public_key(), key.public_key())
        return cls(party=party, signing_key=ecs[0], decryption_keys=rsas, public_keys=dict(public_keys or {}))

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, party: str | None = None) -> KeyRegistry:
        """Load the app's keys from the key directory; outside production a missing private key is generated."""
        party = validate_party(party or party_of(config))
        directory = key_directory(config)
        path = private_key_path(directory, party)
        if not path.exists():
            if config.get("APP_ENV") == "production":
                raise ConfigError(f"bridge private key {path} is missing: run `flask keys generate` and register "
                                  "the printed public key with the other side")
            write_private_key(directory, party, generate_private_pem())
        # Loading an RSA key costs about 0.1 s (its validation), so the registry is kept until a key file changes.
        stamp = _files_stamp(directory, path)
        cached = _registry_cache.get((str(directory), party))
        if cached is not None and cached[0] == stamp:
            return cached[1]
        registry = cls.from_private_pem(party, path.read_text(), load_public_keys(directory))
        _registry_cache[(str(directory), party)] = (stamp, registry)
        return registry

    def public_pem(self) -> str:
        """This party's public keys as PEM, to be registered with the other side."""
        return self.own_public().pem()

    def own_public(self) -> PartyKeys:
        """This party's public keys (the newest decryption key)."""
        return PartyKeys(verify=self.signing_key.public_key(), encrypt=self.decryption_keys[0].public_key())

    def private_pem(self) -> str:
        """This party's private keys as PKCS#8 PEM (unencrypted: protect the file, mode 0600)."""
        keys: list[ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey] = [self.signing_key, *self.decryption_keys]
        return "".join(
            k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
            for k in keys
        )

    def with_public(self, party: str, keys: PartyKeys | str) -> KeyRegistry:
        """A registry that also knows ``party``'s public keys (a PartyKeys or its PEM text)."""
        parsed = keys if isinstance(keys, PartyKeys) else PartyKeys.from_pem(keys)
        return KeyRegistry(party=self.party, signing_key=self.signing_key, decryption_keys=self.decryption_keys,
                           public_keys={**self.public_keys, validate_party(party): parsed})

    def knows(self, party: str) -> bool:
        """Whether a public key is registered for ``party``."""
        return party in self.public_keys

    def public(self, party: str) -> PartyKeys:
        """The public keys of ``party``; UnknownParty if none are registered."""
        try:
            return self.public_keys[party]
        except KeyError:
            raise UnknownParty(party) from None


_registry_cache: dict[tuple[str, str], tuple[tuple[Any, ...], KeyRegistry]] = {}


def _files_stamp(directory: Path, private_path: Path) -> tuple[Any, ...]:
    """What identifies the current key files: names, sizes and modification times."""
    entries = [private_path, *sorted((directory / "public").glob("*.pub.pem"))]
    stamp = []
    for entry in entries:
        try:
            info = entry.stat()
        except FileNotFoundError:
            continue
        stamp.append((entry.name, info.st_size, info.st_mtime_ns, info.st_ino))
    return tuple(stamp)


def generate_private_pem() -> str:
    """A new signing key (EC P-256) and decryption key (RSA 3072) as one PEM text."""
    keys: list[ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey] = [
        ec.generate_private_key(ec.SECP256R1()),
        rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS),
    ]
    return "".join(
        k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption()).decode()
        for k in keys
    )


def key_directory(config: Mapping[str, Any]) -> Path:
    """Where the keys live: ``BRIDGE_KEY_DIRECTORY`` (config, then environment), else ``instance/keys``."""
    configured = config.get("BRIDGE_KEY_DIRECTORY") or os.environ.get("BRIDGE_KEY_DIRECTORY")
    return Path(configured) if configured else Path(config["INSTANCE_PATH"]) / "keys"


def private_key_path(directory: Path, party: str) -> Path:
    """The file of ``party``'s private keys."""
    return directory / f"{validate_party(party)}.pem"


def public_key_path(directory: Path, party: str) -> Path:
    """The file of ``party``'s registered public keys."""
    return directory / "public" / f"{validate_party(party)}.pub.pem"


def write_private_key(directory: Path, party: str, pem: str) -> bool:
    """Write ``party``'s private keys (mode 0600) unless a file is already there; True if written.

    Written to a temporary file and hard-linked into place, so two processes starting at once
    cannot end up with different keys and no reader ever sees half a file.
    """
    path = private_key_path(directory, party)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
    return True


def import_public_key(directory: Path, party: str, pem: str) -> PartyKeys:
    """Register ``party``'s public keys (validated first), replacing any registered before."""
    keys = PartyKeys.from_pem(pem)
    path = public_key_path(directory, party)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(keys.pem())
    os.replace(tmp, path)  # readers see the old file or the new one, never half of one
    return keys


def load_public_keys(directory: Path) -> dict[str, PartyKeys]:
    """Every registered party's public keys; a file that does not parse stops the load."""
    found: dict[str, PartyKeys] = {}
    folder = directory / "public"
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.pub.pem")):
        party = path.name.removesuffix(".pub.pem")
        if not PARTY_PATTERN.match(party):
            continue
        try:
            found[party] = PartyKeys.from_pem(path.read_text())
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    return found


def _pem_blocks(text: str) -> list[str]:
    return [m.group(0) for m in _PEM_BLOCK.finditer(text)]


def _check_key_sizes(signing: ec.EllipticCurvePublicKey, encryption: rsa.RSAPublicKey) -> None:
    if not isinstance(signing.curve, ec.SECP256R1):
        raise ValueError("the signing key must be on curve P-256 (ES256)")
    if encryption.key_size < MIN_RSA_KEY_BITS:
        raise ValueError(f"the RSA key must have at least {MIN_RSA_KEY_BITS} bits")


# -- sealing and opening ---------------------------------------------------------------------------


def seal(
    payload: dict[str, Any],
    *,
    message_type: str,
    sender: str,
    recipient: str,
    keys: KeyRegistry,
    message_id: str | None = None,
    created_at: dt.datetime | None = None,
    acknowledges: str | None = None,
) -> Sealed:
    """Sign ``payload`` as ``sender`` and encrypt it to ``recipient``.

    ``acknowledges``: the id of a message from ``recipient`` that this one also acknowledges (a signed claim,
    ``ack``), so that a reply spares the recipient a separate ack.
    """
    if sender != keys.party:
        raise ValueError(f"{keys.party} cannot seal a message as {sender}")
    if not MESSAGE_TYPE_PATTERN.match(message_type):
        raise ValueError(f"not a message type: {message_type!r}")
    if not isinstance(payload, dict):
        raise TypeError("the payload is a JSON object")
    message_id = message_id or str(uuid.uuid4())
    if not UUID_PATTERN.match(message_id):
        raise ValueError("a message id is a lower-case UUID4")
    to = keys.public(validate_party(recipient))
    iat = int((created_at or clock.utcnow()).timestamp())
    claims: dict[str, Any] = {"mid": message_id, "typ": message_type, "iss": sender, "aud": recipient, "iat": iat,
                              "payload": payload}
    if acknowledges is not None:
        if not UUID_PATTERN.match(acknowledges):
            raise ValueError("an acknowledged message id is a lower-case UUID4")
        claims["ack"] = acknowledges
    signed = jws.sign(_json(claims), keys.signing_key, headers={"kid": keys.signing_kid},
                      algorithm=SIGNING_ALGORITHM)
    header = {"alg": KEY_ALGORITHM, "enc": CONTENT_ALGORITHM, "kid": to.encrypt_kid, "mid": message_id,
              "typ": message_type, "iss": sender, "aud": recipient, "iat": iat}
    token = encrypt_compact(signed.encode(), header, to.encrypt)
    if len(token) > JWE_SIZE_LIMIT:
        raise ValueError(f"message too large to send ({len(token)} bytes sealed)")
    return Sealed(message_id=message_id, token=token)


def encrypt_compact(plaintext: bytes, header: dict[str, Any], key: rsa.RSAPublicKey) -> str:
    """JWE compact serialisation with our own protected header (python-jose's ``encrypt`` takes no extra headers).

    The key is wrapped with RSA-OAEP-256 and the content sealed with A256GCM, the encoded header
    being the additional authenticated data, as RFC 7516 §5.1 prescribes.
    """
    if header.get("alg") != KEY_ALGORITHM or header.get("enc") != CONTENT_ALGORITHM:
        raise ValueError("the envelope uses RSA-OAEP-256 with A256GCM only")
    encoded_header = base64url_encode(_json(header))
    cek = os.urandom(32)
    wrapped = jwk.construct(key, KEY_ALGORITHM).wrap_key(cek)
    iv, ciphertext, tag = jwk.construct(cek, CONTENT_ALGORITHM).encrypt(plaintext, encoded_header)
    parts = [encoded_header, base64url_encode(wrapped), base64url_encode(iv), base64url_encode(ciphertext),
             base64url_encode(tag)]
    return b".".join(parts).decode("ascii")


def peek_header(token: str) -> dict[str, Any]:
    """The JWE protected header WITHOUT any verification: for routing and logging only, never trust it."""
    if not isinstance(token, str) or token.count(".") != 4:
        raise ValueError("not a compact JWE")
    header = json.loads(base64url_decode(token.split(".", 1)[0].encode("ascii")))
    if not isinstance(header, dict):
        raise ValueError("the JWE header is not an object")
    return header


def open_envelope(
    token: str,
    *,
    me: str,
    keys: KeyRegistry,
    accepted_types: set[str] | frozenset[str],
    max_age: dt.timedelta,
    now: dt.datetime,
) -> Opened:
    """Decrypt and verify a message addressed to ``me``; raise EnvelopeRefused with the reason otherwise."""
    if me != keys.party:
        raise ValueError(f"the registry of {keys.party} cannot open messages to {me}")
    try:
        header = peek_header(token)
    except (ValueError, UnicodeError, TypeError) as exc:
        raise EnvelopeRefused("bad_ciphertext", "the token is not a compact JWE") from exc
    if header.get("alg") != KEY_ALGORITHM or header.get("enc") != CONTENT_ALGORITHM:
        raise EnvelopeRefused("bad_ciphertext", "algorithms other than RSA-OAEP-256/A256GCM")
    if set(header) - ALLOWED_HEADER or any(name not in header for name in HEADER_FIELDS):
        raise EnvelopeRefused("bad_ciphertext", "unexpected or missing header fields")
    if header["aud"] != me:
        raise EnvelopeRefused("wrong_recipient", f"addressed to {str(header['aud'])[:40]}")
    sender = header["iss"]
    if not isinstance(sender, str) or not keys.knows(sender):
        raise EnvelopeRefused("unknown_sender", f"no key registered for {str(sender)[:40]}")
    signed = _decrypt(token, header, keys)
    try:
        claims_bytes = jws.verify(signed, keys.public(sender).verify, algorithms=SIGNING_ALGORITHMS)
    except JOSEError as exc:
        raise EnvelopeRefused("bad_signature", "the signature does not verify with the sender's key") from exc
    try:
        claims = json.loads(claims_bytes)
    except ValueError as exc:
        raise EnvelopeRefused("header_mismatch", "the signed claims are not JSON") from exc
    if not isinstance(claims, dict) or any(claims.get(name) != header[name] for name in HEADER_FIELDS):
        raise EnvelopeRefused("header_mismatch", "the header differs from the signed claims")
    payload = claims.get("payload")
    message_id, message_type, iat = claims["mid"], claims["typ"], claims["iat"]
    acknowledges = claims.get("ack")
    if (not isinstance(payload, dict) or not isinstance(message_id, str) or not UUID_PATTERN.match(message_id)
            or not isinstance(message_type, str) or isinstance(iat, bool) or not isinstance(iat, int)
            or not (acknowledges is None or (isinstance(acknowledges, str) and UUID_PATTERN.match(acknowledges)))):
        raise EnvelopeRefused("header_mismatch", "malformed signed claims")
    if message_type not in accepted_types:
        raise EnvelopeRefused("type_not_accepted", f"type {message_type[:50]}")
    created_at = dt.datetime.fromtimestamp(iat, dt.UTC)
    if now - created_at > max_age:
        raise EnvelopeRefused("too_old", f"created {created_at.isoformat()}")
    if created_at - now > MAX_CLOCK_SKEW:
        raise EnvelopeRefused("too_old", f"created in the future ({created_at.isoformat()})")
    return Opened(message_id=message_id, message_type=message_type, sender=sender, recipient=me,
                  created_at=created_at, payload=payload, acknowledges=acknowledges)


def _decrypt(token: str, header: dict[str, Any], keys: KeyRegistry) -> str:
    # The key named by kid first; the others too, so a message sealed before a key rotation still opens.
    ordered = sorted(keys.decryption_keys, key=lambda k: thumbprint(k.public_key()) != header.get("kid"))
    for key in ordered:
        try:
            plaintext = jwe.decrypt(token, key)
        except (JOSEError, ValueError, TypeError):
            continue
        if plaintext is not None:
            try:
                return bytes(plaintext).decode("ascii")
            except UnicodeDecodeError:
                break
    raise EnvelopeRefused("bad_ciphertext", "the message does not decrypt with this party's keys")


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
