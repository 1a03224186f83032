"""Accounts of a shared instance: users and API keys (docs/service.md)."""

from __future__ import annotations

import getpass
import os
import sys
from typing import Annotated, Any

import typer

from dreamdepot import accounts
from dreamdepot.cli.common import app, console, fail, open_library
from dreamdepot.terminal import escape, json_text

users_app = typer.Typer(
    help="Users of a shared instance (the first one makes the server ask who is there).",
    no_args_is_help=True,
)
keys_app = typer.Typer(help="API keys for scripts, uploads and workers.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="api-keys")


def _password(given: str | None, ask: bool) -> str | None:
    """The password from --password-stdin, DREAMDEPOT_PASSWORD or a prompt (never argv)."""
    if given == "-":
        return sys.stdin.readline().rstrip("\n")
    if os.environ.get("DREAMDEPOT_PASSWORD"):
        return os.environ["DREAMDEPOT_PASSWORD"]
    if ask and sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Again: "):
            fail("the passwords differ", 2)
        return first
    return None


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Sign-in name.")],
    role: Annotated[str, typer.Option(help="admin, member or viewer.")] = "member",
    display_name: Annotated[str | None, typer.Option(help="The name others see.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Add a user. The first admin takes over the library's existing images. The password
    comes from a prompt, --password-stdin or DREAMDEPOT_PASSWORD; without one the user signs
    in with API keys only until `users reset-password`."""
    password = _password("-" if password_stdin else None, ask=True)
    if password is not None and len(password) < 8:
        fail("password: at least 8 characters", 2)
    with open_library() as lib:
        try:
            user_id = accounts.add_user(lib.conn, name, role, password, display_name)
        except accounts.AccountError as exc:
            fail(str(exc), 2)
    console.print(f"User {escape(name)} ({role}) added, id {user_id}")


@users_app.command("list")
def users_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The users, their roles and whether they are disabled."""
    with open_library() as lib:
        rows = accounts.list_users(lib.conn)
    if as_json:
        sys.stdout.write(json_text(rows) + "\n")
        return
    for u in rows:
        off = " (disabled)" if u["disabled"] else ""
        console.print(f"{u['id']} {escape(str(u['name']))} {u['role']}{off}", highlight=False)


@users_app.command("disable")
def users_disable(
    name: Annotated[str, typer.Argument()],
    enable: Annotated[bool, typer.Option("--enable", help="Enable again instead.")] = False,
) -> None:
    """Disable a user: their sessions and API keys stop working at once."""
    with open_library() as lib:
        try:
            accounts.set_disabled(lib.conn, name, not enable)
        except accounts.AccountError as exc:
            fail(str(exc), 2)
    console.print(f"User {escape(name)} {'enabled' if enable else 'disabled'}")


@users_app.command("invite")
def users_invite(
    role: Annotated[str, typer.Option(help="admin, member or viewer.")] = "member",
    base_url: Annotated[
        str, typer.Option("--url", help="The instance's address, for the link.")
    ] = "http://127.0.0.1:8765",
    days: Annotated[float, typer.Option(help="How long the link works.")] = 7.0,
) -> None:
    """A one-time link that lets its holder make one account with ROLE (printed once, alone
    on the last line)."""
    with open_library() as lib:
        try:
            token = accounts.create_invitation(lib.conn, role, seconds=days * 86400)
        except accounts.AccountError as exc:
            fail(str(exc), 2)
    typer.echo(f"Invitation for one {role} account, valid {days:g} days, usable once:", err=True)
    typer.echo(f"{base_url.rstrip('/')}/#/invite/{token}")


@users_app.command("transfer")
def users_transfer(
    from_user: Annotated[str, typer.Argument(help="Whose images (e.g. someone who left).")],
    to_user: Annotated[str, typer.Argument(help="Who gets them.")],
) -> None:
    """Give all of one user's images to another (what was shared stays shared)."""
    with open_library() as lib:
        try:
            n = accounts.transfer_images(lib.conn, from_user, to_user)
        except accounts.AccountError as exc:
            fail(str(exc), 2)
    console.print(f"{n} image(s) of {escape(from_user)} now belong to {escape(to_user)}")


@users_app.command("reset-password")
def users_reset_password(
    name: Annotated[str, typer.Argument()],
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
) -> None:
    """Set a new password (from a prompt, --password-stdin or DREAMDEPOT_PASSWORD); the
    user's sessions end."""
    password = _password("-" if password_stdin else None, ask=True)
    if password is None:
        fail("no password given (a prompt needs a terminal: use --password-stdin)", 2)
    with open_library() as lib:
        try:
            accounts.set_password(lib.conn, name, password)
        except accounts.AccountError as exc:
            fail(str(exc), 2)
    console.print(f"Password of {escape(name)} set; their sessions ended")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="What the key is for (shown in the list).")],
    user: Annotated[str | None, typer.Option(help="Whose key (default: the only admin).")] = None,
    scopes: Annotated[
        str, typer.Option(help="Comma-separated: read, write, generate, worker, admin.")
    ] = "read",
) -> None:
    """Create an API key. It is printed once, alone on the last line: store it now."""
    with open_library() as lib:
        owner = user or _default_owner(lib.conn, name)
        try:
            key = accounts.create_api_key(
                lib.conn, owner, name, [s.strip() for s in scopes.split(",") if s.strip()]
            )
        except accounts.AccountError as exc:
            fail(str(exc), 2)
    typer.echo(f"API key {name} for {owner} (scopes {scopes}); it is not shown again:", err=True)
    typer.echo(key)


def _default_owner(conn: Any, name: str) -> str:
    """Whose key, when --user is not given: the user called NAME (a key named after its
    user), else the only admin, else the only user."""
    if accounts.user_by_name(conn, name) is not None:
        return name
    users = accounts.list_users(conn)
    for group in ([u for u in users if u["role"] == "admin"], users):
        if len(group) == 1:
            return str(group[0]["name"])
    fail("--user: name the key's user (NAME is no user's, and there is not one admin)", 2)


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every key: its user, name, first characters and scopes (never the key)."""
    with open_library() as lib:
        rows = accounts.list_api_keys(lib.conn)
    if as_json:
        sys.stdout.write(json_text(rows) + "\n")
        return
    for k in rows:
        off = " (revoked)" if k["revoked_at"] else ""
        console.print(
            f"{k['id']} {escape(str(k['user']))} {escape(str(k['name']))} {k['prefix']}… "
            f"{k['scopes']}{off}",
            highlight=False,
        )


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(help="The key's id (api-keys list).")],
) -> None:
    """Revoke a key: requests with it are refused from now on."""
    with open_library() as lib:
        if not accounts.revoke_api_key(lib.conn, key_id):
            fail(f"no active key {key_id}", 2)
    console.print(f"Key {key_id} revoked")
