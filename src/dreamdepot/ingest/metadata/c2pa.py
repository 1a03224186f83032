"""Read the few facts we need from a C2PA manifest store (JUMBF boxes holding CBOR):
the claim generator, the actions' software agents and the digital source type.

Nothing is verified (no signature check, never any network); we only read labels, and
every structure is bounded so a hostile store cannot take unbounded time or memory.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from dreamdepot.errors import MetadataError

_MAX_ITEMS = 10_000
_MAX_DEPTH = 32


@dataclass
class C2paSummary:
    claim_generator: str | None = None
    software_agents: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    digital_source_type: str | None = None

    @property
    def ai_generated(self) -> bool:
        t = self.digital_source_type or ""
        return "trainedAlgorithmicMedia" in t or "compositeWithTrainedAlgorithmicMedia" in t


def summarise(store: bytes) -> C2paSummary:
    """Walk the JUMBF boxes of a C2PA store and collect what the manifests say."""
    out = C2paSummary()
    budget = [_MAX_ITEMS]
    for label, payload in _cbor_boxes(store, 0, len(store), "", 0):
        try:
            value = _Cbor(payload, budget).decode()
        except (IndexError, struct.error, RecursionError, UnicodeDecodeError) as exc:
            raise MetadataError(f"C2PA: undecodable CBOR in {label}") from exc
        if not isinstance(value, dict):
            continue
        if label.startswith("c2pa.claim"):
            info = value.get("claim_generator_info")
            if isinstance(info, list) and info and isinstance(info[0], dict):
                out.claim_generator = _s(info[0].get("name"))
            elif isinstance(info, dict):
                out.claim_generator = _s(info.get("name"))
            out.claim_generator = out.claim_generator or _s(value.get("claim_generator"))
        elif label.startswith("c2pa.actions"):
            for action in value.get("actions") or []:
                if not isinstance(action, dict):
                    continue
                name = _s(action.get("action"))
                if name:
                    out.actions.append(name)
                agent = action.get("softwareAgent")
                if isinstance(agent, dict):
                    agent_name = _s(agent.get("name"))
                    version = _s(agent.get("version"))
                    if agent_name and version:
                        agent_name = f"{agent_name} {version}"
                else:
                    agent_name = _s(agent)
                if agent_name and agent_name not in out.software_agents:
                    out.software_agents.append(agent_name)
                dst = _s(action.get("digitalSourceType"))
                if dst and out.digital_source_type is None:
                    out.digital_source_type = dst
    return out


def _s(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _cbor_boxes(
    data: bytes, start: int, end: int, label: str, depth: int
) -> list[tuple[str, bytes]]:
    """(label of the enclosing superbox, CBOR payload) for every cbor content box."""
    if depth > _MAX_DEPTH:
        raise MetadataError("C2PA: JUMBF nests too deeply")
    found: list[tuple[str, bytes]] = []
    pos = start
    current = label
    count = 0
    while pos + 8 <= end:
        count += 1
        if count > _MAX_ITEMS:
            raise MetadataError("C2PA: too many boxes")
        (size,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        header = 8
        if size == 1 and pos + 16 <= end:
            (size,) = struct.unpack(">Q", data[pos + 8 : pos + 16])
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            break
        body_start, body_end = pos + header, pos + size
        if kind == b"jumb":
            found.extend(_cbor_boxes(data, body_start, body_end, current, depth + 1))
        elif kind == b"jumd":
            # 16-byte type UUID, toggles byte, then a NUL-terminated label if toggles & 2
            toggles = data[body_start + 16] if body_start + 16 < body_end else 0
            if toggles & 2:
                lab_end = data.find(b"\x00", body_start + 17, body_end)
                if lab_end > 0:
                    current = data[body_start + 17 : lab_end].decode("utf-8", "replace")
        elif kind == b"cbor":
            found.append((current, data[body_start:body_end]))
        pos = body_end
    return found


class _Cbor:
    """Just enough of RFC 8949 for C2PA assertions; tags are unwrapped, floats decoded."""

    def __init__(self, data: bytes, budget: list[int]) -> None:
        self.data, self.pos, self.budget = data, 0, budget

    def decode(self, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            raise MetadataError("C2PA: CBOR nests too deeply")
        self.budget[0] -= 1
        if self.budget[0] < 0:
            raise MetadataError("C2PA: too many CBOR items")
        initial = self.data[self.pos]
        self.pos += 1
        major, info = initial >> 5, initial & 0x1F
        if major == 7:
            return self._simple(info)
        n = self._arg(info)
        if major == 0:
            return n
        if major == 1:
            return -1 - n
        if major in (2, 3):
            if n > len(self.data) - self.pos:
                raise MetadataError("C2PA: CBOR string past the end")
            raw = self.data[self.pos : self.pos + n]
            self.pos += n
            return raw if major == 2 else raw.decode("utf-8")
        if major == 4:
            return [self.decode(depth + 1) for _ in range(min(n, _MAX_ITEMS))]
        if major == 5:
            out: dict[Any, Any] = {}
            for _ in range(min(n, _MAX_ITEMS)):
                key = self.decode(depth + 1)
                out[key if isinstance(key, str | int) else repr(key)] = self.decode(depth + 1)
            return out
        return self.decode(depth + 1)  # major 6: a tag; keep its content

    def _arg(self, info: int) -> int:
        if info < 24:
            return info
        sizes = {24: 1, 25: 2, 26: 4, 27: 8}
        if info not in sizes:
            raise MetadataError("C2PA: indefinite-length CBOR is not supported")
        n = sizes[info]
        value = int.from_bytes(self.data[self.pos : self.pos + n], "big")
        self.pos += n
        return value

    def _simple(self, info: int) -> Any:
        if info == 20:
            return False
        if info == 21:
            return True
        if info in (22, 23):
            return None
        if info == 25:
            self.pos += 2
            return None
        if info == 26:
            (v,) = struct.unpack(">f", self.data[self.pos : self.pos + 4])
            self.pos += 4
            return v
        if info == 27:
            (v,) = struct.unpack(">d", self.data[self.pos : self.pos + 8])
            self.pos += 8
            return v
        if info == 24:
            self.pos += 1
        return None
