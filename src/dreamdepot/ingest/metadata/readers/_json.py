"""Bounded JSON decoding shared by the readers."""

from __future__ import annotations

import json
from typing import Any

from dreamdepot.errors import MetadataError


def loads(text: str | None) -> Any:
    """json.loads that maps NaN to None and turns every failure into MetadataError."""
    if text is None:
        return None
    try:
        return json.loads(text, parse_constant=lambda _c: None)
    except RecursionError as exc:
        raise MetadataError("JSON nests too deeply") from exc
    except ValueError as exc:
        raise MetadataError(f"invalid JSON: {exc}") from exc


def loads_object(text: str | None) -> dict[str, Any] | None:
    """Decode text that should be a JSON object; None when it plainly is not JSON."""
    if text is None or not text.lstrip().startswith("{"):
        return None
    data = loads(text)
    return data if isinstance(data, dict) else None
