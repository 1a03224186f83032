"""A stand-in OpenID Connect provider for the tests: the documented shapes of discovery
(OpenID Connect Discovery 1.0 §4), the authorization endpoint (it signs in one configured
user at once and redirects back with a code, as a provider does after its login page), the
token endpoint (authorization code grant with the client secret and the PKCE verifier,
RFC 6749 §4.1.3 / RFC 7636 §4.6; ``invalid_grant`` for a wrong or reused code) and the
JWKS (RFC 7517), ID tokens signed RS256 with a key made per run."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Form
from fastapi.responses import JSONResponse, RedirectResponse
from joserfc import jwt
from joserfc.jwk import RSAKey

from server import Serving


class FakeOidc:
    def __init__(self, client_id: str = "dreamdepot", client_secret: str = "s3cret") -> None:
        self.app = self._app()
        self.serving = Serving(self.app)
        self.issuer = self.serving.url
        self.client_id, self.client_secret = client_id, client_secret
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
        self.user: dict[str, Any] = {"sub": "u-123", "preferred_username": "carla", "name": "Carla"}
        self.audience: str | None = None  # set to mint tokens for another client
        self.codes: dict[str, dict[str, Any]] = {}

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/.well-known/openid-configuration")
        def discovery() -> dict[str, Any]:
            return {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }

        @app.get("/authorize")
        def authorize(
            client_id: str, redirect_uri: str, state: str, nonce: str,
            code_challenge: str, code_challenge_method: str, response_type: str = "code",
            scope: str = "",
        ) -> Any:  # fmt: skip
            if client_id != self.client_id or response_type != "code" or "openid" not in scope:
                return JSONResponse({"error": "invalid_request"}, status_code=400)
            code = secrets.token_urlsafe(16)
            self.codes[code] = {"nonce": nonce, "challenge": code_challenge,
                                "redirect_uri": redirect_uri}  # fmt: skip
            return RedirectResponse(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}")

        @app.post("/token")
        def token(
            grant_type: str = Form(...), code: str = Form(...), redirect_uri: str = Form(...),
            client_id: str = Form(...), client_secret: str = Form(""),
            code_verifier: str = Form(""),
        ) -> Any:  # fmt: skip
            if client_id != self.client_id or client_secret != self.client_secret:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            grant = self.codes.pop(code, None)
            digest = base64.urlsafe_b64encode(hashlib.sha256(code_verifier.encode()).digest())
            if (
                grant_type != "authorization_code" or grant is None
                or grant["redirect_uri"] != redirect_uri
                or digest.rstrip(b"=").decode() != grant["challenge"]
            ):  # fmt: skip
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            now = int(time.time())
            claims = {**self.user, "iss": self.issuer, "aud": self.audience or self.client_id,
                      "iat": now, "exp": now + 300, "nonce": grant["nonce"]}  # fmt: skip
            signed = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, self.key)
            return {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                    "expires_in": 300, "id_token": signed}  # fmt: skip

        @app.get("/jwks")
        def jwks() -> dict[str, Any]:
            return {"keys": [self.key.as_dict(private=False)]}

        return app

    def __enter__(self) -> FakeOidc:
        self.serving.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.serving.__exit__(*exc)
