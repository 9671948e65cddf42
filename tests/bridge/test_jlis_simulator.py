"""The simulated J-LIS CA: certificate profiles, validity rules, generations, revocation, CRLs, linkage, persistence."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from bridge.peers.jlis import (
    CaId,
    IssuanceRefused,
    JlisSimulator,
    RevocationReason,
    SimulatorNotAllowed,
    assert_allowed,
    validity_end_date,
)
from bridge.peers.jlis.simulator import JST, IssuedCard
from bridge.peers.jlis.testkit import MutableClock, SimulatedPki, sample_holder
from core.jpki import CertificatePurpose, crl_file_name, load_pem_bundle, parse_basic_items
from core.jpki.profile import AUTH_POLICY, SIGN_POLICY

AUTH, SIGN = CertificatePurpose.AUTH, CertificatePurpose.SIGN


def extension(certificate: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension[x509.ExtensionType]:
    return certificate.extensions.get_extension_for_class(kind)


def ski(certificate: x509.Certificate) -> bytes:
    return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def fresh_pki(tmp_path: Path) -> SimulatedPki:
    return SimulatedPki(tmp_path, clock=MutableClock(dt.datetime(2026, 4, 1, 1, tzinfo=dt.UTC)), generations=1)


# -- CA -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("purpose", [AUTH, SIGN])
def test_each_root_is_an_rsa_2048_sha256_ca_with_critical_constraints(pki: SimulatedPki, purpose: CertificatePurpose):
    root = pki.sim.ca_certificate(CaId(purpose, 1))
    key = root.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048 and key.public_numbers().e == 65537
    assert root.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
    constraints = extension(root, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = extension(root, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign and not usage.value.digital_signature
    root.verify_directly_issued_by(root)
    assert "JPKI-SIM" in root.subject.rfc4514_string()
    assert root.not_valid_after_utc - root.not_valid_before_utc > dt.timedelta(days=3650)


def test_the_generations_share_their_subject_dns_but_not_their_keys(pki: SimulatedPki):
    for purpose in (AUTH, SIGN):
        first, second = (pki.sim.ca_certificate(CaId(purpose, g)) for g in (1, 2))
        assert first.subject == second.subject
        assert ski(first) != ski(second)
    assert pki.sim.ca_certificate(CaId(AUTH, 1)).subject != pki.sim.ca_certificate(CaId(SIGN, 1)).subject


def test_a_ca_private_key_is_readable_by_its_owner_only(pki: SimulatedPki):
    for path in (pki.sim.directory / "ca").glob("*.key.pem"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


# -- end-entity profiles ------------------------------------------------------------------------------


def test_the_authentication_certificate_names_no_one_and_has_the_authentication_profile(card: IssuedCard):
    certificate = card.auth.certificate
    attributes = {attribute.oid for attribute in certificate.subject}
    assert attributes == {NameOID.COUNTRY_NAME, NameOID.COMMON_NAME}
    assert certificate.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "JP"
    with pytest.raises(x509.ExtensionNotFound):
        extension(certificate, x509.SubjectAlternativeName)
    with pytest.raises(x509.ExtensionNotFound):
        extension(certificate, x509.ExtendedKeyUsage)
    usage = extension(certificate, x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.content_commitment
    policies = [p.policy_identifier.dotted_string for p in extension(certificate, x509.CertificatePolicies).value]
    assert policies == [AUTH_POLICY]
    key = certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    assert certificate.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
    aki = extension(certificate, x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == ski(card.auth.issuer_certificate)
    certificate.verify_directly_issued_by(card.auth.issuer_certificate)


def test_the_signature_certificate_carries_the_basic_items_and_the_signature_profile(card: IssuedCard):
    assert card.sign is not None
    certificate = card.sign.certificate
    holder = sample_holder()
    items = parse_basic_items(certificate)
    assert (items.name, items.sex, items.birth_date, items.address) == (
        holder.name,
        holder.sex,
        holder.birth_date,
        holder.address,
    )
    other_names = extension(certificate, x509.SubjectAlternativeName).value.get_values_for_type(x509.OtherName)
    assert sorted(n.type_id.dotted_string for n in other_names) == [f"1.2.392.200149.8.5.5.{i}" for i in range(1, 7)]
    birth = next(n for n in other_names if n.type_id.dotted_string.endswith(".4"))
    assert birth.value == b"\x0c\x09" + b"419900827"  # UTF8String: Heisei era digit, then the Gregorian date
    usage = extension(certificate, x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.content_commitment
    policies = [p.policy_identifier.dotted_string for p in extension(certificate, x509.CertificatePolicies).value]
    assert policies == [SIGN_POLICY]
    assert [a.value for a in certificate.subject.get_attributes_for_oid(NameOID.LOCALITY_NAME)] == ["岩手県", "花巻市"]
    certificate.verify_directly_issued_by(card.sign.issuer_certificate)
    assert card.sign.issuer_certificate.subject != card.auth.issuer_certificate.subject


def test_the_two_certificates_of_a_card_share_no_key_and_no_subject(card: IssuedCard):
    assert card.sign is not None
    assert card.auth.certificate.public_key() != card.sign.certificate.public_key()
    assert card.auth.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME) != (
        card.sign.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    )


# -- validity -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("birth", "issued", "end"),
    [
        (dt.date(1990, 8, 27), dt.date(2026, 4, 1), dt.date(2030, 8, 27)),  # birthday later this year is the 1st
        (dt.date(1990, 2, 10), dt.date(2026, 4, 1), dt.date(2031, 2, 10)),  # birthday already passed this year
        (dt.date(1990, 4, 1), dt.date(2026, 4, 1), dt.date(2031, 4, 1)),  # issued on the birthday: it is not "after"
        (dt.date(2000, 2, 29), dt.date(2026, 4, 1), dt.date(2031, 2, 28)),  # 29 February in a common year
        (dt.date(1990, 1, 1), dt.date(2026, 12, 31), dt.date(2031, 1, 1)),  # the first birthday is the next day
    ],
)
def test_certificates_run_to_the_fifth_birthday_after_issue(birth: dt.date, issued: dt.date, end: dt.date):
    assert validity_end_date(birth, issued) == end


def test_a_renewal_counts_to_the_sixth_birthday():
    assert validity_end_date(dt.date(1990, 8, 27), dt.date(2026, 4, 1), birthdays=6) == dt.date(2031, 8, 27)


def test_both_certificates_of_a_new_card_end_at_the_fifth_birthday_at_midnight_in_japan(pki: SimulatedPki):
    card = pki.issue_card(sample_holder(birth_date=dt.date(1985, 6, 15)))
    assert card.sign is not None
    end = dt.datetime(2030, 6, 15, 23, 59, 59, tzinfo=JST)
    assert card.auth.certificate.not_valid_after_utc == end
    assert card.sign.certificate.not_valid_after_utc == end
    assert card.auth.certificate.not_valid_before_utc == pki.clock.now.replace(microsecond=0)


def test_a_certificate_never_outlives_the_card(pki: SimulatedPki):
    card = pki.issue_card(card_expires_on=dt.date(2027, 1, 31))
    assert card.sign is not None
    end = dt.datetime(2027, 1, 31, 23, 59, 59, tzinfo=JST)
    assert card.auth.certificate.not_valid_after_utc == end
    assert card.sign.certificate.not_valid_after_utc == end


def test_no_signature_certificate_is_issued_to_a_fourteen_year_old(pki: SimulatedPki):
    today = pki.clock.now.astimezone(JST).date()
    fourteen = sample_holder(birth_date=today.replace(year=today.year - 15) + dt.timedelta(days=1))
    with pytest.raises(IssuanceRefused, match="under 15"):
        pki.issue_card(fourteen)
    auth_only = pki.issue_card(fourteen, with_signature=False)
    assert auth_only.sign is None
    assert pki.sim.linkage(auth_only.card_id).sign_serial is None


@pytest.mark.parametrize("change", [{"sex": "M"}, {"name": " "}, {"address": ""}])
def test_a_holder_without_valid_basic_items_cannot_be_issued_a_card(change: dict[str, str]):
    with pytest.raises(ValueError):
        sample_holder(**change)


def test_a_holder_who_turns_fifteen_today_gets_a_signature_certificate(pki: SimulatedPki):
    today = pki.clock.now.astimezone(JST).date()
    assert pki.issue_card(sample_holder(birth_date=today.replace(year=today.year - 15))).sign is not None


# -- revocation and CRLs ------------------------------------------------------------------------------


def test_a_crl_is_der_signed_by_its_ca_and_valid_for_24_hours(pki: SimulatedPki):
    ca = CaId(AUTH, 2)
    first = x509.load_der_x509_crl(pki.sim.crl_der(ca))
    second = x509.load_der_x509_crl(pki.sim.crl_der(ca))
    assert first.is_signature_valid(pki.sim.ca_certificate(ca).public_key())  # type: ignore[arg-type]
    assert first.issuer == pki.sim.ca_certificate(ca).subject
    assert first.last_update_utc == pki.clock.now.replace(microsecond=0)
    assert first.next_update_utc == first.last_update_utc + dt.timedelta(hours=24)
    numbers = [crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number for crl in (first, second)]
    assert numbers[1] == numbers[0] + 1


@pytest.mark.parametrize("reason", list(RevocationReason))
def test_each_revocation_reason_appears_in_the_crl_of_the_issuing_ca_only(pki: SimulatedPki, reason: RevocationReason):
    card = pki.issue_card()
    pki.sim.revoke(card.auth.serial, reason)
    issuing = x509.load_der_x509_crl(pki.sim.crl_der(CaId(AUTH, 2)))
    entry = issuing.get_revoked_certificate_by_serial_number(card.auth.serial)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.value == reason.value
    other_generation = x509.load_der_x509_crl(pki.sim.crl_der(CaId(AUTH, 1)))
    assert other_generation.get_revoked_certificate_by_serial_number(card.auth.serial) is None
    assert card.sign is not None
    sign_crl = x509.load_der_x509_crl(pki.sim.crl_der(CaId(SIGN, 2)))
    assert sign_crl.get_revoked_certificate_by_serial_number(card.sign.serial) is None


def test_a_hold_can_be_released_or_made_permanent_but_nothing_else_can_be_undone(pki: SimulatedPki):
    card = pki.issue_card()
    assert card.sign is not None
    pki.sim.revoke(card.auth.serial, RevocationReason.CERTIFICATE_HOLD)
    assert pki.sim.release_hold(card.auth.serial).revocation_reason is None
    pki.sim.revoke(card.auth.serial, RevocationReason.CERTIFICATE_HOLD)
    record = pki.sim.revoke(card.auth.serial, RevocationReason.KEY_COMPROMISE)
    assert record.revocation_reason is RevocationReason.KEY_COMPROMISE
    with pytest.raises(ValueError, match="on hold"):
        pki.sim.release_hold(card.auth.serial)
    pki.sim.revoke(card.sign.serial, RevocationReason.AFFILIATION_CHANGED)
    again = pki.sim.revoke(card.sign.serial, RevocationReason.CERTIFICATE_HOLD)
    assert again.revocation_reason is RevocationReason.AFFILIATION_CHANGED


def test_crls_are_published_per_issuing_ca_under_the_issuer_key_id(pki: SimulatedPki, tmp_path: Path):
    written = pki.sim.publish_crls(tmp_path)
    assert len(written) == 4
    for ca in pki.sim.all_cas():
        issuer = pki.sim.ca_certificate(ca)
        crl = x509.load_der_x509_crl((tmp_path / crl_file_name(issuer)).read_bytes())
        assert crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    assert not list(tmp_path.glob(".*"))


def test_trust_anchors_are_exported_per_purpose_with_every_generation(pki: SimulatedPki, tmp_path: Path):
    paths = pki.sim.export_trust_anchors(tmp_path)
    for purpose in (AUTH, SIGN):
        anchors = load_pem_bundle(paths[purpose])
        assert anchors == tuple(pki.sim.ca_certificate(CaId(purpose, g)) for g in (1, 2))


# -- linkage ------------------------------------------------------------------------------------------


def test_the_linkage_connects_a_cards_two_certificates_both_ways(pki: SimulatedPki, card: IssuedCard):
    assert card.sign is not None
    for key in (card.card_id, card.auth.serial, card.sign.serial):
        linkage = pki.sim.linkage(key)
        assert (linkage.card_id, linkage.auth_serial, linkage.sign_serial) == (
            card.card_id,
            card.auth.serial,
            card.sign.serial,
        )


def test_a_new_signature_certificate_after_a_move_is_relinked_to_the_same_card(pki: SimulatedPki):
    card = pki.issue_card()
    assert card.sign is not None
    pki.sim.revoke(card.sign.serial, RevocationReason.AFFILIATION_CHANGED)
    moved = sample_holder(address="岩手県北上市芳町1番1号", municipality="北上市")
    new_sign = pki.sim.reissue_signature_certificate(card.card_id, moved)
    linkage = pki.sim.linkage(card.auth.serial)
    assert linkage.sign_serial == new_sign.serial
    assert linkage.previous_sign_serials == (card.sign.serial,)
    assert parse_basic_items(new_sign.certificate).address == moved.address
    assert new_sign.certificate.not_valid_after_utc <= card.auth.certificate.not_valid_after_utc
    assert pki.sim.certificate_record(card.sign.serial).revocation_reason is RevocationReason.AFFILIATION_CHANGED


def test_a_renewed_card_is_linked_to_the_one_it_replaces_whose_certificates_are_superseded(pki: SimulatedPki):
    old = pki.issue_card(generation=1)
    assert old.sign is not None
    new = pki.sim.renew_card(old.card_id, sample_holder(), card_expires_on=dt.date(2036, 3, 31))
    assert pki.sim.linkage(old.auth.serial).replaced_by == new.card_id
    assert pki.sim.linkage(new.auth.serial).replaces == old.card_id
    for serial in (old.auth.serial, old.sign.serial):
        assert pki.sim.certificate_record(serial).revocation_reason is RevocationReason.SUPERSEDED
    assert new.auth.issuer_certificate == pki.sim.ca_certificate(CaId(AUTH, 2))


def test_renewal_within_three_months_of_expiry_runs_to_the_sixth_birthday(tmp_path: Path):
    pki = fresh_pki(tmp_path)
    holder = sample_holder(birth_date=dt.date(1990, 8, 27))
    old = pki.issue_card(holder)
    assert old.auth.certificate.not_valid_after_utc.astimezone(JST).date() == dt.date(2030, 8, 27)
    pki.clock.now = dt.datetime(2030, 6, 1, 1, tzinfo=dt.UTC)
    new = pki.sim.renew_card(old.card_id, holder, card_expires_on=dt.date(2040, 1, 1))
    assert new.auth.certificate.not_valid_after_utc.astimezone(JST).date() == dt.date(2035, 8, 27)


def test_renewal_earlier_than_three_months_before_expiry_runs_to_the_fifth_birthday(tmp_path: Path):
    pki = fresh_pki(tmp_path)
    holder = sample_holder(birth_date=dt.date(1990, 8, 27))
    old = pki.issue_card(holder)
    pki.clock.now = dt.datetime(2030, 5, 1, 1, tzinfo=dt.UTC)
    new = pki.sim.renew_card(old.card_id, holder, card_expires_on=dt.date(2040, 1, 1))
    assert new.auth.certificate.not_valid_after_utc.astimezone(JST).date() == dt.date(2034, 8, 27)


# -- persistence and the production guard -------------------------------------------------------------


def test_the_ca_state_survives_a_restart(tmp_path: Path):
    pki = fresh_pki(tmp_path)
    card = pki.issue_card()
    pki.sim.revoke(card.auth.serial, RevocationReason.CERTIFICATE_HOLD)
    restarted = JlisSimulator(pki.sim.directory, clock=pki.clock)
    assert restarted.generations == [1]
    assert restarted.ca_certificate(CaId(AUTH, 1)) == pki.sim.ca_certificate(CaId(AUTH, 1))
    crl = x509.load_der_x509_crl(restarted.crl_der(CaId(AUTH, 1)))
    assert crl.is_signature_valid(card.auth.issuer_certificate.public_key())  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(card.auth.serial) is not None
    assert restarted.linkage(card.auth.serial).card_id == card.card_id
    assert restarted.add_generation() == 2


def test_the_ca_index_holds_no_personal_data(tmp_path: Path):
    pki = fresh_pki(tmp_path)
    holder = sample_holder()
    pki.issue_card(holder)
    index = (pki.sim.directory / "index.json").read_text(encoding="utf-8")
    for item in (holder.name, holder.address, holder.municipality, "19900827"):
        assert item not in index


@pytest.mark.parametrize("app_env", ["production", "staging", ""])
def test_the_simulator_is_refused_outside_development_and_test(app_env: str):
    with pytest.raises(SimulatorNotAllowed):
        assert_allowed(app_env)


@pytest.mark.parametrize("app_env", ["development", "test"])
def test_the_simulator_is_allowed_in_development_and_test(app_env: str):
    assert_allowed(app_env)
