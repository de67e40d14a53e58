"""Alembic migrations: up, down, and upgrading a log created by an older revision with data in it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from app.core.errors import StoreError
from app.store import EvalLog, db
from app.store.models import Base
from tests.store.helpers import logged, model, request


def tables(path: Path) -> set[str]:
    con = sqlite3.connect(path)
    try:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        con.close()


def revision(path: Path) -> str | None:
    con = sqlite3.connect(path)
    try:
        row = con.execute("SELECT version_num FROM alembic_version").fetchone()
        return row[0] if row else None
    finally:
        con.close()


def test_open_applies_every_migration(db_path: Path) -> None:
    EvalLog.open(db_path).close()
    assert revision(db_path) == db.head_revision() == "0008"
    assert {"notes", "models", "runs", "raters", "ratings", "comparisons", "batches"} <= tables(db_path)


def test_migrated_schema_matches_the_models(db_path: Path) -> None:
    with EvalLog.open(db_path) as log, log.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_downgrade_to_base_and_up_again(db_path: Path) -> None:
    log = EvalLog.open(db_path)
    db.downgrade(log.engine, "0001")
    assert revision(db_path) == "0001"
    assert "batches" not in tables(db_path)
    db.downgrade(log.engine, "base")
    assert tables(db_path) == {"alembic_version"}
    db.migrate(log.engine, db_path)
    assert revision(db_path) == db.head_revision() and "runs" in tables(db_path)
    log.close()


def test_upgrade_keeps_data_written_at_revision_0001(db_path: Path) -> None:
    # Build a log at 0001 and fill it through that schema's SQL (today's API writes 0002 columns).
    db_path.parent.mkdir()
    engine = db.make_engine(db_path, 2.0)
    db.set_wal(engine, db_path)
    db.migrate(engine, db_path, "0001")
    engine.dispose()
    con = sqlite3.connect(db_path)
    ts = "2026-10-01T12:00:00.000000+00:00"
    con.executescript(f"""
        INSERT INTO notes VALUES (1, '{"a" * 64}', 42, 'old note', '{ts}');
        INSERT INTO models VALUES (1, '{"b" * 64}', 'old.gguf', 'Old', 'llama', 'Q8_0', NULL, 2048, 10,
                                   'asclepius', 0, '{{}}', '{ts}');
        INSERT INTO runs (id, uuid, status, note_id, model_id, task, instruction, max_tokens, temperature,
                          top_p, top_k, min_p, repeat_penalty, seed, truncate_allowed, params_hash,
                          started_at, finished_at, answer, finish_reason)
        VALUES (1, 'old-run', 'finished', 1, 1, 'Summarization', 'Summarize.', 400, 0, 1, 0, 0, 1, 0, 0,
                '{"c" * 64}', '{ts}', '{ts}', 'old answer', 'stop');
        INSERT INTO raters VALUES (1, 'dr-old', 'human', '{ts}');
        INSERT INTO ratings VALUES (1, 1, 1, 3, 0, 'fine', NULL, 1, '{ts}');
    """)
    con.commit()
    con.close()
    assert revision(db_path) == "0001"

    with EvalLog.open(db_path) as log:
        assert revision(db_path) == db.head_revision()
        old = log.get_run("old-run")
        assert old is not None
        assert (old.answer, old.model_file, old.note_text, old.batch_id) == ("old answer", "old.gguf", "old note", None)
        assert [(r.rater, r.score, r.comment) for r in log.rating_history("old-run")] == [("dr-old", 3, "fine")]
        # The new columns work on the upgraded file, foreign keys included.
        bid = log.start_batch("items.csv", "d" * 64)
        rid = log.start_run(request(), model(), batch_id=bid, resume="e" * 64)
        assert log.count_runs() == 2 and log.get_run(rid).batch_id == bid  # type: ignore[union-attr]
        with pytest.raises(StoreError):
            log.start_run(request(), model(), batch_id=999)
        assert log.integrity_check() == ["ok"]


def test_upgrade_from_0002_adds_remote_provenance_and_keeps_runs(db_path: Path) -> None:
    from dataclasses import replace

    with EvalLog.open(db_path) as log:
        rid = logged(log)
        db.downgrade(log.engine, "0002")
    assert revision(db_path) == "0002"
    con = sqlite3.connect(db_path)
    assert "endpoint" not in {r[1] for r in con.execute("PRAGMA table_info(runs)")}
    con.close()
    with EvalLog.open(db_path) as log:
        assert revision(db_path) == db.head_revision()
        old = log.get_run(rid)
        assert old is not None and old.answer and old.endpoint is None and old.served_model is None
        # A remote run: the endpoint and served name are recorded at start, the server's account at finish.
        m = replace(model(), sha256="f" * 64, provenance={"endpoint": "http://gpu:8000/v1", "served_model": "asc-7b"})
        req = request()
        new = log.start_run(req, m)
        started = log.get_run(new)
        assert started is not None and (started.endpoint, started.served_model) == ("http://gpu:8000/v1", "asc-7b")
        from tests.store.helpers import result

        remote = {"endpoint": "http://gpu:8000/v1", "served_model": "asc-7b", "reported_model": "asc-7b"}
        log.finish_run(new, replace(result(req, m), **remote, system_fingerprint="fp_1", usage_reported=True))
        done = log.get_run(new)
        assert done is not None and (done.reported_model, done.system_fingerprint) == ("asc-7b", "fp_1")


def test_downgrade_from_head_keeps_runs(db_path: Path) -> None:
    with EvalLog.open(db_path) as log:
        rid = logged(log)
        log.add_rating(rid, "dr-lee", 4)
        db.downgrade(log.engine, "0001")
    con = sqlite3.connect(db_path)
    assert con.execute("SELECT id, status FROM runs").fetchall() == [(rid, "finished")]
    # Rebuilding "runs" must not cascade into its ratings.
    assert con.execute("SELECT run_id, score FROM ratings").fetchall() == [(rid, 4)]
    con.close()


def test_log_from_a_newer_version_is_refused_untouched(db_path: Path) -> None:
    EvalLog.open(db_path).close()
    con = sqlite3.connect(db_path)
    con.execute("UPDATE alembic_version SET version_num = '0099'")
    con.commit()
    con.close()
    before = db_path.read_bytes()
    with pytest.raises(StoreError, match="newer version"):
        EvalLog.open(db_path)
    assert db_path.read_bytes() == before
