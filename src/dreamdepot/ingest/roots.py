"""A registered folder, as the catalog's ``roots`` table holds it (kept apart from the
pipeline so that commands which only read the catalog do not import every reader)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Root:
    id: int
    path: str
    watch: bool = True
    online: bool = True
