"""Server-side verification of My Number Card (JPKI) sign-in tokens and signed applications, framework-free.

Used alike by the portal, its API and the back-office counter; imports only ``core``, the standard
library, ``cryptography`` and ``redis``. Protocol: research/card-auth.md §3-§5.
"""

from core.jpki.authtoken import VerifiedAuth, auth_signed_data, verify_auth_token
from core.jpki.errors import AuthTokenError, CardVerificationError, RefusalCode, SignedApplicationError
from core.jpki.nonces import ConsumedNonce, IssuedNonce, NonceSource, NonceStore, RedisNonceStore
from core.jpki.origin import validate_site_origin
from core.jpki.profile import BasicItems, CertificatePurpose, parse_basic_items
from core.jpki.signedapp import VerifiedApplication, jws_claims, verify_signed_application
from core.jpki.trust import (
    CrlRevocationChecker,
    RevocationChecker,
    RevocationStatus,
    TrustConfig,
    crl_file_name,
    load_pem_bundle,
)

__all__ = [
    "AuthTokenError",
    "BasicItems",
    "CardVerificationError",
    "CertificatePurpose",
    "ConsumedNonce",
    "CrlRevocationChecker",
    "IssuedNonce",
    "NonceSource",
    "NonceStore",
    "RedisNonceStore",
    "RefusalCode",
    "RevocationChecker",
    "RevocationStatus",
    "SignedApplicationError",
    "TrustConfig",
    "VerifiedApplication",
    "VerifiedAuth",
    "auth_signed_data",
    "crl_file_name",
    "jws_claims",
    "load_pem_bundle",
    "parse_basic_items",
    "validate_site_origin",
    "verify_auth_token",
    "verify_signed_application",
]
