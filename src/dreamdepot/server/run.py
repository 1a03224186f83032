"""Starting the server: loopback by default, a token required anywhere else."""

from __future__ import annotations

import ipaddress
import threading
import webbrowser
from pathlib import Path

from dreamdepot.config import ServerSettings
from dreamdepot.errors import DreamDepotError

MIN_TOKEN_LENGTH = 16


def resolve_token(
    given: str | None, token_file: Path | None, settings: ServerSettings
) -> str | None:
    """The access token from ``--token``/``DREAMDEPOT_TOKEN``, ``--token-file``, or the
    settings (``token``, ``token_file``), in that order; refused when shorter than 16
    characters (a short token is guessed by anyone who can reach the port)."""
    token = given
    path = token_file or (Path(settings.token_file).expanduser() if settings.token_file else None)
    if token is None and path is not None:
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise DreamDepotError(f"cannot read the token file {path}: {exc.strerror}") from exc
    if token is None:
        token = settings.token
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise DreamDepotError(
            f"the access token must be at least {MIN_TOKEN_LENGTH} characters; make one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(24))'`"
        )
    return token or None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_server(
    library_path: Path,
    host: str,
    port: int,
    token: str | None,
    open_browser: bool = True,
    watch: bool = True,
    behind_proxy: bool = False,
) -> None:
    import uvicorn

    from dreamdepot.accounts import has_accounts
    from dreamdepot.server.app import create_app
    from dreamdepot.server.background import after_indexing, start_watcher, warm_dream_cache

    app = create_app(library_path, token=token)
    st = app.state.dd
    server = st.settings.server
    behind_proxy = behind_proxy or server.behind_proxy
    tls = (server.tls_cert, server.tls_key) if server.tls_cert and server.tls_key else None
    if not is_loopback(host):
        if not token and not has_accounts(st.store.read()):
            raise DreamDepotError(
                f"refusing to serve on {host} without an access token or accounts: pass "
                "--token (or set [server] token), or add users (dreamdepot users add); "
                "without either, bind 127.0.0.1"
            )
        if tls is None and not behind_proxy:
            raise DreamDepotError(
                f"refusing to serve on {host} over plain HTTP: set [server] tls_cert and "
                "tls_key, or run behind an HTTPS reverse proxy with --behind-proxy (and "
                "[server] trusted_proxies naming it)"
            )
    st.start(after_indexing, "dreamdepot-stages", st)
    if has_accounts(st.store.read()):  # many users' requests would wait on the first lookup
        st.start(warm_dream_cache, "dreamdepot-warm", st)
    if st.settings.backend:  # recover jobs of ended processes now, not at the first request
        from fastapi import HTTPException

        from dreamdepot.server.routes.generate import queue_for

        try:
            queue_for(st)
        except HTTPException as exc:
            print(f"generation is unavailable: {exc.detail}", flush=True)
    if watch:
        start_watcher(st)
    scheme = "https" if tls else "http"
    url = f"{scheme}://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
    # the token is never printed (terminal scroll-back, logs): the browser gets it once
    print(
        f"Dream Depot at {url}" + ("  (access token required)" if token else "")
        + "  (Ctrl-C stops)", flush=True,
    )  # fmt: skip
    if open_browser:
        opened = url + (f"?token={token}" if token else "")
        threading.Timer(1.0, lambda: webbrowser.open(opened)).start()
    try:
        # an open event stream (a browser tab) must not hold a stopping server up
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=5,
            # X-Forwarded-For/-Proto are believed only behind a proxy, and only from it
            proxy_headers=behind_proxy,
            forwarded_allow_ips=server.trusted_proxies if behind_proxy else [],
            ssl_certfile=tls[0] if tls else None,
            ssl_keyfile=tls[1] if tls else None,
        )
    finally:
        st.shutdown()
