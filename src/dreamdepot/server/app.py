"""The app factory: settings, auth, error shapes, routers, static UI.

Every error is JSON ``{"error": message, ...}`` with a 4xx status; a query error also says
the position. Route handlers stay thin: they call catalog functions.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

import dreamdepot.semantic  # noqa: F401  (registers the similar: query field)
from dreamdepot import __version__
from dreamdepot.catalog.db import Catalog
from dreamdepot.config import Settings, load_settings
from dreamdepot.errors import DreamDepotError, QueryError
from dreamdepot.metrics import RequestTimer, catalog_registry, render
from dreamdepot.server.events import EventBus
from dreamdepot.server.security import SecurityMiddleware
from dreamdepot.server.store import Store

log = logging.getLogger("dreamdepot.server")
WEB_DIR = Path(__file__).resolve().parent.parent / "web"
TOKEN_COOKIE = "dreamdepot_token"


@dataclass
class AppState:
    library_path: Path
    settings: Settings
    store: Store
    events: EventBus
    token: str | None
    roots: dict[int, str] = field(default_factory=dict)
    background: list[threading.Thread] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _blobs: Any = None
    _accounts: bool = False  # once a user exists, the library has accounts for good
    _no_accounts_until: float = 0.0

    def accounts_known(self) -> bool | None:
        """Whether the library has accounts, when that is known without asking the catalog
        (None: ask). "None yet" is believed for a second, so a single-user library pays
        no lookup per request, and the first user added counts within a second."""
        if self._accounts:
            return True
        return False if time.monotonic() < self._no_accounts_until else None

    def has_accounts(self) -> bool:
        known = self.accounts_known()
        if known is not None:
            return known
        from dreamdepot.accounts import has_accounts

        self._accounts = has_accounts(self.store.read())
        if not self._accounts:
            self._no_accounts_until = time.monotonic() + 1.0
        return self._accounts

    @property
    def blobs(self) -> Any:
        """Where uploads and generated images are kept (storage.py): the library folder,
        or the object store the settings name."""
        if self._blobs is None:
            from dreamdepot.storage import open_store

            self._blobs = open_store(self.settings, self.library_path)
        return self._blobs

    @property
    def catalog_where(self) -> str | Path:
        """What a background thread or a job opens to reach this library's catalog."""
        return self.store.where

    def open_catalog(self) -> Catalog:
        """A catalog connection of its own (for a background thread)."""
        return Catalog.open(self.catalog_where, library_dir=self.library_path.resolve())

    def start(self, target: Any, name: str, *args: Any) -> threading.Thread:
        """Run background work in a thread that shutdown() waits for; a failure is logged
        (and is expected, and quiet, once shutdown has stopped the worker pools)."""

        def run() -> None:
            try:
                target(*args)
            except Exception:
                if not self.stop.is_set():
                    log.exception("background work %s failed", name)

        t = threading.Thread(target=run, name=name, daemon=True)
        t.start()
        self.background = [b for b in self.background if b.is_alive()] + [t]
        return t

    def shutdown(self, timeout: float = 60.0) -> None:
        """Stop background work and wait for it: native thread pools (torch, onnxruntime)
        must not be torn down under a running stage when the process exits."""
        from dreamdepot.workers import terminate_all

        self.stop.set()
        terminate_all()  # forked stage workers end now, not after their stage
        deadline = time.monotonic() + timeout
        for t in list(self.background):
            t.join(max(0.0, deadline - time.monotonic()))
        from dreamdepot.server.routes.generate import forget_queue

        forget_queue(self)
        self.store.close()  # every thread's connection: PostgreSQL limits how many

    def refresh_roots(self) -> None:
        self.roots = {r[0]: r[1] for r in self.store.read().execute("SELECT id, path FROM roots")}


def state(request: Request) -> AppState:
    dd: AppState = request.app.state.dd
    return dd


class TokenAuth(BaseHTTPMiddleware):
    """With a token configured, every request must carry it: ``Authorization: Bearer``, the
    ``dreamdepot_token`` cookie, or ``?token=`` (which then sets the cookie, so image URLs
    inside the page work)."""

    def __init__(self, app: FastAPI, token: str) -> None:
        super().__init__(app)
        self.token = token

    def _ok(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self.token.encode())

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if state(request).has_accounts():  # users sign in: AccountAuth decided
            return await call_next(request)
        auth = request.headers.get("authorization", "")
        bearer = auth[7:] if auth.lower().startswith("bearer ") else None
        query_token = request.query_params.get("token")
        if self._ok(bearer) or self._ok(request.cookies.get(TOKEN_COOKIE)):
            return await call_next(request)
        if self._ok(query_token):
            response = await call_next(request)
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
            return response
        return JSONResponse(
            {"error": "authentication required: pass the access token"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )


def create_app(library_path: Path, token: str | None = None) -> FastAPI:
    from dreamdepot.server import accounts as account_routes
    from dreamdepot.server import oidc
    from dreamdepot.server.accounts import AccountAuth, enforce_policy
    from dreamdepot.server.routes import (
        albums,
        files,
        generate,
        images,
        prompts,
        semantic,
        system,
        tags,
        uploads,
    )

    library_path = Path(library_path)
    settings = load_settings(library_path)
    token = token or settings.server.token
    app = FastAPI(
        title="Dream Depot",
        version=__version__,
        description="Browse, search and tag a library of AI-generated images.",
        redirect_slashes=False,
        dependencies=[Depends(enforce_policy)],
    )
    app.state.dd = AppState(
        library_path=library_path,
        settings=settings,
        store=Store(settings.database or library_path / "catalog.sqlite", library_path.resolve()),
        events=EventBus(),
        token=token,
    )
    app.state.dd.refresh_roots()
    app.state.metrics = catalog_registry(app.state.dd.store.read)
    if settings.job_runner == "workers":  # progress from workers on other machines → SSE
        from dreamdepot.generate.dispatch import relay

        dd = app.state.dd
        dd.start(relay, "dreamdepot-job-events", settings.database, dd.events.publish, dd.stop)
    app.add_middleware(RequestTimer)
    if token:
        app.add_middleware(TokenAuth, token=token)  # type: ignore[arg-type]
    # with users, each request names one (API key or session) and each route has a policy
    app.add_middleware(AccountAuth, fastapi_app=app)
    # outermost: a rebinding or cross-site request is refused before anything else runs
    app.add_middleware(SecurityMiddleware, allowed_hosts=settings.server.allowed_hosts)

    @app.exception_handler(QueryError)
    async def _query_error(request: Request, exc: QueryError) -> JSONResponse:
        return JSONResponse({"error": str(exc), "position": exc.position}, status_code=400)

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> JSONResponse:
        """An integer the catalog cannot hold (SQLite integers are 64-bit)."""
        return JSONResponse(
            {"error": "a number is out of range (at most 9223372036854775807)"}, status_code=400
        )

    @app.exception_handler(UnicodeEncodeError)
    async def _bad_text(request: Request, exc: UnicodeEncodeError) -> JSONResponse:
        return JSONResponse(
            {"error": "text must be valid Unicode (no unpaired surrogates)"}, status_code=400
        )

    @app.exception_handler(DreamDepotError)
    async def _dd_error(request: Request, exc: DreamDepotError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        body = {"error": exc.detail}
        if isinstance(exc.detail, dict):  # {"message", "field"}: the field goes alongside
            body = {k: v for k, v in exc.detail.items() if k != "message"}
            body["error"] = exc.detail.get("message")
        return JSONResponse(
            body, status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [".".join(str(p) for p in e["loc"][1:]) for e in exc.errors()]
        details = [
            {"field": f, "message": str(e.get("msg"))}
            for f, e in zip(fields, exc.errors(), strict=True)
        ]
        return JSONResponse(
            {
                "error": f"invalid {', '.join(f for f in fields if f) or 'request'}",
                "field": fields[0] if fields else "",  # the same key as the routes' own 422s
                "fields": fields,
                "details": details,
            },
            status_code=422,
        )

    for module in (images, tags, albums, prompts, semantic, generate, files, system, uploads):
        app.include_router(module.router)
    app.include_router(account_routes.router)
    app.include_router(oidc.router)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        """Prometheus metrics: jobs by state and queue, job and request durations, dream
        cache hits and GPU-seconds saved (behind the same authentication as the API)."""
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(render(app.state.metrics), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        page = WEB_DIR / "index.html"
        if not page.exists():
            return JSONResponse({"name": "Dream Depot", "api": "/docs"})
        return FileResponse(page, headers={"Cache-Control": "no-cache"})

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if "/" in name or name.startswith(".") or not (WEB_DIR / name).is_file():
            raise HTTPException(404, "not found")
        return FileResponse(WEB_DIR / name, headers={"Cache-Control": "no-cache"})

    return app
