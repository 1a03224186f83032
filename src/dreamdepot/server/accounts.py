"""Who is asking, and may they: authentication and each route's policy in multi-user mode.

A library with users (``dreamdepot users add``) is a multi-user instance. Every request
then names its user — ``Authorization: Bearer KEY`` (an API key) or the session cookie of a
login — or gets 401; only the page, its static files, sign-in (password, invitation,
OpenID Connect) are open. A request
made with the session cookie that changes anything must also carry the session's CSRF token
in ``X-CSRF-Token`` (a cross-site form or ``text/plain`` fetch cannot read it, so cannot send
it). Each route has a policy (:data:`POLICY`): the scope it needs, and whether members and
viewers may use it — a route whose answers are not yet filtered by owner is admin-only, so
nothing reaches a user that is not theirs or shared. A route missing from the table is
admin-only too, and the isolation tests fail until it has an entry.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from dreamdepot import accounts
from dreamdepot.accounts import LOCAL, Principal
from dreamdepot.catalog.clauses import Raw
from dreamdepot.catalog.engine import value_in
from dreamdepot.catalog.images import compile_query
from dreamdepot.catalog.marks import Marks
from dreamdepot.catalog.query import Query
from dreamdepot.catalog.visibility import (
    can_change,
    can_see,
    can_see_hash,
    owned_sql,
    visible_sql,
)
from dreamdepot.server.security import UNSAFE_METHODS

SESSION_COOKIE = "dd_session"
TOUCH_SECONDS = 60.0  # an API key's last use is recorded at most this often
CSRF_HEADER = "x-csrf-token"
OPEN_PATHS = (
    "/",
    "/api/login",
    "/api/login/methods",
    "/api/invitations/accept",
    "/api/oidc/login",
    "/api/oidc/callback",
    "/favicon.ico",
)
OPEN_PREFIXES = ("/static/",)

# (method, route) -> (scope, members): "members" routes filter what they answer by owner
# and sharing; the others answer admins only.
POLICY: dict[tuple[str, str], tuple[str, bool]] = {
    ("POST", "/api/login"): ("read", True),
    ("POST", "/api/invitations/accept"): ("read", True),
    ("GET", "/api/login/methods"): ("read", True),
    ("GET", "/api/oidc/login"): ("read", True),
    ("GET", "/api/oidc/callback"): ("read", True),
    ("POST", "/api/logout"): ("read", True),
    ("GET", "/api/me"): ("read", True),
    ("PUT", "/api/me"): ("read", True),
    ("GET", "/api/albums"): ("read", True),
    ("POST", "/api/albums"): ("write", True),
    ("POST", "/api/albums/{album_id}/images"): ("write", True),
    ("DELETE", "/api/albums/{album_id}/images"): ("write", True),
    ("PUT", "/api/albums/{album_id}/sharing"): ("write", True),
    ("DELETE", "/api/albums/{album_id}"): ("write", True),
    ("GET", "/api/cache/stats"): ("read", True),
    ("GET", "/api/backend"): ("read", True),
    ("GET", "/api/images"): ("read", True),
    ("GET", "/api/images/count"): ("read", True),
    ("GET", "/api/images/{image_id}"): ("read", True),
    ("GET", "/api/images/{image_id}/workflow"): ("read", True),
    ("GET", "/api/images/{image_id}/raw"): ("read", True),
    ("GET", "/api/images/{image_id}/infotext"): ("read", True),
    ("GET", "/api/images/{image_id}/file"): ("read", True),
    ("GET", "/api/thumbs/{content_hash}/{size}.avif"): ("read", True),
    ("GET", "/api/clips/{content_hash}.mp4"): ("read", True),
    ("PUT", "/api/images/{image_id}/rating"): ("write", True),
    ("PUT", "/api/images/{image_id}/favorite"): ("write", True),
    ("PUT", "/api/images/{image_id}/sharing"): ("write", True),
    ("POST", "/api/generate"): ("generate", True),
    ("GET", "/api/jobs"): ("read", True),
    ("GET", "/api/jobs/{job_id}"): ("read", True),
    ("POST", "/api/jobs/{job_id}/cancel"): ("generate", True),
    ("GET", "/api/events"): ("read", True),
    ("POST", "/api/uploads"): ("write", True),
    ("POST", "/api/uploads/check"): ("write", True),
    ("POST", "/api/dream"): ("generate", True),
    ("GET", "/api/images/{image_id}/similar"): ("read", True),
    ("GET", "/api/images/{image_id}/more-like-this"): ("read", True),
    ("GET", "/api/compare"): ("read", True),
    ("GET", "/api/duplicates"): ("read", True),
    ("GET", "/api/values/{field}"): ("read", True),
    ("POST", "/api/ratings"): ("write", True),
    ("GET", "/api/prompts"): ("read", True),
    ("GET", "/api/prompts/{prompt_id}"): ("read", True),
    ("GET", "/api/prompts/{prompt_id}/variants"): ("read", True),
    ("GET", "/api/suggest"): ("read", True),
    ("GET", "/api/tags"): ("read", True),
    ("GET", "/api/tags/suggest"): ("read", True),
    ("POST", "/api/tags/review"): ("write", True),
    ("POST", "/api/tags"): ("write", True),
    # library-wide: admins only
    ("GET", "/metrics"): ("admin", False),
    ("POST", "/api/images/{image_id}/reveal"): ("write", False),
    ("GET", "/files/{root_id}/{rel_path:path}"): ("read", False),
    ("GET", "/api/folders"): ("read", False),
    ("GET", "/api/stats"): ("read", False),
    ("POST", "/api/scan"): ("admin", False),
    ("POST", "/api/invitations"): ("admin", False),
    ("POST", "/api/autotag"): ("admin", False),
}


# A rating or a favourite is the caller's own: anyone who sees an image may mark it
# (catalog/marks.py keeps a colleague's marks apart from the owner's).
MARK_ROUTES = {
    ("PUT", "/api/images/{image_id}/rating"),
    ("PUT", "/api/images/{image_id}/favorite"),
}


def _route(request: Request) -> tuple[str, str]:
    return request.method, str(getattr(request.scope.get("route"), "path", ""))


def principal(request: Request) -> Principal | None:
    """Who the request acts for: None in an embedded library (no accounts, no filter)."""
    who: Principal | None = getattr(request.state, "principal", None)
    return None if who is None or who.user_id is None else who


def guard(request: Request) -> None:
    """In a library with users, every route naming an image or a content hash answers 404
    for an image the caller may not see, and 403 for a change to one they do not own."""
    who = principal(request)
    if who is None:
        return
    from dreamdepot.server.app import state

    conn = state(request).store.read()
    params = request.path_params
    if "image_id" in params:
        image_id = int(params["image_id"])
        if not can_see(conn, who, image_id):
            raise HTTPException(404, f"no image {image_id}")
        changes = request.method in UNSAFE_METHODS and _route(request) not in MARK_ROUTES
        if changes and not can_change(conn, who, image_id):
            raise HTTPException(403, "only the image's owner may change it")
    if "content_hash" in params and not can_see_hash(conn, who, str(params["content_hash"])):
        raise HTTPException(404, "not found")


def viewer_marks(request: Request) -> Marks:
    """Whose ratings and favourites the caller's queries and pages read: their own."""
    return Marks.of(principal(request))


def restricted(request: Request, query: Query) -> Query:
    """``query`` narrowed to the images the caller may see, read with their marks."""
    who = principal(request)
    if who is None:
        return query
    return query.narrowed(_raw(visible_sql(who))).reading(Marks.of(who))


def owned(request: Request, text: str) -> Query:
    """The query ``text`` over the images the caller may change (bulk edits by query)."""
    from dreamdepot.server.app import state

    query = compile_query(state(request).store.read(), text)
    who = principal(request)
    if who is None:
        return query
    return query.narrowed(_raw(owned_sql(who))).reading(Marks.of(who))


def _raw(where: tuple[str, list[Any]]) -> Raw:
    return Raw(where[0], tuple(where[1]))


def only_visible(request: Request, ids: list[int]) -> list[int]:
    """``ids``, when the caller sees every one: else 404 naming those they cannot see (or
    that do not exist)."""
    from dreamdepot.server.app import state

    conn = state(request).store.read()
    where, params = value_in(conn, "id", ids)
    mine, more = visible_sql(principal(request))
    seen = {r[0] for r in conn.execute(f"SELECT id FROM images WHERE {where} AND {mine}",
                                       [*params, *more])}  # fmt: skip
    unknown = sorted(set(ids) - seen)
    if unknown:
        raise HTTPException(404, f"unknown image ids: {unknown[:20]}")
    return ids


def only_owned(request: Request, ids: list[int]) -> list[int]:
    """``ids``, when the caller may change every one: 404 naming those they cannot see (or
    that do not exist), 403 when some are someone else's."""
    from dreamdepot.server.app import state

    conn = state(request).store.read()
    who = principal(request)
    seen = set(only_visible(request, ids))
    where, params = value_in(conn, "id", ids)
    mine, more = owned_sql(who)
    theirs = len(seen) - len(
        conn.execute(f"SELECT id FROM images WHERE {where} AND {mine}", [*params, *more]).fetchall()
    )
    if theirs:
        raise HTTPException(403, f"{theirs} of these images are someone else's")
    return ids


def enforce_policy(request: Request) -> None:
    """Every route's policy (an app-wide dependency, run once the route is known)."""
    who = principal(request)
    if who is None:
        return
    need, members = POLICY.get(_route(request), ("admin", False))
    if not who.may(need):
        raise HTTPException(403, f"this needs the {need} scope")
    if not members and not who.is_admin:
        raise HTTPException(403, "only an admin may use this on a shared instance")


class AccountAuth:
    """ASGI middleware: the principal of each request in a library with users, and the
    route's policy (see the module docstring). Without users it lets everything through as
    the local user (the shared-token check, when configured, runs inside it)."""

    def __init__(self, app: ASGIApp, fastapi_app: Any) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self._touched: dict[str, float] = {}  # when each key's last use was written

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.concurrency import run_in_threadpool

        if self.fastapi_app.state.dd.accounts_known() is False:  # one user, no lookups
            scope.setdefault("state", {})["principal"] = LOCAL
            await self.app(scope, receive, send)
            return
        # the catalog lookups run off the event loop, which keeps serving other requests
        who = await run_in_threadpool(self._who, scope)
        if isinstance(who, Response):
            await who(scope, receive, send)
            return
        if who is not None:
            scope.setdefault("state", {})["principal"] = who
        await self.app(scope, receive, send)

    def _who(self, scope: Scope) -> Principal | Response | None:
        """The request's principal (LOCAL without accounts), a refusal, or None for the
        open paths (the page, sign-in)."""
        st = self.fastapi_app.state.dd
        if not st.has_accounts():
            return LOCAL
        conn = st.store.read()
        path = scope["path"]
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return None
        return self._authenticate(Request(scope), conn)

    def _authenticate(self, request: Request, conn: Any) -> Principal | Response:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            key = auth[7:].strip()
            who = accounts.principal_for_key(conn, key)
            if who is None:
                return _json(401, {"error": "that API key is not valid (revoked, or its "
                                   "user disabled)"}, bearer=True)  # fmt: skip
            now = time.monotonic()
            if now - self._touched.get(key, 0.0) > TOUCH_SECONDS:  # not a write per request
                self._touched[key] = now
                with self.fastapi_app.state.dd.store.write() as writer:
                    accounts.touch_api_key(writer, key)
            return who
        token = request.cookies.get(SESSION_COOKIE)
        who = accounts.principal_for_session(conn, token) if token else None
        if who is None:
            return _json(401, {"error": "sign in, or pass an API key (Authorization: "
                               "Bearer KEY)"}, bearer=True)  # fmt: skip
        if request.method in UNSAFE_METHODS and not accounts.same_secret(
            request.headers.get(CSRF_HEADER), who.csrf
        ):
            return _json(403, {"error": "missing or wrong X-CSRF-Token for this session"})
        return who


def _json(status: int, body: dict[str, Any], bearer: bool = False) -> Response:
    from fastapi.responses import JSONResponse

    headers = {"WWW-Authenticate": "Bearer"} if bearer else None
    return JSONResponse(body, status_code=status, headers=headers)


# -- routes --------------------------------------------------------------------------------

router = APIRouter(prefix="/api", tags=["accounts"])


def _throttle(request: Request) -> accounts.Throttle:
    """This server's record of failed sign-ins."""
    if not hasattr(request.app.state, "login_throttle"):
        request.app.state.login_throttle = accounts.Throttle()
    throttle: accounts.Throttle = request.app.state.login_throttle
    return throttle


class LoginBody(BaseModel):
    name: str = Field(max_length=100)
    password: str = Field(max_length=1000)


def _public(who: Principal) -> dict[str, Any]:
    return {
        "id": who.user_id,
        "name": who.name,
        "display_name": who.display_name,
        "role": who.role,
        "scopes": sorted(who.scopes),
        "csrf_token": who.csrf,
    }


@router.post("/login")
def login(request: Request, body: LoginBody, response: Response) -> dict[str, Any]:
    """Sign in: a new session cookie (HttpOnly, SameSite=Lax, Secure over HTTPS) and the
    CSRF token the page sends back on every change. Failures are throttled per account and
    per address."""
    from dreamdepot.server.app import state

    st = state(request)
    address = request.client.host if request.client else "?"
    keys = (f"user:{body.name.lower()}", f"addr:{address}")
    throttle = _throttle(request)
    wait = throttle.blocked(*keys)
    if wait:
        raise HTTPException(
            429, "too many failed sign-ins; try again later", {"Retry-After": f"{wait:.0f}"}
        )
    user_id = accounts.check_password(st.store.read(), body.name, body.password)
    if user_id is None:
        throttle.failed(*keys)
        raise HTTPException(401, "wrong name or password")
    throttle.succeeded(keys[0])
    return _signed_in(request, response, user_id)


class InviteBody(BaseModel):
    role: str = Field("member", pattern="^(admin|member|viewer)$")
    days: float = Field(7.0, gt=0, le=90)


@router.post("/invitations")
def invite(request: Request, body: InviteBody) -> dict[str, Any]:
    """A one-time link for one new account (admins)."""
    from dreamdepot.server.app import state

    who = principal(request)
    with state(request).store.write() as conn:
        token = accounts.create_invitation(
            conn, body.role, who.user_id if who else None, body.days * 86400
        )
    return {"token": token, "path": f"/#/invite/{token}", "role": body.role}


class AcceptBody(BaseModel):
    token: str = Field(max_length=200)
    name: str = Field(max_length=100)
    password: str = Field(min_length=8, max_length=1000)
    display_name: str | None = Field(None, max_length=200)


@router.post("/invitations/accept")
def accept(request: Request, body: AcceptBody, response: Response) -> dict[str, Any]:
    """Make the invited account and sign it in (a session cookie, as at login)."""
    from dreamdepot.server.app import state

    st = state(request)
    address = request.client.host if request.client else "?"
    throttle = _throttle(request)
    if throttle.blocked(f"addr:{address}"):
        raise HTTPException(429, "too many failed tries; try again later")
    try:
        with st.store.write() as conn:
            user_id = accounts.accept_invitation(
                conn, body.token, body.name, body.password, body.display_name
            )
    except accounts.AccountError as exc:
        throttle.failed(f"addr:{address}")
        raise HTTPException(400, str(exc)) from exc
    return _signed_in(request, response, user_id)


def _signed_in(request: Request, response: Response, user_id: int) -> dict[str, Any]:
    """A new session for ``user_id``, its cookie on ``response``."""
    from dreamdepot.server.app import state

    st = state(request)
    with st.store.write() as conn:
        token, _ = accounts.create_session(conn, user_id)
    who = accounts.principal_for_session(st.store.read(), token)
    assert who is not None
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=accounts.SESSION_SECONDS,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return _public(who)


@router.get("/login/methods")
def login_methods(request: Request) -> dict[str, bool]:
    """How one may sign in here (the sign-in page offers what there is)."""
    from dreamdepot.server.app import state
    from dreamdepot.server.oidc import enabled

    return {"password": True, "oidc": enabled(state(request).settings)}


@router.post("/logout")
def logout(request: Request, response: Response) -> dict[str, Any]:
    from dreamdepot.server.app import state

    token = request.cookies.get(SESSION_COOKIE)
    if token:
        with state(request).store.write() as conn:
            accounts.end_session(conn, token)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"signed_out": True}


@router.get("/me")
def me(request: Request) -> dict[str, Any]:
    """Who this request acts for (the local user in a library without accounts)."""
    from dreamdepot.server.app import state

    who: Principal = getattr(request.state, "principal", LOCAL)
    out = False
    if who.user_id is not None:
        row = (
            state(request)
            .store.read()
            .execute("SELECT cache_opt_out FROM users WHERE id = ?", (who.user_id,))
            .fetchone()
        )
        out = bool(row and row[0])
    return {**_public(who), "accounts": who.user_id is not None, "cache_opt_out": out}


class Preferences(BaseModel):
    cache_opt_out: bool


@router.put("/me")
def set_preferences(request: Request, body: Preferences) -> dict[str, Any]:
    """``cache_opt_out``: keep my shared images out of other users' dream cache answers."""
    from dreamdepot.server.app import state

    who = principal(request)
    if who is None:
        raise HTTPException(409, "a library without accounts has no one to set this for")
    with state(request).store.write() as conn:
        accounts.set_cache_opt_out(conn, who.user_id or 0, body.cache_opt_out)
    return me(request)
