"""Reveal in folder (issue #18): local mode asks the desktop's file manager to show the file
(here a stand-in ``xdg-open`` on PATH records what it was asked); with an access token the
browser is elsewhere, so the server refuses."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from builders import A1111_TEXT, png
from conftest import Cli
from dreamdepot.reveal import reveal_command
from server import Server

TOKEN = "a-token-long-enough-for-the-rule"


def _wait_for(path: Path) -> str:
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return path.read_text()


def test_reveal_opens_the_folder_in_local_mode(
    cli: Cli, tmp_path: Path, file_manager: Path
) -> None:
    png(tmp_path / "pics" / "sub" / "fox.png", {"parameters": A1111_TEXT})
    cli("add", str(tmp_path / "pics"))
    [item] = cli.jsonl("search", "", "--json")
    with Server(cli.library_path) as srv:
        detail = httpx.get(f"{srv.base}/api/images/{item['id']}").json()
        assert detail["can_reveal"] is True
        r = httpx.post(f"{srv.base}/api/images/{item['id']}/reveal", json={})
        assert r.status_code == 200 and r.json()["revealed"].endswith("fox.png")
        assert _wait_for(file_manager).strip() == str((tmp_path / "pics" / "sub").resolve())
        assert httpx.post(f"{srv.base}/api/images/999/reveal", json={}).status_code == 404


def test_reveal_is_refused_with_an_access_token(
    cli: Cli, tmp_path: Path, file_manager: Path
) -> None:
    png(tmp_path / "pics" / "fox.png", {"parameters": A1111_TEXT})
    cli("add", str(tmp_path / "pics"))
    [item] = cli.jsonl("search", "", "--json")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with Server(cli.library_path, token=TOKEN) as srv:
        assert (
            httpx.get(f"{srv.base}/api/images/{item['id']}", headers=auth).json()["can_reveal"]
            is False
        )
        r = httpx.post(f"{srv.base}/api/images/{item['id']}/reveal", json={}, headers=auth)
        assert r.status_code == 403 and "local mode" in r.text
    assert not file_manager.exists()


def test_reveal_commands_per_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert reveal_command("/a/b.png", "linux") is None  # nothing to ask: the API says 501
    assert reveal_command("/a/b.png", "darwin") == ["open", "-R", "/a/b.png"]
