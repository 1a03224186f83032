"""UI benchmark: `python bench/ui.py` drives Debian's Chromium (Playwright) over a
100,000-image library and prints a table.

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


def main() -> None:
    from playwright.sync_api import sync_playwright

    prepare()
    rows: list[tuple[str, str, str]] = []
    with Server(LIB) as srv, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
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


if __name__ == "__main__":
    main()
