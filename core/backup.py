"""Backups that restore (R17): an encrypted consistent dump, a signed manifest, a checked restore.

A backup is a folder of three files:

- ``database.dump.enc``: the dump (``pg_dump -Fc`` on PostgreSQL, the SQLite online backup API on
  SQLite), encrypted while it streams, so no plaintext touches the disk. The format is chunked
  AES-256-GCM: a header (magic, version, a random 7-byte nonce prefix), then chunks of at most
  1 MiB, each ``length (4 bytes) || ciphertext || tag``, whose nonce is the prefix, the chunk
  number and a last-chunk flag, with the header as associated data. A chunk changed, dropped,
  reordered or cut, or a file cut after any chunk, fails authentication.
- ``audit-checkpoints.jsonl``: a copy of the operation log's signed checkpoints, so the restored
  log can be verified where the original checkpoint file is out of reach.
- ``manifest.json``: when, which app and database, the row count of each table and the
  operation log's last sequence number and head hash as of the dump's snapshot, the SHA-256 and
  size of the two other files, and an HMAC over all of it.

The key is ``BACKUP_KEY`` (32 random bytes, hex or base64), which must differ from every other
secret of the app: the backup host holds it and the app servers need not; whoever holds a backup
without it holds ciphertext only. Two keys are derived from it, one to encrypt, one for the
manifest's HMAC.

``restore`` refuses a target that is not empty, then checks in this order, each failure naming
its check: the manifest's HMAC (``manifest``), the app (``app``), the files' size and SHA-256
(``size``, ``sha256``), every chunk (``decryption``), the restore itself (``pg_restore``), the
row counts (``row counts``), the operation log's head (``audit head``) and ``audit verify`` over
the restored rows against the signed checkpoints (``audit verify``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import io
import json
import os
import sqlite3
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import rfc8785
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.orm import Session

from core import clock
from core.audit import AuditChain

MAGIC = b"JUKIBAK1"
CHUNK = 1 << 20
DUMP_NAME = "database.dump.enc"
CHECKPOINTS_NAME = "audit-checkpoints.jsonl"
MANIFEST_NAME = "manifest.json"
FORMAT = 1


class BackupError(RuntimeError):
    """A backup or restore refused; ``check`` names what failed (e.g. ``sha256``, ``decryption``)."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check
        self.message = message


# -- the key --------------------------------------------------------------------------------------


def backup_key(config: Any, secret_names: Any) -> bytes:
    """``BACKUP_KEY`` as bytes; refused when missing, short, or equal to one of the app's other secrets."""
    from core.config import MIN_SECRET_BYTES, _secret_bytes

    value = str(config.get("BACKUP_KEY") or "").strip()
    if not value:
        raise BackupError("BACKUP_KEY", "is not set (32 random bytes in hex, e.g. `openssl rand -hex 32`; "
                          "kept on the backup host and in the key safe, never in a backup)")
    raw = _secret_bytes(value)
    if raw is None or len(raw) < MIN_SECRET_BYTES:
        raise BackupError("BACKUP_KEY", f"must be at least {MIN_SECRET_BYTES} random bytes in hex or base64")
    for name in secret_names:
        if str(config.get(name) or "").strip() == value:
            raise BackupError("BACKUP_KEY", f"must differ from {name}: a backup must not open with an app key")
    return raw


def _subkey(key: bytes, purpose: bytes) -> bytes:
    return hmac.new(key, purpose, hashlib.sha256).digest()


# -- the encrypted stream -------------------------------------------------------------------------


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">I", index) + (b"\x01" if last else b"\x00")


def encrypt_stream(source: IO[bytes], sink: IO[bytes], key: bytes) -> int:
    """Read ``source`` to its end and write it encrypted to ``sink``; returns the plaintext size."""
    aead = AESGCM(_subkey(key, b"backup-encryption-v1"))
    prefix = os.urandom(7)
    header = MAGIC + bytes([FORMAT]) + prefix
    sink.write(header)
    total, index = 0, 0
    chunk = _read_full(source, CHUNK)
    while True:
        following = _read_full(source, CHUNK) if len(chunk) == CHUNK else b""
        last = not following
        sealed = aead.encrypt(_nonce(prefix, index, last), chunk, header)
        sink.write(struct.pack(">I", len(sealed)) + sealed)
        total += len(chunk)
        if last:
            return total
        chunk, index = following, index + 1


def decrypt_stream(source: IO[bytes], key: bytes) -> Iterator[bytes]:
    """Yield the plaintext chunks of an encrypted stream, each only after its tag was checked."""
    aead = AESGCM(_subkey(key, b"backup-encryption-v1"))
    header = source.read(len(MAGIC) + 8)
    if len(header) != len(MAGIC) + 8 or not header.startswith(MAGIC) or header[len(MAGIC)] != FORMAT:
        raise BackupError("decryption", "the dump does not begin with a backup header")
    prefix = header[len(MAGIC) + 1:]
    index = 0
    while True:
        length = source.read(4)
        if len(length) != 4:
            raise BackupError("decryption", f"the dump ends after chunk {index} without its last chunk (truncated)")
        (size,) = struct.unpack(">I", length)
        sealed = _read_full(source, size)
        if len(sealed) != size or size > CHUNK + 16:
            raise BackupError("decryption", f"chunk {index} is cut short (truncated)")
        for last in (False, True):
            try:
                plain = aead.decrypt(_nonce(prefix, index, last), sealed, header)
                break
            except InvalidTag:
                continue
        else:
            raise BackupError("decryption", f"chunk {index} fails authentication (damaged, or another BACKUP_KEY)")
        yield plain
        if last:
            if source.read(1):
                raise BackupError("decryption", "bytes follow the last chunk")
            return
        index += 1


def _read_full(source: IO[bytes], size: int) -> bytes:
    parts, left = [], size
    while left:
        data = source.read(left)
        if not data:
            break
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


# -- the manifest ---------------------------------------------------------------------------------


def _sign(body: dict[str, Any], key: bytes) -> str:
    return hmac.new(_subkey(key, b"backup-manifest-v1"), rfc8785.dumps(body), hashlib.sha256).hexdigest()


def read_manifest(folder: Path, key: bytes) -> dict[str, Any]:
    """The manifest of a backup folder, after its HMAC was checked."""
    try:
        data = json.loads((folder / MANIFEST_NAME).read_text())
    except FileNotFoundError:
        raise BackupError("manifest", f"{folder / MANIFEST_NAME} does not exist") from None
    except ValueError:
        raise BackupError("manifest", "manifest.json is not JSON (damaged)") from None
    mac = data.pop("hmac", "") if isinstance(data, dict) else ""
    if not isinstance(mac, str) or not hmac.compare_digest(mac, _sign(data, key)):
        raise BackupError("manifest", "the manifest's HMAC does not match (altered, or another BACKUP_KEY)")
    return dict(data)


def _file_digest(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


# -- backing up -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Target:
    """What one app backs up: its database URL, its name in the manifest and its operation-log chain."""

    app: str
    database_url: str
    chain: AuditChain


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection URI for the tools, and the environment carrying the password (never the command line)."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = URL.create("postgresql", username=url.username, host=url.host, port=url.port, database=url.database,
                       query={k: v for k, v in url.query.items() if k in ("sslmode", "sslrootcert", "sslcert",
                                                                             "sslkey", "options")})
    return plain.render_as_string(hide_password=False), env


def _tables(conn: Connection) -> list[str]:
    if conn.dialect.name == "postgresql":
        rows = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"))
    else:
        rows = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table' "
                                 "AND name NOT LIKE 'sqlite_%' ORDER BY name"))
    return [r[0] for r in rows]


def _counts(conn: Connection) -> dict[str, int]:
    # Table names from the catalogue, quoted: no outside text reaches the query.
    return {t: int(conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one())  # noqa: S608
            for t in _tables(conn)}


def _head(conn: Connection) -> dict[str, Any]:
    seq, head_hash = conn.execute(text("SELECT seq, head_hash FROM audit_head WHERE id = 1")).one()
    return {"seq": int(seq), "head_hash": head_hash}


def backup(target: Target, out: Path, key: bytes) -> dict[str, Any]:
    """Write a backup of ``target`` into the new or empty folder ``out``; returns the manifest."""
    if out.exists() and any(out.iterdir()):
        raise BackupError("--out", f"{out} is not empty: each backup gets a folder of its own")
    out.mkdir(parents=True, exist_ok=True)
    url = make_url(target.database_url)
    started = time.perf_counter()
    dump = out / DUMP_NAME
    try:
        if url.get_backend_name() == "postgresql":
            counts, head, size = _backup_postgresql(url, dump, key)
        elif url.get_backend_name() == "sqlite":
            counts, head, size = _backup_sqlite(url, dump, key)
        else:
            raise BackupError("database", f"cannot back up a {url.get_backend_name()} database")
    except BaseException:
        dump.unlink(missing_ok=True)
        raise
    checkpoints = out / CHECKPOINTS_NAME
    lines = []
    if target.chain.checkpoint_path.exists():
        lines = [line for line in target.chain.checkpoint_path.read_text().splitlines() if line.strip()]
    checkpoints.write_text("".join(line + "\n" for line in lines))
    files = {}
    for path in (dump, checkpoints):
        file_size, digest = _file_digest(path)
        files[path.name] = {"size": file_size, "sha256": digest}
    body = {
        "format": FORMAT,
        "app": target.app,
        "backend": url.get_backend_name(),
        "database": Path(url.database or "").name,
        "created_at": clock.utcnow().isoformat(),
        "dump_format": "pg_dump -Fc" if url.get_backend_name() == "postgresql" else "sqlite3 backup",
        "plaintext_size": size,
        "row_counts": counts,
        "audit": head,
        "files": files,
        "seconds": round(time.perf_counter() - started, 2),
    }
    manifest = {**body, "hmac": _sign(body, key)}
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return body


def _backup_postgresql(url: URL, dump: Path, key: bytes) -> tuple[dict[str, int], dict[str, Any], int]:
    # One snapshot for the dump and the counts: pg_dump is given the snapshot this transaction exported.
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            counts = _counts(conn)
            head = _head(conn)
            uri, env = _libpq(url)
            args = ["pg_dump", "-Fc", "--no-owner", "--no-privileges", f"--snapshot={snapshot}", "--dbname", uri]
            # The PATH's PostgreSQL client tools with fixed arguments; the password only in the environment.
            with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as proc:  # noqa: S603
                assert proc.stdout is not None and proc.stderr is not None
                with open(dump, "xb") as sink:
                    size = encrypt_stream(proc.stdout, sink, key)
                    sink.flush()
                    os.fsync(sink.fileno())
                errors = proc.stderr.read().decode(errors="replace")
            if proc.returncode != 0:
                raise BackupError("pg_dump", f"exited with {proc.returncode}: {errors.strip()}")
            conn.rollback()
    finally:
        engine.dispose()
    return counts, head, size


def _backup_sqlite(url: URL, dump: Path, key: bytes) -> tuple[dict[str, int], dict[str, Any], int]:
    # The online backup API copies into memory; the serialised copy is encrypted from there.
    source = sqlite3.connect(f"file:{url.database}?mode=ro", uri=True)
    copy = sqlite3.connect(":memory:")
    try:
        source.backup(copy)
        engine = create_engine("sqlite://", creator=lambda: copy)
        with engine.connect() as conn:
            counts, head = _counts(conn), _head(conn)
        # A copy of a WAL database says so in its header (bytes 18 and 19); an image in memory has no WAL
        # file, so it is marked a rollback-journal database, as `PRAGMA journal_mode=DELETE` would.
        data = bytearray(copy.serialize())
        data[18:20] = b"\x01\x01"
    finally:
        source.close()
    with open(dump, "xb") as sink:
        encrypt_stream(io.BytesIO(bytes(data)), sink, key)
        sink.flush()
        os.fsync(sink.fileno())
    return counts, head, len(data)


# -- restoring ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Restored:
    """What a restore proved."""

    manifest: dict[str, Any]
    rows: int
    audit_rows: int
    audit_summary: str
    seconds: float


def restore(target: Target, source: Path, into: str, key: bytes) -> Restored:
    """Restore the backup in ``source`` into the empty database ``into`` and prove it (see the module text)."""
    started = time.perf_counter()
    url = make_url(into)
    _refuse_non_empty(url)
    manifest = read_manifest(source, key)
    if manifest.get("app") != target.app:
        raise BackupError("app", f"the backup is of {manifest.get('app')!r}, not of {target.app!r}")
    if manifest.get("backend") != url.get_backend_name():
        raise BackupError("database", f"the backup is of a {manifest.get('backend')} database, "
                          f"--into is {url.get_backend_name()}")
    for name in (DUMP_NAME, CHECKPOINTS_NAME):
        expected = manifest["files"][name]
        path = source / name
        if not path.exists():
            raise BackupError("size", f"{name} is missing")
        size, digest = _file_digest(path)
        if size != expected["size"]:
            raise BackupError("size", f"{name} has {size} bytes, the manifest says {expected['size']} (truncated?)")
        if digest != expected["sha256"]:
            raise BackupError("sha256", f"{name} does not match the SHA-256 in the manifest (damaged)")
    # The whole dump is authenticated before a byte reaches the database.
    with open(source / DUMP_NAME, "rb") as fh:
        for _chunk in decrypt_stream(fh, key):
            pass
    if url.get_backend_name() == "postgresql":
        _restore_postgresql(source / DUMP_NAME, url, key)
    else:
        _restore_sqlite(source / DUMP_NAME, url, key)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            counts = _counts(conn)
            head = _head(conn)
        if counts != manifest["row_counts"]:
            differ = sorted(t for t in set(counts) | set(manifest["row_counts"])
                            if counts.get(t) != manifest["row_counts"].get(t))
            raise BackupError("row counts", f"the restored tables differ from the manifest: {', '.join(differ)}")
        if head != manifest["audit"]:
            raise BackupError("audit head", f"the restored log ends at row {head['seq']}, the manifest says "
                              f"{manifest['audit']['seq']}")
        result = _verify(target.chain, source / CHECKPOINTS_NAME, engine, int(head["seq"]))
    finally:
        engine.dispose()
    return Restored(manifest, sum(counts.values()), result[0], result[1], round(time.perf_counter() - started, 2))


def _verify(chain: AuditChain, checkpoints: Path, engine: Any, head_seq: int) -> tuple[int, str]:
    # The checkpoints up to the backup's head only: later ones cover rows the backup cannot hold.
    lines = [line for line in checkpoints.read_text().splitlines()
             if line.strip() and json.loads(line)["seq"] <= head_seq]
    with tempfile.TemporaryDirectory(prefix="restore-verify-") as tmp:
        path = Path(tmp) / "checkpoints.jsonl"
        path.write_text("".join(line + "\n" for line in lines))
        restored_chain = dataclasses.replace(chain, checkpoint_path=path, make_key_if_new=False)
        with Session(engine) as session:
            result = restored_chain.verify(session)
    if not result.ok:
        where = f"at row {result.first_bad}" if result.first_bad is not None else "before any row"
        raise BackupError("audit verify", f"FAILED {where}: {result.reason}")
    return result.rows, result.summary()


def _refuse_non_empty(url: URL) -> None:
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        if not url.database or url.database == ":memory:":
            raise BackupError("--into", "a SQLite restore needs a file path")
        if path.exists() and path.stat().st_size > 0:
            raise BackupError("--into", f"{path} is not empty: a backup is restored into an empty database only")
        return
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            count = conn.execute(text(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') "
                "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND n.nspname NOT LIKE 'pg_toast%'")).scalar_one()
    except Exception as exc:
        raise BackupError("--into", f"cannot connect to the target database: {type(exc).__name__}") from None
    finally:
        engine.dispose()
    if count:
        raise BackupError("--into", f"the database {url.database} is not empty ({count} relations): a backup is "
                          "restored into an empty database only")


def _restore_postgresql(dump: Path, url: URL, key: bytes) -> None:
    uri, env = _libpq(url)
    # stderr goes to a pipe read only at the end: pg_restore says little, and only on failure.
    args = ["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", "--dbname", uri]
    with subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,  # noqa: S603
                          stderr=subprocess.PIPE, env=env) as proc, open(dump, "rb") as fh:
        assert proc.stdin is not None and proc.stderr is not None
        try:
            for chunk in decrypt_stream(fh, key):
                proc.stdin.write(chunk)
        except BrokenPipeError:
            pass  # pg_restore stopped: its message says why
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        errors = proc.stderr.read().decode(errors="replace")
    if proc.returncode != 0:
        raise BackupError("pg_restore", f"exited with {proc.returncode}: {errors.strip()[-500:]}")


def _restore_sqlite(dump: Path, url: URL, key: bytes) -> None:
    with open(dump, "rb") as fh:
        data = b"".join(decrypt_stream(fh, key))
    copy = sqlite3.connect(":memory:")
    copy.deserialize(data)
    target = sqlite3.connect(str(url.database))
    try:
        copy.backup(target)
    finally:
        target.close()
        copy.close()
