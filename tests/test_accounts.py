"""Many users on one instance (issue #16): accounts, API keys with scopes, sessions with
CSRF, ownership and sharing — and an isolation matrix over every route of the OpenAPI spec:
a member never reaches another member's private image through any of them, and a route
added without an isolation policy fails here."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from builders import png
from conftest import Cli, catalog
from server import Server

SECRET = "zebracorn-secret-7731"  # alice's private prompt: must never reach bob


class Instance:
    def __init__(self, cli: Cli, srv: Server, keys: dict[str, str], ids: dict[str, Any]):
        self.cli, self.srv, self.keys, self.ids = cli, srv, keys, ids

    def as_(self, who: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.srv.base, headers={"Authorization": f"Bearer {self.keys[who]}"}
        )


def _key(cli: Cli, user: str, scopes: str) -> str:
    out = cli("api-keys", "create", f"{user}-{scopes}", "--user", user, "--scopes", scopes)
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture
def instance(cli: Cli, tmp_path: Path) -> Iterator[Instance]:
    root = tmp_path / "pics"
    png(
        root / "alice.png",
        {"parameters": f"{SECRET}, a lighthouse\nSteps: 5, Seed: 1, Size: 64x64"},
    )
    png(root / "shared.png", {"parameters": "a shared harbour\nSteps: 5, Seed: 2, Size: 64x64"})
    png(root / "library.png", {"parameters": "the library's own\nSteps: 5, Seed: 3, Size: 64x64"})
    cli("add", str(root))
    cli("users", "add", "root", "--role", "admin", "--password-stdin", input="admin-password\n")
    for name, role in (("alice", "member"), ("bob", "member"), ("carol", "viewer")):
        cli("users", "add", name, "--role", role, "--password-stdin", input=f"{name}-password\n")
    keys = {
        "root": _key(cli, "root", "read,write,generate,admin"),
        "alice": _key(cli, "alice", "read,write,generate"),
        "bob": _key(cli, "bob", "read,write,generate"),
        "bob-read": _key(cli, "bob", "read"),
        "carol": _key(cli, "carol", "read"),
    }
    conn = catalog(cli.library_path)
    ids: dict[str, Any] = {}
    with conn:
        users = {r[1]: int(r[0]) for r in conn.execute("SELECT id, name FROM users")}
        for stem in ("alice", "shared", "library"):
            row = conn.execute(
                "SELECT i.id, i.content_hash, i.prompt_id, f.root_id, f.rel_path FROM images i "
                "JOIN files f ON f.image_id = i.id WHERE f.rel_path = ?",
                (f"{stem}.png",),
            ).fetchone()
            ids[stem] = dict(
                zip(("id", "hash", "prompt_id", "root_id", "rel_path"), row, strict=True)
            )
        conn.execute(
            "UPDATE images SET owner_id = ? WHERE id = ?", (users["alice"], ids["alice"]["id"])
        )
        conn.execute(
            "UPDATE images SET owner_id = ?, shared = 1 WHERE id = ?",
            (users["alice"], ids["shared"]["id"]),
        )
        job = conn.execute(
            "INSERT INTO jobs(kind, backend, request, created_at, user_id) VALUES ('txt2img', "
            "'a1111', ?, 1, ?) RETURNING id",
            (json.dumps({"prompt": SECRET, "kind": "txt2img"}), users["alice"]),
        ).fetchone()[0]
        ids["job"] = int(job)
        ids["users"] = users
        album = conn.execute(  # alice's private album, named so a leak shows
            "INSERT INTO albums(name, created_at, owner_id) VALUES (?, 1, ?) RETURNING id",
            (f"{SECRET} album", users["alice"]),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO album_images(album_id, image_id, added_at) VALUES (?, ?, 1)",
            (album, ids["alice"]["id"]),
        )
        ids["album"] = int(album)
    conn.close()
    with Server(cli.library_path) as srv:
        yield Instance(cli, srv, keys, ids)


# -- the isolation matrix ---------------------------------------------------------------------

STREAMS = {("GET", "/api/events")}  # read as a stream: test_event_streams_carry_only_own_jobs


def _routes(app: Any) -> set[tuple[str, str]]:
    spec = app.openapi()
    return {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}


def _fill(path: str, ids: dict[str, Any]) -> str:
    alice = ids["alice"]
    values = {
        "image_id": alice["id"], "content_hash": alice["hash"], "size": 256,
        "job_id": ids["job"], "prompt_id": alice["prompt_id"], "album_id": ids["album"],
        "root_id": alice["root_id"], "rel_path": alice["rel_path"], "field": "prompt",
    }  # fmt: skip
    return re.sub(r"\{(\w+)(:path)?\}", lambda m: str(values[m.group(1)]), path)


def test_every_route_has_a_policy_and_none_leaks_a_private_image(instance: Instance) -> None:
    from dreamdepot.server.accounts import POLICY

    routes = _routes(instance.srv.app) | {("GET", "/metrics")}
    spec_paths = {(m, p.replace("{rel_path}", "{rel_path:path}")) for m, p in routes}
    assert spec_paths - set(POLICY) == set(), "a route without an isolation policy"
    assert set(POLICY) - spec_paths == set(), "a policy for a route that does not exist"
    alice = instance.ids["alice"]
    checked = 0
    with instance.as_("bob") as bob:
        for method, path in sorted(spec_paths - STREAMS):
            url = _fill(path, instance.ids)
            r = bob.request(method, url, params={"ids": str(alice["id"]), "q": ""},
                            json={"rating": 5, "favorite": True, "shared": True,
                                  "prompt": SECRET, "name": "x", "password": "y" * 8})  # fmt: skip
            body = r.text
            _, members = POLICY[(method, path)]
            if not members:
                assert r.status_code == 403, (method, path, r.status_code)
            elif "{image_id}" in path or "{content_hash}" in path:
                assert r.status_code == 404, (method, path, r.status_code, body[:200])
            assert SECRET not in body, (method, path)
            assert alice["hash"] not in body and "alice.png" not in body, (method, path)
            checked += 1
    assert checked >= 45
    conn = catalog(instance.cli.library_path)
    row = conn.execute(
        "SELECT rating, favorite, shared FROM images WHERE id = ?", (alice["id"],)
    ).fetchone()
    conn.close()
    assert tuple(row) == (0, 0, 0) or tuple(row) == (None, 0, 0)  # bob changed nothing


def test_lists_show_own_and_shared_images_and_sharing_changes_that(instance: Instance) -> None:
    ids = instance.ids
    with instance.as_("bob") as bob, instance.as_("alice") as alice, instance.as_("carol") as carol:
        assert {i["id"] for i in bob.get("/api/images").json()["items"]} == {ids["shared"]["id"]}
        assert bob.get("/api/images/count").json()["count"] == 1
        mine = {i["id"] for i in alice.get("/api/images").json()["items"]}
        assert mine == {ids["alice"]["id"], ids["shared"]["id"]}
        assert {i["id"] for i in carol.get("/api/images").json()["items"]} == {ids["shared"]["id"]}
        seen = bob.get(f"/api/images/{ids['shared']['id']}").json()
        assert seen["owner"] == "alice" and seen["shared"] is True
        # a shared image is seen, not changed, by others; a viewer changes nothing
        shared = f"/api/images/{ids['shared']['id']}"
        assert bob.put(shared + "/sharing", json={"shared": False}).status_code == 403
        assert (
            bob.post("/api/tags", json={"ids": [ids["shared"]["id"]], "tags": ["x"]}).status_code
            == 403
        )
        assert carol.put(shared + "/rating", json={"rating": 2}).status_code == 403
        private = f"/api/images/{ids['alice']['id']}"
        assert bob.get(private).status_code == 404
        assert bob.get(f"/api/thumbs/{ids['alice']['hash']}/256.avif").status_code == 404
        assert alice.put(private + "/sharing", json={"shared": True}).json()["shared"] is True
        assert bob.get(private).status_code == 200
        assert bob.get(f"/api/thumbs/{ids['alice']['hash']}/256.avif").status_code == 200
        assert alice.put(private + "/sharing", json={"shared": False}).status_code == 200
        assert bob.get(private).status_code == 404
    with instance.as_("root") as root:  # the first admin took over the library's own images
        got = {i["id"] for i in root.get("/api/images").json()["items"]}
        assert got == {ids["library"]["id"], ids["shared"]["id"]}


def test_each_user_rates_and_favourites_a_shared_image_for_themselves(
    instance: Instance,
) -> None:
    """A colleague's marks on a shared image are theirs alone: the owner's stay on the
    image, and ``fav``, ``rating:``, ``sort:rating``, lists and detail read the caller's."""
    ids = instance.ids
    shared, private = ids["shared"]["id"], ids["alice"]["id"]
    url = f"/api/images/{shared}"
    with instance.as_("bob") as bob, instance.as_("alice") as alice:
        assert alice.put(url + "/rating", json={"rating": 1}).status_code == 200
        assert bob.put(url + "/rating", json={"rating": 4}).json() == {"id": shared, "rating": 4}
        assert bob.put(url + "/favorite", json={"favorite": True}).status_code == 200

        def seen(client: httpx.Client, q: str) -> list[int]:
            return [i["id"] for i in client.get("/api/images", params={"q": q}).json()["items"]]

        assert seen(bob, "fav") == [shared] and seen(alice, "fav") == []
        assert seen(bob, "rating:4") == [shared] and seen(alice, "rating:4") == []
        assert seen(alice, "rating:1") == [shared] and seen(bob, "-fav") == []
        assert bob.get("/api/images/count", params={"q": "fav"}).json()["count"] == 1
        assert (bob.get(url).json()["rating"], bob.get(url).json()["favorite"]) == (4, True)
        assert (alice.get(url).json()["rating"], alice.get(url).json()["favorite"]) == (1, False)
        (listed,) = bob.get("/api/images").json()["items"]
        assert (listed["rating"], listed["favorite"]) == (4, True)
        # sorting by rating, and its keyset cursor, read the caller's ratings too
        assert alice.put(f"/api/images/{private}/rating", json={"rating": 3}).status_code == 200
        first = alice.get("/api/images", params={"q": "sort:rating", "limit": 1}).json()
        rest = alice.get(
            "/api/images", params={"q": "sort:rating", "cursor": first["next_cursor"]}
        ).json()
        assert [i["id"] for i in first["items"] + rest["items"]] == [private, shared]
        # rating many at once: what the caller sees, each on its own side
        assert bob.post("/api/ratings", json={"ids": [shared], "rating": 5}).json()["updated"] == 1
        assert bob.post("/api/ratings", json={"ids": [private], "rating": 5}).status_code == 404
        assert alice.get(url).json()["rating"] == 1 and bob.get(url).json()["rating"] == 5
        # the owner un-sharing the image hides it, and bob's marks with it
        assert alice.put(url + "/sharing", json={"shared": False}).status_code == 200
        assert seen(bob, "fav") == [] and bob.get(url).status_code == 404
    conn = catalog(instance.cli.library_path)
    row = conn.execute("SELECT rating, favorite FROM images WHERE id = ?", (shared,)).fetchone()
    marks = conn.execute("SELECT rating, favorite FROM user_marks").fetchall()
    conn.close()
    assert tuple(row) == (1, 0) and [tuple(m) for m in marks] == [(5, 1)]


def test_jobs_of_others_show_without_their_prompt(instance: Instance) -> None:
    with instance.as_("bob") as bob, instance.as_("alice") as alice:
        listed = bob.get("/api/jobs").json()
        (theirs,) = [j for j in listed["jobs"] if j["id"] == instance.ids["job"]]
        assert theirs["redacted"] and SECRET not in json.dumps(listed)
        assert listed["users"]["alice"]["queued"] == 1
        assert bob.get(f"/api/jobs/{instance.ids['job']}").status_code == 404
        assert bob.post(f"/api/jobs/{instance.ids['job']}/cancel").status_code == 404
        assert alice.get(f"/api/jobs/{instance.ids['job']}").json()["request"]["prompt"] == SECRET


def test_api_keys_scopes_revocation_and_disabled_users(instance: Instance) -> None:
    base = instance.srv.base
    target = f"/api/images/{instance.ids['shared']['id']}"
    assert httpx.get(base + "/api/images").status_code == 401  # anonymous
    assert (
        httpx.get(base + "/api/images", headers={"Authorization": "Bearer dd_nope"}).status_code
        == 401
    )
    with instance.as_("bob-read") as reader:
        assert reader.get("/api/images").status_code == 200
        assert reader.post("/api/generate", json={"prompt": "x"}).status_code == 403
        assert reader.put(target + "/rating", json={"rating": 1}).status_code == 403  # a write
    with instance.as_("root") as root:
        # alice's: even an admin changes only their own marks of it, never its sharing
        assert root.put(target + "/sharing", json={"shared": False}).status_code == 403
    listed = instance.cli.json("api-keys", "list", "--json")
    assert all(instance.keys["bob"] not in json.dumps(k) for k in listed)  # never stored
    bob_read = next(k for k in listed if k["name"] == "bob-read")
    instance.cli("api-keys", "revoke", str(bob_read["id"]))
    with instance.as_("bob-read") as reader:
        assert reader.get("/api/images").status_code == 401
    with instance.as_("alice") as alice:
        assert alice.get("/api/images").status_code == 200
        instance.cli("users", "disable", "alice")
        assert alice.get("/api/images").status_code == 401  # at once
    assert instance.cli("users", "list", "--json")  # still listed, disabled
    with pytest.raises(AssertionError):
        _key(instance.cli, "carol", "write")  # a viewer cannot hold write


def test_sessions_cookie_flags_csrf_fixation_logout_and_throttling(instance: Instance) -> None:
    base = instance.srv.base
    planted = httpx.Client(base_url=base, cookies={"dd_session": "planted-by-an-attacker"})
    assert planted.get("/api/images").status_code == 401
    r = planted.post("/api/login", json={"name": "alice", "password": "alice-password"})
    assert r.status_code == 200, r.text
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    assert "planted-by-an-attacker" not in cookie  # a new session, not the planted one
    csrf = r.json()["csrf_token"]
    target = f"/api/images/{instance.ids['alice']['id']}/rating"
    assert planted.get("/api/me").json()["name"] == "alice"
    assert planted.put(target, json={"rating": 4}).status_code == 403  # no CSRF token
    sneaky = planted.post(target.replace("rating", "sharing"), content='{"shared": true}',
                          headers={"Content-Type": "text/plain"})  # fmt: skip
    assert sneaky.status_code in (403, 405)
    cross = planted.put(target, json={"rating": 4}, headers={"Origin": "https://evil.example",
                        "X-CSRF-Token": csrf})  # fmt: skip
    assert cross.status_code == 403
    assert (
        planted.put(target, json={"rating": 4}, headers={"X-CSRF-Token": csrf}).status_code == 200
    )
    assert planted.post("/api/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert planted.get("/api/me").status_code == 401
    guess = httpx.Client(base_url=base)
    for _ in range(5):
        assert (
            guess.post("/api/login", json={"name": "bob", "password": "wrong"}).status_code == 401
        )
    assert (
        guess.post("/api/login", json={"name": "bob", "password": "bob-password"}).status_code
        == 429
    )


def test_event_streams_carry_only_own_jobs(instance: Instance) -> None:
    import threading
    import time

    got: dict[str, list[str]] = {"bob": [], "alice": []}

    def listen(who: str) -> None:
        with (
            contextlib.suppress(httpx.ReadTimeout),  # bob's stream stays quiet: it ends so
            instance.as_(who) as c,
            c.stream("GET", "/api/events", timeout=5) as s,
        ):
            for line in s.iter_lines():
                got[who].append(line)
                if len(got[who]) > 30 or SECRET in line:
                    return

    threads = [threading.Thread(target=listen, args=(w,), daemon=True) for w in got]
    for t in threads:
        t.start()
    time.sleep(1.0)
    events = instance.srv.app.state.dd.events
    events.publish("job", {"id": instance.ids["job"], "status": "running", "progress": 0.5})
    events.publish("indexed", {"count": 1, "paths": [f"/secret/{SECRET}.png"]})
    time.sleep(1.0)
    alice_lines = "\n".join(got["alice"])
    bob_lines = "\n".join(got["bob"])
    assert f'"id": {instance.ids["job"]}' in alice_lines
    assert f'"id": {instance.ids["job"]}' not in bob_lines and SECRET not in bob_lines
    assert "event: hello" in bob_lines


def test_the_shared_dream_cache_answers_from_own_and_shared_images_only(
    instance: Instance,
) -> None:
    instance.cli("embed")
    ids = instance.ids
    ask = {"width": 64, "height": 64, "match_size": "any"}
    with instance.as_("bob") as bob, instance.as_("alice") as alice:
        shared = bob.post("/api/dream", json={"prompt": "a shared harbour", **ask}).json()
        assert shared["hit"], shared
        (img,) = shared["images"]
        assert img["id"] == ids["shared"]["id"]
        assert img["owner"] == "alice" and img["from_someone_else"] is True
        private = bob.post("/api/dream", json={"prompt": f"{SECRET}, a lighthouse", **ask}).json()
        assert not private["hit"] and ids["alice"]["hash"] not in json.dumps(private)
        assert private.get("matched_prompt") != f"{SECRET}, a lighthouse", private
        mine = alice.post("/api/dream", json={"prompt": f"{SECRET}, a lighthouse", **ask}).json()
        assert mine["hit"] and mine["images"][0]["id"] == ids["alice"]["id"]
        assert mine["images"][0]["from_someone_else"] is False


def test_an_admin_transfers_a_departed_users_images(instance: Instance) -> None:
    cli = instance.cli
    cli("users", "disable", "alice")
    out = cli("users", "transfer", "alice", "bob").stdout
    assert "2 image(s) of alice now belong to bob" in out
    with instance.as_("bob") as bob:
        private = f"/api/images/{instance.ids['alice']['id']}"
        assert bob.get(private).status_code == 200  # his now
        assert bob.put(private + "/rating", json={"rating": 3}).status_code == 200
    assert "the two users are the same" in cli("users", "transfer", "bob", "bob", expect=2).stderr
    key = cli("api-keys", "create", "bob", "--scopes", "read").stdout.split()[-1]  # bob's key
    with httpx.Client(base_url=instance.srv.base, headers={"Authorization": f"Bearer {key}"}) as c:
        assert c.get("/api/me").json()["name"] == "bob"


def test_an_invitation_link_makes_one_account_once(instance: Instance) -> None:
    link = instance.cli("users", "invite", "--role", "viewer", "--url", instance.srv.base)
    url = link.stdout.strip().splitlines()[-1]
    token = url.rsplit("/", 1)[-1]
    assert url.startswith(instance.srv.base + "/#/invite/")
    anon = httpx.Client(base_url=instance.srv.base)

    def accept(client: Any, token: str, name: str) -> httpx.Response:
        body = {"token": token, "name": name, "password": f"{name}-password"}
        return client.post(instance.srv.base + "/api/invitations/accept", json=body)

    made = accept(anon, token, "dave")
    assert made.status_code == 200 and made.json()["role"] == "viewer", made.text
    assert anon.get("/api/me").json()["name"] == "dave"  # signed in by the same answer
    again = accept(httpx, token, "eve")
    assert again.status_code == 400 and "not valid" in again.json()["error"]
    with instance.as_("root") as root, instance.as_("bob") as bob:
        assert bob.post("/api/invitations", json={"role": "admin"}).status_code == 403
        fresh = root.post("/api/invitations", json={"role": "member"}).json()
    taken = accept(httpx, fresh["token"], "bob")
    assert taken.status_code == 400 and "exists" in taken.json()["error"]
    ok = accept(httpx, fresh["token"], "frank")
    assert ok.status_code == 200  # a failed try (the name was taken) did not use the link up


def _sso(base: str, client: httpx.Client) -> httpx.Response:
    """The browser's part of the code flow: to the provider and back to the callback."""
    start = client.get(base + "/api/oidc/login")
    assert start.status_code == 302, start.text
    at_provider = httpx.get(start.headers["location"])  # the provider signs the user in
    assert at_provider.status_code in (302, 307), at_provider.text
    return client.get(at_provider.headers["location"])


def test_signing_in_through_an_openid_connect_provider(cli: Cli, tmp_path: Path) -> None:
    from fake_oidc import FakeOidc

    cli("stats")
    cli("users", "add", "root", "--role", "admin", "--password-stdin", input="admin-password\n")
    cli("users", "add", "carla", "--password-stdin", input="local-carla-pw\n")  # not hers
    with FakeOidc() as idp:
        toml = cli.library_path / "dreamdepot.toml"  # ends in [server], where these go
        sso = f'oidc_issuer = "{idp.issuer}"\noidc_client_id = "dreamdepot"\n'
        toml.write_text(toml.read_text() + sso + 'oidc_client_secret = "s3cret"\n')
        with Server(cli.library_path) as srv:
            assert httpx.get(srv.base + "/api/login/methods").json()["oidc"] is True
            browser = httpx.Client(base_url=srv.base)
            done = _sso(srv.base, browser)
            assert done.status_code == 302 and done.headers["location"] == "/"
            me = browser.get("/api/me").json()
            assert me["role"] == "member" and me["name"].startswith("carla-")  # a new account
            assert me["display_name"] == "Carla"
            again = httpx.Client(base_url=srv.base)
            _sso(srv.base, again)
            assert again.get("/api/me").json()["id"] == me["id"]  # the same subject, same user
            # a callback for a sign-in this browser did not start
            stranger = httpx.Client(base_url=srv.base)
            start = browser.get("/api/oidc/login")
            back = httpx.get(start.headers["location"]).headers["location"]
            assert stranger.get(back).status_code == 400
            # an ID token minted for another client
            idp.audience = "someone-else"
            other = httpx.Client(base_url=srv.base)
            refused = _sso(srv.base, other)
            assert refused.status_code == 400 and "ID token" in refused.json()["error"]
            assert other.get("/api/me").status_code == 401
            idp.audience = None
            cli("users", "disable", me["name"])
            assert _sso(srv.base, httpx.Client(base_url=srv.base)).status_code == 403


def test_albums_have_owners_and_show_each_user_what_they_may_see(instance: Instance) -> None:
    ids = instance.ids
    album = f"/api/albums/{ids['album']}"
    with instance.as_("bob") as bob, instance.as_("alice") as alice:
        assert [a["name"] for a in bob.get("/api/albums").json()["albums"]] == []
        assert bob.post(album + "/images", json={"ids": [ids["shared"]["id"]]}).status_code == 404
        assert alice.put(album + "/sharing", json={"shared": True}).json()["shared"] is True
        (seen,) = bob.get("/api/albums").json()["albums"]
        assert seen["count"] == 0  # the album is shared, the image in it is not
        assert bob.post(album + "/images", json={"ids": [ids["shared"]["id"]]}).status_code == 403
        assert bob.delete(album).status_code == 403
        mine = bob.post("/api/albums", json={"name": "bob's picks"}).json()
        private = bob.post(f"/api/albums/{mine['id']}/images", json={"ids": [ids["alice"]["id"]]})
        assert private.status_code == 404  # cannot put what he cannot see in his album
        added = bob.post(f"/api/albums/{mine['id']}/images", json={"ids": [ids["shared"]["id"]]})
        assert added.json()["added"] == 1
        assert {a["name"] for a in alice.get("/api/albums").json()["albums"]} == {f"{SECRET} album"}
        assert (
            alice.put(
                f"/api/images/{ids['alice']['id']}/sharing", json={"shared": True}
            ).status_code
            == 200
        )
        (seen,) = bob.get("/api/albums").json()["albums"][:1] or [None]
        counts = {a["name"]: a["count"] for a in bob.get("/api/albums").json()["albums"]}
        assert counts == {f"{SECRET} album": 1, "bob's picks": 1}


def test_dream_cache_statistics_per_user_and_keeping_shared_images_out(
    instance: Instance,
) -> None:
    instance.cli("embed")
    ask = {"width": 64, "height": 64, "match_size": "any", "prompt": "a shared harbour"}
    with instance.as_("bob") as bob, instance.as_("alice") as alice:
        assert bob.post("/api/dream", json=ask).json()["hit"]
        alice.post("/api/dream", json={**ask, "prompt": "a lighthouse"})
        alice.post("/api/dream", json={**ask, "prompt": "something else entirely"})
        mine = bob.get("/api/cache/stats").json()
        assert mine["lookups"] == 1 and mine["hits"] == 1 and mine["instance"]["lookups"] == 3
        assert alice.put("/api/me", json={"cache_opt_out": True}).json()["cache_opt_out"]
        kept = bob.post("/api/dream", json=ask).json()
        assert not kept["hit"] and kept["images"] == []  # alice's shared image stays out
        assert alice.post("/api/dream", json=ask).json()["hit"]  # her own lookups still hit
        assert bob.get(f"/api/images/{instance.ids['shared']['id']}").status_code == 200
