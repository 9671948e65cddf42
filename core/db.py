"""Database plumbing: typed column helpers, one engine per app, one session per request."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from flask import Flask, current_app, g
from sqlalchemy import BigInteger, DateTime, Engine, Integer, MetaData, String, create_engine, event
from sqlalchemy.orm import Session, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    """Return a MetaData with stable constraint names, so migrations are reproducible."""
    return MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware datetime that comes back aware in UTC on every backend (SQLite too)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use core.clock.utcnow()")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


intpk = Annotated[int, mapped_column(Integer, primary_key=True)]
bigintpk = Annotated[int, mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)]
tzdatetime = Annotated[dt.datetime, mapped_column(UTCDateTime())]
str10 = Annotated[str, mapped_column(String(10))]
str20 = Annotated[str, mapped_column(String(20))]
str50 = Annotated[str, mapped_column(String(50))]
str100 = Annotated[str, mapped_column(String(100))]
str200 = Annotated[str, mapped_column(String(200))]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str, **options: Any) -> Engine:
    """Create an engine; SQLite gets foreign keys, WAL and a busy timeout.

    Bound values are never part of an error's text (``hide_parameters``), whatever the options say: a failed
    statement's traceback goes to the application log, and its values may be what a clerk searched for (a
    name, a birth date) or what a resident sent. The SQL, the error and the request id are enough to debug.
    """
    options["hide_parameters"] = True
    if url.startswith("sqlite"):
        options.pop("pool_pre_ping", None)
        engine = create_engine(url, **options)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, **options)


def dbapi_connection(engine: Engine) -> Any:
    """A new DBAPI connection to ``engine``'s database, outside its pool and its events; the caller closes it."""
    cargs, cparams = engine.dialect.create_connect_args(engine.url)
    return engine.dialect.connect(*cargs, **cparams)


class Database:
    """Binds one engine to one Flask app and hands out the request's session."""

    def __init__(self, url_key: str, metadata: MetaData) -> None:
        self.url_key = url_key
        self.metadata = metadata

    def init_app(self, app: Flask) -> None:
        """Create the engine from ``app.config[url_key]`` and close sessions at teardown."""
        engine = make_engine(app.config[self.url_key], **app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}))
        app.extensions["database"] = self
        app.extensions["engine"] = engine

        @app.teardown_appcontext
        def _close(_exc: BaseException | None) -> None:
            session = g.pop("_db_session", None)
            if session is not None:
                session.close()

    @property
    def engine(self) -> Engine:
        """The current app's engine."""
        engine: Engine = current_app.extensions["engine"]
        return engine

    @property
    def session(self) -> Session:
        """The session of the current request, job or command (created on first use)."""
        session: Session | None = g.get("_db_session")
        if session is None:
            session = Session(bind=self.engine, expire_on_commit=False)
            g._db_session = session
        return session
