"""Adapters on S3: `push` a dir to ``s3://bucket/prefix`` and `pull` it back, every file's sha256 verified.

boto3 does the transfers (multipart above `part_size`, with S3-side SHA-256 checksums on upload) and reads the
standard AWS settings: credentials chain, AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL (MinIO, moto, LocalStack).
`push` uploads a ``SHA256SUMS.json`` index last, so a pull never sees a half-pushed adapter as complete; `pull`
downloads into a temporary dir, checks each file against the index, then moves the files into place.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.core.errors import MmragError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

INDEX_NAME = "SHA256SUMS.json"
DEFAULT_PART_SIZE = 16 * 2**20
SKIPPED_DIRS = ("checkpoints",)
"""Training checkpoints stay local: an adapter dir on S3 holds what the app loads."""


class S3Error(MmragError):
    """An S3 URI, transfer or checksum problem."""


class ChecksumMismatchError(S3Error):
    """A downloaded file differs from what was pushed."""


_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_UNSAFE_CHARS = re.compile(r"[\\\x00-\x1f\x7f]")


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    prefix: str
    """Plain parts joined by ``/`` (see `plain_parts`), or empty: it maps to a path below any local dir."""

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        prefix = prefix.strip("/")
        if not uri.startswith("s3://") or not _BUCKET.fullmatch(bucket):
            raise S3Error(f"not an S3 URI: {uri!r} (expected s3://bucket/prefix)")
        if prefix and not plain_parts(prefix):
            raise S3Error(
                f"refusing S3 URI {uri!r}: a part of its prefix is empty, '.' or '..', or holds a backslash or a "
                "control character"
            )
        return cls(bucket, prefix)

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative


def push(local_dir: Path, uri: str, *, part_size: int = DEFAULT_PART_SIZE, client: Any = None) -> list[str]:
    """Upload every file of `local_dir` (but checkpoints/) under `uri`; returns the keys written, index last."""
    target = S3Uri.parse(uri)
    files = _files(local_dir)
    if not files:
        raise S3Error(f"{local_dir} has no files to push")
    s3 = client or _client()
    transfer = _transfer_config(part_size)
    index = {}
    keys = []
    for relative, path in files.items():
        index[relative] = {"sha256": _sha256(path), "size": path.stat().st_size}
        key = target.key(relative)
        _call(uri, s3.upload_file, str(path), target.bucket, key, ExtraArgs=_UPLOAD_ARGS, Config=transfer)
        keys.append(key)
    body = json.dumps({"files": index}, indent=2, sort_keys=True).encode()
    key = target.key(INDEX_NAME)
    _call(uri, s3.put_object, Bucket=target.bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256")
    return [*keys, key]


def pull(uri: str, dest: Path, *, part_size: int = DEFAULT_PART_SIZE, client: Any = None) -> Path:
    """Download what `push` wrote under `uri` into `dest`, verify every sha256, and return `dest`.

    Files already in `dest` with the right sha256 are not downloaded again.
    """
    source = S3Uri.parse(uri)
    s3 = client or _client()
    response = _call(uri, s3.get_object, Bucket=source.bucket, Key=source.key(INDEX_NAME))
    index = _index(uri, _call(uri, response["Body"].read))
    dest.mkdir(parents=True, exist_ok=True)
    finals = {relative: _destination(dest, relative) for relative in index}  # all checked before any download
    transfer = _transfer_config(part_size)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".pull-") as tmp:
        fetched: list[tuple[Path, Path]] = []
        for relative, sha256 in sorted(index.items()):
            final = finals[relative]
            if final.is_file() and _sha256(final) == sha256:
                continue
            part = Path(tmp).joinpath(*relative.split("/"))
            part.parent.mkdir(parents=True, exist_ok=True)
            _call(uri, s3.download_file, source.bucket, source.key(relative), str(part), Config=transfer)
            if _sha256(part) != sha256:
                raise ChecksumMismatchError(f"{uri}/{relative}: sha256 differs from the pushed file")
            fetched.append((part, final))
        for part, final in fetched:
            final.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(part, final)
    return dest


_UPLOAD_ARGS = {"ChecksumAlgorithm": "SHA256"}


def _files(local_dir: Path) -> dict[str, Path]:
    if not local_dir.is_dir():
        raise S3Error(f"{local_dir} is not a directory")
    files = {}
    for path in sorted(local_dir.rglob("*")):
        relative = path.relative_to(local_dir)
        if path.is_file() and relative.parts[0] not in SKIPPED_DIRS and path.name != INDEX_NAME:
            files[relative.as_posix()] = path
    return files


def plain_parts(relative: str) -> list[str] | None:
    """The ``/``-separated parts of `relative` when each is a plain name, else None.

    A plain name is not empty, ``.`` or ``..`` and holds no backslash or control character, so the parts joined
    below a dir stay below it on any OS; an absolute name (empty first part) is not plain.
    """
    parts = relative.split("/")
    plain = all(p and p not in (".", "..") and not _UNSAFE_CHARS.search(p) for p in parts)
    return parts if plain else None


def _index(uri: str, raw: bytes) -> dict[str, str]:
    """File name -> sha256 from the index `push` wrote; S3Error for a malformed or hostile one."""
    try:
        files = json.loads(raw)["files"]
        index = {name: entry["sha256"] for name, entry in files.items()}
    except (ValueError, RecursionError, KeyError, TypeError, AttributeError) as e:
        raise S3Error(f"{uri}/{INDEX_NAME} is not a valid index") from e
    folders: set[str] = set()
    for name, sha256 in index.items():
        parts = plain_parts(name)
        if parts is None:
            raise S3Error(f"{uri}/{INDEX_NAME}: refusing file name {name!r} (a path outside the destination?)")
        if not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise S3Error(f"{uri}/{INDEX_NAME}: {name!r} has no valid sha256")
        folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
    if clash := sorted(folders & index.keys()):
        raise S3Error(f"{uri}/{INDEX_NAME}: {clash[0]!r} is both a file and a folder")
    return index


def _destination(dest: Path, relative: str) -> Path:
    """Where the index's file `relative` goes: a path that resolves (symlinks followed) inside `dest`."""
    final = dest.joinpath(*relative.split("/"))
    if not final.resolve().is_relative_to(dest.resolve()):
        raise S3Error(f"refusing to write {relative!r}: it resolves outside {dest}")
    return final


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _client() -> S3Client:
    import boto3

    return boto3.Session().client("s3")


def _transfer_config(part_size: int) -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size)


def _call(uri: str, action: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one boto3 call; its errors become one S3Error line (never with credentials in it)."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return action(*args, **kwargs)
    except ClientError as e:
        error = e.response.get("Error", {})
        raise S3Error(f"{uri}: {error.get('Code', 'error')}: {error.get('Message', e)}") from e
    except (BotoCoreError, S3UploadFailedError) as e:
        raise S3Error(f"{uri}: {e}") from e
