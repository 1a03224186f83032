"""Where a shared instance keeps the files it owns (uploads, generated images): one small
blob-store interface, on local disk by default or in an S3-compatible object store
(``storage = "s3://bucket/prefix"``: AWS S3, MinIO, Cloudflare R2, Backblaze B2).

Only documented S3 operations are used — PutObject and multipart upload (through boto3's
transfer manager), GetObject with ranges, HeadObject, DeleteObject, ListObjectsV2 — so any
compatible store works. Keys are content-addressed by their callers. The endpoint, region
and credentials come from settings or boto3's standard sources (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, profiles).

In the catalog, a stored file lives in a root whose path is the store's URL for a prefix
(``s3://bucket/prefix/uploads``); such roots are never walked by scans.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from dreamdepot.errors import DreamDepotError

MULTIPART_THRESHOLD = 16 << 20  # larger files go up in 16 MiB parts


class BlobError(DreamDepotError):
    """The object store failed; ``retryable`` when trying again may work (unreachable,
    throttled, a 5xx), so the caller answers 503 rather than 4xx."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class BlobStore(Protocol):
    """The operations the library needs from wherever its files live."""

    def root_url(self, prefix: str) -> str:
        """The catalog root path for files stored under ``prefix``."""

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None: ...

    def open_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes of ``key`` from ``start`` to ``end`` (inclusive), in chunks."""

    def size(self, key: str) -> int | None:
        """The object's size, or None when it does not exist."""

    def download(self, key: str, path: Path) -> None: ...

    def delete(self, key: str) -> None: ...

    def keys(self, prefix: str = "") -> Iterator[str]: ...


def is_blob_root(path: str) -> bool:
    """Whether a catalog root is an object-store prefix (never walked by scans)."""
    return "://" in path


class LocalBlobs:
    """Files under a folder (the embedded default: the library folder)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, key: str) -> Path:
        target = (self.folder / key).resolve()
        if not target.is_relative_to(self.folder.resolve()):
            raise BlobError(f"key outside the store: {key}", retryable=False)
        return target

    def root_url(self, prefix: str) -> str:
        return str(self._path(prefix))

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.part")
        shutil.copyfile(path, tmp)
        tmp.replace(target)

    def open_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        with open(self._path(key), "rb") as f:
            f.seek(start)
            left = None if end is None else end - start + 1
            while left is None or left > 0:
                chunk = f.read(1 << 20 if left is None else min(1 << 20, left))
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk

    def size(self, key: str) -> int | None:
        p = self._path(key)
        return p.stat().st_size if p.is_file() else None

    def download(self, key: str, path: Path) -> None:
        shutil.copyfile(self._path(key), path)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def keys(self, prefix: str = "") -> Iterator[str]:
        base = self._path(prefix) if prefix else self.folder
        for p in sorted(base.rglob("*")) if base.exists() else []:
            if p.is_file():
                yield str(p.relative_to(self.folder))


class S3Blobs:
    """An S3-compatible bucket, under a key prefix."""

    def __init__(self, url: str, endpoint: str | None = None, region: str | None = None) -> None:
        try:
            import boto3
            from boto3.s3.transfer import TransferConfig
        except ImportError as exc:
            raise BlobError(
                "storage = s3://… needs boto3: pip install 'dreamdepot[s3]'", retryable=False
            ) from exc
        rest = url.removeprefix("s3://")
        self.bucket, _, prefix = rest.partition("/")
        if not self.bucket:
            raise BlobError(f"storage: expected s3://BUCKET/PREFIX, got {url!r}", retryable=False)
        self.prefix = prefix.strip("/")
        self.client = boto3.client("s3", endpoint_url=endpoint, region_name=region)
        self.transfer = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD
        )

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def root_url(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{self._key(prefix)}"

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            code = exc.response.get("Error", {}).get("Code", "")
            raise BlobError(
                f"object store: {what} failed ({code or status})",
                retryable=status >= 500 or status in (0, 408, 429) or code == "SlowDown",
            ) from exc
        except BotoCoreError as exc:  # unreachable, timed out, a broken connection
            raise BlobError(f"object store: {what} failed ({exc})") from exc

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else None
        self._call(
            "upload",
            self.client.upload_file,
            str(path),
            self.bucket,
            self._key(key),
            ExtraArgs=extra,
            Config=self.transfer,
        )

    def open_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        wanted = f"bytes={start}-{'' if end is None else end}"
        body = self._call(
            "download", self.client.get_object, Bucket=self.bucket, Key=self._key(key),
            Range=wanted,
        )["Body"]  # fmt: skip
        try:
            yield from body.iter_chunks(1 << 20)
        finally:
            body.close()

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise BlobError(f"object store: head failed ({exc})") from exc
        return int(head["ContentLength"])

    def download(self, key: str, path: Path) -> None:
        self._call(
            "download", self.client.download_file, self.bucket, self._key(key), str(path),
            Config=self.transfer,
        )  # fmt: skip

    def delete(self, key: str) -> None:
        self._call("delete", self.client.delete_object, Bucket=self.bucket, Key=self._key(key))

    def keys(self, prefix: str = "") -> Iterator[str]:
        token: str | None = None
        start = len(self._key(""))
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._key(prefix)}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call("list", self.client.list_objects_v2, **kwargs)
            for obj in page.get("Contents", []):
                yield str(obj["Key"])[start:]
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")


def open_store(settings: Any, library_dir: Path) -> BlobStore:
    """The store the settings name: ``storage = "s3://…"``, else the library folder."""
    url = getattr(settings, "storage", None)
    if url and str(url).startswith("s3://"):
        return S3Blobs(str(url), settings.storage_endpoint, settings.storage_region)
    if url:
        raise BlobError(f"storage: expected s3://BUCKET/PREFIX, got {url!r}", retryable=False)
    return LocalBlobs(library_dir)


def key_of(store: BlobStore, root_path: str, rel_path: str) -> str | None:
    """The key of a catalog file that lives in ``store`` (None when its root is elsewhere)."""
    if not is_blob_root(root_path) or not isinstance(store, S3Blobs):
        return None
    base = store.root_url("")
    if not root_path.startswith(base):
        return None
    return f"{root_path[len(base) :].strip('/')}/{rel_path}".lstrip("/")
