"""Sign-in through a company identity provider: OpenID Connect's authorization code flow
with PKCE (RFC 7636), for instances behind Keycloak, Entra ID, Okta, Google and the like.

``GET /api/oidc/login`` sends the browser to the provider's authorization endpoint (found in
its discovery document) with a fresh ``state``, ``nonce`` and code challenge, which are kept
in a short-lived HttpOnly cookie of this browser; ``GET /api/oidc/callback`` checks
``state`` against that cookie (a login started elsewhere cannot be completed here),
exchanges the code at the token endpoint, and accepts the ID token only when its signature
verifies against the provider's published keys and its issuer, audience, nonce and expiry
are right (joserfc, the authlib project's JOSE library). The account is found by the
provider's subject identifier, or made at the first sign-in with ``oidc_role``; a disabled
account stays out; a local account of the same name is never taken over.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from dreamdepot import accounts

router = APIRouter(prefix="/api/oidc", tags=["accounts"])
FLOW_COOKIE = "dd_oidc"
FLOW_SECONDS = 600
_discovery: dict[str, tuple[float, dict[str, Any]]] = {}


def enabled(settings: Any) -> bool:
    s = settings.server
    return bool(s.oidc_issuer and s.oidc_client_id)


def _settings(request: Request) -> Any:
    from dreamdepot.server.app import state

    server = state(request).settings.server
    if not (server.oidc_issuer and server.oidc_client_id):
        raise HTTPException(404, "this instance has no OpenID Connect sign-in")
    return server


def discover(issuer: str) -> dict[str, Any]:
    """The provider's discovery document (cached for an hour)."""
    cached = _discovery.get(issuer)
    if cached and time.monotonic() - cached[0] < 3600:
        return cached[1]
    try:
        r = httpx.get(issuer.rstrip("/") + "/.well-known/openid-configuration", timeout=10)
        r.raise_for_status()
        doc = dict(r.json())
    except (httpx.HTTPError, ValueError) as exc:
        raise HTTPException(502, f"the identity provider did not answer: {exc}") from exc
    if doc.get("issuer") != issuer:
        raise HTTPException(502, "the identity provider's discovery names another issuer")
    _discovery[issuer] = (time.monotonic(), doc)
    return doc


def _callback_url(request: Request) -> str:
    return str(request.url_for("oidc_callback"))


@router.get("/login")
def oidc_login(request: Request) -> Response:
    """Start signing in at the identity provider."""
    server = _settings(request)
    doc = discover(server.oidc_issuer)
    state, nonce, verifier = (secrets.token_urlsafe(24) for _ in range(3))
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    params = {
        "response_type": "code",
        "client_id": server.oidc_client_id,
        "redirect_uri": _callback_url(request),
        "scope": "openid profile email",
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
    }
    response = RedirectResponse(f"{doc['authorization_endpoint']}?{urlencode(params)}", 302)
    response.set_cookie(
        FLOW_COOKIE,
        json.dumps({"state": state, "nonce": nonce, "verifier": verifier}),
        max_age=FLOW_SECONDS,
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back, not cross-site posts
        secure=request.url.scheme == "https",
        path="/api/oidc",
    )
    return response


@router.get("/callback", name="oidc_callback")
def oidc_callback(request: Request, code: str = "", state: str = "", error: str = "") -> Response:
    """Finish signing in: the code for tokens, the ID token checked, a session made."""
    from joserfc import jwt
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    from dreamdepot.server.accounts import SESSION_COOKIE
    from dreamdepot.server.app import state as app_state

    server = _settings(request)
    if error:
        raise HTTPException(400, f"the identity provider refused: {error}")
    try:
        flow = json.loads(request.cookies.get(FLOW_COOKIE) or "{}")
    except ValueError:
        flow = {}
    if not flow.get("state") or not accounts.same_secret(flow.get("state"), state) or not code:
        raise HTTPException(400, "this sign-in was not started here (state does not match)")
    doc = discover(server.oidc_issuer)
    try:
        tokens = httpx.post(
            doc["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": _callback_url(request),
                "client_id": server.oidc_client_id,
                "client_secret": server.oidc_client_secret or "",
                "code_verifier": flow["verifier"],
            },
            timeout=10,
        )
        tokens.raise_for_status()
        id_token = tokens.json()["id_token"]
        keys = KeySet.import_key_set(httpx.get(doc["jwks_uri"], timeout=10).json())
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise HTTPException(502, f"the identity provider's token exchange failed: {exc}") from exc
    registry = jwt.JWTClaimsRegistry(
        leeway=60,
        iss={"essential": True, "value": server.oidc_issuer},
        aud={"essential": True, "value": server.oidc_client_id},
        nonce={"essential": True, "value": flow["nonce"]},
        sub={"essential": True},
        exp={"essential": True},
    )
    try:
        claims = jwt.decode(id_token, keys, algorithms=["RS256", "ES256", "PS256"]).claims
        registry.validate(claims)
    except (JoseError, ValueError) as exc:
        raise HTTPException(400, f"the ID token was not accepted: {exc}") from exc
    st = app_state(request)
    with st.store.write() as conn:
        user_id = _account(conn, claims, server)
        token, _ = accounts.create_session(conn, user_id)
    response = RedirectResponse("/", 302)
    response.delete_cookie(FLOW_COOKIE, path="/api/oidc")
    response.set_cookie(
        SESSION_COOKIE, token, max_age=accounts.SESSION_SECONDS, httponly=True,
        samesite="lax", secure=request.url.scheme == "https", path="/",
    )  # fmt: skip
    return response


def _account(conn: Any, claims: Any, server: Any) -> int:
    """The user with this subject; made (with ``oidc_role``) at their first sign-in."""
    subject = f"{server.oidc_issuer}#{claims['sub']}"
    row = conn.execute(
        "SELECT id, disabled FROM users WHERE oidc_subject = ?", (subject,)
    ).fetchone()
    if row is not None:
        if row[1]:
            raise HTTPException(403, "this account is disabled")
        return int(row[0])
    wanted = str(claims.get(server.oidc_username_claim) or claims.get("email") or claims["sub"])
    name = "".join(c for c in wanted if not c.isspace())[:90] or "user"
    taken = accounts.user_by_name(conn, name) is not None
    if taken:  # a local account of that name is not theirs to take over
        name = f"{name}-{secrets.token_hex(3)}"
    user_id = accounts.add_user(conn, name, server.oidc_role, None, claims.get("name") or name)
    conn.execute("UPDATE users SET oidc_subject = ? WHERE id = ?", (subject, user_id))
    return user_id
