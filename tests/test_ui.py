"""The web UI, driven in real Chromium (Debian's, through Playwright) against a real server."""

from __future__ import annotations

import json
import os
import shutil
import struct
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from builders import chunk, png
from conftest import catalog
from dreamdepot.library import Library
from server import Server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason="Debian chromium is not installed (make test installs it)",
    ),
    # the browser tests share module-wide libraries, built before a test gets its own
    # database; the API they call runs on PostgreSQL in test_api.py and test_semantic.py
    pytest.mark.sqlite_only("module-wide libraries"),
]
# true once the prompts page lists only prompts containing a word (a debounced search)
ALL_PROMPT_ROWS = (
    "(w => { const ts = [...document.querySelectorAll('.prompt-row .text')];"
    " return ts.length > 0 && ts.every(t => t.textContent.includes(w)); })"
)
XSS_PROMPT = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2"> evil fox'


def _tiny_png(i: int, text: str) -> bytes:
    """A distinct 8x8 PNG with a parameters chunk, assembled directly (fast for 10,000)."""
    raw = b"".join(
        b"\x00" + bytes([(i * 37 + y * 11) % 256, (i * 13) % 256, (y * 29) % 256]) * 8
        for y in range(8)
    )
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
        + chunk(b"tEXt", b"parameters\x00" + text.encode("latin-1"))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def big_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("ui")
    root = base / "pics"
    for i in range(10_000):
        subject = ("red fox", "blue whale", "green dragon")[i % 3]
        text = (
            f"a {subject}, variant {i % 50}\nNegative prompt: blurry\n"
            f"Steps: {20 + i % 10}, Sampler: Euler a, CFG scale: 7, Seed: {i}, Size: 512x512, "
            "Model: demo-model"
        )
        path = root / f"d{i % 10}" / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_tiny_png(i, text))
    png(root / "xss.png", {"parameters": XSS_PROMPT + "\nSteps: 5, Seed: 666, Size: 8x8"})
    lib_path = base / "lib"
    with Library.open(lib_path) as lib:
        lib.indexer().scan([lib.add_root(root)])
        with lib.catalog.transaction() as conn:
            from dreamdepot.catalog import images, tags

            tags.add_tag(conn, "whales", images.matching_ids(conn, "whale"))
            tags.add_tag(conn, "<b>bold</b>", images.matching_ids(conn, "seed:1..3"))
        lib.make_thumbnails()
    return lib_path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield b
        b.close()


@pytest.fixture
def page(big_library: Path, browser: Any) -> Iterator[tuple[Any, str]]:
    with Server(big_library) as srv:
        context = browser.new_context(
            viewport={"width": 1280, "height": 800},
            bypass_csp=True,  # Playwright's wait_for_function evaluates strings; the app
        )  # itself runs under its CSP in tests/security/test_security_web.py
        pg = context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(srv.base + "/")
        pg.wait_for_selector(".tile img.loaded")
        yield pg, srv.base
        assert errors == [], errors
        context.close()


def test_first_load_paints_placeholders_and_thumbnails(page: Any) -> None:
    pg, _ = page
    tiles = pg.locator(".tile")
    assert tiles.count() > 20
    backgrounds = pg.eval_on_selector_all(".tile", "ts => ts.map(t => t.style.backgroundImage)")
    assert all(b.startswith('url("data:image/') for b in backgrounds), "a tile without placeholder"
    pg.wait_for_function("document.querySelectorAll('.tile img.loaded').length > 20")
    assert "10,001 images" in pg.inner_text("#status")


def test_scrolling_through_10000_images_keeps_the_dom_small(page: Any) -> None:
    pg, _ = page
    most_tiles = 0
    for _ in range(400):
        pg.evaluate(
            "() => { const s = document.querySelector('#grid-scroll');"
            " s.scrollTop = s.scrollHeight; }"
        )
        pg.wait_for_timeout(30)
        most_tiles = max(most_tiles, pg.locator(".tile").count())
        if pg.evaluate("S.done && !S.loading"):
            break
    assert pg.evaluate("S.items.length") == 10_001
    assert pg.evaluate("new Set(S.items.map(i => i.id)).size") == 10_001
    assert most_tiles < 200, most_tiles  # windowed: only visible rows plus a margin
    pg.evaluate(
        "() => { const s = document.querySelector('#grid-scroll'); s.scrollTop = s.scrollHeight; }"
    )
    pg.wait_for_timeout(200)
    visible = pg.eval_on_selector_all(".tile", "ts => ts.map(t => t.dataset.pos)")
    assert max(int(v) for v in visible) >= 9_990


def test_tag_sidebar_filters_includes_and_excludes(page: Any) -> None:
    pg, _ = page
    pg.click("#tags li[data-tag='whales']")
    pg.wait_for_function("document.querySelector('#status').textContent.startsWith('3,333 ')")
    assert pg.input_value("#search") == "tag:whales"
    prompts = pg.eval_on_selector_all(".tile", "ts => ts.map(t => t.title)")
    assert prompts and all("whale" in p for p in prompts)
    pg.click("#tags li[data-tag='whales']", modifiers=["Alt"])
    pg.wait_for_function("document.querySelector('#status').textContent.startsWith('6,668 ')")
    assert pg.input_value("#search") == "-tag:whales"


def test_keyboard_bulk_tagging_rating_and_undo(page: Any) -> None:
    pg, base = page
    pg.click(".tile >> nth=0")
    pg.keyboard.press("Shift+ArrowRight")
    pg.keyboard.press("Shift+ArrowRight")
    assert pg.inner_text("#selection-count") == "3 selected"
    ids = pg.evaluate("[...S.selected]")
    pg.keyboard.press("t")
    pg.fill("#tag-input", "keyboard-tag")
    pg.keyboard.press("Enter")
    pg.wait_for_selector("#toast:not([hidden])")
    found = httpx.get(f"{base}/api/images", params={"q": "tag:keyboard-tag"}).json()["items"]
    assert sorted(i["id"] for i in found) == sorted(ids)
    pg.keyboard.press("4")
    pg.wait_for_function("S.items.slice(0, 3).every(i => i.rating === 4)")
    rated = httpx.get(f"{base}/api/images/count", params={"q": "rating:4"}).json()["count"]
    assert rated == 3
    pg.click("#undo")  # undoes the rating
    pg.wait_for_function("S.items.slice(0, 3).every(i => i.rating === null)")
    assert httpx.get(f"{base}/api/images/count", params={"q": "rating:4"}).json()["count"] == 0
    pg.keyboard.press("Delete")
    pg.wait_for_function("S.items.slice(0, 3).every(i => i.marked)")
    marked = httpx.get(f"{base}/api/images/count", params={"q": "tag:marked-for-deletion"})
    assert marked.json()["count"] == 3
    pg.keyboard.press("Control+z")
    pg.wait_for_timeout(300)
    assert (
        httpx.get(f"{base}/api/images/count", params={"q": "tag:marked-for-deletion"}).json()[
            "count"
        ]
        == 0
    )


def test_detail_view_shows_every_parameter(page: Any) -> None:
    pg, _ = page
    pg.click(".tile >> nth=4")
    pg.keyboard.press(" ")
    pg.wait_for_selector("#detail:not([hidden]) #detail-prompt")
    info = pg.inner_text("#detail-info")
    for text in (
        "Negative prompt",
        "blurry",
        "Euler a",
        "demo-model",
        "Copy A1111 infotext",
        "Copy seed",
        "Generate more",
    ):
        assert text.lower() in info.lower()
    assert pg.is_disabled("text=Upscale")
    pg.keyboard.press("Escape")
    assert pg.is_hidden("#detail")


def test_prompts_page_lists_prompts_with_counts_and_outputs(page: Any) -> None:
    pg, _ = page
    pg.click("text=Prompts")
    pg.wait_for_selector(".prompt-row")
    first = pg.locator(".prompt-row >> nth=0")
    assert "image(s)" in first.inner_text()
    assert first.locator(".strip img").count() == 6
    pg.fill("#prompt-search", "dragon")
    pg.wait_for_function(f"{ALL_PROMPT_ROWS}('dragon')")  # the debounced search's answer
    texts = pg.eval_on_selector_all(".prompt-row .text", "ts => ts.map(t => t.textContent)")
    assert texts and all("dragon" in t for t in texts)
    pg.click(".prompt-row .text >> nth=0")
    pg.wait_for_selector("#grid-view:not([hidden]) .tile")
    assert pg.input_value("#search").startswith("prompt_id:")


def test_untrusted_text_is_rendered_inertly(page: Any) -> None:
    pg, _ = page
    pg.fill("#search", "evil seed:666")
    pg.keyboard.press("Enter")
    pg.wait_for_function("S.items.length === 1 && S.done")
    pg.dblclick(".tile")
    pg.wait_for_selector("#detail:not([hidden]) #detail-prompt")
    assert pg.inner_text("#detail-prompt").startswith("<script>window.__xss = 1</script><img")
    pg.keyboard.press("Escape")
    pg.click("text=Prompts")
    pg.fill("#prompt-search", "evil")
    pg.wait_for_function(f"{ALL_PROMPT_ROWS}('evil')")
    assert "<img src=x" in pg.inner_text("#prompt-list")
    pg.goto(pg.url.split("#")[0] + "#/")
    pg.wait_for_selector("#tags li[data-tag='<b>bold</b>']")
    assert pg.locator("#tags li", has_text="<b>bold</b>").count() == 1
    assert pg.evaluate("window.__xss") is None
    assert pg.locator("#prompt-list img[src='x'], #tags b, #detail-info img[src='x']").count() == 0


def test_live_updates_show_new_images_without_reloading(page: Any, big_library: Path) -> None:
    pg, base = page
    with Library.open(big_library) as lib:
        root = Path(lib.roots()[0].path)
    new = root / "live" / "new.png"
    png(new, {"parameters": "a live snail\nSteps: 5, Sampler: Euler, Seed: 424242, Size: 8x8"})
    try:
        r = httpx.post(f"{base}/api/scan")
        assert r.status_code == 202
        pg.wait_for_function("S.items.some(i => i.seed === 424242)", timeout=15_000)
    finally:
        new.unlink()
        httpx.post(f"{base}/api/scan")


def test_saved_searches_and_tile_size(page: Any) -> None:
    pg, _ = page
    pg.fill("#search", "whale steps:25")
    pg.keyboard.press("Enter")
    pg.click("#save-search")
    assert pg.locator("#saved li", has_text="whale steps:25").count() == 1
    before = pg.evaluate("S.cols")
    pg.fill("#tile-size", "96")
    pg.dispatch_event("#tile-size", "input")
    assert pg.evaluate("S.cols") > before
    saved = json.loads(pg.evaluate("localStorage.getItem('dd.saved')"))
    assert "whale steps:25" in saved


@contextmanager
def _open(browser: Any, url: str) -> Iterator[Any]:
    """A page under the app's real CSP that fails the test on any page error."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(url)
    try:
        yield pg
    finally:
        context.close()
    assert errors == [], errors


@pytest.fixture
def dream_page(tmp_path: Path, browser: Any) -> Iterator[tuple[Any, Any]]:
    """A small embedded library with a generation back end (the A1111 stand-in)."""
    from conftest import Cli
    from test_generate import FakeA1111

    root = tmp_path / "pics"
    for i, text in enumerate(
        ("a cute corgi puppy wearing a yellow raincoat, rainy street", "a lighthouse in a storm")
    ):
        png(root / f"{i}.png", {"parameters": f"{text}\nSteps: 20, Seed: {i}, Size: 64x64"})
    cli = Cli(tmp_path / "lib")
    cli("add", str(root))
    cli("embed")
    with FakeA1111() as fake:
        toml = cli.library_path / "dreamdepot.toml"
        toml.write_text(f'backend = "a1111"\na1111_url = "{fake.url}"\n' + toml.read_text())
        with Server(cli.library_path) as srv, _open(browser, srv.base + "/#/dream") as pg:
            pg.wait_for_selector("#dream-form")
            yield pg, fake


def test_dream_page_explains_hits_and_misses_and_generates_anyway(dream_page: Any) -> None:
    pg, fake = dream_page
    pg.fill("#dream-prompt", "rainy street, a cute corgi puppy wearing a yellow raincoat")
    pg.click("#dream-go")
    pg.wait_for_selector("#dream-result .hit")
    why = pg.inner_text("#dream-result")
    assert "nearest past prompt" in why and "a cute corgi puppy wearing a yellow" in why
    assert pg.locator("#dream-result .strip img").count() == 1 and not fake.calls
    pg.click("#dream-anyway")
    pg.wait_for_selector("#dream-result >> text=generating: job")
    pg.fill("#dream-prompt", "a cute corgi puppy wearing a red raincoat, rainy street")
    pg.fill("#dream-hold", "steps=3, seed=5")
    pg.click("#dream-go")
    pg.wait_for_selector("#dream-result .miss")
    text = pg.inner_text("#dream-result")
    assert "first difference (colour)" in text and "generating: job" in text
    deadline = time.monotonic() + 20
    while len(fake.calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fake.calls[-1][1]["steps"] == 3 and fake.calls[-1][1]["seed"] == 5
    pg.fill("#dream-scope", "folder:nowhere")
    pg.click("#dream-go")
    pg.wait_for_selector("#dream-result >> text=no image in the lookup's scope")


def test_folder_tree_filters_the_grid_and_the_address_keeps_it(page: Any) -> None:
    pg, base = page
    pg.wait_for_selector("#folders li")
    root = pg.locator("#folders li >> nth=0")
    files = httpx.get(base + "/api/stats").json()["files"]  # other tests add files to it
    assert int(root.locator(".n").inner_text().replace(",", "")) == files
    root.locator(".twisty").click()
    pg.wait_for_selector("#folders li[data-path$='/d3']")
    pg.click("#folders li[data-path$='/d3'] .name")
    pg.wait_for_function("S.q.startsWith('folder:') && S.total === 1000")
    assert "folder%3A" in pg.url
    pg.wait_for_selector("#folders li.included[data-path$='/d3']")  # marked once it is drawn
    pg.goto(base + "/#/dream")  # opened by its address: the sidebar is filled all the same
    pg.wait_for_selector("#tags li")
    pg.wait_for_selector("#folders li")


def test_full_screen_viewer_walks_the_query_zooms_and_rates(page: Any) -> None:
    pg, _ = page
    pg.fill("#search", "whale")
    pg.keyboard.press("Enter")
    pg.wait_for_function("S.q === 'whale' && S.items.length > 100")
    pg.click(".tile >> nth=0")
    pg.keyboard.press("v")
    pg.wait_for_selector("#viewer:not([hidden])")
    first = pg.get_attribute("#viewer-img", "data-id")
    pg.wait_for_function("document.querySelector('#viewer-img').complete")
    assert "blue whale" in pg.inner_text("#viewer-info")
    pg.keyboard.press("ArrowRight")
    pg.wait_for_function("V.pos === 1")
    pg.evaluate("showViewerAt(119)")  # the last of the first page (120 items) ...
    pg.keyboard.press("ArrowRight")  # ... and on across the page boundary
    pg.wait_for_function("V.pos === 120 && S.items.length > 120")
    assert pg.get_attribute("#viewer-img", "data-id") != first
    assert "whale" in pg.inner_text("#viewer-info")
    pg.wait_for_function("V.loadedAt > V.shownAt")  # fitted once loaded
    before = pg.evaluate("V.scale")
    pg.mouse.move(640, 400)
    pg.mouse.wheel(0, -300)
    pg.wait_for_function(f"V.scale > {before} && !V.fit")
    pg.keyboard.press("0")
    assert pg.evaluate("V.fit")
    pg.keyboard.press("i")
    assert pg.is_hidden("#viewer-info")
    pg.keyboard.press("4")
    pg.wait_for_function("S.items[V.pos].rating === 4")
    assert "★★★★" in pg.inner_text("#viewer-pos")
    pg.keyboard.press("Escape")
    assert pg.is_hidden("#viewer") and pg.evaluate("S.focus") == 120


def test_duplicates_page_marks_the_others_with_one_key(tmp_path: Path, browser: Any) -> None:
    from conftest import Cli
    from test_duplicates import _library

    cli = Cli(tmp_path / "lib")
    _library(cli, tmp_path)
    with Server(cli.library_path) as srv, _open(browser, srv.base + "/#/duplicates") as pg:
        pg.wait_for_selector(".dup-group img.keep")
        assert pg.locator(".dup-group img").count() == 2
        pg.keyboard.press("m")
        pg.wait_for_selector(".dup-group.marked")
        marked = cli.jsonl("search", "tag:marked-for-deletion", "--json")
        keep = pg.get_attribute(".dup-group", "data-keep")
        assert len(marked) == 1 and str(marked[0]["id"]) != keep
        pg.select_option("#dup-kind", "exact")
        pg.wait_for_selector(".dup-group .dup-mark[disabled]")  # one image, two files: keep all


def test_compare_two_variants_side_by_side_with_diff_and_synced_zoom(page: Any) -> None:
    pg, base = page
    pg.fill("#search", "dragon")
    pg.keyboard.press("Enter")
    pg.wait_for_function("S.q === 'dragon' && S.items.length > 10")
    pg.click(".tile >> nth=0")
    pg.click(".tile >> nth=1", modifiers=["Control"])
    pg.keyboard.press("c")
    pg.wait_for_selector("#compare:not([hidden]) #compare-panes .pane img")
    assert pg.locator("#compare-panes .pane").count() == 2
    info = pg.inner_text("#compare-info")
    assert "seed" in pg.inner_text("#compare-params")  # the seeds differ
    assert "vs first" in info
    if pg.locator("#compare-info .diff .added").count():  # variant numbers differ in the prompt
        assert pg.locator("#compare-info .diff .removed").count()
    pg.wait_for_function("C.fit && document.querySelector('#compare-panes img').complete")
    box = pg.locator("#compare-panes .pane >> nth=0").bounding_box()
    pg.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    pg.mouse.wheel(0, -400)
    pg.wait_for_function("!C.fit")
    transforms = pg.eval_on_selector_all(
        "#compare-panes img", "is => is.map(i => i.style.transform)"
    )
    assert len(set(transforms)) == 1  # one zoom for both panes
    pg.check("#compare-swipe")
    pg.fill("#compare-slider", "30")
    clip = pg.eval_on_selector("#compare-panes .pane >> nth=1", "p => p.style.clipPath")
    assert clip == "inset(0px 0px 0px 30%)" or "30%" in clip
    pg.keyboard.press("Escape")
    assert pg.is_hidden("#compare")
    r = httpx.get(base + "/api/compare", params={"ids": "1"})
    assert r.status_code == 422  # two to four


def test_dragging_a_tile_out_gives_the_original_file(page: Any) -> None:
    pg, base = page
    pg.fill("#search", "seed:3")  # one of the module library's own files
    pg.keyboard.press("Enter")
    pg.wait_for_function("S.q === 'seed:3' && S.items.length === 1 && S.done")
    pg.wait_for_selector(".tile")
    data = pg.evaluate(
        """() => {
            const dt = new DataTransfer();
            const tile = document.querySelector('.tile');
            tile.dispatchEvent(new DragEvent('dragstart', { dataTransfer: dt, bubbles: true }));
            return [tile.dataset.id, dt.getData('text/uri-list'), dt.getData('DownloadURL')];
        }"""
    )
    image_id, uri, download = data
    assert uri == f"{base}/api/images/{image_id}/file"
    assert download.startswith("image/png:dreamdepot-") and download.endswith(uri)
    r = httpx.get(uri)
    assert r.status_code == 200 and r.content.startswith(b"\x89PNG")  # the original bytes


def _poll(pg: Any, script: str, timeout: float = 15.0) -> Any:
    """Evaluate ``script`` until it is truthy (under the real CSP, where Playwright's string
    predicates cannot run)."""
    deadline = time.monotonic() + timeout
    while True:
        value = pg.evaluate(script)
        if value or time.monotonic() > deadline:
            assert value, f"never true: {script}"
            return value
        time.sleep(0.1)


def test_videos_play_on_hover_and_in_the_viewer(
    tmp_path: Path, browser: Any, file_manager: Path
) -> None:
    from builders import animation, vhs_video, video
    from conftest import Cli

    root = tmp_path / "out"
    vhs_video(root / "fox_00001.mp4")
    video(root / "cat.webm", codec="libvpx-vp9")
    animation(root / "loop.gif", "GIF")
    png(root / "still.png", {"parameters": "a still\nSteps: 5, Seed: 1, Size: 16x16"})
    cli = Cli(tmp_path / "lib")
    cli("add", str(root))
    cli("thumbnails")
    with Server(cli.library_path) as srv, _open(browser, srv.base + "/#/?q=video") as pg:
        pg.wait_for_selector(".tile img.loaded")
        assert pg.locator(".tile").count() == 2
        assert pg.inner_text(".tile >> nth=0 >> .duration") == "0:02"
        pg.hover(".tile >> nth=0")
        pg.wait_for_selector(".tile video.clip")
        # the clip (H.264 MP4 made by the media stage) decodes and plays, muted
        clip_plays = (
            "() => { const v = document.querySelector('.tile video.clip');"
            " return v && v.muted && v.readyState >= 2 && v.currentTime > 0 }"
        )
        _poll(pg, clip_plays)
        pg.mouse.move(1200, 780)
        pg.wait_for_selector(".tile video.clip", state="detached")
        pg.click(".tile >> nth=0")
        pg.keyboard.press("v")
        pg.wait_for_selector("#viewer-video:not([hidden])")
        assert pg.is_hidden("#viewer-img")
        playing = (
            "() => { const v = document.querySelector('#viewer-video');"
            " return v.readyState >= 1 && !v.paused && [v.videoWidth, v.videoHeight] }"
        )
        size = _poll(pg, playing)
        assert size == [64, 48]
        before = pg.evaluate("() => V.scale")
        pg.mouse.move(640, 300)
        pg.mouse.wheel(0, -300)
        _poll(pg, f"() => V.scale > {before}")  # zoom works on a video as on an image
        pg.keyboard.press("Escape")
        _poll(pg, "() => document.querySelector('#viewer-video').paused")
        pg.dblclick(".tile >> nth=0")  # the detail view plays the video and can reveal it
        pg.wait_for_selector("#detail-video:not([hidden])")
        pg.click("#reveal")
        _poll(pg, "() => document.querySelector('#detail-video').readyState >= 1")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (  # written, not just created
            file_manager.exists() and file_manager.read_text().strip()
        ):
            time.sleep(0.05)
        assert file_manager.read_text().strip() == str(root.resolve())
        pg.click("#detail .close")
        pg.fill("#search", "format:gif")
        pg.keyboard.press("Enter")
        pg.wait_for_selector(".tile .duration")
        assert pg.inner_text(".tile .duration") == "0:01"


def test_a_shared_instance_signs_in_uploads_from_the_page_and_shares(
    tmp_path: Path, browser: Any
) -> None:
    """A library with users asks who is there; a member signs in, uploads
    from the page (the file picker, then files dropped on the page), sees them in the grid,
    and shares one from its detail panel."""
    from conftest import Cli

    cli = Cli(tmp_path / "lib")
    cli("stats")
    cli("users", "add", "root", "--role", "admin", "--password-stdin", input="admin-password\n")
    cli("users", "add", "alice", "--password-stdin", input="alice-password\n")
    cli("users", "add", "bob", "--password-stdin", input="bob-password\n")
    with Server(cli.library_path) as srv, _open(browser, srv.base + "/") as pg:
        pg.wait_for_selector("#login-form", state="visible")
        pg.fill("#login-name", "alice")
        pg.fill("#login-password", "wrong-password")
        pg.click("#login-go")
        _poll(pg, "() => document.querySelector('#login-error').textContent.includes('wrong')")
        _sign_in(pg, "alice")
        assert "alice (member)" in pg.inner_text("#user-name")
        files = [tmp_path / f"drop{k}.png" for k in range(2)]
        for k, f in enumerate(files):
            png(f, {"parameters": f"a dropped lantern {k}\nSteps: 5, Seed: {k}, Size: 64x64"})
        pg.set_input_files("#upload-input", [str(f) for f in files])
        _poll(pg, "() => document.querySelectorAll('#grid .tile').length === 2", 20)
        dropped = tmp_path / "drop2.png"
        png(dropped, {"parameters": "a dropped lantern 2\nSteps: 5, Seed: 2, Size: 64x64"})
        pg.evaluate(  # what a browser dispatches when files from the desktop are let go
            """([name, bytes]) => {
              const dt = new DataTransfer();
              dt.items.add(new File([new Uint8Array(bytes)], name, {type: "image/png"}));
              const init = {dataTransfer: dt, bubbles: true, cancelable: true};
              for (const type of ["dragover", "drop"])
                document.body.dispatchEvent(new DragEvent(type, init));
            }""",
            [dropped.name, list(dropped.read_bytes())],
        )
        _poll(pg, "() => document.querySelectorAll('#grid .tile').length === 3", 20)
        assert not pg.evaluate("() => document.body.classList.contains('dropping')")
        pg.click("#grid .tile")
        pg.keyboard.press(" ")
        pg.wait_for_selector("#detail:not([hidden]) #shared-toggle")
        assert not pg.is_checked("#shared-toggle")
        pg.check("#shared-toggle")
        shared = "() => document.querySelector('#toast').textContent.includes('Shared with')"
        _poll(pg, shared)
        with _open(browser, srv.base + "/") as other:  # a colleague favourites it for himself
            other.wait_for_selector("#login-form", state="visible")
            _sign_in(other, "bob")
            _poll(other, "() => document.querySelectorAll('#grid .tile').length === 1", 20)
            other.click("#grid .tile")
            other.keyboard.press(" ")
            other.wait_for_selector("#detail:not([hidden]) #owner")
            assert "Shared by alice" in other.inner_text("#owner")
            other.click("#detail-info button:has-text('☆ Favourite')")
            other.wait_for_selector("#detail-info button:has-text('★ Favourite')")
    conn = catalog(cli.library_path)
    rows = conn.execute(
        "SELECT u.name, i.shared, i.favorite FROM images i JOIN users u ON u.id = i.owner_id"
    ).fetchall()
    marks = conn.execute(
        "SELECT u.name, m.favorite FROM user_marks m JOIN users u ON u.id = m.user_id"
    ).fetchall()
    conn.close()
    assert sorted(tuple(r) for r in rows) == [("alice", 0, 0), ("alice", 0, 0), ("alice", 1, 0)]
    assert [tuple(m) for m in marks] == [("bob", 1)]  # his, not alice's


def _sign_in(pg: Any, name: str) -> None:
    pg.fill("#login-name", name)
    pg.fill("#login-password", f"{name}-password")
    pg.click("#login-go")
    pg.wait_for_selector("#user:not([hidden])")
