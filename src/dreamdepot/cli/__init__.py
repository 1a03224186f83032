"""The ``dreamdepot`` command line. Each command is a few lines calling the library; the
commands live in one module per group (library, tagging, generation, semantic, serving,
accounts)."""

from __future__ import annotations

import importlib
import sys

from dreamdepot.cli.common import app, err_console
from dreamdepot.errors import DreamDepotError
from dreamdepot.terminal import escape

__all__ = ["app", "main"]

# importing a group registers its commands; `dreamdepot --help` lists them in this order
for _group in ("library", "tagging", "generation", "semantic", "serving", "accounts", "transfer"):
    importlib.import_module(f"dreamdepot.cli.{_group}")


def main() -> None:
    try:
        app()
    except DreamDepotError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted; the catalog is consistent and the next scan resumes")
        sys.exit(130)
