"""Browser-facing defences, applied to every request before anything else runs.

- **Host allow-list** (DNS rebinding): a page on ``evil.example`` whose name is made to
  resolve to 127.0.0.1 reaches the server with ``Host: evil.example``. Only loopback names,
  IP literals (a rebinding attack needs a name) and the names configured in
  ``[server] allowed_hosts`` are answered; anything else is a 421.
- **Cross-site writes**: a state-changing request (POST, PUT, PATCH, DELETE — with or without
  a body) is refused with 403 when the browser says it comes from another site
  (``Sec-Fetch-Site: cross-site``/``same-site``) or its ``Origin`` is not this server's own.
  Clients that are not browsers send neither header and are not affected.
- **Headers** on every response: a Content-Security-Policy without inline script and with
  ``frame-ancestors 'none'``, ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
  no-referrer``, ``Cross-Origin-Resource-Policy: same-origin``, ``X-Frame-Options: DENY``.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's /docs and /redoc pages load their assets from a CDN with an inline bootstrap
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com; font-src 'self' https://fonts.gstatic.com; "
    "worker-src blob:; connect-src 'self'; object-src 'none'; frame-ancestors 'none'"
)
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


def host_name(host_header: str) -> str:
    """The name part of a Host header, lower case, without port or IPv6 brackets.

    >>> host_name("LocalHost:8765"), host_name("[::1]:80"), host_name("127.0.0.1")
    ('localhost', '::1', '127.0.0.1')
    """
    h = host_header.strip().lower()
    if h.startswith("["):
        return h[1 : h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def host_allowed(name: str, allowed: Iterable[str]) -> bool:
    """Loopback names, IP literals and the configured names (``*.example.com`` allowed).

    >>> host_allowed("localhost", []), host_allowed("10.0.0.5", []), host_allowed("evil.tld", [])
    (True, True, False)
    >>> host_allowed("a.example.com", ["*.example.com"])
    True
    """
    if not name:
        return False
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    for pattern in allowed:
        p = pattern.strip().lower()
        if p == name or (p.startswith("*.") and name.endswith(p[1:])):
            return True
    return False


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = [h for h in allowed_hosts if h]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if not host_allowed(host_name(host), self.allowed):
            await _refuse(send, scope, 421, "this server does not answer to that host name: "
                          "add it to [server] allowed_hosts in dreamdepot.toml")  # fmt: skip
            return
        if scope["type"] == "http" and scope["method"] in UNSAFE_METHODS:
            reason = cross_site(headers, scope.get("scheme", "http"), host)
            if reason:
                await _refuse(send, scope, 403, f"cross-site request refused: {reason}")
                return
        path = scope.get("path", "")
        csp = DOCS_CSP if path in ("/docs", "/redoc") else CSP

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                ours = [*HEADERS, (b"content-security-policy", csp.encode())]
                names = {name for name, _ in ours}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = kept + ours
            await send(message)

        await self.app(scope, receive, with_headers)


def cross_site(headers: dict[str, str], scheme: str, host: str) -> str | None:
    """Why a state-changing request comes from another site, or None when it does not.

    >>> cross_site({"sec-fetch-site": "cross-site"}, "http", "127.0.0.1:8765")
    'Sec-Fetch-Site is cross-site'
    >>> cross_site({"origin": "http://127.0.0.1:8765"}, "http", "127.0.0.1:8765") is None
    True
    >>> cross_site({"origin": "null"}, "http", "127.0.0.1:8765")
    'Origin null is not this server'
    """
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site is {site}"
    origin = headers.get("origin")
    if origin is not None:
        forwarded = headers.get("x-forwarded-proto")
        own = {f"{scheme}://{host}".lower(), f"{forwarded or scheme}://{host}".lower()}
        if origin.lower() not in own:
            return f"Origin {origin} is not this server"
    return None


async def _refuse(send: Send, scope: Scope, status: int, message: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps({"error": message}).encode()
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *HEADERS,
        (b"content-security-policy", CSP.encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
