"""What the CLI prints from the catalog cannot drive the terminal, a CSV export cannot run
formulas, bad queries are one-line errors, and the access token stays out of sight."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from builders import png
from conftest import Cli
from hostile import free_port

ESCAPES = "\x1b]52;c;cHduZWQ=\x07\x1b]0;owned\x07\x1b[2J\u009b31m\u202eevil"
INFOTEXT = f"a fox {ESCAPES}\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 8x8"


@pytest.fixture
def hostile_library(cli: Cli, tmp_path: Path) -> Cli:
    pics = tmp_path / "pics"
    png(pics / "evil\x1b]0;title\x07.png", {"parameters": INFOTEXT})
    params = "\nSteps: 20, CFG scale: 7, Seed: 2"
    png(pics / "formula.png", {"parameters": '=HYPERLINK("http://x","y")' + params})
    png(pics / "at.png", {"parameters": "@SUM(A1:A9)\nSteps: 20, CFG scale: 7, Seed: 3"})
    cli("add", str(pics))
    return cli


def raw_controls(text: str) -> list[str]:
    return [ch for ch in text if (ord(ch) < 32 and ch not in "\n\t") or 0x7F <= ord(ch) < 0xA0
            or 0x202A <= ord(ch) <= 0x202E]  # fmt: skip


def test_search_output_carries_no_control_sequences(hostile_library: Cli) -> None:
    for args in (("search", "fox"), ("search", "fox", "--json"), ("stats",), ("doctor",),
                 ("export", "fox"), ("tag", "add", "t", "fox")):  # fmt: skip
        out = hostile_library(*args).stdout
        assert not raw_controls(out), (args, raw_controls(out))
    table = hostile_library("search", "fox").stdout
    assert "\\x1b]52" in table  # shown, harmless


def test_json_output_is_still_the_same_json(hostile_library: Cli) -> None:
    import json

    item = hostile_library.jsonl("search", "fox", "--json")[0]
    assert ESCAPES in item["prompt"]  # the value round-trips exactly
    raw = hostile_library("search", "fox", "--json").stdout
    assert "\u009b" not in raw and json.loads(raw.splitlines()[0])["prompt"] == item["prompt"]


def test_csv_export_defuses_formulas(hostile_library: Cli) -> None:
    out = hostile_library("export", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    prompts = sorted(r["prompt"] for r in rows)
    assert '\'=HYPERLINK("http://x","y")' in prompts and "'@SUM(A1:A9)" in prompts
    assert not any(r["prompt"].startswith(("=", "@", "+")) for r in rows)


@pytest.mark.parametrize(
    "query",
    ["seed:" + "9" * 30, "(" * 40 + "x" + ")" * 40, "NOT " * 50 + "x", "a\x00b",
     " ".join(["w"] * 300), 'tag:"open', "id:" + "9" * 40],
)  # fmt: skip
def test_bad_queries_are_one_line_errors(cli: Cli, query: str) -> None:
    result = cli("search", "--", query, expect=2)
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.strip().startswith("error:") and result.stderr.count("\n") <= 2


def test_tag_names_with_controls_or_surrogates_are_refused(cli: Cli, tmp_path: Path) -> None:
    png(tmp_path / "pics" / "a.png", {"parameters": "x\nSteps: 2, Seed: 1"})
    cli("add", str(tmp_path / "pics"))
    for name in ("bad\x1b[2J", "lone\udcff"):
        result = cli("tag", "add", name, "", expect=2)
        assert "Traceback" not in result.stdout + result.stderr


def _serve(library: Path, *args: str, env: dict[str, str] | None = None,
           timeout: float = 8) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "dreamdepot.cli", "--library", str(library), "serve",
         "--no-browser", "--no-demo", "--port", str(free_port()), *args],
        capture_output=True, text=True, timeout=timeout,
        env={k: v for k, v in {**os.environ, **(env or {})}.items() if k != "DREAMDEPOT_TOKEN"}
        | (env or {}),
    )  # fmt: skip


def test_short_tokens_are_refused_and_tokens_never_printed(cli: Cli, tmp_path: Path) -> None:
    cli("stats")
    short = _serve(cli.library_path, "--host", "0.0.0.0", "--token", "abc")
    assert short.returncode == 2 and "at least 16 characters" in short.stderr
    token = "t0ken-that-is-long-enough-1234"
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    for how in (("--token-file", str(token_file)),):
        try:
            run = _serve(cli.library_path, "--host", "0.0.0.0", "--behind-proxy", *how, timeout=6)
            out = run.stdout + run.stderr
        except subprocess.TimeoutExpired as exc:  # it was serving: what did it print?
            out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (
                exc.stdout or "")  # fmt: skip
        assert "Dream Depot at http://" in out and "access token required" in out
        assert token not in out
    missing = _serve(cli.library_path, "--token-file", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "cannot read the token file" in missing.stderr


def test_off_loopback_needs_https_or_a_proxy_and_the_trusted_proxy_is_believed(
    cli: Cli, tmp_path: Path
) -> None:
    import time

    import httpx

    cli("stats")
    token = "t0ken-that-is-long-enough-1234"
    plain = _serve(cli.library_path, "--host", "0.0.0.0", "--token", token)
    assert plain.returncode == 2 and "plain HTTP" in plain.stderr
    cli("users", "add", "root", "--role", "admin", "--password-stdin", input="admin-password\n")
    port = free_port()
    (cli.library_path / "dreamdepot.toml").write_text(
        '[server]\ntrusted_proxies = ["127.0.0.1"]\n', encoding="utf-8"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "dreamdepot.cli", "--library", str(cli.library_path), "serve",
         "--no-browser", "--no-demo", "--host", "0.0.0.0", "--port", str(port),
         "--behind-proxy"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if k != "DREAMDEPOT_TOKEN"},
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/api/me").status_code == 401:  # accounts: who are you?
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
            time.sleep(0.2)
        login = {"name": "root", "password": "admin-password"}
        via_proxy = httpx.post(base + "/api/login", json=login,
                               headers={"X-Forwarded-Proto": "https"})  # fmt: skip
        assert via_proxy.status_code == 200 and "Secure" in via_proxy.headers["set-cookie"]
    finally:
        proc.terminate()
        proc.wait(20)
