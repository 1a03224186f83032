"""Settings: ``dreamdepot.toml`` in the library folder, overridden by ``DREAMDEPOT_*``.

Only what the code reads lives here, each with a default that works on one laptop. Path
settings are resolved here, once: ``~`` expanded, relative paths taken from the library
folder (so a library folder can be moved with its models and vocabularies beside it).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dreamdepot.errors import DreamDepotError

DEFAULT_TOML = """\
# Dream Depot library settings. Every key is optional; environment variables
# DREAMDEPOT_<KEY> (upper case) override them. Relative paths are relative to this folder.

# Worker processes for indexing (default: one per CPU core).
# workers = 2

# Look for stealth metadata in the pixels of PNGs that carry no other metadata.
stealth_check = true

# Prompt embeddings: "minilm" (default, shipped offline), "clip" (uses clip_model),
# "sd-text-encoder" (the text encoder of diffusers_model). Vectors of different models never mix.
# embedder = "minilm"

# Automatic taggers run after indexing (dreamdepot autotag): prompt, colour, faces,
# clip (needs clip_model = a local CLIP folder), wd14 (needs wd14_model + wd14_tags).
# autotag = ["prompt", "colour", "faces"]
# faces_min_confidence = 0.8

# Generation back end: "a1111" (AUTOMATIC1111 / Forge / reForge started with --api).
# backend = "a1111"
# a1111_url = "http://127.0.0.1:7860"
# a1111_auth = "user:password"
# max_batch = 8
# max_queued_per_user = 100   # waiting or running generation jobs per user (0: no limit)
# Uploads and generated images in an S3-compatible store (AWS S3, MinIO, R2, B2) instead of
# the library folder; credentials from the standard AWS variables:
# storage = "s3://bucket/prefix"
# storage_endpoint = "https://minio.example:9000"
# backend_timeout = 600   # seconds one generation may take before the job fails
# Or ComfyUI (started normally; templates: a folder with txt2img.json, img2img.json,
# upscale.json in API format, using {{prompt}}, {{negative}}, {{seed}}, {{steps}}, {{cfg}},
# {{width}}, {{height}}, {{n}}, {{sampler}}, {{scheduler}}, {{model}}, {{denoise}},
# {{image}}, {{upscaler}}, {{scale}}; only the placeholders a template uses are resolved, so
# a template without {{model}} never asks ComfyUI for a checkpoint; in upscale templates
# {{width}}/{{height}} are the target size, source × {{scale}}):
# backend = "comfyui"
# comfyui_url = "http://127.0.0.1:8188"
# comfyui_templates = "comfy-templates"
# Or local generation with diffusers: a diffusers folder, or a .safetensors checkpoint plus a
# local config folder (`dreamdepot dev tiny-model DIR` writes a tiny test pipeline).
# backend = "diffusers"
# diffusers_model = "/models/my-model"
# diffusers_config = "/models/sd15-config"
# diffusers_upscaler = "/models/stable-diffusion-x4-upscaler"
# models_dir = "/models"   # --model NAME finds NAME/ (diffusers folder) or NAME.safetensors here
# tag_synonyms = "tag-synonyms.txt"   # lines of "alias = canonical", for prompt tags

[server]
host = "127.0.0.1"
port = 8765
# An access token (at least 16 characters) allows binding other addresses; rather than here,
# keep it in DREAMDEPOT_TOKEN or a file named by token_file (readable by you alone).
# token_file = "~/.config/dreamdepot/token"
# Host names (besides loopback names and IP addresses) this server answers to, e.g. behind a
# reverse proxy: anything else is refused, which defeats DNS rebinding.
# allowed_hosts = ["dreamdepot.example.com"]
# Off loopback the server needs HTTPS, its own or a proxy's:
# tls_cert = "/etc/dreamdepot/cert.pem"
# tls_key = "/etc/dreamdepot/key.pem"
# behind_proxy = true                      # or `serve --behind-proxy`
# trusted_proxies = ["10.0.0.2"]           # whose X-Forwarded-* headers are believed
# Sign-in through an OpenID Connect provider (Keycloak, Entra ID, Okta, Google…); its
# redirect URI is https://YOUR-HOST/api/oidc/callback. The secret: DREAMDEPOT_OIDC_CLIENT_SECRET.
# oidc_issuer = "https://login.example.com/realms/studio"
# oidc_client_id = "dreamdepot"
"""


class ConfigError(DreamDepotError):
    """The settings file or an environment override is invalid."""


@dataclass
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    token_file: str | None = None
    allowed_hosts: list[str] = field(default_factory=list)
    # HTTPS served by this process (both files PEM), or a reverse proxy in front (then only
    # these addresses' X-Forwarded-For/-Proto are believed)
    tls_cert: str | None = None
    tls_key: str | None = None
    behind_proxy: bool = False
    trusted_proxies: list[str] = field(default_factory=lambda: ["127.0.0.1", "::1"])
    # sign-in through a company identity provider (OpenID Connect, docs/accounts.md)
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_role: str = "member"  # the role of an account made at its first OIDC sign-in
    oidc_username_claim: str = "preferred_username"


@dataclass
class Settings:
    workers: int | None = None
    stealth_check: bool = True
    thumb_size: int = 256
    embedder: str = "minilm"
    autotag: list[str] = field(default_factory=lambda: ["prompt", "colour", "faces"])
    faces_min_confidence: float = 0.8
    tag_synonyms: str | None = None
    clip_model: str | None = None
    clip_vocabulary: str | None = None
    clip_threshold: float = 0.25
    wd14_model: str | None = None
    wd14_tags: str | None = None
    wd14_threshold: float = 0.35
    backend: str | None = None
    a1111_url: str = "http://127.0.0.1:7860"
    a1111_auth: str | None = None
    max_batch: int = 8
    comfyui_url: str = "http://127.0.0.1:8188"
    comfyui_templates: str | None = None
    diffusers_model: str | None = None
    diffusers_config: str | None = None
    diffusers_upscaler: str | None = None
    models_dir: str | None = None
    device: str | None = None
    backend_retries: int = 2
    backend_timeout: float = 600.0
    # the catalog's engine: unset for the embedded SQLite file; a postgresql:// URL names a
    # PostgreSQL catalog (DREAMDEPOT_DATABASE_URL, or database = "..." here)
    database: str | None = None
    # who runs generation jobs: "server" (the process that takes the request; the default)
    # or "workers" (`dreamdepot worker` processes, through a queue on a PostgreSQL catalog)
    job_runner: str = "server"
    # how many generation jobs one user may have waiting or running at once (0: no limit)
    max_queued_per_user: int = 100
    # uploads (POST /api/uploads, dreamdepot push): the largest file, and each user's total
    # (0: no quota), in MiB
    max_upload_mb: int = 100
    upload_quota_mb: int = 0
    # where uploads and generated images are kept: unset for the library folder, or an
    # S3-compatible store, "s3://bucket/prefix" (DREAMDEPOT_STORAGE); the endpoint, region
    # and credentials default to boto3's (AWS_ENDPOINT_URL, AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID…)
    storage: str | None = None
    storage_endpoint: str | None = None
    storage_region: str | None = None
    server: ServerSettings = field(default_factory=ServerSettings)


PATH_SETTINGS = (
    "tag_synonyms",
    "clip_model",
    "clip_vocabulary",
    "wd14_model",
    "wd14_tags",
    "comfyui_templates",
    "diffusers_model",
    "diffusers_config",
    "diffusers_upscaler",
    "models_dir",
)


def _coerce(name: str, value: Any, default: Any) -> Any:
    if isinstance(default, list):
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise ConfigError(f"{name}: expected a list of names, got {value!r}")
    if isinstance(default, float) or name.endswith(("_confidence", "_threshold")):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    if default is None and name not in ("workers", "port"):
        return None if value in (None, "") else str(value)
    if isinstance(default, bool) or name == "stealth_check":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in (
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        ):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if isinstance(default, int) or name in ("workers", "port", "max_batch", "backend_retries"):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a whole number, got {value!r}") from None
    return value


def load_settings(library_dir: Path, env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    data: dict[str, Any] = {}
    toml_path = library_dir / "dreamdepot.toml"
    if toml_path.exists():
        try:
            data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{toml_path}: {exc}") from exc
    s = Settings()
    for f in fields(Settings):
        if f.name == "server":
            continue
        if f.name in data:
            setattr(s, f.name, _coerce(f.name, data[f.name], getattr(s, f.name)))
        env_key = f"DREAMDEPOT_{f.name.upper()}"
        if env_key in env:
            setattr(s, f.name, _coerce(f.name, env[env_key], getattr(s, f.name)))
    server = data.get("server", {})
    for f in fields(ServerSettings):
        if f.name in server:
            setattr(s.server, f.name, _coerce(f.name, server[f.name], getattr(s.server, f.name)))
        env_key = f"DREAMDEPOT_{f.name.upper()}"
        if env_key in env:
            setattr(s.server, f.name, _coerce(f.name, env[env_key], getattr(s.server, f.name)))
    if env.get("DREAMDEPOT_DATABASE_URL"):
        s.database = env["DREAMDEPOT_DATABASE_URL"]
    if s.job_runner not in ("server", "workers"):
        raise ConfigError(f"job_runner: expected server or workers, got {s.job_runner!r}")
    if s.job_runner == "workers" and not s.database:
        raise ConfigError('job_runner = "workers" needs a PostgreSQL catalog (database = "…")')
    for name in PATH_SETTINGS:
        if value := getattr(s, name):
            setattr(s, name, str(library_dir / Path(value).expanduser()))
    return s
