"""UI benchmark: `python bench/ui.py [grid|folders|viewer]` drives Debian's Chromium
(Playwright) and prints a table per part (all three by default).

Folders (issue #18): 100,000 images in 1,000 folders (10 top folders of 100 each): the tree
rendered after page load, a folder click to the updated grid, expanding a folder of 100.
Viewer: 40 real-size 1024×1024 PNGs (about 1.6 MB each, as SD writes them): next image when
it was preloaded, and a jump past the preload window (fetched and decoded then).

The library is the ingest benchmark's 100k corpus; the newest 3,000 images get real
thumbnails and placeholders first (the rest get theirs on demand, as in real use). Measures:
navigation to first painted tiles (and whether any visible tile was ever blank), frame-time
p95 while scrolling continuously, tag click to updated grid, DOM size when scrolled deep.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _table import print_table
from dreamdepot.catalog import images as catalog_images
from dreamdepot.catalog import tags as catalog_tags
from dreamdepot.library import Library
from ingest import OUT, large_corpus
from server import Server

LIB = OUT / "libraries" / "ui-100k"
FOLDERS_LIB = OUT / "libraries" / "ui-folders-100k"
VIEWER_LIB = OUT / "libraries" / "ui-viewer"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def prepare() -> None:
    if (LIB / ".ready").exists():
        return
    corpus = large_corpus(OUT / "large")
    with Library.open(LIB) as lib:
        lib.indexer().scan([lib.add_root(corpus)])
        with lib.catalog.transaction() as conn:
            catalog_tags.add_tag(conn, "style 3", catalog_images.matching_ids(conn, '"style 3"'))
            conn.execute(  # thumbnails for the newest 3,000 now; the rest on demand
                "UPDATE images SET media_error = 'deferred' WHERE id NOT IN "
                "(SELECT id FROM images ORDER BY created_at DESC, id DESC LIMIT 3000)"
            )
        lib.make_thumbnails()
        with lib.catalog.transaction() as conn:
            conn.execute("UPDATE images SET media_error = NULL WHERE media_error = 'deferred'")
    (LIB / ".ready").touch()


FRAME_PROBE = """
() => new Promise(resolve => {
  const s = document.querySelector('#grid-scroll');
  const deltas = []; let last = performance.now(); let blank = 0;
  const end = last + 5000;
  function step(now) {
    deltas.push(now - last); last = now;
    s.scrollTop += 60;
    for (const t of document.querySelectorAll('.tile')) {
      const r = t.getBoundingClientRect();
      if (r.bottom > 0 && r.top < innerHeight && !t.style.backgroundImage) blank++;
    }
    if (now < end) requestAnimationFrame(step);
    else resolve({deltas, blank, items: S.items.length});
  }
  requestAnimationFrame(step);
})
"""


def grid() -> None:
    from playwright.sync_api import sync_playwright

    prepare()
    rows: list[tuple[str, str, str]] = []
    with Server(LIB) as srv, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        firsts = []
        for _ in range(5):
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            t = time.perf_counter()
            page.goto(srv.base + "/")
            page.wait_for_selector(".tile")
            painted = time.perf_counter() - t
            page.wait_for_selector(".tile img.loaded")
            firsts.append((painted, time.perf_counter() - t))
            page.close()
        rows.append(
            (
                "navigation -> first painted tiles (placeholders), median of 5",
                f"{statistics.median(f[0] for f in firsts) * 1000:.0f} ms",
                "target <= 1,000 ms",
            )
        )
        rows.append(
            (
                "navigation -> first AVIF thumbnail shown, median of 5",
                f"{statistics.median(f[1] for f in firsts) * 1000:.0f} ms",
                "",
            )
        )
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(srv.base + "/")
        page.wait_for_selector(".tile img.loaded")
        result = page.evaluate(FRAME_PROBE)
        deltas = sorted(result["deltas"][5:])
        p95 = deltas[int(len(deltas) * 0.95) - 1]
        rows.append(
            (
                f"frame time while scrolling 5 s ({len(deltas)} frames, {result['items']:,} "
                "images loaded)",
                f"p95 {p95:.1f} ms",
                "target <= 33 ms",
            )
        )
        rows.append(
            (
                "visible tiles without a placeholder, summed over all frames",
                str(result["blank"]),
                "target 0",
            )
        )
        for _ in range(120):  # scroll deep
            page.evaluate(
                "() => { const s = document.querySelector('#grid-scroll');"
                " s.scrollTop = s.scrollHeight; }"
            )
            page.wait_for_timeout(20)
        deep_items = page.evaluate("S.items.length")
        nodes = page.evaluate("document.getElementsByTagName('*').length")
        rows.append(
            (
                f"DOM elements when scrolled deep ({deep_items:,} images loaded)",
                f"{nodes:,}",
                "bounded (windowed grid)",
            )
        )
        page.evaluate("() => { document.querySelector('#grid-scroll').scrollTop = 0; }")
        page.wait_for_selector("#tags li[data-tag='style 3']")
        clicks = []
        click_and_wait = """(want) => new Promise(resolve => {
          const li = [...document.querySelectorAll('#tags li')]
            .find(l => l.dataset.tag === 'style 3');
          const t0 = performance.now();
          li.click();
          (function poll() {
            if (S.q === want && S.items.length > 0 && document.querySelector('.tile')) {
              resolve(performance.now() - t0);
            } else requestAnimationFrame(poll);
          })();
        })"""
        for _ in range(5):
            clicks.append(page.evaluate(click_and_wait, 'tag:"style 3"'))
            page.wait_for_selector("#tags li[data-tag='style 3'].included")
            page.evaluate(click_and_wait, "")  # toggle off again
            page.wait_for_selector("#tags li[data-tag='style 3']:not(.included)")
        rows.append(
            (
                "tag click -> updated grid, median of 5",
                f"{statistics.median(clicks):.0f} ms",
                "target <= 150 ms",
            )
        )
        browser.close()
    print_table(("measure (100,000 images)", "value", "target"), rows)


def folder_corpus(root: Path) -> Path:
    """The large corpus's tiny PNGs, spread over 1,000 folders in 10 top folders."""
    return large_corpus(root, place=lambda i: f"project{i % 10}/batch{i % 1000:03d}", folders=1000)


def prepare_folders() -> None:
    if (FOLDERS_LIB / ".ready").exists():
        return
    corpus = folder_corpus(OUT / "folders")
    with Library.open(FOLDERS_LIB) as lib:
        lib.indexer().scan([lib.add_root(corpus)])
        with lib.catalog.transaction() as conn:  # thumbnails on demand, as for a fresh library
            conn.execute("UPDATE images SET media_error = 'deferred'")
    (FOLDERS_LIB / ".ready").touch()


TREE_AFTER_LOAD = """() => new Promise(resolve => {
  (function poll() {
    if (document.querySelectorAll('#folders li').length > 0) {
      const nav = performance.getEntriesByType('navigation')[0];
      resolve([performance.now() - nav.loadEventEnd, performance.now()]);
    } else requestAnimationFrame(poll);
  })();
})"""

FOLDER_CLICK = """(path) => new Promise(resolve => {
  const li = [...document.querySelectorAll('#folders li')].find(l => l.dataset.path === path);
  const t0 = performance.now();
  li.click();
  (function poll() {
    if (S.q.includes(path) && !S.loading && S.items.length > 0 && document.querySelector('.tile')) {
      requestAnimationFrame(() => resolve(performance.now() - t0));  // painted
    } else requestAnimationFrame(poll);
  })();
})"""

EXPAND = """(path) => new Promise(resolve => {
  const li = [...document.querySelectorAll('#folders li')].find(l => l.dataset.path === path);
  const before = document.querySelectorAll('#folders li').length;
  const t0 = performance.now();
  li.querySelector('.twisty').click();
  (function poll() {
    if (document.querySelectorAll('#folders li').length > before) {
      requestAnimationFrame(() => resolve(performance.now() - t0));
    } else requestAnimationFrame(poll);
  })();
})"""


def folders() -> None:
    from playwright.sync_api import sync_playwright

    prepare_folders()
    rows: list[tuple[str, str, str]] = []
    root = str((OUT / "folders").resolve())
    with Server(FOLDERS_LIB) as srv, sync_playwright() as p:
        api = []
        for _ in range(5):
            t = time.perf_counter()
            tree = httpx.get(srv.base + "/api/folders", timeout=30).json()
            api.append(time.perf_counter() - t)
        n_folders = sum(1 for top in tree[0]["children"] for _ in top["children"])
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        after_load, clicks, expands, rapid = [], [], [], []
        for i in range(5):
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(srv.base + "/", wait_until="load")
            after_load.append(page.evaluate(TREE_AFTER_LOAD)[0])
            page.wait_for_selector(".tile")
            expands.append(page.evaluate(EXPAND, root))  # the root: its 10 projects
            expands.append(page.evaluate(EXPAND, f"{root}/project{i}"))  # 100 batches
            page.wait_for_selector(f"#folders li[data-path='{root}/project{i}/batch{i:03d}']")
            for folder in (f"{root}/project{i}/batch{i:03d}", f"{root}/project{(i + 1) % 10}"):
                page.wait_for_timeout(1000)  # the last click's count and sidebars are done
                clicks.append(page.evaluate(FOLDER_CLICK, folder))
            for folder in (f"{root}/project{i}/batch{i + 10:03d}", f"{root}/project{i}"):
                page.wait_for_selector(f"#folders li[data-path='{folder}']")
                rapid.append(page.evaluate(FOLDER_CLICK, folder))  # right after the last
            page.close()
        browser.close()
    rows += [
        (f"GET /api/folders ({n_folders:,} folders, counts kept by the catalog), median of 5",
         f"{statistics.median(api) * 1000:.0f} ms", ""),
        ("folder tree rendered after the page's load event, median of 5",
         f"{statistics.median(after_load):.0f} ms", "target <= 300 ms"),
        ("folder click -> updated, painted grid (folders of 100 and 10,000), median of 10",
         f"{statistics.median(clicks):.0f} ms (max {max(clicks):.0f})", "target <= 150 ms"),
        ("  the same, clicked while the last click's count and sidebars still load",
         f"{statistics.median(rapid):.0f} ms (max {max(rapid):.0f})", ""),
        ("expand a folder (10 or 100 children), median of 10",
         f"{statistics.median(expands):.0f} ms", ""),
    ]  # fmt: skip
    print_table(("measure (100,000 images, 1,000 folders)", "value", "target"), rows)


def viewer_corpus(root: Path, n: int = 40) -> Path:
    """Real-size generations: 1024×1024 PNGs of smooth colour plus grain (~1.6 MB each)."""
    if (root / ".complete").exists():
        return root
    import numpy as np
    from PIL import Image

    from builders import png

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    for i in range(n):
        base = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(base).resize((1024, 1024), Image.Resampling.BICUBIC))
        grain = rng.integers(-6, 7, smooth.shape)
        pixels = np.clip(smooth.astype(int) + grain, 0, 255).astype(np.uint8)
        text = f"viewer image {i}\nSteps: 30, Sampler: Euler, Seed: {i}, Size: 1024x1024"
        png(root / f"{i:03d}.png", {"parameters": text}, im=Image.fromarray(pixels))
    (root / ".complete").touch()
    return root


def _viewer_timing(arg: str, action: str) -> str:
    """Page script: run ``action``, resolve with the ms until the image it shows is loaded,
    decoded and painted."""
    return f"""({arg}) => new Promise(resolve => {{
  const t0 = performance.now();
  {action};
  (function poll() {{
    if (V.loadedAt > V.shownAt && V.shownAt >= t0) {{
      document.querySelector('#viewer-img').decode()
        .then(() => requestAnimationFrame(() => resolve(performance.now() - t0)));
    }} else requestAnimationFrame(poll);
  }})();
}})"""


VIEWER_NEXT = _viewer_timing(
    "", "document.querySelector('#viewer').dispatchEvent(new KeyboardEvent('keydown', "
    "{key: 'ArrowRight', bubbles: true}))"
)  # fmt: skip
VIEWER_JUMP = _viewer_timing("pos", "showViewerAt(pos)")

PRELOADED = """(pos) => new Promise(resolve => {
  (function poll() {
    const im = V.preload.get(S.items[pos].id);
    if (im && im.complete && im.naturalWidth) resolve(true); else setTimeout(poll, 20);
  })();
})"""


def viewer() -> None:
    from playwright.sync_api import sync_playwright

    corpus = viewer_corpus(OUT / "viewer")
    if not (VIEWER_LIB / ".ready").exists():
        with Library.open(VIEWER_LIB) as lib:
            lib.indexer().scan([lib.add_root(corpus)])
            lib.make_thumbnails()
        (VIEWER_LIB / ".ready").touch()
    size = statistics.median(f.stat().st_size for f in corpus.glob("*.png"))
    preloaded, cold = [], []
    with Server(VIEWER_LIB) as srv, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(srv.base + "/")
        page.wait_for_selector(".tile img.loaded")
        page.click(".tile >> nth=0")
        page.keyboard.press("v")
        page.wait_for_selector("#viewer:not([hidden])")
        for pos in range(0, 10):  # next, each time after its preload finished
            page.evaluate(PRELOADED, pos + 1)
            preloaded.append(page.evaluate(VIEWER_NEXT))
        for pos in range(14, 38, 4):  # jumps past the preload window: fetched then
            cold.append(page.evaluate(VIEWER_JUMP, pos))
            page.evaluate(PRELOADED, pos + 1)
        browser.close()
    rows = [
        (f"viewer next image, preloaded (1024×1024 PNG, {size / 1e6:.1f} MB) -> painted, of 10",
         f"{statistics.median(preloaded):.0f} ms (max {max(preloaded):.0f})", "target <= 50 ms"),
        ("viewer image not preloaded (fetch + decode + paint), median of 6",
         f"{statistics.median(cold):.0f} ms (max {max(cold):.0f})", "target <= 300 ms"),
    ]  # fmt: skip
    print_table(("measure (full-screen viewer)", "value", "target"), rows)


PARTS = {"grid": grid, "folders": folders, "viewer": viewer}


def main() -> None:
    wanted = sys.argv[1:] or list(PARTS)
    for name in wanted:
        if name not in PARTS:
            sys.exit(f"unknown part {name!r}: choose from {', '.join(PARTS)}")
        PARTS[name]()


if __name__ == "__main__":
    main()
