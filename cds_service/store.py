"""The card and feedback store: every card the service returns, and what clinicians did with it.

Why it exists: the CDS committee decides whether a recommendation stays on from which cards are accepted,
which are overridden and why. So every card returned is recorded, and feedback is only taken for a card we
returned (see feedback.py for what a feedback entry must look like).

What is kept is deliberately thin: a card's uuid, the recommendation it spoke for, its indicator, the
service and hook, when it was shown, and its suggestions' uuids. No patient identifier, no patient data,
no card text: a stolen store tells nothing about a patient. Feedback adds the outcome, its time, the
accepted suggestions' uuids and the override reason (a Coding and the clinician's comment).

Storage is SQLAlchemy 2: a SQLite file by default (created on first start), PostgreSQL by URL when several
hosts share one store. The schema is created and upgraded by Alembic (cds_service/migrations) at start-up,
so an upgrade of the service never loses stored feedback. Cards are written as one multi-row INSERT in one
transaction, for one call or for several (recording.py writes them off the request path); reading happens only for
feedback and for the report.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from .errors import ServiceError

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: one number for every host's start-up: only one of them migrates a shared PostgreSQL store at a time
_MIGRATION_LOCK = 0x1_71C_CD5


class StoreError(ServiceError):
    """The store cannot be reached or is not in a state we can use; the reason says which (never a URL)."""


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database: PostgreSQL keeps the zone (timestamptz), SQLite gets
    naive UTC text, and both read back as aware UTC, so comparisons never mix naive and aware times."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the store keeps aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class Card(Base):
    """A card the service returned. No patient data: only what identifies the card and the recommendation."""

    __tablename__ = "cds_card"
    __table_args__ = (Index("ix_cds_card_shown_at", "shown_at"),)

    uuid: Mapped[str] = mapped_column(String(64), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(64))
    hook: Mapped[str] = mapped_column(String(64))
    #: source.topic.code of the card: the recommendation it speaks for ("" when the card names none)
    recommendation: Mapped[str] = mapped_column(String(128))
    indicator: Mapped[str] = mapped_column(String(16))
    shown_at: Mapped[datetime] = mapped_column(UtcDateTime())
    #: the uuids of the card's suggestions, in card order
    suggestions: Mapped[list[str]] = mapped_column(JSON)


class Feedback(Base):
    """One feedback entry, as the CDS client sent it, for a card we returned."""

    __tablename__ = "cds_feedback"
    __table_args__ = (Index("ix_cds_feedback_card", "card_uuid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    card_uuid: Mapped[str] = mapped_column(String(64), ForeignKey("cds_card.uuid", ondelete="CASCADE"))
    outcome: Mapped[str] = mapped_column(String(16))  # accepted | overridden
    outcome_at: Mapped[datetime] = mapped_column(UtcDateTime())
    accepted_suggestions: Mapped[list[str]] = mapped_column(JSON)
    override_system: Mapped[str | None] = mapped_column(String(256))
    override_code: Mapped[str | None] = mapped_column(String(128))
    override_display: Mapped[str | None] = mapped_column(String(512))
    override_comment: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())


CARDS = cast(Table, Card.__table__)
FEEDBACK = cast(Table, Feedback.__table__)


@dataclass(frozen=True)
class RecordedCard:
    """What feedback is checked against."""

    uuid: str
    service_id: str
    suggestions: tuple[str, ...]


@dataclass(frozen=True)
class FeedbackEntry:
    """A validated feedback entry (feedback.py builds these), ready to store."""

    card: str
    outcome: str
    outcome_at: datetime
    accepted_suggestions: tuple[str, ...] = ()
    override_system: str | None = None
    override_code: str | None = None
    override_display: str | None = None
    override_comment: str | None = None


@dataclass(frozen=True)
class CardOutcome:
    """One card shown in a period, with its latest feedback (None: no feedback, i.e. ignored)."""

    recommendation: str
    shown_at: datetime
    outcome: str | None
    override_system: str | None
    override_code: str | None
    override_display: str | None
    override_comment: str | None


def engine_url(store_url: str) -> URL:
    """The SQLAlchemy URL, with psycopg (3) as the PostgreSQL driver: the one this package installs."""
    try:
        url = make_url(store_url)
    except ArgumentError as exc:
        raise StoreError("the store URL cannot be parsed") from exc
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    """WAL lets the workers read while one writes; NORMAL sync makes a commit no fsync (a power cut may lose
    the last commits, never the file); busy_timeout makes a worker wait for another's write, not fail."""
    cursor = connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


class Store:
    """The store behind one SQLAlchemy engine. Thread-safe (the engine pools connections)."""

    def __init__(self, store_url: str, *, create: bool = True):
        """create=False (the report) opens an existing SQLite file only, rather than leave an empty one behind."""
        url = engine_url(store_url)
        self.kind = url.get_backend_name()
        if self.kind == "sqlite" and url.database and url.database != ":memory:":
            if create:
                try:
                    Path(url.database).parent.mkdir(parents=True, exist_ok=True)  # nothing to set up: a file on first start
                except OSError as exc:
                    raise StoreError(f"cannot create the folder of the store {url.database}: {exc.strerror}") from exc
            elif not Path(url.database).is_file():
                raise StoreError(f"no store at {url.database}: the service creates it on its first start")
        self.engine: Engine = create_engine(url, pool_pre_ping=self.kind != "sqlite")
        if self.kind == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._pid = os.getpid()

    # ---- start-up -------------------------------------------------------------------------------------

    def upgrade(self) -> None:
        """Create or upgrade the schema to the newest migration (Alembic), under a lock on PostgreSQL so that
        hosts starting together do not migrate at once."""
        from alembic import command

        with self._failing(f"cannot create or upgrade the {self.kind} store"), self.engine.begin() as connection:
            if self.kind == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            command.upgrade(alembic_config(connection), "head")

    def check_current(self) -> None:
        """Refuse (StoreError) a store the service has not created, or one at another schema version."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
        with self._failing(f"cannot read the {self.kind} store"), self.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        if current is None:
            raise StoreError("the store holds no cards yet: the service creates it on its first start")
        if current != head:
            raise StoreError(f"the store is at schema {current}, this version reads {head}: start the service once to upgrade it")

    def purge(self, retention_days: int, *, now: datetime | None = None) -> int:
        """Delete cards shown more than retention_days ago, and their feedback; 0 keeps everything.
        Returns how many cards were deleted."""
        if retention_days <= 0:
            return 0
        cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
        old = select(CARDS.c.uuid).where(CARDS.c.shown_at < cutoff)
        # feedback first: SQLite enforces the foreign key only when asked
        with self._failing(f"cannot delete old cards from the {self.kind} store"), self.engine.begin() as connection:
            connection.execute(delete(FEEDBACK).where(FEEDBACK.c.card_uuid.in_(old)))
            return connection.execute(delete(CARDS).where(CARDS.c.shown_at < cutoff)).rowcount or 0

    def release_connections(self) -> None:
        """Close pooled connections: called before gunicorn forks, so no worker inherits a parent's socket."""
        self.engine.dispose()

    # ---- the hook-call path ----------------------------------------------------------------------------

    def record_cards(self, service_id: str, hook: str, cards: Sequence[dict], *, now: datetime | None = None) -> None:
        """One multi-row INSERT in one transaction for all the cards of one call."""
        self.insert_cards(card_rows(service_id, hook, cards, now or datetime.now(UTC)))

    def insert_cards(self, rows: Sequence[dict[str, Any]]) -> None:
        """Rows made by card_rows (of one call or several) in one multi-row INSERT, in one transaction."""
        self._after_fork()
        if not rows:
            return
        with self._failing(f"cannot record cards in the {self.kind} store"), self.engine.begin() as connection:
            connection.execute(insert(CARDS), rows)

    # ---- feedback -------------------------------------------------------------------------------------

    def cards(self, uuids: Iterable[str]) -> dict[str, RecordedCard]:
        """The recorded cards among these uuids."""
        self._after_fork()
        wanted = sorted(set(uuids))
        if not wanted:
            return {}
        query = select(CARDS.c.uuid, CARDS.c.service_id, CARDS.c.suggestions).where(CARDS.c.uuid.in_(wanted))
        with self._failing(f"cannot read cards from the {self.kind} store"), self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return {row.uuid: RecordedCard(row.uuid, row.service_id, tuple(row.suggestions or ())) for row in rows}

    def record_feedback(self, entries: Sequence[FeedbackEntry], *, now: datetime | None = None) -> None:
        """All entries of one request in one transaction: a request is stored whole or not at all."""
        self._after_fork()
        received_at = now or datetime.now(UTC)
        rows = [
            {
                "card_uuid": e.card,
                "outcome": e.outcome,
                "outcome_at": e.outcome_at,
                "accepted_suggestions": list(e.accepted_suggestions),
                "override_system": e.override_system,
                "override_code": e.override_code,
                "override_display": e.override_display,
                "override_comment": e.override_comment,
                "received_at": received_at,
            }
            for e in entries
        ]
        if not rows:
            return
        with self._failing(f"cannot store feedback in the {self.kind} store"), self.engine.begin() as connection:
            connection.execute(insert(FEEDBACK), rows)

    # ---- the report ------------------------------------------------------------------------------------

    def outcomes(self, since: datetime, until: datetime) -> list[CardOutcome]:
        """Every card shown in [since, until), with its latest feedback by outcome time (a card ignored at
        first may be acted on later; the last thing the clinician did is what the card came to)."""
        self._after_fork()
        cards_query = (select(CARDS.c.uuid, CARDS.c.recommendation, CARDS.c.shown_at)
                       .where(CARDS.c.shown_at >= since, CARDS.c.shown_at < until))
        feedback_query = (
            select(FEEDBACK.c.card_uuid, FEEDBACK.c.outcome, FEEDBACK.c.override_system, FEEDBACK.c.override_code,
                   FEEDBACK.c.override_display, FEEDBACK.c.override_comment)
            .join(CARDS, CARDS.c.uuid == FEEDBACK.c.card_uuid)
            .where(CARDS.c.shown_at >= since, CARDS.c.shown_at < until)
            .order_by(FEEDBACK.c.outcome_at, FEEDBACK.c.id)
        )
        with self._failing(f"cannot read the {self.kind} store"), self.engine.connect() as connection:
            cards = connection.execute(cards_query).all()
            latest = {row.card_uuid: row for row in connection.execute(feedback_query)}  # later rows win
        result = []
        for card in cards:
            fb = latest.get(card.uuid)
            result.append(CardOutcome(
                recommendation=card.recommendation,
                shown_at=card.shown_at,
                outcome=fb.outcome if fb else None,
                override_system=fb.override_system if fb and fb.outcome == "overridden" else None,
                override_code=fb.override_code if fb and fb.outcome == "overridden" else None,
                override_display=fb.override_display if fb and fb.outcome == "overridden" else None,
                override_comment=fb.override_comment if fb and fb.outcome == "overridden" else None,
            ))
        return result

    def table_names(self) -> set[str]:
        with self.engine.connect() as connection:
            return set(inspect(connection).get_table_names())

    @contextmanager
    def _failing(self, what: str) -> Iterator[None]:
        """Database errors as StoreError saying what failed; the driver's message is left out, since it may
        quote the URL (and a password) or the values written."""
        try:
            yield
        except SQLAlchemyError as exc:
            raise StoreError(f"{what}: {type(exc).__name__}") from exc

    def _after_fork(self) -> None:
        """A worker forked from the process that made the engine must not use the parent's pooled sockets."""
        if os.getpid() != self._pid:
            self.engine.dispose(close=False)
            self._pid = os.getpid()


def card_rows(service_id: str, hook: str, cards: Sequence[dict], shown_at: datetime) -> list[dict[str, Any]]:
    """The rows that record the cards of one call: what identifies each card and its recommendation, nothing else."""
    return [
        {
            "uuid": card["uuid"],
            "service_id": service_id,
            "hook": hook,
            "recommendation": _topic_code(card),
            "indicator": str(card.get("indicator", "")),
            "shown_at": shown_at,
            "suggestions": [s["uuid"] for s in card.get("suggestions", ()) if isinstance(s, dict) and "uuid" in s],
        }
        for card in cards
    ]


def _topic_code(card: dict) -> str:
    source = card.get("source")
    topic = source.get("topic") if isinstance(source, dict) else None
    code = topic.get("code") if isinstance(topic, dict) else None
    return code if isinstance(code, str) else ""


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for our migrations, without an alembic.ini: the script folder ships inside
    the package, and env.py migrates the connection passed here."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config
