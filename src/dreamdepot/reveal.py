"""Show a file in the desktop's file manager ("reveal in folder"), for local mode only.

Each platform's own way, run without a shell and without waiting: Finder's ``open -R``,
Explorer's ``/select,``, and on Linux the freedesktop ``FileManager1.ShowItems`` call
(Nautilus, Dolphin, Nemo, Thunar answer it) when a session bus exists, else ``xdg-open``
on the folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from dreamdepot.errors import DreamDepotError


def reveal_command(path: str, platform: str = sys.platform) -> list[str] | None:
    """The command that shows ``path`` selected in a file manager, or None when this
    machine has none.

    >>> reveal_command("/x/a b.png", "darwin")
    ['open', '-R', '/x/a b.png']
    >>> reveal_command("C:\\\\x\\\\a.png", "win32")
    ['explorer', '/select,C:\\\\x\\\\a.png']
    """
    if platform == "darwin":
        return ["open", "-R", path]
    if platform == "win32":
        return ["explorer", f"/select,{path}"]
    dbus = shutil.which("dbus-send")
    if dbus and os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return [
            dbus, "--session", "--type=method_call", "--dest=org.freedesktop.FileManager1",
            "/org/freedesktop/FileManager1", "org.freedesktop.FileManager1.ShowItems",
            f"array:string:file://{quote(path)}", "string:",
        ]  # fmt: skip
    opener = shutil.which("xdg-open")
    return [opener, str(Path(path).parent)] if opener else None


def reveal(path: str) -> list[str]:
    """Start the file manager on ``path``; the command run. DreamDepotError when there is
    no file manager to ask."""
    command = reveal_command(path)
    if command is None:
        raise DreamDepotError("no file manager found (xdg-open is not installed)")
    subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return command
