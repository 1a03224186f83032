"""Accounts of service mode: users and roles, Argon2id passwords, API keys with scopes,
sessions. An embedded library has no users and needs none of this; the first user added
turns the server into a multi-user one (every request must then say who it is).

Credentials are stored as digests only: an API key or a session token is shown once and
kept as its SHA-256 (they are long random strings, so a fast hash is enough); passwords are
Argon2id (argon2-cffi's defaults, RFC 9106's second recommended option). Every check reads
the user's row, so disabling a user stops their sessions and keys at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import sqlite3
import time
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from dreamdepot.errors import DreamDepotError

ROLES = ("admin", "member", "viewer")
SCOPES = ("read", "write", "generate", "worker", "admin")
ROLE_SCOPES = {
    "admin": frozenset(SCOPES),
    "member": frozenset({"read", "write", "generate"}),
    "viewer": frozenset({"read"}),
}
SESSION_SECONDS = 14 * 24 * 3600
KEY_PREFIX = "dd_"
_hasher = PasswordHasher()


class AccountError(DreamDepotError):
    """A bad account request: an unknown user, a taken name, a bad role or scope."""


@dataclass(frozen=True)
class Principal:
    """Who a request acts for, and what it may do (a key's scopes within its user's role)."""

    user_id: int | None
    name: str
    display_name: str
    role: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    via: str = "local"  # "key", "session", or "local" (an embedded library: no accounts)
    csrf: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may(self, scope: str) -> bool:
        return scope in self.scopes


LOCAL = Principal(None, "local", "Local", "admin", frozenset(SCOPES))


def _tx(conn: sqlite3.Connection) -> contextlib.AbstractContextManager[object]:
    """A transaction of its own, unless the caller's is already open (the server's writer)."""
    return contextlib.nullcontext() if conn.in_transaction else conn


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def has_accounts(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None


def add_user(
    conn: sqlite3.Connection,
    name: str,
    role: str = "member",
    password: str | None = None,
    display_name: str | None = None,
) -> int:
    """A new user (a password may be set later); the first admin takes the library's own
    images (those with no owner), so an upgraded single-user library keeps them."""
    name = name.strip()
    if not name or len(name) > 100 or any(c.isspace() for c in name):
        raise AccountError("user name: 1 to 100 characters, no spaces")
    if role not in ROLES:
        raise AccountError(f"role: one of {', '.join(ROLES)}")
    if user_by_name(conn, name) is not None:
        raise AccountError(f"user {name} exists")
    with _tx(conn):
        first_admin = (
            role == "admin"
            and not conn.execute("SELECT 1 FROM users WHERE role = 'admin'").fetchone()
        )
        user_id = int(
            conn.execute(
                "INSERT INTO users(name, display_name, role, password_hash, created_at) "
                "VALUES (?, ?, ?, ?, ?) RETURNING id",
                (
                    name,
                    display_name or name,
                    role,
                    _hasher.hash(password) if password else None,
                    time.time(),
                ),
            ).fetchone()[0]
        )
        if first_admin:  # the library's own images and albums
            conn.execute("UPDATE images SET owner_id = ? WHERE owner_id IS NULL", (user_id,))
            conn.execute("UPDATE albums SET owner_id = ? WHERE owner_id IS NULL", (user_id,))
    return user_id


def user_by_name(conn: sqlite3.Connection, name: str) -> dict[str, object] | None:
    row = conn.execute(
        "SELECT id, name, display_name, role, disabled, password_hash FROM users "
        "WHERE lower(name) = lower(?)",
        (name,),
    ).fetchone()
    return dict(row) if row else None


def list_users(conn: sqlite3.Connection) -> list[dict[str, object]]:
    return [
        dict(r)
        for r in conn.execute(
            "SELECT id, name, display_name, role, disabled, created_at FROM users ORDER BY id"
        )
    ]


def _user_id(conn: sqlite3.Connection, name: str) -> int:
    user = user_by_name(conn, name)
    if user is None:
        raise AccountError(f"no user {name}")
    return int(str(user["id"]))


def set_password(conn: sqlite3.Connection, name: str, password: str) -> None:
    """A new password; the user's sessions end (a reset after a leak must lock others out)."""
    if len(password) < 8:
        raise AccountError("password: at least 8 characters")
    user_id = _user_id(conn, name)
    with _tx(conn):
        conn.execute(
            "UPDATE users SET password_hash = ? WHERE id = ?", (_hasher.hash(password), user_id)
        )
        conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))


def set_disabled(conn: sqlite3.Connection, name: str, disabled: bool = True) -> None:
    user_id = _user_id(conn, name)
    with _tx(conn):
        conn.execute("UPDATE users SET disabled = ? WHERE id = ?", (int(disabled), user_id))
        if disabled:
            conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))


def transfer_images(conn: sqlite3.Connection, from_name: str, to_name: str) -> int:
    """Give every image, upload and album of ``from_name`` to ``to_name`` — a departed user's
    pictures kept by a colleague; sharing is left as it was. Returns how many images."""
    source, target = _user_id(conn, from_name), _user_id(conn, to_name)
    if source == target:
        raise AccountError("transfer: the two users are the same")
    with _tx(conn):
        n = conn.execute(
            "UPDATE images SET owner_id = ? WHERE owner_id = ?", (target, source)
        ).rowcount
        conn.execute("UPDATE uploads SET user_id = ? WHERE user_id = ?", (target, source))
        conn.execute("UPDATE albums SET owner_id = ? WHERE owner_id = ?", (target, source))
    return int(n)


def set_cache_opt_out(conn: sqlite3.Connection, user_id: int, out: bool) -> None:
    """Keep (or stop keeping) a user's shared images out of other users' dream cache
    answers; they still answer that user's own lookups."""
    with _tx(conn):
        conn.execute("UPDATE users SET cache_opt_out = ? WHERE id = ?", (int(out), user_id))


def check_password(conn: sqlite3.Connection, name: str, password: str) -> int | None:
    """The user's id when ``password`` is theirs and they are enabled; else None (the same
    work is done for an unknown name, so timing does not tell names apart)."""
    user = user_by_name(conn, name)
    stored = str(user["password_hash"]) if user and user["password_hash"] else None
    try:
        _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or stored is None or user["disabled"]:
        return None
    return int(str(user["id"]))


_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


# -- invitations -----------------------------------------------------------------------------

INVITATION_SECONDS = 7 * 24 * 3600


def create_invitation(
    conn: sqlite3.Connection, role: str = "member", created_by: int | None = None,
    seconds: float = INVITATION_SECONDS,
) -> str:  # fmt: skip
    """A one-time token that makes one account with ``role`` (shown once)."""
    if role not in ROLES:
        raise AccountError(f"role: one of {', '.join(ROLES)}")
    token = secrets.token_urlsafe(24)
    now = time.time()
    with _tx(conn):
        conn.execute(
            "INSERT INTO invitations(token_hash, role, created_by, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (_digest(token), role, created_by, now, now + seconds),
        )
    return token


def accept_invitation(
    conn: sqlite3.Connection, token: str, name: str, password: str, display_name: str | None = None
) -> int:
    """The new user's id. The invitation is claimed first (one statement, so two requests
    with one link cannot both win) and given back if the account cannot be made."""
    if len(password) < 8:
        raise AccountError("password: at least 8 characters")
    digest = _digest(token)
    row = conn.execute("SELECT role FROM invitations WHERE token_hash = ?", (digest,)).fetchone()
    with _tx(conn):
        claimed = conn.execute(
            "UPDATE invitations SET used_at = ? WHERE token_hash = ? AND used_at IS NULL "
            "AND expires_at > ?",
            (time.time(), digest, time.time()),
        ).rowcount
    if row is None or not claimed:
        raise AccountError("this invitation is not valid (used, expired or unknown)")
    try:
        user_id = add_user(conn, name, str(row[0]), password, display_name)
    except AccountError:
        with _tx(conn):
            conn.execute("UPDATE invitations SET used_at = NULL WHERE token_hash = ?", (digest,))
        raise
    with _tx(conn):
        conn.execute("UPDATE invitations SET used_by = ? WHERE token_hash = ?", (user_id, digest))
    return user_id


# -- API keys --------------------------------------------------------------------------------


def create_api_key(conn: sqlite3.Connection, user: str, name: str, scopes: list[str]) -> str:
    """A new key for ``user`` (returned once, never stored); scopes beyond the user's role
    are refused."""
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise AccountError(f"scopes: some of {', '.join(SCOPES)} (got {', '.join(scopes)})")
    row = user_by_name(conn, user)
    if row is None:
        raise AccountError(f"no user {user}")
    beyond = set(scopes) - ROLE_SCOPES[str(row["role"])]
    if beyond:
        raise AccountError(f"a {row['role']} cannot hold scopes {', '.join(sorted(beyond))}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with _tx(conn):
        conn.execute(
            "INSERT INTO api_keys(user_id, name, prefix, key_hash, scopes, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (row["id"], name, key[:10], _digest(key), ",".join(scopes), time.time()),
        )
    return key


def list_api_keys(conn: sqlite3.Connection) -> list[dict[str, object]]:
    return [
        dict(r)
        for r in conn.execute(
            "SELECT k.id, u.name AS user, k.name, k.prefix, k.scopes, k.created_at, "
            "k.last_used_at, k.revoked_at FROM api_keys k JOIN users u ON u.id = k.user_id "
            "ORDER BY k.id"
        )
    ]


def revoke_api_key(conn: sqlite3.Connection, key_id: int) -> bool:
    with _tx(conn):
        return bool(
            conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (time.time(), key_id),
            ).rowcount
        )


def _principal(row: sqlite3.Row | dict[str, object], scopes: frozenset[str], via: str) -> Principal:
    role = str(row["role"])
    return Principal(
        int(str(row["id"])),
        str(row["name"]),
        str(row["display_name"]),
        role,
        scopes & ROLE_SCOPES[role],
        via,
        str(row["csrf"]) if via == "session" else None,
    )


def principal_for_key(conn: sqlite3.Connection, key: str) -> Principal | None:
    row = conn.execute(
        "SELECT u.id, u.name, u.display_name, u.role, k.scopes, k.id AS key_id FROM api_keys k "
        "JOIN users u ON u.id = k.user_id WHERE k.key_hash = ? AND k.revoked_at IS NULL "
        "AND u.disabled = 0",
        (_digest(key),),
    ).fetchone()
    if row is None:
        return None
    return _principal(row, frozenset(str(row["scopes"]).split(",")), "key")


def touch_api_key(conn: sqlite3.Connection, key: str) -> None:
    with _tx(conn):
        conn.execute(
            "UPDATE api_keys SET last_used_at = ? WHERE key_hash = ?", (time.time(), _digest(key))
        )


# -- sessions ----------------------------------------------------------------------------------


def create_session(conn: sqlite3.Connection, user_id: int) -> tuple[str, str]:
    """A new session (its token for the cookie, its CSRF token for the page); a fresh token
    at every login, so a token planted before login is worth nothing after (fixation)."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    now = time.time()
    with _tx(conn):
        conn.execute("DELETE FROM sessions WHERE expires_at < ?", (now,))
        conn.execute(
            "INSERT INTO sessions(token_hash, user_id, csrf, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (_digest(token), user_id, csrf, now, now + SESSION_SECONDS),
        )
    return token, csrf


def principal_for_session(conn: sqlite3.Connection, token: str) -> Principal | None:
    row = conn.execute(
        "SELECT u.id, u.name, u.display_name, u.role, s.csrf FROM sessions s "
        "JOIN users u ON u.id = s.user_id WHERE s.token_hash = ? AND s.expires_at > ? "
        "AND u.disabled = 0",
        (_digest(token), time.time()),
    ).fetchone()
    if row is None:
        return None
    return _principal(row, ROLE_SCOPES[str(row["role"])], "session")


def end_session(conn: sqlite3.Connection, token: str) -> None:
    with _tx(conn):
        conn.execute("DELETE FROM sessions WHERE token_hash = ?", (_digest(token),))


def same_secret(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())


class Throttle:
    """Failed logins per account and per address: after ``limit`` failures in ``window``
    seconds, further attempts are refused until the window has passed (in memory: one
    server process; a restart forgives)."""

    def __init__(self, limit: int = 5, window: float = 300.0) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[str, list[float]] = {}

    def _recent(self, key: str, now: float) -> list[float]:
        kept = [t for t in self._failures.get(key, []) if now - t < self.window]
        self._failures[key] = kept
        return kept

    def blocked(self, *keys: str) -> float:
        """Seconds to wait (0: go ahead)."""
        now = time.time()
        waits = [
            self.window - (now - recent[0])
            for recent in (self._recent(k, now) for k in keys)
            if len(recent) >= self.limit
        ]
        return max(waits, default=0.0)

    def failed(self, *keys: str) -> None:
        now = time.time()
        for k in keys:
            self._recent(k, now).append(now)

    def succeeded(self, account: str) -> None:
        self._failures.pop(account, None)
