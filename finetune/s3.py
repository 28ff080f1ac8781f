"""Adapters on S3: `push` a dir to ``s3://bucket/prefix`` and `pull` it back, every file's sha256 verified.

boto3 does the transfers (multipart above `part_size`, with S3-side SHA-256 checksums on upload) and reads the
standard AWS settings: credentials chain, AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL (MinIO, moto, LocalStack).
`push` uploads a ``SHA256SUMS.json`` index last, so a pull never sees a half-pushed adapter as complete; `pull`
downloads into a temporary dir, checks each file against the index, then moves the files into place.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from mmrag.errors import MmragError

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


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        if not uri.startswith("s3://") or not uri[5:].split("/", 1)[0]:
            raise S3Error(f"not an S3 URI: {uri!r} (expected s3://bucket/prefix)")
        bucket, _, prefix = uri[5:].partition("/")
        return cls(bucket, prefix.strip("/"))

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
    raw = _call(uri, response["Body"].read)
    try:
        index: dict[str, dict[str, Any]] = json.loads(raw)["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise S3Error(f"{uri}/{INDEX_NAME} is not a valid index") from e
    dest.mkdir(parents=True, exist_ok=True)
    transfer = _transfer_config(part_size)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".pull-") as tmp:
        fetched: list[tuple[Path, Path]] = []
        for relative, entry in sorted(index.items()):
            final = dest / _safe_relative(relative)
            if final.is_file() and _sha256(final) == entry["sha256"]:
                continue
            part = Path(tmp) / relative
            part.parent.mkdir(parents=True, exist_ok=True)
            key = source.key(relative)
            _call(uri, s3.download_file, source.bucket, key, str(part), Config=transfer)
            if _sha256(part) != entry["sha256"]:
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


def _safe_relative(relative: str) -> Path:
    """A key's path below the destination; refuses absolute paths and ``..`` (a hostile index)."""
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise S3Error(f"refusing to write {relative!r} outside the destination")
    return Path(*path.parts)


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
