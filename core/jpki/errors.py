"""Refusal codes for card sign-in and card signatures: one internal code per check, coarse hints for the user."""

from __future__ import annotations

import enum


class RefusalCode(enum.StrEnum):
    """Why a token or signed application was refused; logged, never shown to an unauthenticated client."""

    # Nonce (§3.4 step 1).
    NONCE_NOT_FOUND = "NONCE_NOT_FOUND"
    NONCE_EXPIRED = "NONCE_EXPIRED"
    NONCE_MISMATCH = "NONCE_MISMATCH"
    # Shape of the Web eID token (steps 2-4, 9).
    TOKEN_MALFORMED = "TOKEN_MALFORMED"  # noqa: S105 - a refusal code, not a credential
    TOKEN_SIZE = "TOKEN_SIZE"  # noqa: S105 - a refusal code, not a credential
    FORMAT_UNSUPPORTED = "FORMAT_UNSUPPORTED"
    ALGORITHM_UNSUPPORTED = "ALGORITHM_UNSUPPORTED"
    CERT_FIELD_INVALID = "CERT_FIELD_INVALID"
    CERT_NOT_DER = "CERT_NOT_DER"
    SIGNATURE_FIELD_INVALID = "SIGNATURE_FIELD_INVALID"
    SIGNATURE_LENGTH = "SIGNATURE_LENGTH"
    # Shape of the signed-application JWS.
    JWS_MALFORMED = "JWS_MALFORMED"
    JWS_HEADER_UNSUPPORTED = "JWS_HEADER_UNSUPPORTED"
    X5C_INVALID = "X5C_INVALID"
    PAYLOAD_INVALID = "PAYLOAD_INVALID"
    AUDIENCE_MISMATCH = "AUDIENCE_MISMATCH"
    SIGNED_TOO_LONG_AGO = "SIGNED_TOO_LONG_AGO"
    SIGNED_IN_FUTURE = "SIGNED_IN_FUTURE"
    # Certificate key and purpose (steps 5-6).
    KEY_WEAK_OR_WRONG = "KEY_WEAK_OR_WRONG"
    CERT_IS_CA = "CERT_IS_CA"
    KEY_USAGE_MISSING = "KEY_USAGE_MISSING"
    KEY_USAGE_WRONG = "KEY_USAGE_WRONG"
    EXTENDED_KEY_USAGE_WRONG = "EXTENDED_KEY_USAGE_WRONG"
    POLICY_WRONG = "POLICY_WRONG"
    BASIC_ITEMS_INVALID = "BASIC_ITEMS_INVALID"
    # Trust and validity (step 7).
    CERT_UNTRUSTED = "CERT_UNTRUSTED"
    CERT_EXPIRED = "CERT_EXPIRED"
    CERT_NOT_YET_VALID = "CERT_NOT_YET_VALID"
    CA_CERT_EXPIRED = "CA_CERT_EXPIRED"
    CA_CERT_NOT_YET_VALID = "CA_CERT_NOT_YET_VALID"
    # Revocation (step 8); every CRL_* code fails closed.
    CERT_REVOKED = "CERT_REVOKED"
    CRL_UNAVAILABLE = "CRL_UNAVAILABLE"
    CRL_INVALID = "CRL_INVALID"
    CRL_SIGNATURE_INVALID = "CRL_SIGNATURE_INVALID"
    CRL_STALE = "CRL_STALE"
    # Signature (step 9) and identity.
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    IDENTITY_MISMATCH = "IDENTITY_MISMATCH"

    @property
    def category(self) -> str:
        """Return the coarse class the research note's §5 table uses (PARSE_ERROR, SIG_INVALID, …)."""
        return _CATEGORIES.get(self, self.value)

    @property
    def user_hint(self) -> str:
        """Return what the client may be told: retry, certificate_expired, certificate_revoked or a generic failure."""
        return _HINTS.get(self, "authentication_failed")


_CATEGORIES: dict[RefusalCode, str] = {
    RefusalCode.TOKEN_MALFORMED: "PARSE_ERROR",
    RefusalCode.TOKEN_SIZE: "PARSE_ERROR",
    RefusalCode.FORMAT_UNSUPPORTED: "PARSE_ERROR",
    RefusalCode.CERT_FIELD_INVALID: "PARSE_ERROR",
    RefusalCode.CERT_NOT_DER: "PARSE_ERROR",
    RefusalCode.SIGNATURE_FIELD_INVALID: "PARSE_ERROR",
    RefusalCode.JWS_MALFORMED: "PARSE_ERROR",
    RefusalCode.JWS_HEADER_UNSUPPORTED: "PARSE_ERROR",
    RefusalCode.X5C_INVALID: "PARSE_ERROR",
    RefusalCode.PAYLOAD_INVALID: "PARSE_ERROR",
    RefusalCode.ALGORITHM_UNSUPPORTED: "UNSUPPORTED_ALG",
    RefusalCode.SIGNATURE_LENGTH: "SIG_INVALID",
    RefusalCode.SIGNATURE_INVALID: "SIG_INVALID",
    RefusalCode.KEY_USAGE_MISSING: "MISSING_PURPOSE",
    RefusalCode.KEY_USAGE_WRONG: "WRONG_PURPOSE",
    RefusalCode.EXTENDED_KEY_USAGE_WRONG: "WRONG_PURPOSE",
    RefusalCode.CERT_IS_CA: "WRONG_PURPOSE",
    RefusalCode.POLICY_WRONG: "WRONG_POLICY",
    RefusalCode.BASIC_ITEMS_INVALID: "WRONG_PURPOSE",
    RefusalCode.KEY_WEAK_OR_WRONG: "WEAK_OR_WRONG_KEY",
    RefusalCode.CA_CERT_EXPIRED: "CERT_EXPIRED",
    RefusalCode.CA_CERT_NOT_YET_VALID: "CERT_NOT_YET_VALID",
    RefusalCode.CRL_UNAVAILABLE: "REVOCATION_CHECK_FAILED",
    RefusalCode.CRL_INVALID: "REVOCATION_CHECK_FAILED",
    RefusalCode.CRL_SIGNATURE_INVALID: "REVOCATION_CHECK_FAILED",
    RefusalCode.CRL_STALE: "REVOCATION_CHECK_FAILED",
}

_HINTS: dict[RefusalCode, str] = {
    RefusalCode.NONCE_NOT_FOUND: "retry",
    RefusalCode.NONCE_EXPIRED: "retry",
    RefusalCode.SIGNED_TOO_LONG_AGO: "retry",
    RefusalCode.CERT_EXPIRED: "certificate_expired",
    RefusalCode.CERT_REVOKED: "certificate_revoked",
}


class CardVerificationError(Exception):
    """A refused card token or signature; ``code`` is the internal reason, ``detail`` is for the log only."""

    def __init__(
        self,
        code: RefusalCode,
        detail: str = "",
        *,
        certificate_serial: int | None = None,
        revocation_reason: str | None = None,
    ) -> None:
        super().__init__(f"{code.value}: {detail}" if detail else code.value)
        self.code = code
        self.detail = detail
        self.certificate_serial = certificate_serial
        self.revocation_reason = revocation_reason

    @property
    def user_hint(self) -> str:
        """Return the coarse message key the client may see (see RefusalCode.user_hint)."""
        return self.code.user_hint


class AuthTokenError(CardVerificationError):
    """A Web eID sign-in token was refused."""


class SignedApplicationError(CardVerificationError):
    """A signed-application JWS was refused."""
