"""The query language's clauses as a typed tree, each node able to write its own SQL for
SQLite or PostgreSQL (the beets ``dbcore`` shape: small query objects with a SQL face).

A node that can drive a plan from an index (a tag's images, a word's prompts, a folder's
files) also knows a second, *walking* form: the test of one row while the page walks the
sort order (a correlated EXISTS, or a term kept off its index). SQLite's planner cannot
tell a common tag from a rare one, so ``catalog/plans.py`` tries the walk under a time
budget and falls back to the index form; PostgreSQL's planner has statistics and is given
the index form only. Both forms of a node bind the same parameters in the same order.

>>> sql, params = And([Compare("steps", ">=", 20), Not(Tagged("nsfw"))]).render(SQLITE)
>>> sql.startswith("(images.steps >= ?) AND (NOT (images.id IN")
True
>>> And([Compare("steps", ">=", 20)]).render(POSTGRESQL)
('(images.steps >= ?)', [20])
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dreamdepot.catalog.marks import ROW_MARKS, Marks

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
SqlParams = tuple[str, list[Any]]


@dataclass(frozen=True)
class Dialect:
    """Where and how a tree is written: the engine, and which form of an index node."""

    name: str = SQLITE
    walk: bool = False
    marks: Marks = ROW_MARKS  # whose ratings and favourites ``rating:`` and ``fav`` read

    @property
    def pg(self) -> bool:
        return self.name == POSTGRESQL

    def ph(self, sql: str) -> str:
        """Placeholders are ``?`` in both dialects; the PostgreSQL connection converts them
        for psycopg (catalog/engine.py)."""
        return sql


class Clause:
    """A node of the tree; subclasses write their SQL over the ``images`` table."""

    indexed: bool = False  # has an index form and a walking form

    def sql(self, d: Dialect) -> SqlParams:
        raise NotImplementedError

    def render(self, dialect: str | Dialect = SQLITE, walk: bool = False) -> SqlParams:
        d = dialect if isinstance(dialect, Dialect) else Dialect(dialect, walk)
        return self.sql(d)

    @property
    def adaptive(self) -> bool:
        return self.indexed


@dataclass(frozen=True)
class Everything(Clause):
    def sql(self, d: Dialect) -> SqlParams:
        return "TRUE", []


@dataclass(frozen=True)
class Raw(Clause):
    """SQL both engines read alike; ``?`` placeholders."""

    text: str
    params: tuple[Any, ...] = ()

    def sql(self, d: Dialect) -> SqlParams:
        return d.ph(self.text), list(self.params)


@dataclass(frozen=True)
class _Compound(Clause):
    parts: Sequence[Clause] = field(default_factory=tuple)
    joiner: str = " AND "

    def sql(self, d: Dialect) -> SqlParams:
        if not self.parts:
            return "TRUE", []
        texts, params = [], []
        for part in self.parts:
            text, ps = part.sql(d)
            texts.append(f"({text})")
            params.extend(ps)
        return self.joiner.join(texts), params

    @property
    def adaptive(self) -> bool:
        return any(p.adaptive for p in self.parts)


class And(_Compound):
    def __init__(self, parts: Sequence[Clause]) -> None:
        super().__init__(tuple(parts), " AND ")


class Or(_Compound):
    def __init__(self, parts: Sequence[Clause]) -> None:
        super().__init__(tuple(parts), " OR ")


@dataclass(frozen=True)
class Not(Clause):
    part: Clause

    def sql(self, d: Dialect) -> SqlParams:
        text, params = self.part.sql(d)
        return f"NOT ({text})", params

    @property
    def adaptive(self) -> bool:
        return self.part.adaptive


@dataclass(frozen=True)
class Favourite(Clause):
    """The viewer's favourites (``fav``): the row's flag, or their own marks."""

    def sql(self, d: Dialect) -> SqlParams:
        return d.marks.favourite_sql(), []


@dataclass(frozen=True)
class Compare(Clause):
    """``images.COLUMN OP value`` (``=``, ``<``, ``<=``, ``>``, ``>=``)."""

    column: str
    op: str
    value: Any

    def sql(self, d: Dialect) -> SqlParams:
        return f"{d.marks.column(self.column)} {self.op} {d.ph('?')}", [self.value]


@dataclass(frozen=True)
class TextMatch(Clause):
    """Case-insensitive: a substring (``pattern`` is a LIKE pattern) or, with ``exact``,
    equality."""

    column: str
    value: str
    exact: bool = False

    def sql(self, d: Dialect) -> SqlParams:
        col = f"images.{self.column}"
        if self.exact:
            if d.pg:
                return f"lower({col}) = lower(?)", [self.value]
            return f"{col} = ? COLLATE NOCASE", [self.value]
        op = "ILIKE" if d.pg else "LIKE"
        return f"{col} {op} {d.ph('?')} ESCAPE '\\'", [self.value]


def _named(table: str, d: Dialect) -> str:
    """The id of the row of ``table`` (tags, albums) named by one parameter, any case."""
    if d.pg:
        return f"(SELECT id FROM {table} WHERE lower(name) = lower(?))"
    return f"(SELECT id FROM {table} WHERE name = ? COLLATE NOCASE)"


@dataclass(frozen=True)
class Tagged(Clause):
    """Has the tag (any source), or with ``auto_only`` a tagger's proposal not yet accepted."""

    name: str
    auto_only: bool = False
    indexed = True

    def sql(self, d: Dialect) -> SqlParams:
        tag, extra = _named("tags", d), " AND source = 'auto'" if self.auto_only else ""
        if d.walk:
            return (
                f"EXISTS (SELECT 1 FROM image_tags WHERE tag_id = {tag} "
                f"AND image_id = images.id{extra})",
                [self.name],
            )
        return (
            f"images.id IN (SELECT image_id FROM image_tags WHERE tag_id = {tag}{extra})",
            [self.name],
        )


@dataclass(frozen=True)
class TaggedId(Clause):
    """:class:`Tagged` with its tag already looked up: a planner with statistics (PostgreSQL)
    then knows how common the tag is, and picks walking the date order for a common tag or
    the tag's own rows for a rare one."""

    tag_id: int | None
    auto_only: bool = False

    def sql(self, d: Dialect) -> SqlParams:
        if self.tag_id is None:
            return "FALSE", []
        extra = " AND source = 'auto'" if self.auto_only else ""
        return (
            f"images.id IN (SELECT image_id FROM image_tags WHERE tag_id = {d.ph('?')}{extra})",
            [self.tag_id],
        )


def transform(node: Clause, fn: Callable[[Clause], Clause]) -> Clause:
    """The tree with ``fn`` applied to every leaf (And, Or and Not rebuilt around them)."""
    if isinstance(node, And):
        return And([transform(p, fn) for p in node.parts])
    if isinstance(node, Or):
        return Or([transform(p, fn) for p in node.parts])
    if isinstance(node, Not):
        return Not(transform(node.part, fn))
    return fn(node)


@dataclass(frozen=True)
class InAlbum(Clause):
    name: str
    indexed = True

    def sql(self, d: Dialect) -> SqlParams:
        album = _named("albums", d)
        if d.walk:
            return (
                f"EXISTS (SELECT 1 FROM album_images WHERE album_id = {album} "
                "AND image_id = images.id)",
                [self.name],
            )
        return (
            f"images.id IN (SELECT image_id FROM album_images WHERE album_id = {album})",
            [self.name],
        )


@dataclass(frozen=True)
class UsesLora(Clause):
    """A LoRA whose name matches a LIKE pattern (``images.loras`` is a JSON array)."""

    pattern: str

    def sql(self, d: Dialect) -> SqlParams:
        if d.pg:
            return (
                "images.loras IS NOT NULL AND EXISTS (SELECT 1 FROM "
                "jsonb_array_elements(images.loras::jsonb) e WHERE e->>'name' ILIKE ? "
                "ESCAPE '\\')",
                [self.pattern],
            )
        return (
            "images.loras IS NOT NULL AND EXISTS (SELECT 1 FROM json_each(images.loras) "
            "WHERE json_extract(value, '$.name') LIKE ? ESCAPE '\\')",
            [self.pattern],
        )


@dataclass(frozen=True)
class FolderName(Clause):
    """A file of the image lies under a folder whose path contains a LIKE pattern."""

    pattern: str

    def sql(self, d: Dialect) -> SqlParams:
        op = "ILIKE" if d.pg else "LIKE"
        return (
            "EXISTS (SELECT 1 FROM files f JOIN roots r ON r.id = f.root_id WHERE "
            f"f.image_id = images.id AND (r.path || '/' || f.rel_path) {op} {d.ph('?')} "
            "ESCAPE '\\')",
            [self.pattern],
        )


@dataclass(frozen=True)
class InFolder(Clause):
    """A file of the image lies in the folder ``directory`` (absolute, ending in "/") or
    below, compared exactly as paths are ("/pics/a/" never matches "/old/pics/a/" nor
    "/pics/ab/"). The index form reads the folder's own files from files(root_id, rel_path):
    a range in each root that holds the folder, all of a root that lies inside it, so a
    small folder of a big library is found at once instead of by walking every image."""

    directory: str
    indexed = True

    def sql(self, d: Dialect) -> SqlParams:
        if d.walk:
            return (
                f"EXISTS (SELECT 1 FROM (SELECT {d.ph('?')} AS dir) q, files f JOIN roots r "
                "ON r.id = f.root_id WHERE f.image_id = images.id "
                "AND substr(r.path || '/' || f.rel_path, 1, length(q.dir)) = q.dir)",
                [self.directory],
            )
        # SQLite: CROSS JOIN keeps the few matching roots outside, so the files index is used
        # PostgreSQL: byte order ("C", the files_folder index), whatever the database's
        join, top, collate = (
            ("JOIN", "chr(1114111)", ' COLLATE "C"') if d.pg else ("CROSS JOIN", "x'ff'", "")
        )
        return (
            "images.id IN (SELECT f.image_id FROM (SELECT r.id AS root_id, r.path AS path, "
            "q.dir, CASE WHEN substr(q.dir, 1, length(r.path) + 1) = r.path || '/' "
            "THEN substr(q.dir, length(r.path) + 2) ELSE '' END AS lo "
            f"FROM roots r, (SELECT {d.ph('?')}{'::text' if d.pg else ''} AS dir) q "
            "WHERE substr(q.dir, 1, length(r.path) + 1) = r.path || '/' "
            "OR substr(r.path || '/', 1, length(q.dir)) = q.dir) b "
            f"{join} files f ON f.root_id = b.root_id AND f.rel_path{collate} >= b.lo "
            f"AND f.rel_path{collate} < CASE b.lo WHEN '' THEN {top} "
            "ELSE substr(b.lo, 1, length(b.lo) - 1) || '0' END "
            "WHERE substr(b.path || '/' || f.rel_path, 1, length(b.dir)) = b.dir)",
            [self.directory],
        )


@dataclass(frozen=True)
class Words(Clause):
    """Full-text search of a prompt: ``terms`` are (word, prefix?) pairs, all required;
    with ``phrase`` they must follow each other. SQLite: FTS5; PostgreSQL: a ``tsvector``
    with a GIN index (the 'simple' configuration: lower-cased words, no stemming, as FTS5's
    unicode61 tokenizer reads them)."""

    terms: tuple[tuple[str, bool], ...]
    column: str = "prompt_id"
    phrase: bool = False
    indexed = True

    def fts5(self) -> str:
        words = ['"' + w.replace('"', '""') + '"' + ("*" if p else "") for w, p in self.terms]
        if self.phrase:
            return '"' + " ".join(w for w, _ in self.terms).replace('"', '""') + '"'
        return " ".join(words)

    def tsquery(self) -> str:
        lexemes = ["'" + w.replace("'", "''") + "'" + (":*" if p else "") for w, p in self.terms]
        return (" <-> " if self.phrase else " & ").join(lexemes)

    def prompt_ids(self, d: Dialect, limit: int | None = None) -> SqlParams:
        """A subquery: the ids of the prompts holding these words (at most ``limit``)."""
        cap = f" LIMIT {int(limit)}" if limit is not None else ""
        if not self.terms:  # text with nothing to search for (punctuation, control marks)
            return f"SELECT id FROM prompts{cap}", []
        if d.pg:
            return f"SELECT id FROM prompts WHERE tsv @@ to_tsquery('simple', ?){cap}", [
                self.tsquery()
            ]
        return f"SELECT rowid FROM prompts_fts WHERE prompts_fts MATCH ?{cap}", [self.fts5()]

    def sql(self, d: Dialect) -> SqlParams:
        if not self.terms:  # nothing to search for narrows nothing (as an empty query)
            return "TRUE", []
        subquery, params = self.prompt_ids(d)
        sql = f"images.{self.column} IN ({subquery})"
        return ("+" + sql if d.walk and not d.pg else sql), params


@dataclass(frozen=True)
class IdIn(Clause):
    ids: tuple[int, ...]

    def sql(self, d: Dialect) -> SqlParams:
        if d.pg:
            return "images.id = ANY(?)", [list(self.ids)]
        # one parameter however many ids: SQLite's variable limit never applies
        return "images.id IN (SELECT value FROM json_each(?))", [json.dumps(list(self.ids))]
