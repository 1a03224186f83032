"""Starting the server: loopback by default, a token required anywhere else."""

from __future__ import annotations

import ipaddress
import threading
import webbrowser
from pathlib import Path

from dreamdepot.errors import DreamDepotError


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
) -> None:
    import uvicorn

    from dreamdepot.server.app import create_app
    from dreamdepot.server.background import after_indexing, start_watcher

    if not is_loopback(host) and not token:
        raise DreamDepotError(
            f"refusing to serve on {host} without an access token: pass --token (or set "
            "[server] token in dreamdepot.toml); without one, bind 127.0.0.1"
        )
    app = create_app(library_path, token=token)
    st = app.state.dd
    st.start(after_indexing, "dreamdepot-stages", st)
    if watch:
        start_watcher(st)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
    if token:
        url += f"?token={token}"
    print(f"Dream Depot at {url}  (Ctrl-C stops)", flush=True)
    if open_browser:
        threading.Timer(1.0, lambda: webbrowser.open(url)).start()
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        st.shutdown()
