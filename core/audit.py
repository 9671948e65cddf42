"""The operation log: an HMAC hash chain with gapless sequence numbers and signed checkpoints.

Each row's hash is HMAC-SHA-256(key, previous hash || seq as 8 bytes || canonical JSON of the
row, RFC 8785). The key never enters the database. Appends are serialised by updating the
single chain-head row first, so concurrent writers cannot fork the chain. After a commit that
appended rows, a checkpoint (seq, head hash, time) signed with Ed25519 may be written to a file
outside the database, which is what catches a cut-off tail or a chain rebuilt from scratch.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import BigInteger, CheckConstraint, Integer, String, Text, event, select, update
from sqlalchemy.orm import Mapped, Session, declared_attr, mapped_column

from core import clock
from core.db import UTCDateTime

GENESIS = "0" * 64
OUTCOMES = ("success", "failure", "denied")


class AuditLogMixin:
    """Columns of the append-only operation log (操作ログ)."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    ts: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(100), index=True)
    terminal_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(50), index=True)
    target_type: Mapped[str | None] = mapped_column(String(50))
    target_id: Mapped[str | None] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(10))
    request_id: Mapped[str | None] = mapped_column(String(50))
    client_addr: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text)
    canonical: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (CheckConstraint("outcome in ('success', 'failure', 'denied')", name="outcome"),)

    def detail_dict(self) -> dict[str, Any]:
        """The row's detail as a mapping."""
        value: dict[str, Any] = json.loads(self.detail)
        return value


class AuditHeadMixin:
    """The single row that holds the chain head; updating it serialises appends."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    head_hash: Mapped[str] = mapped_column(String(64))

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (CheckConstraint("id = 1", name="single_row"),)


def chain_for(config: Any, *, log_model: type[Any], head_model: type[Any], name: str) -> AuditChain:
    """The chain of one database, with its checkpoint file and key under the instance folder by default."""
    instance = Path(config["INSTANCE_PATH"])
    return AuditChain(
        log_model=log_model,
        head_model=head_model,
        hmac_key=config["AUDIT_HMAC_KEY"],
        checkpoint_path=Path(config.get("AUDIT_CHECKPOINT_PATH") or instance / f"audit-checkpoints-{name}.jsonl"),
        checkpoint_key_path=Path(config.get("AUDIT_CHECKPOINT_KEY_PATH") or instance / "audit-checkpoint-ed25519.pem"),
        checkpoint_every=config["AUDIT_CHECKPOINT_EVERY"],
        checkpoint_seconds=config["AUDIT_CHECKPOINT_SECONDS"],
    )


def canonical_entry(row: Any) -> str:
    """The RFC 8785 canonical JSON of a row's content (everything but the hashes)."""
    entry = {
        "seq": row.seq,
        "ts": row.ts.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor_id": row.actor_id,
        "actor": row.actor,
        "terminal_id": row.terminal_id,
        "action": row.action,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "outcome": row.outcome,
        "request_id": row.request_id,
        "client_addr": row.client_addr,
        "detail": json.loads(row.detail),
    }
    return rfc8785.dumps(entry).decode()


def chain_hash(key: str, prev_hash: str, seq: int, canonical: str) -> str:
    """HMAC-SHA-256 over the previous hash, the sequence number and the canonical row."""
    msg = bytes.fromhex(prev_hash) + seq.to_bytes(8, "big") + canonical.encode()
    return hmac.new(key.encode(), msg, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class AuditChain:
    """Where one database's chain lives and the keys that protect it."""

    log_model: type[Any]
    head_model: type[Any]
    hmac_key: str
    checkpoint_path: Path
    checkpoint_key_path: Path
    checkpoint_every: int = 50
    checkpoint_seconds: int = 300

    def append(
        self,
        session: Session,
        *,
        action: str,
        actor: str,
        outcome: str = "success",
        actor_id: int | None = None,
        terminal_id: int | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        request_id: str | None = None,
        client_addr: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Any:
        """Append one row in the caller's transaction and return it (flushes, never commits)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}")
        head = self.head_model
        seq, prev = session.execute(
            update(head).where(head.id == 1).values(seq=head.seq + 1).returning(head.seq, head.head_hash)
        ).one()
        row = self.log_model(
            seq=seq,
            ts=clock.utcnow(),
            actor_id=actor_id,
            actor=actor,
            terminal_id=terminal_id,
            action=action,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            outcome=outcome,
            request_id=request_id,
            client_addr=client_addr,
            detail=json.dumps(detail or {}, ensure_ascii=False, sort_keys=True),
            prev_hash=prev,
        )
        row.canonical = canonical_entry(row)
        row.row_hash = chain_hash(self.hmac_key, prev, seq, row.canonical)
        session.execute(update(head).where(head.id == 1).values(head_hash=row.row_hash))
        session.add(row)
        session.flush()
        session.info["audit_pending"] = (self, seq, row.row_hash)
        return row

    # -- checkpoints -------------------------------------------------------------------------

    def _private_key(self) -> Ed25519PrivateKey:
        path = self.checkpoint_key_path
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(loaded, Ed25519PrivateKey)
        return loaded

    def public_key(self) -> Ed25519PublicKey:
        """The key that verifies checkpoints."""
        return self._private_key().public_key()

    def checkpoints(self) -> list[dict[str, Any]]:
        """All checkpoints written so far, oldest first."""
        if not self.checkpoint_path.exists():
            return []
        return [json.loads(line) for line in self.checkpoint_path.read_text().splitlines() if line.strip()]

    def write_checkpoint(self, seq: int, head_hash: str, *, force: bool = False) -> bool:
        """Sign and append (seq, head hash, time) unless a recent checkpoint makes it unneeded."""
        self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.checkpoint_path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.seek(0)
            lines = [line for line in fh.read().splitlines() if line.strip()]
            last = json.loads(lines[-1]) if lines else None
            now = clock.utcnow()
            if last is not None and not force:
                if last["seq"] >= seq:
                    return False
                age = (now - dt.datetime.fromisoformat(last["ts"])).total_seconds()
                if seq - last["seq"] < self.checkpoint_every and age < self.checkpoint_seconds:
                    return False
            body = {"seq": seq, "head_hash": head_hash, "ts": now.isoformat()}
            body["signature"] = self._private_key().sign(_checkpoint_bytes(body)).hex()
            fh.write(json.dumps(body, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            return True

    def checkpoint_now(self, session: Session) -> tuple[int, str]:
        """Write a checkpoint of the committed head (the ``audit checkpoint`` command)."""
        head = session.execute(select(self.head_model).where(self.head_model.id == 1)).scalar_one()
        if head.seq:
            self.write_checkpoint(head.seq, head.head_hash, force=True)
        return head.seq, head.head_hash

    # -- verification ------------------------------------------------------------------------

    def verify(self, session: Session, *, batch: int = 5000) -> VerifyResult:
        """Recompute the chain, check it against the head and the checkpoints."""
        checkpoints = self.checkpoints()
        public = self.public_key()
        for cp in checkpoints:
            try:
                public.verify(bytes.fromhex(cp["signature"]), _checkpoint_bytes(cp))
            except Exception:
                return VerifyResult(False, 0, cp.get("seq"), "checkpoint signature is invalid")
        by_seq = {cp["seq"]: cp["head_hash"] for cp in checkpoints}
        prev = GENESIS
        expected = 1
        last = 0
        for row in _iter_rows(session, self.log_model, batch):
            if row.seq != expected:
                return VerifyResult(False, last, expected, f"row {expected} is missing (next row is {row.seq})")
            if row.prev_hash != prev:
                return VerifyResult(False, last, row.seq, "previous-hash link is broken")
            canonical = canonical_entry(row)
            if canonical != row.canonical or chain_hash(self.hmac_key, prev, row.seq, canonical) != row.row_hash:
                return VerifyResult(False, last, row.seq, "row content does not match its hash")
            if row.seq in by_seq and by_seq[row.seq] != row.row_hash:
                return VerifyResult(False, last, row.seq, "row differs from the signed checkpoint")
            prev = row.row_hash
            last = row.seq
            expected += 1
        head = session.execute(select(self.head_model).where(self.head_model.id == 1)).scalar_one()
        if checkpoints and max(by_seq) > last:
            return VerifyResult(False, last, last + 1, f"rows after {last} were cut off (checkpoint at {max(by_seq)})")
        if head.seq != last or head.head_hash != prev:
            return VerifyResult(False, last, last + 1, "chain head does not match the last row")
        return VerifyResult(True, last, None, "ok")


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of a chain verification; ``first_bad`` names the first row that fails."""

    ok: bool
    rows: int
    first_bad: int | None
    reason: str


def _checkpoint_bytes(cp: dict[str, Any]) -> bytes:
    return rfc8785.dumps({"seq": cp["seq"], "head_hash": cp["head_hash"], "ts": cp["ts"]})


def _iter_rows(session: Session, model: type[Any], batch: int) -> Iterable[Any]:
    after = 0
    while True:
        rows = session.execute(select(model).where(model.seq > after).order_by(model.seq).limit(batch)).scalars().all()
        if not rows:
            return
        yield from rows
        after = rows[-1].seq


@event.listens_for(Session, "after_commit")
def _checkpoint_after_commit(session: Session) -> None:
    pending = session.info.pop("audit_pending", None)
    if pending is not None:
        chain, seq, head_hash = pending
        chain.write_checkpoint(seq, head_hash)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop("audit_pending", None)
