"""Test kit for the simulated J-LIS: a ready-made PKI and certificates one defect away from a valid card certificate.

For the tests of the card protocol (research/card-auth.md §5) here and in the web layer; the
running application never imports it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes, CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

from bridge.peers.jlis.simulator import CaId, Holder, IssuedCard, JlisSimulator, key_usage
from core.jpki.der import BIT_STRING, SEQUENCE, encode_tlv
from core.jpki.profile import AUTH_POLICY, SIGN_POLICY, BasicItems, CertificatePurpose, basic_items_other_names
from core.jpki.trust import TrustConfig

DEFAULT_NOW = dt.datetime(2026, 4, 1, 1, 0, 0, tzinfo=dt.UTC)
DEFAULT_ORIGIN = "https://shinsei.example-city.lg.jp"


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Any = _Default()

# AlgorithmIdentifier DER of sha256WithRSAEncryption and sha1WithRSAEncryption (with NULL parameters).
_SHA256_RSA = bytes.fromhex("300d06092a864886f70d01010b0500")
_SHA1_RSA = bytes.fromhex("300d06092a864886f70d0101050500")


class MutableClock:
    """A clock tests set and move by hand; calling it returns the current fake time."""

    def __init__(self, now: dt.datetime = DEFAULT_NOW) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        """Move the clock forward by a timedelta's keyword arguments."""
        self.now += dt.timedelta(**delta)


def sample_holder(**changes: Any) -> Holder:
    """Return an adult card holder, with any field replaced by ``changes``."""
    values: dict[str, Any] = {
        "name": "宮沢 賢",
        "birth_date": dt.date(1990, 8, 27),
        "sex": "1",
        "address": "岩手県花巻市桜町一丁目1番地",
        "prefecture": "岩手県",
        "municipality": "花巻市",
    }
    values.update(changes)
    return Holder(**values)


def resign_with_sha1(certificate: x509.Certificate, issuer_key: rsa.RSAPrivateKey) -> x509.Certificate:
    """Return ``certificate`` re-signed with sha1WithRSAEncryption, which cryptography's builder no longer offers."""
    tbs = certificate.tbs_certificate_bytes
    if tbs.count(_SHA256_RSA) != 1:
        raise ValueError("expected exactly one sha256WithRSAEncryption identifier in the TBS")
    tbs = tbs.replace(_SHA256_RSA, _SHA1_RSA)
    signature = issuer_key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 - the weak hash is the defect under test
    der = encode_tlv(SEQUENCE, tbs + _SHA1_RSA + encode_tlv(BIT_STRING, b"\x00" + signature))
    return x509.load_der_x509_certificate(der)


def build_certificate(
    *,
    subject: x509.Name,
    public_key: CertificatePublicKeyTypes,
    issuer_name: x509.Name,
    issuer_key: CertificateIssuerPrivateKeyTypes,
    not_before: dt.datetime,
    not_after: dt.datetime,
    usage: x509.KeyUsage | None = None,
    usage_critical: bool = True,
    extended_key_usage: list[x509.ObjectIdentifier] | None = None,
    policies: tuple[str, ...] = (),
    basic_constraints: x509.BasicConstraints | None = None,
    subject_alternative_names: list[x509.GeneralName] | None = None,
    authority_key_id: bytes | None = None,
    hash_name: Literal["sha256", "sha1"] = "sha256",
) -> x509.Certificate:
    """Build a certificate with exactly the given extensions, signed by ``issuer_key``."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if usage is not None:
        builder = builder.add_extension(usage, critical=usage_critical)
    if extended_key_usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended_key_usage), critical=False)
    if policies:
        builder = builder.add_extension(
            x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(p), None) for p in policies]),
            critical=False,
        )
    if basic_constraints is not None:
        builder = builder.add_extension(basic_constraints, critical=True)
    if subject_alternative_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(subject_alternative_names), critical=False)
    if authority_key_id is not None:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier(authority_key_id, None, None), critical=False)
    certificate = builder.sign(issuer_key, hashes.SHA256())
    if hash_name == "sha1":
        assert isinstance(issuer_key, rsa.RSAPrivateKey)
        certificate = resign_with_sha1(certificate, issuer_key)
    return certificate


def make_root(
    name: x509.Name, *, not_before: dt.datetime, not_after: dt.datetime, key: rsa.RSAPrivateKey | None = None
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """Return a self-signed CA (for a foreign CA, a rogue CA with a copied DN, or an expired CA)."""
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certificate = build_certificate(
        subject=name,
        public_key=key.public_key(),
        issuer_name=name,
        issuer_key=key,
        not_before=not_before,
        not_after=not_after,
        usage=key_usage(key_cert_sign=True, crl_sign=True),
        basic_constraints=x509.BasicConstraints(ca=True, path_length=0),
    )
    return certificate, key


def _ski(certificate: x509.Certificate) -> bytes:
    return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


@dataclass
class SimulatedPki:
    """A simulator with its CRL directory, a shared fake clock and the TrustConfig that trusts it."""

    directory: Path
    clock: MutableClock = field(default_factory=MutableClock)
    origin: str = DEFAULT_ORIGIN
    generations: int = 2

    def __post_init__(self) -> None:
        self.sim = JlisSimulator(self.directory / "jlis", clock=self.clock, initial_generations=self.generations)
        self.crl_dir = self.directory / "crl"
        self.crl_dir.mkdir(parents=True, exist_ok=True)
        self.publish()

    def publish(self) -> None:
        """Publish fresh CRLs of every CA at the current fake time."""
        self.sim.publish_crls(self.crl_dir)

    def trust(self, **changes: Any) -> TrustConfig:
        """Return the TrustConfig over every generation's anchors, with any field replaced by ``changes``."""
        values: dict[str, Any] = {
            "origin": self.origin,
            "app_env": "test",
            "auth_anchors": tuple(self.sim.trust_anchors(CertificatePurpose.AUTH)),
            "sign_anchors": tuple(self.sim.trust_anchors(CertificatePurpose.SIGN)),
            "crl_source": self.crl_dir,
            "clock": self.clock,
        }
        values.update(changes)
        return TrustConfig(**values)

    def issue_card(self, holder: Holder | None = None, **options: Any) -> IssuedCard:
        """Issue a card for ``holder`` (an adult by default) valid until ten years from now."""
        options.setdefault("card_expires_on", (self.clock.now + dt.timedelta(days=3650)).date())
        return self.sim.issue_card(holder or sample_holder(), **options)

    def leaf(
        self,
        purpose: CertificatePurpose = CertificatePurpose.AUTH,
        *,
        generation: int | None = None,
        issuer: tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes] | None = None,
        key: Any = None,
        subject: x509.Name | None = None,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        usage: Any = DEFAULT,
        extended_key_usage: list[x509.ObjectIdentifier] | None = None,
        policies: Any = DEFAULT,
        basic_constraints: x509.BasicConstraints | None = None,
        items: BasicItems | None = None,
        authority_key_id: Any = DEFAULT,
        hash_name: Literal["sha256", "sha1"] = "sha256",
    ) -> tuple[x509.Certificate, Any]:
        """Return a card certificate of ``purpose`` and its key, valid in every respect except what is changed.

        By default it is signed by the latest generation's CA of that purpose, like a real card's.
        """
        if issuer is None:
            issuer = self.sim.signing_material(CaId(purpose, generation or self.sim.latest_generation))
        issuer_cert, issuer_key = issuer
        key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = self.clock.now.replace(microsecond=0)
        if usage is DEFAULT:
            usage = (
                key_usage(digital_signature=True)
                if purpose is CertificatePurpose.AUTH
                else key_usage(digital_signature=True, content_commitment=True)
            )
        if policies is DEFAULT:
            policies = (AUTH_POLICY,) if purpose is CertificatePurpose.AUTH else (SIGN_POLICY,)
        sans = None
        if purpose is CertificatePurpose.SIGN:
            sans = basic_items_other_names(items or sample_holder().basic_items())
        certificate = build_certificate(
            subject=subject
            or x509.Name(
                [x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"), x509.NameAttribute(NameOID.COMMON_NAME, "TESTLEAF")]
            ),
            public_key=key.public_key(),
            issuer_name=issuer_cert.subject,
            issuer_key=issuer_key,
            not_before=not_before or now - dt.timedelta(days=1),
            not_after=not_after or now + dt.timedelta(days=365),
            usage=usage,
            extended_key_usage=extended_key_usage,
            policies=policies,
            basic_constraints=basic_constraints,
            subject_alternative_names=sans,
            authority_key_id=_ski(issuer_cert) if authority_key_id is DEFAULT else authority_key_id,
            hash_name=hash_name,
        )
        return certificate, key
