"""The embedded registry: one SQLite file in WAL mode.

Every write runs in a `BEGIN IMMEDIATE` transaction, which takes the database's write lock
before reading, so a compare-and-set reads and writes the alias atomically even across
processes; the alias move and its history row commit together. A connection is opened per
operation, so one `SqliteRegistry` may be shared by threads and survives `fork`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bidscore.errors import ConflictError, NotFoundError, RegistryError
from bidscore.experiments import ARMS, Experiment, ExperimentEvent
from bidscore.manifest import Manifest
from bidscore.modes import create_file, make_dirs
from bidscore.registry.base import (
    Alias,
    AliasMove,
    Clock,
    Version,
    check_alias_move,
    check_name,
    check_run,
    event_of,
    running_conflict,
    starting,
    stopping,
    utc_now,
    version_number,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    manifest TEXT NOT NULL,
    artifact_uri TEXT NOT NULL,
    created_at TEXT NOT NULL,
    idem_key TEXT,
    PRIMARY KEY (model, version),
    UNIQUE (model, idem_key)
);
CREATE TABLE IF NOT EXISTS aliases (
    model TEXT NOT NULL,
    alias TEXT NOT NULL,
    version TEXT NOT NULL,
    generation INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (model, alias)
);
CREATE TABLE IF NOT EXISTS alias_history (
    model TEXT NOT NULL,
    alias TEXT NOT NULL,
    generation INTEGER NOT NULL,
    from_version TEXT,
    to_version TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (model, alias, generation)
);
CREATE TABLE IF NOT EXISTS locks (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_model ON runs (model, first_seen);
CREATE TABLE IF NOT EXISTS experiments (
    name TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    state TEXT NOT NULL,
    generation INTEGER NOT NULL,
    body TEXT NOT NULL
);
-- At most one running experiment per model, enforced by the database itself.
CREATE UNIQUE INDEX IF NOT EXISTS one_running_experiment
    ON experiments (model) WHERE state = 'running';
CREATE TABLE IF NOT EXISTS experiment_history (
    name TEXT NOT NULL,
    generation INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (name, generation)
);
CREATE TABLE IF NOT EXISTS params (
    model TEXT PRIMARY KEY,
    saved_at TEXT NOT NULL,
    body TEXT NOT NULL
);
"""

# Seconds a writer waits for another writer's transaction before giving up.
_BUSY_TIMEOUT_S = 30.0


def path_from_url(url: str) -> Path:
    """`sqlite:///abs/path.db` -> /abs/path.db; `sqlite://rel/path.db` -> rel/path.db."""
    rest = url.removeprefix("sqlite://").split("?", 1)[0]
    if not rest or rest == "/":
        raise RegistryError(
            f"registry URL {url!r} names no file (expected sqlite:///path/registry.db)"
        )
    if rest.startswith("/"):
        rest = "/" + rest.lstrip("/")
    return Path(rest)


def missing_message(url: str) -> str | None:
    path = path_from_url(url)
    if path.exists():
        return None
    return (
        f"registry {path} does not exist (check --registry / BIDSCORE_REGISTRY; "
        "a writing command such as `control train` creates it)"
    )


class SqliteRegistry:
    """A registry in one SQLite file (created, with its directory, on first use when
    `create`; `created` says whether this object created it)."""

    def __init__(self, url: str, *, clock: Clock = time.time, create: bool = True) -> None:
        self.url = url
        self._clock = clock  # lock expiry reads it; tests inject a fake
        self.path = path_from_url(url)
        missing = missing_message(url)
        if missing is not None and not create:
            raise RegistryError(missing)
        self.created = missing is not None
        try:
            make_dirs(self.path.parent)
        except OSError as exc:
            raise RegistryError(
                f"cannot create registry directory {self.path.parent}: {exc}"
            ) from exc
        if self.created:
            # Created here with an explicit mode (SQLite gives its -wal and -shm files the
            # database's permissions); another process creating it first is fine.
            try:
                create_file(self.path).close()
            except FileExistsError:
                pass
            except OSError as exc:
                raise RegistryError(f"cannot create registry {self.path}: {exc}") from exc
        with self._connect() as conn:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
            except sqlite3.Error as exc:
                raise RegistryError(f"registry {self.path} is not usable: {exc}") from exc

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            # isolation_level=None: no implicit transactions; writes say BEGIN IMMEDIATE.
            conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise RegistryError(f"cannot open registry {self.path}: {exc}") from exc
        try:
            yield conn
        except sqlite3.Error as exc:
            raise RegistryError(f"registry {self.path}: {exc}") from exc
        finally:
            conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # --- versions ---------------------------------------------------------------------------

    def register_version(
        self, model: str, manifest: Manifest, artifact_uri: str, *, key: str | None = None
    ) -> Version:
        check_name("model", model)
        with self._write() as conn:
            if key is not None:
                row = conn.execute(
                    "SELECT * FROM versions WHERE model = ? AND idem_key = ?", (model, key)
                ).fetchone()
                if row is not None:
                    return _version(row)
            (last,) = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM versions WHERE model = ?", (model,)
            ).fetchone()
            number = int(last) + 1
            body = manifest.replace(model=model, version=str(number), artifact_uri=artifact_uri)
            created_at = utc_now()
            conn.execute(
                "INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?)",
                (model, number, json.dumps(body.to_json()), artifact_uri, created_at, key),
            )
            return Version(model, str(number), body, artifact_uri, created_at, key)

    def get_version(self, model: str, version: str) -> Version:
        number = version_number(model, version)
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM versions WHERE model = ? AND version = ?", (model, number)
            ).fetchone()
            if row is not None:
                return _version(row)
            known = conn.execute(
                "SELECT 1 FROM versions WHERE model = ? LIMIT 1", (model,)
            ).fetchone()
        if known is None:
            raise NotFoundError(f"unknown model {model!r}: no version registered")
        raise NotFoundError(f"model {model!r} has no version {version!r}")

    def find_version(self, model: str, key: str) -> Version | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM versions WHERE model = ? AND idem_key = ?", (model, key)
            ).fetchone()
        return None if row is None else _version(row)

    def list_versions(self, model: str | None = None) -> list[Version]:
        with self._connect() as conn:
            if model is None:
                rows = conn.execute("SELECT * FROM versions ORDER BY model, version").fetchall()
            else:
                rows = conn.execute(
                    "SELECT * FROM versions WHERE model = ? ORDER BY version", (model,)
                ).fetchall()
        return [_version(r) for r in rows]

    # --- aliases ----------------------------------------------------------------------------

    def get_alias(self, model: str, alias: str) -> Alias | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT model, alias, version, generation, updated_at, updated_by FROM aliases"
                " WHERE model = ? AND alias = ?",
                (model, alias),
            ).fetchone()
        return None if row is None else Alias(*row)

    def list_aliases(self, model: str) -> list[Alias]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT model, alias, version, generation, updated_at, updated_by FROM aliases"
                " WHERE model = ? ORDER BY alias",
                (model,),
            ).fetchall()
        return [Alias(*row) for row in rows]

    def set_alias(
        self,
        model: str,
        alias: str,
        version: str,
        *,
        expected_generation: int,
        actor: str,
        reason: str,
        kind: str = "promote",
    ) -> Alias:
        number = check_alias_move(model, alias, version, kind)
        with self._write() as conn:
            exists = conn.execute(
                "SELECT 1 FROM versions WHERE model = ? AND version = ?", (model, number)
            ).fetchone()
            if exists is None:
                raise NotFoundError(f"model {model!r} has no version {version!r}")
            row = conn.execute(
                "SELECT version, generation FROM aliases WHERE model = ? AND alias = ?",
                (model, alias),
            ).fetchone()
            current_version, generation = (None, 0) if row is None else (row[0], int(row[1]))
            if generation != expected_generation:
                raise ConflictError(
                    f"{model}/{alias} moved: expected generation {expected_generation}, it is now"
                    f" {generation} (version {current_version}); read it again and retry"
                )
            now, new_generation = utc_now(), generation + 1
            conn.execute(
                "INSERT INTO aliases VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (model, alias) DO UPDATE SET version = excluded.version,"
                " generation = excluded.generation, updated_at = excluded.updated_at,"
                " updated_by = excluded.updated_by",
                (model, alias, str(number), new_generation, now, actor),
            )
            # The primary key (model, alias, generation) makes a duplicated move impossible.
            conn.execute(
                "INSERT INTO alias_history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    model,
                    alias,
                    new_generation,
                    current_version,
                    str(number),
                    actor,
                    reason,
                    kind,
                    now,
                ),
            )
        return Alias(model, alias, str(number), new_generation, now, actor)

    def alias_history(self, model: str, alias: str) -> list[AliasMove]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT model, alias, generation, from_version, to_version, actor, reason, at, kind"
                " FROM alias_history WHERE model = ? AND alias = ? ORDER BY generation",
                (model, alias),
            ).fetchall()
        return [AliasMove(*r) for r in rows]

    # --- locks ------------------------------------------------------------------------------

    def acquire_lock(self, name: str, owner: str, ttl_seconds: float) -> bool:
        now = self._clock()
        with self._write() as conn:
            row = conn.execute(
                "SELECT owner, expires_at FROM locks WHERE name = ?", (name,)
            ).fetchone()
            if row is not None and row[0] != owner and float(row[1]) > now:
                return False
            conn.execute(
                "INSERT INTO locks VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " owner = excluded.owner, expires_at = excluded.expires_at",
                (name, owner, now + ttl_seconds),
            )
        return True

    def release_lock(self, name: str, owner: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM locks WHERE name = ? AND owner = ?", (name, owner))

    # --- runs -------------------------------------------------------------------------------

    def put_run(self, run: dict[str, Any]) -> None:
        run_id, model = check_run(run)
        with self._write() as conn:
            conn.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET"
                " model = excluded.model, body = excluded.body",
                (run_id, model, utc_now(), json.dumps(run)),
            )

    def get_run(self, run_id: str) -> dict[str, Any]:
        with self._connect() as conn:
            row = conn.execute("SELECT body FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"unknown run {run_id!r}")
        return dict(json.loads(row[0]))

    def list_runs(self, model: str) -> list[dict[str, Any]]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT body FROM runs WHERE model = ? ORDER BY first_seen, run_id", (model,)
            ).fetchall()
        return [dict(json.loads(r[0])) for r in rows]

    # --- saved hyper-parameters -------------------------------------------------------------

    def put_params(self, model: str, record: dict[str, Any]) -> None:
        check_name("model", model)
        with self._write() as conn:
            conn.execute(
                "INSERT INTO params VALUES (?, ?, ?) ON CONFLICT (model) DO UPDATE SET"
                " saved_at = excluded.saved_at, body = excluded.body",
                (model, utc_now(), json.dumps(record)),
            )

    def get_params(self, model: str) -> dict[str, Any] | None:
        with self._connect() as conn:
            row = conn.execute("SELECT body FROM params WHERE model = ?", (model,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    # --- experiments ------------------------------------------------------------------------

    def start_experiment(self, experiment: Experiment, *, actor: str, reason: str) -> Experiment:
        record = starting(experiment, actor, reason)
        with self._write() as conn:
            for arm in ARMS:
                version = record.version_of(arm)
                exists = conn.execute(
                    "SELECT 1 FROM versions WHERE model = ? AND version = ?",
                    (record.model, int(version)),
                ).fetchone()
                if exists is None:
                    raise NotFoundError(
                        f"model {record.model!r} has no version {version!r} ({arm})"
                    )
            if conn.execute("SELECT 1 FROM experiments WHERE name = ?", (record.name,)).fetchone():
                raise ConflictError(f"experiment {record.name!r} exists: choose another name")
            running = conn.execute(
                "SELECT name FROM experiments WHERE model = ? AND state = 'running'",
                (record.model,),
            ).fetchone()
            if running is not None:
                raise running_conflict(record.model, running[0])
            conn.execute(
                "INSERT INTO experiments VALUES (?, ?, ?, ?, ?)",
                (record.name, record.model, record.state, record.generation, _dump(record)),
            )
            self._add_event(conn, event_of(record, "start"))
        return record

    def get_experiment(self, name: str) -> Experiment:
        with self._connect() as conn:
            row = conn.execute("SELECT body FROM experiments WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"unknown experiment {name!r}")
        return Experiment.from_json(json.loads(row[0]))

    def list_experiments(self, model: str | None = None) -> list[Experiment]:
        query = "SELECT body FROM experiments ORDER BY name"
        args: tuple[str, ...] = ()
        if model is not None:
            query, args = "SELECT body FROM experiments WHERE model = ? ORDER BY name", (model,)
        with self._connect() as conn:
            rows = conn.execute(query, args).fetchall()
        return [Experiment.from_json(json.loads(r[0])) for r in rows]

    def running_experiments(self) -> list[Experiment]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT body FROM experiments WHERE state = 'running' ORDER BY model"
            ).fetchall()
        return [Experiment.from_json(json.loads(r[0])) for r in rows]

    def stop_experiment(
        self,
        name: str,
        *,
        expected_generation: int,
        actor: str,
        reason: str,
        promoted: str | None = None,
    ) -> Experiment:
        with self._write() as conn:
            row = conn.execute("SELECT body FROM experiments WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFoundError(f"unknown experiment {name!r}")
            current = Experiment.from_json(json.loads(row[0]))
            record = stopping(current, expected_generation, actor, reason, promoted)
            conn.execute(
                "UPDATE experiments SET state = ?, generation = ?, body = ? WHERE name = ?",
                (record.state, record.generation, _dump(record), name),
            )
            self._add_event(conn, event_of(record, "stop"))
        return record

    def experiment_history(self, name: str) -> list[ExperimentEvent]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT body FROM experiment_history WHERE name = ? ORDER BY generation", (name,)
            ).fetchall()
        return [ExperimentEvent(**json.loads(r[0])) for r in rows]

    @staticmethod
    def _add_event(conn: sqlite3.Connection, event: ExperimentEvent) -> None:
        # The primary key (name, generation) makes a duplicated move impossible.
        conn.execute(
            "INSERT INTO experiment_history VALUES (?, ?, ?)",
            (event.name, event.generation, json.dumps(event.to_dict())),
        )


def _dump(experiment: Experiment) -> str:
    return json.dumps(experiment.to_json())


def _version(row: tuple[Any, ...]) -> Version:
    model, number, manifest, artifact_uri, created_at, key = row
    body = Manifest.from_json(json.loads(manifest))
    return Version(model, str(number), body, artifact_uri, created_at, key)
