"""No input gets a 5xx: every route of the OpenAPI spec is called with hostile values for
each of its parameters and body fields (a fixed matrix, then a property-based run), and the
job queue takes parallel submissions without a single 500."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builders import A1111_TEXT, png
from conftest import Cli
from server import Server
from test_generate import FakeA1111

BIG = [2**63, 2**64, -(2**63) - 1, 10**30]
HOSTILE_TEXT = [
    "\x00",
    "a\x00b",
    "x" * 5000,
    "(" * 100 + "x" + ")" * 100,
    "NOT " * 300 + "x",
    " ".join(["word"] * 1000),
    "seed:" + "9" * 30,
    "id:" + ",".join(["9" * 25] * 3),
    'tag:"unterminated',
    "size:99999999999x99999999999",
    "\u202e\x1b]52;c;aGk=\x07",
]
SURROGATE = "\udcff"  # only reachable through JSON bodies: a URL cannot carry one
SKIP = {("GET", "/api/events")}  # an endless event stream; covered by its own tests


def hostile_for(schema: dict[str, Any], name: str) -> list[Any]:
    types = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
    values: list[Any] = [None, [], {}, "", [[1]], {"a": {"b": 1}}]
    if types & {"integer", "number"}:
        values += [*BIG, -1, 0, float("1e308"), "1e999"]
    if "string" in types or not types - {None}:
        values += [*HOSTILE_TEXT, SURROGATE, "ok" + SURROGATE]
    if "array" in types:
        item = schema.get("items", {})
        values += [[v] for v in hostile_for(item, name)[:12]]
        if name == "ids":
            values.append(list(range(1, 1_000_001)))  # exactly the declared maximum
        values.append([SURROGATE])
    if "boolean" in types:
        values += ["yes", 2]
    return values


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return dict(spec["components"]["schemas"][name])
    return schema


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if (method.upper(), path) not in SKIP:
                yield method.upper(), path, op


def base_call(spec: dict[str, Any], path: str, op: dict[str, Any]) -> dict[str, Any]:
    """Plausible values for every parameter and body field, so each hostile value is tried
    alone on a request that is otherwise valid."""
    params: dict[str, Any] = {}
    path_values: dict[str, Any] = {}
    for p in op.get("parameters", []):
        kind = p["schema"].get("type") or "string"
        value = 1 if kind == "integer" else ("a1" if kind == "string" else 0.5)
        if p["name"] == "size":
            value = 256
        (path_values if p["in"] == "path" else params)[p["name"]] = value
    body = None
    schema = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    if schema:
        props = resolve(spec, schema["schema"]).get("properties", {})
        body = {}
        for name, prop in props.items():
            kind = prop.get("type") or next(
                (s.get("type") for s in prop.get("anyOf", []) if s.get("type") != "null"), None
            )
            body[name] = {"integer": 1, "number": 0.5, "boolean": False, "array": [1] if
                          name == "ids" else ["a"], "string": "a"}.get(kind or "", "a")  # fmt: skip
        body.pop("q", None) if "ids" in body else None
    return {"params": params, "path": path_values, "body": body}


def send(c: httpx.Client, method: str, path: str, call: dict[str, Any]) -> httpx.Response:
    url = path
    for name, value in call["path"].items():
        url = url.replace("{" + name + "}", quote(str(value), safe=""))
    content = None
    if call["body"] is not None:
        content = json.dumps(call["body"]).encode()  # surrogates travel as \\udcff escapes
    return c.request(method, url, params=call["params"], content=content,
                     headers={"content-type": "application/json"})  # fmt: skip


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("hostile")
    library = tmp / "library"
    cli = Cli(library)
    for i in range(3):
        png(tmp / "pics" / f"{i}.png", {"parameters": A1111_TEXT.replace("Seed: ", f"Seed: {i}")})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DREAMDEPOT_AUTOTAG", "")
        cli("add", str(tmp / "pics"))
        with FakeA1111() as fake:
            toml = library / "dreamdepot.toml"
            toml.write_text(f'backend = "a1111"\na1111_url = "{fake.url}"\n' + toml.read_text())
            with Server(library) as srv:
                yield srv, srv.app.openapi()


def test_every_route_answers_hostile_values_without_a_5xx(
    live: tuple[Server, dict[str, Any]],
) -> None:
    srv, spec = live
    failures = []
    tried = 0
    with httpx.Client(base_url=srv.base, timeout=120) as c:
        for method, path, op in operations(spec):
            base = base_call(spec, path, op)
            cases: list[dict[str, Any]] = [base]
            for p in op.get("parameters", []):
                where = "path" if p["in"] == "path" else "params"
                for value in hostile_for(p["schema"], p["name"]):
                    if (
                        value is None
                        or isinstance(value, dict | list)
                        or (isinstance(value, str) and SURROGATE in value)
                    ):
                        continue  # not expressible in a URL
                    call = json.loads(json.dumps(base))
                    call[where][p["name"]] = value
                    cases.append(call)
            if base["body"] is not None:
                for field in list(base["body"]):
                    props = resolve(spec, op["requestBody"]["content"]["application/json"][
                        "schema"])["properties"]  # fmt: skip
                    for value in hostile_for(props[field], field):
                        call = {**base, "body": {**base["body"], field: value}}
                        cases.append(call)
                cases.append({**base, "body": ["not", "an", "object"]})
                cases.append({**base, "body": "\udcff"})
            for call in cases:
                tried += 1
                try:
                    r = send(c, method, path, call)
                except httpx.TransportError as exc:
                    failures.append((method, path, str(call)[:200], type(exc).__name__, ""))
                    continue
                if r.status_code >= 500:
                    failures.append((method, path, str(call)[:200], r.status_code, r.text[:200]))
    assert tried > 500
    assert not failures, "\n".join(map(str, failures[:20]))


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_bodies_and_queries_never_give_a_5xx(
    live: tuple[Server, dict[str, Any]], data: st.DataObject
) -> None:
    srv, spec = live
    ops = list(operations(spec))
    method, path, op = data.draw(st.sampled_from(ops))
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
        | st.text(max_size=40),
        lambda children: st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4),
        max_leaves=12,
    )  # fmt: skip
    call = base_call(spec, path, op)
    for p in op.get("parameters", []):
        if data.draw(st.booleans()):
            text = data.draw(st.text(alphabet=st.characters(blacklist_categories=["Cs"]),
                                     max_size=60))  # fmt: skip
            call["path" if p["in"] == "path" else "params"][p["name"]] = text or "0"
    if call["body"] is not None:
        props = resolve(spec, op["requestBody"]["content"]["application/json"]["schema"])
        for name in props.get("properties", {}):
            if data.draw(st.booleans()):
                call["body"][name] = data.draw(json_values)
    with httpx.Client(base_url=srv.base, timeout=120) as c:
        r = send(c, method, path, call)
    assert r.status_code < 500, (method, path, call, r.text[:300])


def test_parallel_api_writes_and_job_submissions_never_fail(
    live: tuple[Server, dict[str, Any]],
) -> None:
    """Two threads × 40 submissions with ratings and tags in between: zero 500s, and every
    job reaches an end (the worker thread survives)."""
    srv, _ = live
    statuses: list[int] = []
    jobs: list[int] = []
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=srv.base, timeout=60) as c:
            for i in range(40):
                r = c.post("/api/generate", json={"prompt": f"stress {i}", "steps": 1,
                                                  "width": 64, "height": 64})  # fmt: skip
                t = c.post("/api/tags", json={"tags": [f"s{i % 3}"], "ids": [1, 2]})
                v = c.put("/api/images/1/rating", json={"rating": i % 6})
                with lock:
                    statuses.extend([r.status_code, t.status_code, v.status_code])
                    if r.status_code == 202:
                        jobs.append(r.json()["job"])

    threads = [threading.Thread(target=client) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert statuses and all(s < 500 for s in statuses), sorted(set(statuses))
    assert len(jobs) == 80
    deadline = time.monotonic() + 120
    with httpx.Client(base_url=srv.base, timeout=30) as c:
        while True:
            states = {c.get(f"/api/jobs/{j}").json()["status"] for j in jobs}
            if states <= {"done", "failed", "cancelled"}:
                break
            assert time.monotonic() < deadline, f"jobs stuck: {states}"
            time.sleep(0.2)
    assert states == {"done"}


def test_cursor_payloads_are_validated(live: tuple[Server, dict[str, Any]]) -> None:
    import base64

    srv, _ = live
    with httpx.Client(base_url=srv.base) as c:
        for payload in (
            ["date", True, 0, [1, 2], 5],
            ["date", True, 0, {"a": 1}, 5],
            ["date", True, 0, 1, 2**70],
            ["nope", True, 0, 1, 1],
            "x",
            [1],
        ):
            cursor = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()
            r = c.get("/api/images", params={"cursor": cursor})
            assert r.status_code == 400, payload
            assert "cursor" in r.json()["error"]


def test_thumbnail_hash_length_is_bounded(live: tuple[Server, dict[str, Any]]) -> None:
    srv, _ = live
    with httpx.Client(base_url=srv.base) as c:
        assert c.get(f"/api/thumbs/{'a' * 5000}/256.avif").status_code == 404
