"""The simulated J-LIS (JPKI-SIM): the card certificate authority, its CRLs and the virtual card file.

It stands in for the national agency that issues My Number Card certificates, so the portal and the
back office can be built and tested against the same certificate shapes, CRLs and signed bytes a
real card produces (research/card-auth.md §6). Refused in production: see ``assert_allowed``.

- ``simulator``: CA generations, card issuance, revocation, CRLs, trust anchors, certificate linkage;
- ``virtualcard``: the PIN/password-protected card file (docs/virtual-card.md);
- ``cardclient``: builds sign-in tokens and signed applications from a card file;
- ``testkit``: certificates with one deliberate defect, for negative tests only.
"""

from bridge.peers.jlis.simulator import (
    CaId,
    CardLinkage,
    CertificateRecord,
    Holder,
    IssuanceRefused,
    IssuedCard,
    IssuedCertificate,
    JlisSimulator,
    RevocationReason,
    SimulatorNotAllowed,
    assert_allowed,
    validity_end_date,
)

__all__ = [
    "CaId",
    "CardLinkage",
    "CertificateRecord",
    "Holder",
    "IssuanceRefused",
    "IssuedCard",
    "IssuedCertificate",
    "JlisSimulator",
    "RevocationReason",
    "SimulatorNotAllowed",
    "assert_allowed",
    "validity_end_date",
]
