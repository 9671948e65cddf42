"""The Redis nonce store: 256-bit single-use nonces, consumed with GETDEL, and the nonce cases N1-N4, N7 of §5.

Runs against a real Redis (TEST_REDIS_URL, default database 15 on loopback) with a unique key prefix
per test; every key is deleted afterwards.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import os
import threading
import uuid
from collections.abc import Iterator

import pytest
import redis

from bridge.peers.jlis.cardclient import sign_auth_challenge
from bridge.peers.jlis.simulator import IssuedCard
from bridge.peers.jlis.testkit import MutableClock, SimulatedPki
from core.jpki import AuthTokenError, RedisNonceStore, RefusalCode, TrustConfig, verify_auth_token


@pytest.fixture(scope="module")
def pki_generations() -> int:
    """One CA generation is enough here (tests/pki_fixtures.py gives pki, card and trust)."""
    return 1


@pytest.fixture
def prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A key prefix of this test alone; its keys are removed afterwards."""
    value = f"test:jpki-nonce:{uuid.uuid4().hex}:"
    yield value
    keys = list(redis_client.scan_iter(match=value + "*"))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture
def store(redis_client: redis.Redis, prefix: str, pki: SimulatedPki) -> RedisNonceStore:
    """The sign-in nonce store under the test's prefix, on the PKI's fake clock."""
    return RedisNonceStore(redis_client, key_prefix=prefix, clock=pki.clock)


def golden(card: IssuedCard, pki: SimulatedPki, nonce: str) -> dict[str, str]:
    return sign_auth_challenge(card.auth.private_key, card.auth.certificate, origin=pki.origin, nonce=nonce)


def test_a_nonce_is_32_random_bytes_in_standard_base64(store: RedisNonceStore, pki: SimulatedPki):
    nonce, expires_at = store.issue()
    assert len(nonce) == 44
    assert len(base64.b64decode(nonce, validate=True)) == 32
    assert expires_at == pki.clock.now + dt.timedelta(seconds=300)
    assert store.issue().nonce != nonce


def test_a_nonce_is_consumed_exactly_once(store: RedisNonceStore):
    nonce, _ = store.issue()
    assert store.consume(nonce) is True
    assert store.consume(nonce) is False


def test_the_redis_key_carries_the_prefix_and_a_ttl_but_not_the_nonce(
    store: RedisNonceStore, redis_client: redis.Redis, prefix: str
):
    nonce, _ = store.issue(ttl=120)
    keys = [key.decode() for key in redis_client.scan_iter(match=prefix + "*")]
    assert keys == [store.key_for(nonce)]
    assert nonce not in keys[0]
    assert 120 < redis_client.ttl(keys[0]) <= 180
    assert b"iat" in redis_client.get(keys[0])


def test_a_nonce_issued_under_another_prefix_is_unknown(
    store: RedisNonceStore, redis_client: redis.Redis, prefix: str, pki: SimulatedPki
):
    sign_store = RedisNonceStore(redis_client, key_prefix=prefix + "sign:", clock=pki.clock)
    nonce, _ = sign_store.issue()
    assert store.consume(nonce) is False
    assert sign_store.consume(nonce) is True


def test_consume_is_false_for_an_expired_nonce(redis_client: redis.Redis, prefix: str, pki: SimulatedPki):
    clock = MutableClock(pki.clock.now)
    store = RedisNonceStore(redis_client, key_prefix=prefix, clock=clock)
    nonce, _ = store.issue(ttl=300)
    clock.advance(seconds=301)
    assert store.consume(nonce) is False


def test_a_token_for_a_nonce_that_was_never_issued_is_refused(
    store: RedisNonceStore, card: IssuedCard, pki: SimulatedPki, trust: TrustConfig
):
    """N1 with the real store: the nonce the client signed is unknown to the server."""
    nonce = base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(AuthTokenError) as caught:
        verify_auth_token(golden(card, pki, nonce), nonce=functools.partial(store.take, nonce), trust=trust)
    assert caught.value.code is RefusalCode.NONCE_NOT_FOUND


def test_a_token_arriving_after_the_nonce_ttl_is_refused(
    store: RedisNonceStore, card: IssuedCard, pki: SimulatedPki, trust: TrustConfig
):
    """N2 with the real store: the clock moves to issue + 301 s before the token arrives."""
    nonce, _ = store.issue(ttl=300)
    later = MutableClock(pki.clock.now + dt.timedelta(seconds=301))
    with pytest.raises(AuthTokenError) as caught:
        verify_auth_token(
            golden(card, pki, nonce), nonce=functools.partial(store.take, nonce), trust=pki.trust(clock=later)
        )
    assert caught.value.code is RefusalCode.NONCE_EXPIRED


@pytest.mark.parametrize("first_attempt", ["succeeded", "failed"])
def test_the_same_token_submitted_twice_is_refused_the_second_time(
    store: RedisNonceStore, card: IssuedCard, pki: SimulatedPki, trust: TrustConfig, first_attempt: str
):
    """N3: the nonce is gone after the first attempt, whatever its outcome."""
    nonce, _ = store.issue()
    token = golden(card, pki, nonce)
    first = token if first_attempt == "succeeded" else token | {"algorithm": "none"}
    if first_attempt == "succeeded":
        verify_auth_token(first, nonce=functools.partial(store.take, nonce), trust=trust)
    else:
        with pytest.raises(AuthTokenError):
            verify_auth_token(first, nonce=functools.partial(store.take, nonce), trust=trust)
    with pytest.raises(AuthTokenError) as caught:
        verify_auth_token(token, nonce=functools.partial(store.take, nonce), trust=trust)
    assert caught.value.code is RefusalCode.NONCE_NOT_FOUND


def test_of_concurrent_submissions_of_one_token_exactly_one_succeeds(
    store: RedisNonceStore, card: IssuedCard, pki: SimulatedPki, trust: TrustConfig
):
    """N4: GETDEL is atomic, so racing requests cannot both spend the nonce."""
    nonce, _ = store.issue()
    token = golden(card, pki, nonce)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def submit() -> None:
        barrier.wait()
        try:
            verify_auth_token(token, nonce=functools.partial(store.take, nonce), trust=trust)
            outcome = "ok"
        except AuthTokenError as error:
            outcome = error.code.value
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["NONCE_NOT_FOUND"] * 7 + ["ok"]


def test_a_nonce_kept_in_an_old_session_copy_is_refused_after_use(
    store: RedisNonceStore, card: IssuedCard, pki: SimulatedPki, trust: TrustConfig
):
    """N7 (library part): an old session, restored after the nonce was spent, still names it; the store does not."""
    nonce, _ = store.issue()
    old_session = {"auth_nonce": nonce}
    verify_auth_token(golden(card, pki, nonce), nonce=functools.partial(store.take, nonce), trust=trust)
    restored = dict(old_session)
    with pytest.raises(AuthTokenError) as caught:
        verify_auth_token(
            golden(card, pki, restored["auth_nonce"]),
            nonce=functools.partial(store.take, restored["auth_nonce"]),
            trust=trust,
        )
    assert caught.value.code is RefusalCode.NONCE_NOT_FOUND
