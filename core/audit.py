"""The operation log: an HMAC hash chain with gapless sequence numbers and signed checkpoints.

Each row's hash is HMAC-SHA-256(key, previous hash || seq as 8 bytes || canonical JSON of the
row, RFC 8785). The key never enters the database. Appends are serialised by updating the
single chain-head row first, so concurrent writers cannot fork the chain.

After every commit that appended rows, a checkpoint (seq, head hash, time) signed with Ed25519 is
appended to a file outside the database (in production on storage the app can only append to).
That is what catches a cut-off tail or a chain rebuilt from scratch: the chain alone cannot tell
the last rows were deleted once the head is moved back with them. A commit is refused while its
checkpoint could not be signed (no signing key), and the key is never made on its own outside
development. ``verify`` trusts only the public key from the configuration, and fails when it or
the file is missing, or when the file was begun after the log already had rows.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Integer,
    String,
    Text,
    bindparam,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, declared_attr, mapped_column

from core import clock
from core.db import UTCDateTime

GENESIS = "0" * 64
JST = ZoneInfo("Asia/Tokyo")
log = logging.getLogger(__name__)
OUTCOMES = ("success", "failure", "denied")
# Signing keys as read, by path and file version: every commit checks the key is still there (a
# stat), and reads and parses it again only when the file changed.
_SIGNING_KEYS: dict[Path, tuple[tuple[int, int, int, int], Ed25519PrivateKey]] = {}
# The action of the row retention writes after it purged archived rows of this log (core/retention.py).
PURGE_ACTION = "retention.purge"
# How long a commit that did not write the log's first row waits for an empty checkpoint file to be begun by the
# commit that did (whose after-commit step may run later), before it begins the file itself.
BEGIN_WAIT_SECONDS, BEGIN_WAIT_STEP = 2.0, 0.02


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


_LOG_COLUMNS = ("seq", "ts", "actor_id", "actor", "terminal_id", "action", "target_type", "target_id", "outcome",
                "request_id", "client_addr", "detail", "canonical", "prev_hash", "row_hash")


@dataclass(frozen=True)
class _Statements:
    advance: Any  # raise the head's counter (taking its row lock), returning the new seq and the previous hash
    set_head: Any  # the new head hash
    write: Any  # the row
    write_with_head: Any  # both at once: a data-modifying CTE (PostgreSQL)


_STATEMENTS: dict[tuple[type[Any], type[Any]], _Statements] = {}


def _statements(log_model: type[Any], head_model: type[Any]) -> _Statements:
    """An append's statements, built once per log (their SQL is compiled once and cached by the engine)."""
    built = _STATEMENTS.get((log_model, head_model))
    if built is None:
        head = head_model.__table__
        set_head = update(head).where(head.c.id == 1).values(head_hash=bindparam("new_head_hash"))
        # Parameters named apart from the columns: a key named like a column of the head (``seq``) would
        # be taken as a value to set in the head's UPDATE.
        write = insert(log_model.__table__).values({column: bindparam(f"log_{column}") for column in _LOG_COLUMNS})
        built = _Statements(
            advance=update(head).where(head.c.id == 1).values(seq=head.c.seq + 1).returning(head.c.seq,
                                                                                           head.c.head_hash),
            set_head=set_head, write=write, write_with_head=write.add_cte(set_head.cte("set_head")))
        _STATEMENTS[(log_model, head_model)] = built
    return built


class AuditHeadMixin:
    """The single row that holds the chain head; updating it serialises appends."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    head_hash: Mapped[str] = mapped_column(String(64))

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (CheckConstraint("id = 1", name="single_row"),)


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written or checked: a key or the checkpoint file is missing or unusable."""


def chain_for(config: Any, *, log_model: type[Any], head_model: type[Any], name: str) -> AuditChain:
    """The chain of one database, with its checkpoint file and keys from the configuration.

    Outside production the file and the signing key default to the instance folder and the public
    key to the file beside the signing key; in production the public key has no default, so
    ``verify`` names the setting rather than trusting a key that sits next to the one that signs.
    """
    instance = Path(config["INSTANCE_PATH"])
    key_path = Path(config.get("AUDIT_CHECKPOINT_KEY_PATH") or instance / "audit-checkpoint-ed25519.pem")
    public = config.get("AUDIT_CHECKPOINT_PUBLIC_KEY") or ""
    if not public and config.get("APP_ENV") != "production":
        public = str(default_public_key_path(key_path))
    return AuditChain(
        log_model=log_model,
        head_model=head_model,
        hmac_key=config["AUDIT_HMAC_KEY"],
        checkpoint_path=Path(config.get("AUDIT_CHECKPOINT_PATH") or instance / f"audit-checkpoints-{name}.jsonl"),
        checkpoint_key_path=key_path,
        checkpoint_public_key=public,
        make_key_if_new=config.get("APP_ENV") == "development",
    )


def default_public_key_path(private_path: Path) -> Path:
    """Where the public half of a signing key is kept outside production: ``<name>.pub.pem`` beside it."""
    return private_path.with_name(private_path.name.removesuffix(".pem") + ".pub.pem")


def generate_checkpoint_keys(private_path: Path, public_path: Path) -> None:
    """Create an Ed25519 checkpoint key pair; never replaces an existing key (the old checkpoints need it)."""
    if private_path.exists():
        raise CheckpointError(f"AUDIT_CHECKPOINT_KEY_PATH: {private_path} already exists; it is never replaced")
    key = Ed25519PrivateKey.generate()
    private_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    public_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))


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
    # The verifying key: a path, or the PEM text itself (AUDIT_CHECKPOINT_PUBLIC_KEY).
    checkpoint_public_key: str = ""
    # Development only: the first commit of a fresh instance makes the key pair (`make run`).
    make_key_if_new: bool = False

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
        """Append one row in the caller's transaction and return it (flushes, written at once, never commits).

        Two statements: the head row's counter is raised (which takes the head's row lock until the
        commit), then the row and the new head hash are written together (one statement on
        PostgreSQL). The row is written with Core statements built once, not through the unit of
        work, and the returned object is not in the session: a query of the log in the same
        transaction reads it back.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}")
        head = self.head_model
        statements = _statements(self.log_model, head)
        session.flush()  # what the caller added is written before the head's lock is taken, as it always was
        connection = session.connection(bind_arguments={"mapper": head})
        seq, prev = connection.execute(statements.advance).one()
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
        values = {f"log_{column}": getattr(row, column) for column in _LOG_COLUMNS}
        if connection.dialect.name == "postgresql":
            connection.execute(statements.write_with_head, {**values, "new_head_hash": row.row_hash})
        else:
            connection.execute(statements.set_head, {"new_head_hash": row.row_hash})
            connection.execute(statements.write, values)
        # The transaction's first row is kept: a checkpoint file begun by this commit records where it began.
        earlier = session.info.get("audit_pending")
        first = earlier[3] if earlier is not None and earlier[0] == self else seq
        session.info["audit_pending"] = (self, seq, row.row_hash, first)
        return row

    # -- checkpoints -------------------------------------------------------------------------

    def signing_key(self) -> Ed25519PrivateKey:
        """The key that signs checkpoints; a missing key is an error, never replaced by a new one."""
        path = self.checkpoint_key_path
        if self.make_key_if_new and self._fresh_instance():
            try:
                generate_checkpoint_keys(path, Path(self.checkpoint_public_key))
                log.warning("made the development checkpoint key pair %s (never outside development)", path)
            except (CheckpointError, FileExistsError):
                pass  # another process of the same instance made it a moment ago
        try:
            stat = path.stat()
            version = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
            cached = _SIGNING_KEYS.get(path)
            if cached is not None and cached[0] == version:
                return cached[1]
            pem = path.read_bytes()
        except FileNotFoundError:
            raise CheckpointError(f"AUDIT_CHECKPOINT_KEY_PATH: no checkpoint signing key at {path} "
                                  "(it is made once with `flask audit keygen`, never on its own)") from None
        loaded = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise CheckpointError(f"AUDIT_CHECKPOINT_KEY_PATH: {path} is not an Ed25519 private key")
        _SIGNING_KEYS[path] = (version, loaded)
        return loaded

    def _fresh_instance(self) -> bool:
        """No key of either half and no checkpoint yet: nothing a new key could disown."""
        value = self.checkpoint_public_key
        if not value or value.lstrip().startswith("-----BEGIN"):
            return False
        return (not self.checkpoint_key_path.exists() and not Path(value).exists()
                and _file_is_empty(self.checkpoint_path))

    def public_key(self) -> Ed25519PublicKey:
        """The key that verifies checkpoints, from the configuration (a path or PEM text)."""
        value = self.checkpoint_public_key.strip()
        if not value:
            raise CheckpointError("AUDIT_CHECKPOINT_PUBLIC_KEY is not set: verify needs the checkpoint public key")
        if value.startswith("-----BEGIN"):
            pem = value.encode()
        else:
            try:
                pem = Path(value).read_bytes()
            except FileNotFoundError:
                raise CheckpointError(f"AUDIT_CHECKPOINT_PUBLIC_KEY: no checkpoint public key at {value}") from None
        try:
            loaded = serialization.load_pem_public_key(pem)
        except ValueError:
            raise CheckpointError("AUDIT_CHECKPOINT_PUBLIC_KEY is not a PEM public key") from None
        if not isinstance(loaded, Ed25519PublicKey):
            raise CheckpointError("AUDIT_CHECKPOINT_PUBLIC_KEY is not an Ed25519 public key")
        return loaded

    def checkpoints(self) -> list[dict[str, Any]]:
        """All checkpoints written so far, in file order (the file must exist)."""
        try:
            text = self.checkpoint_path.read_text()
        except FileNotFoundError:
            raise CheckpointError(f"checkpoint file {self.checkpoint_path} does not exist "
                                  "(AUDIT_CHECKPOINT_PATH): it was removed or never written") from None
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def check_writable(self) -> None:
        """Before a commit: refuse it while its checkpoint could not be signed (no signing key)."""
        self.signing_key()

    def write_checkpoint(self, seq: int, head_hash: str, *, first_seq: int = 1, force: bool = False) -> bool:
        """Sign and append (seq, head hash, time) unless a checkpoint at or past ``seq`` is already there.

        Only the tail of the file is read, so the cost of a commit does not grow with the file. The
        first line of a file also records (signed) the first row of the transaction that began it:
        a file begun after the log already had rows (removed, replaced, or pointed elsewhere) fails
        ``verify``, because a cut made before it would not show. ``force`` (the ``audit
        checkpoint`` command) writes even when a later checkpoint exists, and begins a file
        deliberately, marked as such.
        """
        key = self.signing_key()
        self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        waited = 0.0
        while True:
            with open(self.checkpoint_path, "a+b") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                last = _last_checkpoint(fh)
                if last is not None or first_seq <= 1 or force or waited >= BEGIN_WAIT_SECONDS:
                    return self._append_checkpoint(fh, key, last, seq, head_hash, first_seq=first_seq, force=force)
            # An empty file, and a transaction that did not write the log's first row: the rows before it are
            # committed (appends are serialized), so their checkpoint is on its way and the file must begin with
            # it. Only if none comes (the file was removed) does this one begin the file, and verify says so.
            time.sleep(BEGIN_WAIT_STEP)
            waited += BEGIN_WAIT_STEP

    def _append_checkpoint(self, fh: Any, key: Any, last: dict[str, Any] | None, seq: int, head_hash: str, *,
                           first_seq: int, force: bool) -> bool:
        """Under the file's lock: append the signed line, let the lock go, then sync the file."""
        if last is not None and last["seq"] >= seq and not force:
            return False
        body: dict[str, Any] = {"seq": seq, "head_hash": head_hash, "ts": clock.utcnow().isoformat()}
        if last is None:
            body["start"] = seq if force else first_seq
            if force:
                body["restart"] = True
            if body["start"] > 1:
                log.error("checkpoint file %s begun at row %d: the log already had rows (verify will say so)",
                          self.checkpoint_path, body["start"])
        body["signature"] = key.sign(_checkpoint_bytes(body)).hex()
        fh.write((json.dumps(body, sort_keys=True) + "\n").encode())
        fh.flush()
        fcntl.flock(fh, fcntl.LOCK_UN)
        # Synced after the lock is let go: the line is in the file for the next writer to read, and
        # commits arriving together share the disk's flush instead of queueing behind each other's.
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
        """Recompute the chain, check it against the head and the signed checkpoints.

        Fails when the public key or the checkpoint file is missing, when a checkpoint's signature
        is wrong, when the file was begun after the log had rows (other than by hand), when two
        checkpoints disagree about a row, when a checkpointed row differs or is gone (a cut tail),
        and when rows exist but no checkpoint covers any of them.
        """
        try:
            public = self.public_key()
            checkpoints = self.checkpoints()
        except (CheckpointError, ValueError) as exc:
            return VerifyResult(False, 0, None, str(exc))
        by_seq: dict[int, dict[str, Any]] = {}
        restarted: int | None = None
        for index, cp in enumerate(checkpoints):
            try:
                public.verify(bytes.fromhex(cp["signature"]), _checkpoint_bytes(cp))
            except Exception:
                return VerifyResult(False, 0, cp.get("seq"), "checkpoint signature is invalid")
            if index == 0 and cp.get("start", 1) > 1:
                if not cp.get("restart"):
                    return VerifyResult(False, 0, None, f"checkpoint file {self.checkpoint_path} begins at row "
                                        f"{cp['start']}: it was started after the log already had rows "
                                        "(removed, replaced or pointed elsewhere), so a cut before it would not show")
                restarted = cp["start"]
            known = by_seq.get(cp["seq"])
            if known is not None and known["head_hash"] != cp["head_hash"]:
                return VerifyResult(False, 0, cp["seq"], f"two signed checkpoints disagree about row {cp['seq']}")
            if known is None or cp["ts"] < known["ts"]:
                by_seq[cp["seq"]] = cp
        prev = GENESIS
        expected = 1
        # Rows 1..N purged by retention (core/retention.py): accepted only when a signed checkpoint is at N and
        # a `retention.purge` row in the remaining chain records that archive (N and its head hash).
        first = session.execute(select(func.min(self.log_model.seq))).scalar()
        purged: dict[str, Any] | None = None
        if first is not None and first > 1:
            purged = by_seq.get(first - 1)
            if purged is None:
                return VerifyResult(False, 0, 1, f"rows 1 to {first - 1} are missing and no signed checkpoint "
                                    "marks the end of an archive there")
            prev, expected = purged["head_hash"], first
        archived = purged is None
        last = 0
        proven: dict[str, Any] | None = None
        for row in _iter_rows(session, self.log_model, batch):
            if purged is not None and row.action == PURGE_ACTION:
                mark = json.loads(row.detail)
                archived = archived or (mark.get("through_seq") == purged["seq"]
                                        and mark.get("head_hash") == purged["head_hash"])
            if row.seq != expected:
                return VerifyResult(False, last, expected, f"row {expected} is missing (next row is {row.seq})",
                                    *_cp(proven))
            if row.prev_hash != prev:
                return VerifyResult(False, last, row.seq, "previous-hash link is broken", *_cp(proven))
            canonical = canonical_entry(row)
            if canonical != row.canonical or chain_hash(self.hmac_key, prev, row.seq, canonical) != row.row_hash:
                return VerifyResult(False, last, row.seq, "row content does not match its hash", *_cp(proven))
            signed = by_seq.get(row.seq)
            if signed is not None:
                if signed["head_hash"] != row.row_hash:
                    return VerifyResult(False, last, row.seq, "row differs from the signed checkpoint", *_cp(proven))
                proven = signed
            prev = row.row_hash
            last = row.seq
            expected += 1
        head = session.execute(select(self.head_model).where(self.head_model.id == 1)).scalar_one()
        if by_seq and max(by_seq) > last:
            return VerifyResult(False, last, last + 1,
                                f"rows after {last} were cut off (a signed checkpoint covers row {max(by_seq)})",
                                *_cp(proven))
        if not archived and first is not None:
            return VerifyResult(False, last, 1, f"rows 1 to {first - 1} are missing: no `{PURGE_ACTION}` row "
                                "records their archive", *_cp(proven))
        if last and proven is None:
            return VerifyResult(False, last, None, f"no signed checkpoint covers any of the {last} rows "
                                f"in {self.checkpoint_path}")
        if head.seq != last or head.head_hash != prev:
            return VerifyResult(False, last, last + 1, "chain head does not match the last row", *_cp(proven))
        note = "ok" if restarted is None else f"ok; the checkpoint file was restarted at row {restarted} by hand"
        return VerifyResult(True, last, None, note, *_cp(proven))


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of a chain verification; ``first_bad`` names the first row that fails."""

    ok: bool
    rows: int
    first_bad: int | None
    reason: str
    # The last row a signed checkpoint proves (and when it was signed), so a cut after it is caught.
    checkpoint_seq: int | None = None
    checkpoint_at: dt.datetime | None = None

    @property
    def checkpoint_at_jst(self) -> str:
        """When the last proven checkpoint was signed, as a person in Japan reads the time."""
        return "" if self.checkpoint_at is None else self.checkpoint_at.astimezone(JST).strftime("%Y-%m-%d %H:%M")

    def summary(self) -> str:
        """One line for people: rows verified and the last checkpoint, in Japan time."""
        text = f"verified {self.rows:,} rows"
        if self.checkpoint_seq is not None:
            text += f"; last checkpoint at seq {self.checkpoint_seq:,} ({self.checkpoint_at_jst} JST)"
        else:
            text += "; no checkpoint proven"
        return text


def _checkpoint_bytes(cp: dict[str, Any]) -> bytes:
    # What is signed: the row, its hash, the time, and on a file's first line where the file began.
    signed = {"seq": cp["seq"], "head_hash": cp["head_hash"], "ts": cp["ts"]}
    signed.update({k: cp[k] for k in ("start", "restart") if k in cp})
    return rfc8785.dumps(signed)


def _cp(cp: dict[str, Any] | None) -> tuple[int | None, dt.datetime | None]:
    if cp is None:
        return None, None
    return int(cp["seq"]), dt.datetime.fromisoformat(cp["ts"])


def _file_is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except FileNotFoundError:
        return True


def _last_checkpoint(fh: Any) -> dict[str, Any] | None:
    """The last complete line of an open checkpoint file, reading back from its end only as far as needed."""
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    chunk = 4096
    while size:
        start = max(0, size - chunk)
        fh.seek(start)
        lines = fh.read().split(b"\n")
        if start > 0:
            lines = lines[1:]  # may begin inside a line
        complete = [line for line in lines if line.strip()]
        if complete:
            value: dict[str, Any] = json.loads(complete[-1])
            return value
        if start == 0:
            return None
        chunk *= 4
    return None


def _iter_rows(session: Session, model: type[Any], batch: int) -> Iterable[Any]:
    after = 0
    while True:
        rows = session.execute(select(model).where(model.seq > after).order_by(model.seq).limit(batch)).scalars().all()
        if not rows:
            return
        yield from rows
        after = rows[-1].seq


@event.listens_for(Session, "before_commit")
def _refuse_without_checkpoint(session: Session) -> None:
    # A commit whose rows could not be checkpointed is refused while it can still be rolled back.
    pending = session.info.get("audit_pending")
    if pending is not None:
        pending[0].check_writable()


@event.listens_for(Session, "after_commit")
def _checkpoint_after_commit(session: Session) -> None:
    pending = session.info.pop("audit_pending", None)
    if pending is not None:
        chain, seq, head_hash, first_seq = pending
        chain.write_checkpoint(seq, head_hash, first_seq=first_seq)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop("audit_pending", None)
