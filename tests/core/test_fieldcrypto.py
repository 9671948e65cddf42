"""Blind indexes: the stored lookups of My Numbers and movers must keep matching what is computed now."""

from __future__ import annotations

from core.fieldcrypto import blind_index


def test_a_blind_index_is_what_the_ledger_already_stores_for_the_same_key_and_value():
    # Indexes written before are looked up with today's code (a My Number search, a mover's match): the
    # function may get faster, never different. Values computed with HMAC-SHA256 as first released.
    assert blind_index("k" * 32, "123456789018", purpose="my_number") == \
        "euei44yltprornkjb4gidw7ri2ldqnt33cxnhomspfi3w6yyf6qq"
    assert blind_index("another secret", "田中　太郎", purpose="name") == \
        "h4xguqdv45nmjfxj32gdrxtsgcd2ru37c46zwh22ewzzbxxv5htq"


def test_a_blind_index_depends_on_the_key_and_the_purpose_as_well_as_the_value():
    index = blind_index("k" * 32, "123456789018", purpose="my_number")
    assert blind_index("k" * 31 + "j", "123456789018", purpose="my_number") != index
    assert blind_index("k" * 32, "123456789018", purpose="move_person") != index
    assert blind_index("k" * 32, "123456789019", purpose="my_number") != index
    assert "123456789018" not in index
