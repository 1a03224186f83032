"""Shared fixtures: temporary libraries, the shared corpus, a CLI runner, file builders."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dreamdepot.cli import app
from dreamdepot.library import Library

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


@pytest.fixture
def corpus() -> Path:
    if not (CORPUS / "MANIFEST.tsv").is_file():
        pytest.skip("../shared/corpus is not present beside the checkout")
    return CORPUS


@pytest.fixture
def library_path(tmp_path: Path) -> Path:
    return tmp_path / "library"


@pytest.fixture
def library(library_path: Path) -> Iterator[Library]:
    lib = Library.open(library_path)
    yield lib
    lib.close()


class Cli:
    """Runs `dreamdepot --library <tmp> ...` in-process, failing loudly on surprises."""

    def __init__(self, library_path: Path) -> None:
        self.library_path = library_path
        self.runner = CliRunner()

    def __call__(self, *args: str, expect: int = 0, input: str | None = None) -> Any:
        result = self.runner.invoke(app, ["--library", str(self.library_path), *args], input=input)
        if result.exit_code != expect:
            raise AssertionError(
                f"dreamdepot {' '.join(args)} exited {result.exit_code} (expected {expect})\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}\n{result.exception!r}"
            )
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args).stdout)

    def jsonl(self, *args: str) -> list[Any]:
        return [json.loads(line) for line in self(*args).stdout.splitlines() if line.strip()]


@pytest.fixture
def cli(library_path: Path) -> Cli:
    return Cli(library_path)


def catalog(library_path: Path) -> Any:
    """A connection to the library's catalog, on whichever engine the suite runs: rows read
    by position or column name, ``?`` placeholders (catalog/engine.py)."""
    url = os.environ.get("DREAMDEPOT_DATABASE_URL")
    if url:
        from dreamdepot.catalog.db import Catalog

        return Catalog.open(url).conn
    conn = sqlite3.connect(library_path / "catalog.sqlite")
    conn.row_factory = sqlite3.Row
    return conn


ENGINE = os.environ.get("DREAMDEPOT_TEST_ENGINE", "sqlite")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only(reason): the test is about the embedded SQLite catalog itself"
    )
    config.addinivalue_line(
        "markers",
        "engine_independent(reason): the test's subject does not touch the catalog's engine; "
        "it runs in the SQLite pass only",
    )


@pytest.fixture(autouse=True)
def _engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """With DREAMDEPOT_TEST_ENGINE=postgresql every library the test makes keeps its catalog
    in a fresh PostgreSQL database (the session's pgserver), through the library's own
    setting (DREAMDEPOT_DATABASE_URL, inherited by the processes a test starts)."""
    monkeypatch.delenv("DREAMDEPOT_DATABASE_URL", raising=False)
    if ENGINE != "postgresql":
        return
    for name, why in (("sqlite_only", "SQLite only"), ("engine_independent", "not engine")):
        marker = request.node.get_closest_marker(name)
        if marker is not None:
            pytest.skip(f"{why}: {marker.args[0] if marker.args else ''}")
    monkeypatch.setenv("DREAMDEPOT_DATABASE_URL", request.getfixturevalue("postgres_url"))


@pytest.fixture(autouse=True)
def _no_env_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DREAMDEPOT_LIBRARY", raising=False)
    monkeypatch.delenv("DREAMDEPOT_TOKEN", raising=False)
    monkeypatch.setenv("DREAMDEPOT_WORKERS", os.environ.get("TEST_WORKERS", "2"))
    # background auto-tagging stays off unless a test turns it on (test_autotag.py)
    monkeypatch.setenv("DREAMDEPOT_AUTOTAG", "")


_exit_status: dict[str, int] = {}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status["code"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave without tearing down the interpreter. torch, onnxruntime and dlib each keep
    native thread pools; destroying them in interpreter shutdown order can abort the process
    ("terminate called without an active exception") after every test has passed, which
    would turn a green run red. The exit status is pytest's own."""
    import sys

    if "code" in _exit_status:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status["code"])


@pytest.fixture
def file_manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``xdg-open`` that writes its arguments to a file, first on PATH, no session bus."""
    bin_dir, record = tmp_path / "bin", tmp_path / "opened.txt"
    bin_dir.mkdir()
    script = bin_dir / "xdg-open"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{record}"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    return record


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real PostgreSQL 16 with pgvector (pgserver's private server in a temporary
    folder), started once for the session and stopped at its end."""
    pgserver = pytest.importorskip("pgserver", reason="pgserver is in the dev extra")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "XDG_RUNTIME_DIR is not set"
        server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
    yield server
    server.cleanup()


@pytest.fixture
def postgres_url(postgres_server: Any, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on the session's PostgreSQL, for one test."""
    import re

    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:50]
    postgres_server.psql(f"DROP DATABASE IF EXISTS {name};")
    postgres_server.psql(f"CREATE DATABASE {name};")
    return str(postgres_server.get_uri(name))


def scalar(library_path: Path, sql: str) -> Any:
    """The one value ``sql`` reads from a library another process is writing (read-only;
    None until the catalog exists), on whichever engine the suite runs."""
    url = os.environ.get("DREAMDEPOT_DATABASE_URL")
    if url:
        import psycopg

        try:
            with psycopg.connect(url, autocommit=True) as pg:
                row = pg.execute(sql).fetchone()
                return row[0] if row else None
        except psycopg.Error:
            return None
    try:
        conn = sqlite3.connect(
            f"file:{library_path / 'catalog.sqlite'}?mode=ro", uri=True, timeout=5
        )
        try:
            row = conn.execute(sql).fetchone()
            return row[0] if row else None
        finally:
            conn.close()
    except sqlite3.Error:
        return None


def count_rows(library_path: Path, table: str) -> int:
    """Rows in a table of a library another process is writing (0 until it exists)."""
    return int(scalar(library_path, f"SELECT count(*) FROM {table}") or 0)


def integrity_problems(library_path: Path) -> list[str]:
    """What is wrong with a library's catalog, on either engine (empty: sound). SQLite: its
    integrity and foreign-key checks. Both: the counters the triggers keep agree with the
    rows they count."""
    conn = catalog(library_path)
    problems: list[str] = []
    try:
        if not os.environ.get("DREAMDEPOT_DATABASE_URL"):
            result = conn.execute("PRAGMA integrity_check").fetchone()[0]
            if result != "ok":
                problems.append(f"integrity_check: {result}")
            problems += [
                f"foreign key: {tuple(r)}" for r in conn.execute("PRAGMA foreign_key_check")
            ]
        for table, column, counted in (
            ("tags", "image_count", "SELECT count(*) FROM image_tags x WHERE x.tag_id = t.id"),
            ("prompts", "image_count",
             "SELECT count(*) FROM images x WHERE x.prompt_id = t.id"),
        ):  # fmt: skip
            bad = conn.execute(
                f"SELECT count(*) FROM {table} t WHERE t.{column} <> ({counted})"
            ).fetchone()[0]
            if bad:
                problems.append(f"{bad} {table} rows with a wrong {column}")
    finally:
        conn.close()
    return problems
