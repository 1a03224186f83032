"""The layers point one way (issue #15): the catalog imports nothing above it, so it can be
reasoned about, and given a second engine, on its own. Checked from the source, every
import statement including those inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import dreamdepot

PACKAGE = Path(dreamdepot.__file__).parent
# what each layer may import from dreamdepot, besides itself
ALLOWED = {
    "catalog": {"errors"},
    "media": {"errors"},
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n.split(".")[1] for n in names if n.startswith("dreamdepot.")}


def test_lower_layers_import_nothing_above_them() -> None:
    wrong = []
    for layer, allowed in ALLOWED.items():
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            for name in _imports(path) - allowed - {layer}:
                wrong.append(f"{path.relative_to(PACKAGE)} imports dreamdepot.{name}")
    assert wrong == []
