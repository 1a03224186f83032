"""The query language, one parser for CLI, API and UI (beets-style).

    red fox "in the snow" tag:portrait -tag:nsfw model:sdxl sampler:"DPM++ 2M"
    steps:20..30 cfg:>7 seed:1234 size:1024x1024 aspect:portrait date:2024-01..2024-03
    generator:comfyui rating:>=4 fav folder:outputs (tag:a OR tag:b) sort:-date

Free words and phrases search prompts through FTS5 (``word*`` for a prefix). A field's
*type* decides how its value is read (``steps`` is numeric, so ``20..30`` is a range):
adding a field means adding one line to :data:`FIELDS`, never touching the parser.
Each term becomes a node of a typed tree (catalog/clauses.py) that writes its SQL over the
``images`` table for SQLite or for PostgreSQL.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dreamdepot.catalog.clauses import (
    SQLITE,
    And,
    Clause,
    Compare,
    Dialect,
    Everything,
    Favourite,
    FolderName,
    IdIn,
    InAlbum,
    InFolder,
    Not,
    Or,
    Raw,
    SqlParams,
    Tagged,
    TextMatch,
    UsesLora,
    Words,
)
from dreamdepot.catalog.marks import ROW_MARKS, Marks
from dreamdepot.errors import QueryError

INT64_MAX = 2**63 - 1
# Limits on one query (docs/query.md): beyond them a query is refused with a QueryError
MAX_QUERY_CHARS = 4_000
MAX_TERMS = 200
MAX_DEPTH = 32  # nested parentheses and NOTs


def check_limits(text: str, tokens: list[Token]) -> None:
    """Refuse what no person types and what would only cost the server: NUL, unpaired
    surrogates, over-long queries, too many terms, deep nesting.

    >>> try:
    ...     check_limits("a" * 5000, [])
    ... except QueryError as e:
    ...     print(e)
    a query is at most 4000 characters (this one has 5000) (at position 0)
    """
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(
            f"a query is at most {MAX_QUERY_CHARS} characters (this one has {len(text)})", 0, ""
        )
    for i, ch in enumerate(text):
        if ch == "\x00" or "\ud800" <= ch <= "\udfff":
            raise QueryError("a query cannot hold NUL or unpaired surrogate characters", i, text)
    if len(tokens) > MAX_TERMS:
        raise QueryError(f"a query has at most {MAX_TERMS} terms", tokens[MAX_TERMS].pos, text)
    parens = nots = 0  # open parentheses, and the run of NOTs before the next term
    for tok in tokens:
        parens = max(0, parens + {"LPAREN": 1, "RPAREN": -1}.get(tok.kind, 0))
        nots = nots + 1 if tok.kind == "NOT" else 0
        if parens + nots > MAX_DEPTH:
            raise QueryError(f"a query nests at most {MAX_DEPTH} levels", tok.pos, text)


@dataclass
class Token:
    kind: str  # WORD, PHRASE, FIELD, LPAREN, RPAREN, OR, NOT
    value: str
    pos: int
    field_name: str | None = None
    negated: bool = False


_TOKEN_RE = re.compile(
    r"\s*(?:(?P<lp>\()|(?P<rp>\))|(?P<neg>-(?=[^\s)]))?"
    r'(?:(?P<field>[a-z_]+):(?P<fval>"(?:[^"\\]|\\.)*"?|[^\s()]*)'
    r'|(?P<phrase>"(?:[^"\\]|\\.)*"?)|(?P<word>[^\s()"]+)))'
)


def tokenize(text: str) -> list[Token]:
    """Split a query into tokens, keeping each one's position for error messages.

    >>> [(t.kind, t.value, t.field_name, t.negated) for t in tokenize('fox -tag:"a b"')]
    [('WORD', 'fox', None, False), ('FIELD', 'a b', 'tag', True)]
    """
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN_RE.match(text, pos)
        if not m or m.end() == pos:
            raise QueryError(f"unexpected character {text[pos]!r}", pos, text)
        start = m.start() + (len(m.group(0)) - len(m.group(0).lstrip()))
        neg = m.group("neg") is not None
        if m.group("lp"):
            tokens.append(Token("LPAREN", "(", start))
        elif m.group("rp"):
            tokens.append(Token("RPAREN", ")", start))
        elif m.group("field") is not None:
            tokens.append(
                Token(
                    "FIELD",
                    _unquote(m.group("fval"), start, text),
                    start,
                    field_name=m.group("field"),
                    negated=neg,
                )
            )
        elif m.group("phrase") is not None:
            tokens.append(
                Token("PHRASE", _unquote(m.group("phrase"), start, text), start, negated=neg)
            )
        else:
            word = m.group("word")
            if word == "OR" and not neg:
                tokens.append(Token("OR", word, start))
            elif word == "NOT" and not neg:
                tokens.append(Token("NOT", word, start))
            else:
                tokens.append(Token("WORD", word, start, negated=neg))
        pos = m.end()
    return tokens


def _unquote(value: str, pos: int, text: str) -> str:
    if value.startswith('"'):
        if len(value) < 2 or not value.endswith('"') or value.endswith('\\"'):
            raise QueryError("unterminated quote: expected a closing '\"'", pos, text)
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


# --- field types ----------------------------------------------------------------------


def _like(value: str) -> str:
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def text_field(column: str) -> Callable[[str, Token, str], Clause]:
    """Case-insensitive substring; ``=value`` for an exact match."""

    def build(value: str, tok: Token, query: str) -> Clause:
        if not value:
            raise QueryError(f"expected a value after '{tok.field_name}:'", tok.pos, query)
        if value.startswith("="):
            return TextMatch(column, value[1:], exact=True)
        return TextMatch(column, _like(value))

    return build


_NUM = r"-?\d+(?:\.\d+)?"
_RANGE = re.compile(rf"^(?P<lo>{_NUM})?\.\.(?P<hi>{_NUM})?$")
_CMP = re.compile(rf"^(?P<op>>=|<=|>|<|=)?(?P<n>{_NUM})$")


def numeric_field(column: str, integer: bool = True) -> Callable[[str, Token, str], Clause]:
    """``N``, ``A..B``, ``A..``, ``..B``, ``>N``, ``>=N``, ``<N``, ``<=N``."""

    def num(s: str) -> float | int:
        value = int(s) if integer and re.fullmatch(r"-?\d+", s) else float(s)
        if integer and isinstance(value, float) and value.is_integer():
            value = int(value)
        return value

    def build(value: str, tok: Token, query: str) -> Clause:
        for number in re.findall(_NUM, value):
            if abs(float(number)) > INT64_MAX:
                raise QueryError(
                    f"'{tok.field_name}:' takes numbers up to {INT64_MAX}", tok.pos, query
                )
        m = _RANGE.match(value)
        if m and (m.group("lo") or m.group("hi")):
            parts: list[Clause] = []
            if m.group("lo"):
                parts.append(Compare(column, ">=", num(m.group("lo"))))
            if m.group("hi"):
                parts.append(Compare(column, "<=", num(m.group("hi"))))
            return parts[0] if len(parts) == 1 else And(parts)
        m = _CMP.match(value)
        if m:
            return Compare(column, m.group("op") or "=", num(m.group("n")))
        raise QueryError(
            f"expected a number, a range like 20..30 or a comparison like >7 after "
            f"'{tok.field_name}:', got {value!r}",
            tok.pos,
            query,
        )

    return build


def _size(value: str, tok: Token, query: str) -> Clause:
    m = re.fullmatch(r"(\d{1,9})[xX×](\d{1,9})", value)
    if not m:
        raise QueryError(f"expected WIDTHxHEIGHT after 'size:', got {value!r}", tok.pos, query)
    return And([Compare("width", "=", int(m.group(1))), Compare("height", "=", int(m.group(2)))])


def _aspect(value: str, tok: Token, query: str) -> Clause:
    v = value.lower()
    if v == "portrait":
        return Raw("images.height > images.width")
    if v == "landscape":
        return Raw("images.width > images.height")
    if v == "square":
        return Raw("images.width = images.height")
    m = re.fullmatch(r"(\d+(?:\.\d+)?):(\d+(?:\.\d+)?)", v)
    if m and float(m.group(2)) > 0:
        ratio = float(m.group(1)) / float(m.group(2))
        return Raw("abs(images.width * 1.0 / images.height - ?) < 0.02", (ratio,))
    raise QueryError(
        f"expected portrait, landscape, square or W:H after 'aspect:', got {value!r}",
        tok.pos,
        query,
    )


def _parse_date(s: str, end: bool, tok: Token, query: str) -> float:
    for fmt, step in (("%Y-%m-%d", "day"), ("%Y-%m", "month"), ("%Y", "year")):
        try:
            d = datetime.strptime(s, fmt)
        except ValueError:
            continue
        if end:
            if step == "day":
                d += timedelta(days=1)
            elif step == "month":
                d = d.replace(year=d.year + (d.month == 12), month=d.month % 12 + 1)
            else:
                d = d.replace(year=d.year + 1)
        return time.mktime(d.timetuple())
    raise QueryError(
        f"expected a date like 2024, 2024-03 or 2024-03-15 after 'date:', got {s!r}",
        tok.pos,
        query,
    )


def _date(value: str, tok: Token, query: str) -> Clause:
    if ".." in value:
        lo, _, hi = value.partition("..")
        parts: list[Clause] = []
        if lo:
            parts.append(Compare("created_at", ">=", _parse_date(lo, False, tok, query)))
        if hi:
            parts.append(Compare("created_at", "<", _parse_date(hi, True, tok, query)))
        if not parts:
            raise QueryError("expected a date range like 2024-01..2024-03", tok.pos, query)
        return parts[0] if len(parts) == 1 else And(parts)
    for op in (">=", "<=", ">", "<"):
        if value.startswith(op):
            d = _parse_date(value[len(op) :], op in (">", "<="), tok, query)
            sql_op = {">=": ">=", ">": ">=", "<": "<", "<=": "<"}[op]
            return Compare("created_at", sql_op, d)
    return And(
        [
            Compare("created_at", ">=", _parse_date(value, False, tok, query)),
            Compare("created_at", "<", _parse_date(value, True, tok, query)),
        ]
    )


def _tagged(field_name: str, auto_only: bool = False) -> Callable[[str, Token, str], Clause]:
    """``tag:NAME`` (any source) or ``autotag:NAME`` (proposed by a tagger, not yet accepted)."""

    def build(value: str, tok: Token, query: str) -> Clause:
        if not value:
            raise QueryError(f"expected a tag name after '{field_name}:'", tok.pos, query)
        return Tagged(value, auto_only)

    return build


def _lora(value: str, tok: Token, query: str) -> Clause:
    if not value:
        raise QueryError("expected a LoRA name after 'lora:'", tok.pos, query)
    return UsesLora(_like(value))


def _folder(value: str, tok: Token, query: str) -> Clause:
    """``folder:outputs`` (any folder of that name, any case) or ``folder:/abs/path`` (that
    folder and below, exactly as the folder tree's links write it)."""
    if not value:
        raise QueryError("expected a folder after 'folder:'", tok.pos, query)
    if not value.startswith("/"):
        return FolderName(_like(value.strip("/") + "/"))
    return InFolder(value.rstrip("/") + "/")


def _fts(value: str, column: str = "prompt_id") -> Clause:
    return Words(fts_terms(value), column)


def fts_terms(text: str) -> tuple[tuple[str, bool], ...]:
    """User words as (word, prefix?) pairs; a trailing ``*`` means prefix.

    >>> fts_terms('red fox*')
    (('red', False), ('fox', True))
    """
    # SQLite ends a string at NUL ("unterminated string"); other controls match nothing
    text = "".join(" " if ord(ch) < 32 else ch for ch in text)
    out = []
    for word in text.split():
        prefix = word.endswith("*") and len(word) > 1
        out.append((word[:-1] if prefix else word, prefix))
    return tuple(out)


def prompts_matching(conn: Any, text: str, limit: int | None = None) -> SqlParams:
    """A subquery for the ids of prompts holding the user's words (trailing ``*``: prefix)
    in the SQL of ``conn``'s engine."""
    from dreamdepot.catalog.engine import dialect_of

    return Words(fts_terms(text)).prompt_ids(Dialect(dialect_of(conn)), limit)


def fts_expression(text: str) -> str:
    """Turn user words into a safe FTS5 expression; a trailing ``*`` means prefix.

    >>> fts_expression('red fox*')
    '"red" "fox"*'
    >>> fts_expression('x"y') == chr(34) + 'x""y' + chr(34)
    True
    """
    return Words(fts_terms(text)).fts5()


def _prompt(value: str, tok: Token, query: str) -> Clause:
    if not value.strip():
        raise QueryError(f"expected words after '{tok.field_name}:'", tok.pos, query)
    return _fts(value, "negative_prompt_id" if tok.field_name == "negative" else "prompt_id")


def _flag(sql: str | Clause) -> Callable[[str, Token, str], Clause]:
    clause = Raw(sql) if isinstance(sql, str) else sql

    def build(value: str, tok: Token, query: str) -> Clause:
        if value not in ("", "true", "yes", "1"):
            if value in ("false", "no", "0"):
                return Not(clause)
            raise QueryError(f"'{tok.field_name}' takes no value", tok.pos, query)
        return clause

    return build


def _id(value: str, tok: Token, query: str) -> Clause:
    ids = [v for v in value.split(",") if v]
    if not ids or not all(v.isdigit() and len(v) <= 18 for v in ids):
        raise QueryError("expected image ids like id:12 or id:12,13", tok.pos, query)
    return IdIn(tuple(int(v) for v in ids))


def _hash(value: str, tok: Token, query: str) -> Clause:
    if not re.fullmatch(r"[0-9a-f]{4,64}", value):
        raise QueryError("expected a hex hash prefix after 'hash:'", tok.pos, query)
    return Raw("images.content_hash LIKE ? OR images.full_hash LIKE ?", (value + "%", value + "%"))


def _album(value: str, tok: Token, query: str) -> Clause:
    if not value:
        raise QueryError("expected an album name after 'album:'", tok.pos, query)
    return InAlbum(value)


MISSING_SQL = (
    "NOT EXISTS (SELECT 1 FROM files WHERE files.image_id = images.id AND files.state = 'present')"
)

VIDEO_SQL = "images.format IN ('mp4', 'mov', 'webm', 'mkv')"
ANIMATION_SQL = f"images.duration IS NOT NULL AND NOT {VIDEO_SQL}"

FIELDS: dict[str, Callable[[str, Token, str], Clause]] = {
    "tag": _tagged("tag"),
    "autotag": _tagged("autotag", auto_only=True),
    "model": text_field("model"),
    "sampler": text_field("sampler"),
    "scheduler": text_field("scheduler"),
    "generator": text_field("generator"),
    "vae": text_field("vae"),
    "format": text_field("format"),
    "lora": _lora,
    "seed": numeric_field("seed"),
    "steps": numeric_field("steps"),
    "cfg": numeric_field("cfg_scale", integer=False),
    "denoise": numeric_field("denoise", integer=False),
    "rating": numeric_field("rating"),
    "width": numeric_field("width"),
    "height": numeric_field("height"),
    "duration": numeric_field("duration", integer=False),
    "size": _size,
    "aspect": _aspect,
    "date": _date,
    "folder": _folder,
    "album": _album,
    "prompt": _prompt,
    "negative": _prompt,
    "id": _id,
    "prompt_id": numeric_field("prompt_id"),
    "hash": _hash,
}

FLAGS: dict[str, str | Clause] = {
    "fav": Favourite(),
    "missing": MISSING_SQL,
    "untagged": "NOT EXISTS (SELECT 1 FROM image_tags WHERE image_id = images.id)",
    "noprompt": "images.prompt_id IS NULL",
    "video": VIDEO_SQL,
    "animated": "images.duration IS NOT NULL",
    "dupes": "images.phash IN (SELECT phash FROM images WHERE phash IS NOT NULL "
    "GROUP BY phash HAVING count(*) > 1)",
}
for _name, _sql in FLAGS.items():
    FIELDS[_name] = _flag(_sql)

# Sort keys: (SQL expression, whether NULLs exist). Keyset pagination orders by (expr, id).
SORTS: dict[str, str] = {
    "date": "images.created_at",
    "seed": "coalesce(images.seed, -9223372036854775808)",
    "steps": "coalesce(images.steps, -1)",
    "rating": "coalesce({rating}, -1)",
    "size": "coalesce(images.width * images.height, -1)",
    "random": "((images.id * 2654435761 + {salt}) % 4294967291)",
    "id": "images.id",
}


@dataclass
class Sort:
    key: str = "date"
    descending: bool = True
    salt: int = 0

    @property
    def expression(self) -> str:
        return self.sql()

    def sql(self, marks: Marks = ROW_MARKS) -> str:
        """The sort key's SQL, reading ``marks``' ratings."""
        return SORTS[self.key].format(salt=self.salt, rating=marks.column("rating"))


@dataclass
class Query:
    """A compiled query: a tree of clauses over ``images`` plus a sort."""

    text: str
    node: Clause = field(default_factory=Everything)
    sort: Sort = field(default_factory=Sort)
    extension_terms: list[Token] = field(default_factory=list)
    marks: Marks = ROW_MARKS  # whose ratings and favourites it reads

    def sql(self, dialect: str = SQLITE, walk: bool = False) -> SqlParams:
        """The WHERE clause and its parameters for one engine; ``walk`` picks the form that
        follows the sort order and tests each row (SQLite's adaptive plans)."""
        return self.node.render(Dialect(dialect, walk, self.marks))

    def sql_on(self, conn: Any) -> SqlParams:
        """The WHERE clause (index form) and parameters in the SQL ``conn``'s engine reads."""
        from dreamdepot.catalog.engine import dialect_of

        return self.sql(dialect_of(conn))

    @property
    def where(self) -> str:
        """The SQLite WHERE clause in its index form (start from a tag's or a word's index)."""
        return self.sql()[0]

    @property
    def params(self) -> list[Any]:
        return self.sql()[1]

    def where_walking(self) -> str:
        """The SQLite WHERE clause in its walk form (follow the sort order, test each row)."""
        return self.sql(walk=True)[0]

    @property
    def adaptive(self) -> bool:
        return self.node.adaptive

    @property
    def everything(self) -> bool:
        return isinstance(self.node, Everything)

    def narrowed(self, clause: Clause) -> Query:
        """This query ANDed with one more clause (what an extension field resolved to)."""
        node = clause if self.everything else And([self.node, clause])
        return Query(self.text, node, self.sort, self.extension_terms, self.marks)

    def reading(self, marks: Marks) -> Query:
        """This query as ``marks``' viewer sees ratings and favourites."""
        return Query(self.text, self.node, self.sort, self.extension_terms, marks)


class _Parser:
    def __init__(self, text: str, tokens: list[Token], extensions: set[str]) -> None:
        self.text, self.tokens, self.i = text, tokens, 0
        self.sort: Sort | None = None
        self.extensions = extensions
        self.extension_terms: list[Token] = []

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def parse(self) -> Clause:
        clause = self.or_expr()
        tok = self.peek()
        if tok is not None:
            raise QueryError(f"unexpected {tok.value!r}", tok.pos, self.text)
        return clause

    def or_expr(self) -> Clause:
        parts = [self.and_expr()]
        while (tok := self.peek()) is not None and tok.kind == "OR":
            self.i += 1
            if self.peek() is None or self.peek().kind in ("OR", "RPAREN"):  # type: ignore[union-attr]
                raise QueryError("expected a term after OR", tok.pos, self.text)
            parts.append(self.and_expr())
        if len(parts) == 1:
            return parts[0]
        return Or(parts)

    def and_expr(self) -> Clause:
        parts: list[Clause] = []
        while (tok := self.peek()) is not None and tok.kind not in ("OR", "RPAREN"):
            clause = self.unary()
            if clause is not None:
                parts.append(clause)
        if not parts:
            return Everything()
        return parts[0] if len(parts) == 1 else And(parts)

    def unary(self) -> Clause | None:
        tok = self.peek()
        assert tok is not None
        if tok.kind == "NOT":
            self.i += 1
            if self.peek() is None:
                raise QueryError("expected a term after NOT", tok.pos, self.text)
            inner = self.unary()
            return Not(inner) if inner else None
        if tok.kind == "LPAREN":
            self.i += 1
            inner = self.or_expr()
            close = self.peek()
            if close is None or close.kind != "RPAREN":
                raise QueryError("expected ')' to close '('", tok.pos, self.text)
            self.i += 1
            return inner
        self.i += 1
        clause = self.term(tok)
        if clause is None:
            return None
        return Not(clause) if tok.negated else clause

    def term(self, tok: Token) -> Clause | None:
        if tok.kind in ("WORD", "PHRASE"):
            if tok.kind == "WORD" and tok.value.lower() in FLAGS:
                flag = FLAGS[tok.value.lower()]
                return Raw(flag) if isinstance(flag, str) else flag
            if tok.kind == "PHRASE":
                if not tok.value.strip():
                    raise QueryError("empty phrase", tok.pos, self.text)
                return Words(fts_terms(tok.value), phrase=True)
            return _fts(tok.value)
        if tok.kind == "RPAREN":
            raise QueryError("unexpected ')'", tok.pos, self.text)
        name = tok.field_name or ""
        if name == "sort":
            self.sort = self._sort(tok)
            return None
        if name in self.extensions:
            self.extension_terms.append(tok)
            return None
        builder = FIELDS.get(name)
        if builder is None:
            known = ", ".join(sorted([*FIELDS, "sort", *self.extensions]))
            raise QueryError(f"unknown field '{name}:'; known fields: {known}", tok.pos, self.text)
        return builder(tok.value, tok, self.text)

    def _sort(self, tok: Token) -> Sort:
        value = tok.value.lower()
        descending = True
        if value.startswith("-"):
            value = value[1:]
        elif value.startswith("+"):
            value, descending = value[1:], False
        key, _, direction = value.partition(":")
        if direction in ("asc", "desc"):
            descending = direction == "desc"
        if key not in SORTS:
            raise QueryError(
                f"unknown sort key {key!r}; known: {', '.join(sorted(SORTS))}", tok.pos, self.text
            )
        salt = 0
        if key == "random":
            salt = int(time.time()) % 1_000_003
        return Sort(key, descending, salt)


def parse(text: str, extensions: set[str] | None = None) -> Query:
    """Compile a query string; raises QueryError naming the position of a problem.

    ``extensions`` names fields handled outside SQL (e.g. ``similar``); their tokens are
    returned in ``extension_terms`` for the caller to resolve.

    >>> q = parse("steps:20..30 -tag:nsfw")
    >>> q.where.startswith("((images.steps >= ?) AND (images.steps <= ?)) AND (NOT (images.id IN")
    True
    >>> q.params
    [20, 30, 'nsfw']
    """
    text = text or ""
    if len(text) > MAX_QUERY_CHARS:
        check_limits(text, [])
    tokens = tokenize(text)
    check_limits(text, tokens)
    p = _Parser(text, tokens, extensions or set())
    q = Query(text=text, node=p.parse(), extension_terms=p.extension_terms)
    if p.sort is not None:
        q.sort = p.sort
    return q
