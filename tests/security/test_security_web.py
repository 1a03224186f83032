"""The server as an outside web page would attack it: DNS rebinding, cross-site writes,
files served as pages, missing security headers (issue: hardening)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from builders import A1111_TEXT, png
from conftest import Cli, catalog
from server import Server

UNSAFE = [
    ("POST", "/api/scan", None),
    ("POST", "/api/autotag", None),
    ("POST", "/api/jobs/1/cancel", None),
    ("POST", "/api/tags", {"tags": ["pwned"], "q": ""}),
    ("PUT", "/api/images/1/rating", {"rating": 1}),
]


@pytest.fixture
def served(cli: Cli, tmp_path: Path) -> Server:
    pics = tmp_path / "pics"
    png(pics / "real.png", {"parameters": A1111_TEXT})
    (pics / ".env").write_text("SECRET=hunter2\n")
    (pics / ".ssh").mkdir()
    (pics / ".ssh" / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (pics / "notes.txt").write_text("private notes")
    (pics / "page.html").write_text("<script>fetch('/api/stats')</script>")
    (pics / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>')
    (pics / "fake.png").write_text("<html><script>alert(1)</script></html>")  # not a PNG
    cli("add", str(pics))
    return Server(cli.library_path)


def test_dns_rebinding_names_are_refused(served: Server) -> None:
    with served as srv, httpx.Client(base_url=srv.base) as c:
        for path in ("/", "/api/stats", "/files/1/.env", "/api/images"):
            r = c.get(path, headers={"Host": f"evil.example:{srv.port}"})
            assert r.status_code == 421, path
            assert "SECRET" not in r.text
        r = c.post("/api/tags", json={"tags": ["x"], "q": ""}, headers={"Host": "evil.example"})
        assert r.status_code == 421
        for host in (f"127.0.0.1:{srv.port}", f"localhost:{srv.port}", "[::1]", "10.1.2.3"):
            assert c.get("/api/stats", headers={"Host": host}).status_code == 200, host


def test_allowed_hosts_are_configurable(cli: Cli) -> None:
    cli("stats")
    toml = cli.library_path / "dreamdepot.toml"
    toml.write_text(toml.read_text() + '\nallowed_hosts = ["dd.example.org"]\n')
    with Server(cli.library_path) as srv, httpx.Client(base_url=srv.base) as c:
        assert c.get("/api/stats", headers={"Host": "dd.example.org"}).status_code == 200
        assert c.get("/api/stats", headers={"Host": "other.example.org"}).status_code == 421


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian chromium missing")
def test_rebinding_in_a_real_browser(served: Server) -> None:
    """Chromium resolving attacker.test to 127.0.0.1 (what a rebinding DNS server does)."""
    from playwright.sync_api import sync_playwright

    with served as srv, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--host-resolver-rules=MAP attacker.test 127.0.0.1"],
        )  # fmt: skip
        page = browser.new_page()
        response = page.goto(f"http://attacker.test:{srv.port}/files/1/.env")
        assert response is not None and response.status == 421
        result = page.evaluate(
            """async () => {
                const r = await fetch('/api/tags', {method: 'POST',
                    headers: {'Content-Type': 'application/json'},
                    body: JSON.stringify({tags: ['pwned'], q: ''})});
                return r.status;
            }"""
        )
        assert result == 421
        browser.close()
    conn = catalog(served.app.state.dd.library_path)
    assert conn.execute("SELECT count(*) FROM tags WHERE name = 'pwned'").fetchone()[0] == 0


def test_cross_site_writes_are_refused_with_or_without_a_body(served: Server) -> None:
    with served as srv, httpx.Client(base_url=srv.base) as c:
        for method, path, body in UNSAFE:
            for headers in (
                {"Origin": "http://evil.example"},
                {"Origin": "null"},
                {"Sec-Fetch-Site": "cross-site"},
                {"Sec-Fetch-Site": "same-site", "Origin": f"http://localhost:{srv.port + 1}"},
            ):
                r = c.request(method, path, json=body, headers=headers)
                assert r.status_code == 403, (method, path, headers, r.status_code)
                assert "cross-site" in r.json()["error"]
        # the app's own page, and clients that are not browsers, still write
        own = {"Origin": srv.base, "Sec-Fetch-Site": "same-origin"}
        assert c.put("/api/images/1/rating", json={"rating": 3}, headers=own).status_code == 200
        assert c.put("/api/images/1/rating", json={"rating": 4}).status_code == 200
        # reads from anywhere are unaffected (the Host check still applies)
        assert c.get("/api/stats", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian chromium missing")
def test_a_cross_origin_form_and_text_plain_fetch_are_refused(
    served: Server, tmp_path: Path
) -> None:
    """A page on another origin (another local port: another app on this machine) posts a
    form and a no-cors text/plain fetch at the app; neither changes anything."""
    import functools
    import http.server
    import threading

    from playwright.sync_api import sync_playwright

    with served as srv, sync_playwright() as p:
        target = f"{srv.base}/api/tags"
        site = tmp_path / "attacker"
        site.mkdir()
        (site / "index.html").write_text(
            f"""<form id=f method=POST action="{target}" enctype="text/plain">
            <input name='{{"tags":["pwned"],"q":"","x":"' value='"}}'></form>
            <script>
            window.sent = fetch({target!r}, {{method: 'POST', mode: 'no-cors',
                headers: {{'Content-Type': 'text/plain'}},
                body: JSON.stringify({{tags: ['pwned'], q: ''}})}})
              .then(() => 'sent', (e) => 'blocked: ' + e);
            </script>"""
        )
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
        attacker = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=attacker.serve_forever, daemon=True).start()
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{attacker.server_address[1]}/index.html")
        page.evaluate("() => window.sent")
        with page.expect_navigation():
            page.evaluate("() => document.getElementById('f').submit()")
        assert "cross-site request refused" in page.content()
        browser.close()
        attacker.shutdown()
    conn = catalog(srv.app.state.dd.library_path)
    assert conn.execute("SELECT count(*) FROM tags WHERE name = 'pwned'").fetchone()[0] == 0


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian chromium missing")
def test_the_ui_runs_under_its_own_csp(served: Server) -> None:
    """No bypass here: the page, its script, placeholders (data: URIs) and AVIF thumbnails
    all work under the policy, and the browser reports no violation."""
    from playwright.sync_api import sync_playwright

    with served as srv, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if "Content Security" in m.text
                else None)  # fmt: skip
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(srv.base + "/")
        # a correctness check, not a timing one: the first browser start of a run can be slow
        page.wait_for_selector(".tile img.loaded", timeout=60_000)
        page.keyboard.press("ArrowRight")
        page.keyboard.press("Space")
        page.wait_for_selector("#detail:not([hidden])", timeout=10_000)
        page.goto(srv.base + "/#/prompts")
        page.wait_for_timeout(500)
        browser.close()
    assert problems == [], problems


def test_only_indexed_images_are_served_and_never_as_pages(served: Server) -> None:
    with served as srv, httpx.Client(base_url=srv.base) as c:
        for name in (".env", ".ssh/id_rsa", "notes.txt", "page.html", "logo.svg", "fake.png"):
            r = c.get(f"/files/1/{name}")
            assert r.status_code == 404, name
            assert "hunter2" not in r.text and "PRIVATE" not in r.text
        r = c.get("/files/1/real.png")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert r.headers["x-content-type-options"] == "nosniff"
        original = c.get("/api/images/1/file")
        assert original.headers["content-type"] == "image/png"


def test_an_image_named_like_a_page_is_served_as_what_its_bytes_are(
    cli: Cli, tmp_path: Path
) -> None:
    pics = tmp_path / "pics"
    png(pics / "really-a-png.jpeg", {"parameters": A1111_TEXT})  # a PNG saved as .jpeg
    cli("add", str(pics))
    with Server(cli.library_path) as srv, httpx.Client(base_url=srv.base) as c:
        r = c.get("/files/1/really-a-png.jpeg")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"


def test_security_headers_on_every_response(served: Server) -> None:
    with served as srv, httpx.Client(base_url=srv.base) as c:
        responses = [
            c.get("/"),
            c.get("/api/stats"),
            c.get("/api/nothing-here"),
            c.get("/files/1/real.png"),
            c.get("/", headers={"Host": "evil.example"}),
            c.post("/api/scan", headers={"Origin": "http://evil.example"}),
        ]
        for r in responses:
            csp = r.headers.get("content-security-policy", "")
            assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, r.url
            assert "unsafe-inline" not in csp
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["referrer-policy"] == "no-referrer"
            assert r.headers["cross-origin-resource-policy"] == "same-origin"
            assert r.headers["x-frame-options"] == "DENY"
