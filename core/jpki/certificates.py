"""Checks of a presented end-entity certificate shared by sign-in and signature verification (§3.4 steps 4-8)."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import ExtensionPolicy, PolicyBuilder, Store, VerificationError

from core.jpki.encoding import strict_b64decode
from core.jpki.errors import CardVerificationError, RefusalCode
from core.jpki.profile import (
    AUTH_POLICY_ARC,
    KEY_SIZE,
    PUBLIC_EXPONENT,
    SIGN_POLICY_ARC,
    SIGNATURE_ALGORITHM,
    CertificatePurpose,
    policy_in_arc,
)
from core.jpki.trust import RevocationCheckFailed, RevocationStatus, TrustConfig, key_identifier

MAX_CERTIFICATE_DER = 4096
MAX_CHAIN_DEPTH = 4

# Certificates as decoded, and the outcomes of the signature checks of a path, which depend only on
# the certificates' bytes (a Certificate compares and hashes by its DER): whether a CA's key signed a
# certificate, and whether a path passed cryptography's path validation. Validity at the time of use
# and revocation are never kept: they are checked at every use. Bounded: each is emptied when full.
_DECODED: dict[str, x509.Certificate] = {}  # base64 text -> certificate, only for texts that decoded
_ISSUED_BY: dict[tuple[x509.Certificate, x509.Certificate], bool] = {}
_VALID_PATHS: set[tuple[x509.Certificate, ...]] = set()
_CACHE_LIMIT = 1024


@dataclass(frozen=True)
class ValidatedCertificate:
    """An end-entity certificate that passed every check, with its path and the revocation evidence."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    revocation: RevocationStatus

    @property
    def issuer_certificate(self) -> x509.Certificate:
        """Return the CA certificate that issued the end-entity certificate."""
        return self.chain[1]


def _fail(
    error: type[CardVerificationError],
    code: RefusalCode,
    detail: str,
    certificate: x509.Certificate | None = None,
    **extra: str | None,
) -> CardVerificationError:
    serial = certificate.serial_number if certificate is not None else None
    return error(code, detail, certificate_serial=serial, **extra)


def decode_certificate(
    value: object, *, error: type[CardVerificationError], field_code: RefusalCode
) -> x509.Certificate:
    """Decode a strict standard-base64 DER certificate; refuse anything else with ``field_code`` or CERT_NOT_DER.

    A text decoded once is not decoded again (the same text is the same certificate; the object is immutable).
    """
    if not isinstance(value, str) or not value:
        raise error(field_code, "certificate is missing or not a string")
    known = _DECODED.get(value)
    if known is not None:
        return known
    try:
        der = strict_b64decode(value)
    except ValueError as exc:
        raise error(field_code, "certificate is not strict standard base64") from exc
    if len(der) > MAX_CERTIFICATE_DER:
        raise error(RefusalCode.CERT_NOT_DER, f"certificate DER is {len(der)} bytes, above {MAX_CERTIFICATE_DER}")
    try:
        certificate = x509.load_der_x509_certificate(der)
        # Extensions parse lazily; force it now so malformed or duplicated extensions count as bad DER.
        list(certificate.extensions)
    except ValueError as exc:
        raise error(RefusalCode.CERT_NOT_DER, "certificate is not valid DER X.509") from exc
    if len(_DECODED) >= _CACHE_LIMIT:
        _DECODED.clear()
    _DECODED[value] = certificate
    return certificate


def check_key(certificate: x509.Certificate, *, error: type[CardVerificationError]) -> rsa.RSAPublicKey:
    """Require RSA-2048 with e=65537 (what the card holds) and an end-entity certificate (§3.4 step 5)."""
    try:
        key = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise _fail(error, RefusalCode.KEY_WEAK_OR_WRONG, "unreadable public key", certificate) from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise _fail(error, RefusalCode.KEY_WEAK_OR_WRONG, f"{type(key).__name__} is not RSA", certificate)
    if key.key_size != KEY_SIZE:
        raise _fail(error, RefusalCode.KEY_WEAK_OR_WRONG, f"RSA-{key.key_size}, expected RSA-{KEY_SIZE}", certificate)
    if key.public_numbers().e != PUBLIC_EXPONENT:
        raise _fail(error, RefusalCode.KEY_WEAK_OR_WRONG, f"public exponent {key.public_numbers().e}", certificate)
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is not None and constraints.ca:
        raise _fail(error, RefusalCode.CERT_IS_CA, "a CA certificate was presented as a card certificate", certificate)
    return key


def _key_usage(certificate: x509.Certificate, error: type[CardVerificationError]) -> x509.KeyUsage:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise _fail(error, RefusalCode.KEY_USAGE_MISSING, "no KeyUsage extension", certificate) from exc
    if usage.key_cert_sign or usage.crl_sign:
        raise _fail(error, RefusalCode.KEY_USAGE_WRONG, "KeyUsage allows certificate or CRL signing", certificate)
    return usage


def _policies(certificate: x509.Certificate) -> list[str]:
    try:
        value = certificate.extensions.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        return []
    return [info.policy_identifier.dotted_string for info in value]


def _check_policies(
    certificate: x509.Certificate,
    *,
    required: str,
    forbidden: str,
    trust: TrustConfig,
    error: type[CardVerificationError],
) -> None:
    policies = _policies(certificate)
    if not any(policy_in_arc(p, required) for p in policies):
        raise _fail(error, RefusalCode.POLICY_WRONG, f"no policy under {required}: {policies}", certificate)
    if any(policy_in_arc(p, forbidden) for p in policies):
        raise _fail(error, RefusalCode.POLICY_WRONG, f"policy of the other purpose present: {policies}", certificate)
    if any(p in trust.denied_policies for p in policies):
        raise _fail(error, RefusalCode.POLICY_WRONG, f"deny-listed policy present: {policies}", certificate)


def check_auth_purpose(
    certificate: x509.Certificate, *, trust: TrustConfig, error: type[CardVerificationError]
) -> None:
    """Require the authentication profile: KeyUsage digitalSignature, EKU absent or clientAuth, the auth policy."""
    usage = _key_usage(certificate, error)
    if not usage.digital_signature:
        raise _fail(error, RefusalCode.KEY_USAGE_WRONG, "KeyUsage lacks digitalSignature", certificate)
    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise _fail(error, RefusalCode.EXTENDED_KEY_USAGE_WRONG, "EKU present without clientAuth", certificate)
    _check_policies(certificate, required=AUTH_POLICY_ARC, forbidden=SIGN_POLICY_ARC, trust=trust, error=error)


def check_sign_purpose(
    certificate: x509.Certificate, *, trust: TrustConfig, error: type[CardVerificationError]
) -> None:
    """Require the signature profile: KeyUsage nonRepudiation (and digitalSignature) and the signature policy."""
    usage = _key_usage(certificate, error)
    if not usage.content_commitment or not usage.digital_signature:
        raise _fail(error, RefusalCode.KEY_USAGE_WRONG, "KeyUsage lacks nonRepudiation/digitalSignature", certificate)
    _check_policies(certificate, required=SIGN_POLICY_ARC, forbidden=AUTH_POLICY_ARC, trust=trust, error=error)


def _authority_key_id(certificate: x509.Certificate) -> bytes | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        return None


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    known = _ISSUED_BY.get((certificate, issuer))
    if known is not None:
        return known
    try:
        certificate.verify_directly_issued_by(issuer)
        issued = True
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        issued = False
    if len(_ISSUED_BY) >= _CACHE_LIMIT:
        _ISSUED_BY.clear()
    _ISSUED_BY[(certificate, issuer)] = issued
    return issued


def _issuers(
    certificate: x509.Certificate, pool: tuple[x509.Certificate, ...], now: dt.datetime
) -> list[x509.Certificate]:
    """Return CA certificates of ``pool`` whose key signed ``certificate``, currently valid ones first.

    Candidates are found by key identifier, never by DN alone: every J-LIS CA generation has the same
    subject DN. A signature check then proves the key really issued the certificate.
    """
    wanted = _authority_key_id(certificate)
    if wanted is not None:
        candidates = [ca for ca in pool if key_identifier(ca) == wanted]
    else:
        candidates = [ca for ca in pool if ca.subject == certificate.issuer]
    issuers = [ca for ca in candidates if _issued_by(certificate, ca)]
    return sorted(issuers, key=lambda ca: not (ca.not_valid_before_utc <= now <= ca.not_valid_after_utc))


def _build_path(
    certificate: x509.Certificate,
    anchors: tuple[x509.Certificate, ...],
    intermediates: tuple[x509.Certificate, ...],
    now: dt.datetime,
    error: type[CardVerificationError],
) -> tuple[x509.Certificate, ...]:
    chain = [certificate]
    current = certificate
    for _ in range(MAX_CHAIN_DEPTH):
        if current.signature_algorithm_oid != SIGNATURE_ALGORITHM:
            raise _fail(error, RefusalCode.CERT_UNTRUSTED, "not signed with sha256WithRSAEncryption", certificate)
        found = _issuers(current, anchors, now)
        if found:
            return (*chain, found[0])
        following = [ca for ca in _issuers(current, intermediates, now) if ca not in chain]
        if not following:
            break
        chain.append(following[0])
        current = following[0]
    raise _fail(error, RefusalCode.CERT_UNTRUSTED, "no path to a trust anchor of this purpose", certificate)


def validate_path(
    certificate: x509.Certificate,
    *,
    purpose: CertificatePurpose,
    trust: TrustConfig,
    now: dt.datetime,
    error: type[CardVerificationError],
) -> ValidatedCertificate:
    """Chain to the anchors of ``purpose`` only, check validity at ``now``, then revocation (§3.4 steps 7-8)."""
    chain = _build_path(certificate, trust.anchors_for(purpose), trust.intermediates, now, error)
    if now < certificate.not_valid_before_utc:
        raise _fail(error, RefusalCode.CERT_NOT_YET_VALID, "certificate is not valid yet", certificate)
    if now > certificate.not_valid_after_utc:
        raise _fail(error, RefusalCode.CERT_EXPIRED, "certificate has expired", certificate)
    for ca in chain[1:]:
        if now < ca.not_valid_before_utc:
            raise _fail(error, RefusalCode.CA_CERT_NOT_YET_VALID, "issuing CA is not valid yet", certificate)
        if now > ca.not_valid_after_utc:
            raise _fail(error, RefusalCode.CA_CERT_EXPIRED, "issuing CA has expired", certificate)
    # The hand-built path is re-verified by cryptography's RFC 5280 path validation (CA profile, validity,
    # signatures), with only the chosen anchor in the store. The leaf profile was checked above because the
    # web-PKI leaf policy demands a SAN, which an authentication certificate never has. A path that passed
    # once passes again while every certificate in it is valid, which was checked just above for this time.
    if chain not in _VALID_PATHS:
        verifier = (
            PolicyBuilder()
            .store(Store([chain[-1]]))
            .time(now)
            .max_chain_depth(MAX_CHAIN_DEPTH)
            .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(),
                                ee_policy=ExtensionPolicy.permit_all())
            .build_client_verifier()
        )
        try:
            verifier.verify(certificate, list(chain[1:-1]))
        except VerificationError as exc:
            raise _fail(error, RefusalCode.CERT_UNTRUSTED, f"path validation failed: {exc}", certificate) from exc
        if len(_VALID_PATHS) >= _CACHE_LIMIT:
            _VALID_PATHS.clear()
        _VALID_PATHS.add(chain)
    checker = trust.revocation_checker()
    status = RevocationStatus(revoked=False)
    for subject, issuer in itertools.pairwise(chain):
        try:
            status_here = checker.status(subject, issuer, now=now)
        except RevocationCheckFailed as exc:
            raise _fail(error, exc.code, exc.detail, certificate) from exc
        if status_here.revoked:
            raise _fail(
                error,
                RefusalCode.CERT_REVOKED,
                f"revoked ({status_here.reason or 'no reason given'})",
                certificate,
                revocation_reason=status_here.reason,
            )
        if subject is certificate:
            status = status_here
    return ValidatedCertificate(certificate=certificate, chain=chain, revocation=status)
