"""What the server trusts for card certificates: anchors per purpose, the origin, the clock, and revocation (CRL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtensionOID

from core.clock import utcnow
from core.config import ConfigError
from core.jpki.errors import RefusalCode
from core.jpki.origin import validate_site_origin
from core.jpki.profile import SIGNATURE_ALGORITHM, CertificatePurpose, is_simulated

CrlSource = Path | str | Callable[[x509.Certificate], bytes | None]

DEFAULT_CRL_MAX_AGE = dt.timedelta(hours=24)
# Web eID tolerates 15 minutes of clock difference between the server and the revocation source.
CLOCK_SKEW = dt.timedelta(minutes=15)
# CRL extensions whose meaning we apply; any other critical extension makes the CRL unusable (fail closed).
_UNDERSTOOD_CRL_EXTENSIONS = frozenset({ExtensionOID.CRL_NUMBER, ExtensionOID.AUTHORITY_KEY_IDENTIFIER})


def key_identifier(certificate: x509.Certificate) -> bytes:
    """Return the certificate's subject key identifier, or the RFC 5280 method-1 identifier of its key."""
    try:
        return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest


def crl_file_name(issuer: x509.Certificate) -> str:
    """Return the file name a CRL of ``issuer`` has in a CRL directory: the issuer key id in hex.

    CA generations share one subject DN, so the DN cannot name the file; the key can.
    """
    return key_identifier(issuer).hex() + ".crl"


def load_pem_bundle(path: Path | str) -> tuple[x509.Certificate, ...]:
    """Load every certificate of a PEM bundle."""
    return tuple(x509.load_pem_x509_certificates(Path(path).read_bytes()))


@dataclass(frozen=True)
class RevocationStatus:
    """The revocation state of one certificate and the CRL that showed it (kept as evidence)."""

    revoked: bool
    reason: str | None = None
    revoked_at: dt.datetime | None = None
    evidence: bytes = b""


class RevocationCheckFailed(Exception):
    """The revocation status could not be established; callers must refuse (fail closed)."""

    def __init__(self, code: RefusalCode, detail: str) -> None:
        super().__init__(f"{code.value}: {detail}")
        self.code = code
        self.detail = detail


class RevocationChecker(Protocol):
    """Source of revocation status: the simulated CRL now; a J-LIS CRL/OCSP feed or a platform operator later."""

    def status(self, certificate: x509.Certificate, issuer: x509.Certificate, *, now: dt.datetime) -> RevocationStatus:
        """Return the status of ``certificate`` issued by ``issuer``, or raise RevocationCheckFailed."""
        ...


class CrlRevocationChecker:
    """RevocationChecker over DER CRLs read from a directory (``<issuer key id>.crl``) or a callable."""

    def __init__(self, source: CrlSource, *, max_age: dt.timedelta = DEFAULT_CRL_MAX_AGE) -> None:
        self._source = source
        self._max_age = max_age

    def _load(self, issuer: x509.Certificate) -> bytes | None:
        if callable(self._source):
            return self._source(issuer)
        path = Path(self._source) / crl_file_name(issuer)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def status(self, certificate: x509.Certificate, issuer: x509.Certificate, *, now: dt.datetime) -> RevocationStatus:
        """Check ``certificate`` against a fresh, correctly signed CRL of ``issuer``; raise if there is none."""
        try:
            der = self._load(issuer)
        except Exception as exc:  # any failure of the source must fail closed, never open
            raise RevocationCheckFailed(RefusalCode.CRL_UNAVAILABLE, f"CRL source failed: {exc!r}") from exc
        if not der:
            raise RevocationCheckFailed(RefusalCode.CRL_UNAVAILABLE, "no CRL for the issuer")
        crl = _checked_crl(der, issuer)
        this_update = crl.last_update_utc
        next_update = crl.next_update_utc
        if this_update > now + CLOCK_SKEW:
            raise RevocationCheckFailed(RefusalCode.CRL_INVALID, "CRL thisUpdate is in the future")
        if next_update is None or next_update < now:
            raise RevocationCheckFailed(RefusalCode.CRL_STALE, "CRL nextUpdate has passed")
        if now - this_update > self._max_age:
            raise RevocationCheckFailed(RefusalCode.CRL_STALE, "CRL is older than the configured maximum age")
        entry = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
        if entry is None:
            return RevocationStatus(revoked=False, evidence=der)
        reason: str | None = None
        try:
            flag = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
            reason = flag.value
        except x509.ExtensionNotFound:
            reason = None
        if reason == x509.ReasonFlags.remove_from_crl.value:
            return RevocationStatus(revoked=False, evidence=der)
        return RevocationStatus(revoked=True, reason=reason, revoked_at=entry.revocation_date_utc, evidence=der)


# CRLs whose form and signature were checked, by issuer and exact bytes: the file is still read at every
# check (a new CRL counts at once), only an unchanged one is not parsed and verified again.
_CHECKED_CRLS: dict[tuple[bytes, bytes], x509.CertificateRevocationList] = {}
_CHECKED_CRLS_MAX = 16


def _checked_crl(der: bytes, issuer: x509.Certificate) -> x509.CertificateRevocationList:
    """The CRL in ``der``, checked to be DER, issued and signed by ``issuer``, with no unknown critical extension."""
    cache_key = (issuer.fingerprint(hashes.SHA256()), der)
    crl = _CHECKED_CRLS.get(cache_key)
    if crl is not None:
        return crl
    try:
        crl = x509.load_der_x509_crl(der)
        extensions = list(crl.extensions)
    except ValueError as exc:
        raise RevocationCheckFailed(RefusalCode.CRL_INVALID, "CRL is not DER") from exc
    if crl.issuer != issuer.subject:
        raise RevocationCheckFailed(RefusalCode.CRL_INVALID, "CRL issuer differs from the certificate issuer")
    if crl.signature_algorithm_oid != SIGNATURE_ALGORITHM:
        raise RevocationCheckFailed(RefusalCode.CRL_INVALID, "CRL is not signed with sha256WithRSAEncryption")
    if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
        raise RevocationCheckFailed(RefusalCode.CRL_SIGNATURE_INVALID, "CRL signature does not verify")
    unknown = [e.oid.dotted_string for e in extensions if e.critical and e.oid not in _UNDERSTOOD_CRL_EXTENSIONS]
    if unknown:
        raise RevocationCheckFailed(RefusalCode.CRL_INVALID, f"unknown critical CRL extensions {unknown}")
    if len(_CHECKED_CRLS) >= _CHECKED_CRLS_MAX:
        _CHECKED_CRLS.pop(next(iter(_CHECKED_CRLS)))
    _CHECKED_CRLS[cache_key] = crl
    return crl


def _as_tuple(certificates: Iterable[x509.Certificate]) -> tuple[x509.Certificate, ...]:
    return tuple(certificates)


@dataclass(frozen=True, kw_only=True)
class TrustConfig:
    """Everything the verifiers trust, fixed at start-up: anchors per purpose, origin, revocation source and clock.

    ``auth_anchors`` and ``sign_anchors`` hold the CA certificates of every live generation of the
    user-authentication and digital-signature CAs; the two sets must not overlap, so a signature
    certificate can never be used to sign in. In production, simulated (JPKI-SIM) anchors are refused.
    """

    origin: str
    app_env: str
    auth_anchors: tuple[x509.Certificate, ...]
    sign_anchors: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...] = ()
    crl_source: CrlSource | None = None
    crl_max_age: dt.timedelta = DEFAULT_CRL_MAX_AGE
    clock: Callable[[], dt.datetime] = utcnow
    denied_policies: frozenset[str] = frozenset()
    revocation: RevocationChecker | None = field(default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "auth_anchors", _as_tuple(self.auth_anchors))
        object.__setattr__(self, "sign_anchors", _as_tuple(self.sign_anchors))
        object.__setattr__(self, "intermediates", _as_tuple(self.intermediates))
        object.__setattr__(self, "denied_policies", frozenset(self.denied_policies))
        validate_site_origin(self.origin, app_env=self.app_env)
        if not self.auth_anchors or not self.sign_anchors:
            raise ConfigError("both authentication and signature trust anchors must be configured")
        if set(self.auth_anchors) & set(self.sign_anchors):
            raise ConfigError("a CA certificate must not be an anchor for both sign-in and signatures")
        for cert in (*self.auth_anchors, *self.sign_anchors, *self.intermediates):
            try:
                constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            except x509.ExtensionNotFound:
                constraints = None
            if constraints is None or not constraints.ca:
                raise ConfigError(f"trust configuration holds a non-CA certificate: {cert.subject.rfc4514_string()}")
            if self.app_env == "production" and is_simulated(cert):
                raise ConfigError("simulated JPKI (JPKI-SIM) certificates are refused in production")
        if self.revocation is None:
            if self.crl_source is None:
                raise ConfigError("a CRL source (directory or callable) or a revocation checker is required")
            object.__setattr__(self, "revocation", CrlRevocationChecker(self.crl_source, max_age=self.crl_max_age))

    def anchors_for(self, purpose: CertificatePurpose) -> tuple[x509.Certificate, ...]:
        """Return the anchors of one purpose; the other purpose's anchors are never consulted."""
        return self.auth_anchors if purpose is CertificatePurpose.AUTH else self.sign_anchors

    def revocation_checker(self) -> RevocationChecker:
        """Return the configured revocation checker."""
        assert self.revocation is not None  # set in __post_init__
        return self.revocation

    @classmethod
    def from_files(
        cls,
        *,
        origin: str,
        app_env: str,
        auth_anchors_pem: Path | str,
        sign_anchors_pem: Path | str,
        crl_directory: Path | str,
        clock: Callable[[], dt.datetime] = utcnow,
        crl_max_age: dt.timedelta = DEFAULT_CRL_MAX_AGE,
    ) -> TrustConfig:
        """Build the configuration from two PEM anchor bundles and a CRL directory (what the simulator publishes)."""
        return cls(
            origin=origin,
            app_env=app_env,
            auth_anchors=load_pem_bundle(auth_anchors_pem),
            sign_anchors=load_pem_bundle(sign_anchors_pem),
            crl_source=Path(crl_directory),
            crl_max_age=crl_max_age,
            clock=clock,
        )
