"""A real PostgreSQL 16 for the benchmarks (pgserver, data under bench/out/pgdata)."""

from __future__ import annotations

import warnings
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def fresh_database(name: str) -> str:
    """Drop and make database ``name`` (with pgvector); its URL."""
    import pgserver

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(OUT / "pgdata", cleanup_mode=None)
    server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
    server.psql(f"DROP DATABASE IF EXISTS {name};")
    server.psql(f"CREATE DATABASE {name};")
    return str(server.get_uri(name))
