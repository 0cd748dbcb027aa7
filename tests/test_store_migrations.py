"""The store's Alembic migrations: an empty database upgrades to head, the models are what the migrations build
(so no change to the models ships without its migration), and stored feedback survives every upgrade step.

On SQLite and on the real PostgreSQL (tests/store_fixtures.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, MetaData, String, select, text

from cds_service.store import CARDS, FEEDBACK, MIGRATIONS, Base, FeedbackEntry, Store, StoreError, alembic_config


def differences(store: Store, metadata: MetaData) -> list:
    with store.engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), metadata)


def revisions() -> list[str]:
    """Every revision, oldest first."""
    return [r.revision for r in ScriptDirectory(str(MIGRATIONS)).walk_revisions()][::-1]


def test_an_empty_database_upgrades_to_head_and_matches_the_models(store_url):
    store = Store(store_url)
    assert store.table_names() == set()
    store.upgrade()
    assert {"cds_card", "cds_feedback", "alembic_version"} <= store.table_names()
    store.check_current()
    assert differences(store, Base.metadata) == []
    store.upgrade()  # every start-up runs it: a no-op at head
    assert differences(store, Base.metadata) == []


def test_the_comparison_sees_a_model_change_without_its_migration(store_url):
    """The check above is only worth something if a column added to a model, with no migration, shows."""
    store = Store(store_url)
    store.upgrade()
    changed = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["cds_feedback"].append_column(Column("clinician_role", String(32)))
    found = differences(store, changed)
    assert [(d[0], d[3].name) for d in found if d[0] == "add_column"] == [("add_column", "clinician_role")]


def test_stored_feedback_survives_every_upgrade_step(store_url):
    """Data written at the first revision, then each later revision applied in turn: the cards and feedback
    are still there, readable through the current models."""
    store = Store(store_url)
    steps = revisions()
    with store.engine.begin() as connection:
        command.upgrade(alembic_config(connection), steps[0])
    store.record_cards("ivig-order-select", "order-select", [
        {"uuid": "c-1", "indicator": "warning", "source": {"topic": {"code": "GBS-1"}}, "suggestions": [{"uuid": "s-1"}]}])
    store.record_feedback([FeedbackEntry(card="c-1", outcome="overridden", outcome_at=datetime(2026, 11, 24, 10, tzinfo=UTC),
                                         override_system="urn:x", override_code="risk-benefit-ratio",
                                         override_comment="kept through upgrades")])
    for step in steps[1:]:
        with store.engine.begin() as connection:
            command.upgrade(alembic_config(connection), step)
    store.upgrade()
    store.check_current()
    with store.engine.connect() as connection:
        card = connection.execute(select(CARDS)).one()._mapping
        feedback = connection.execute(select(FEEDBACK)).one()._mapping
    assert (card["uuid"], card["recommendation"], card["suggestions"]) == ("c-1", "GBS-1", ["s-1"])
    assert (feedback["card_uuid"], feedback["override_code"], feedback["override_comment"]) == (
        "c-1", "risk-benefit-ratio", "kept through upgrades")
    assert feedback["outcome_at"] == datetime(2026, 11, 24, 10, tzinfo=UTC)


def test_a_store_the_service_never_created_is_refused_by_the_report(store_url, tmp_path):
    with pytest.raises(StoreError, match="creates it on its first start"):
        Store(f"sqlite:///{tmp_path / 'absent.sqlite3'}", create=False)
    store = Store(store_url)
    with pytest.raises(StoreError, match="holds no cards yet"):
        store.check_current()
    store.upgrade()
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'older'"))
    with pytest.raises(StoreError, match="at schema older"):
        store.check_current()
