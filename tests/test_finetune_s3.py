"""Adapters to S3 and back through boto3, against moto's S3 server on loopback."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import uuid
from pathlib import Path

import boto3
import pytest

from mmrag.core.adapters import AdapterError, s3_cache_dir
from mmrag.core.s3 import INDEX_NAME, ChecksumMismatchError, S3Error, S3Uri, pull, push

MOTO_SERVER = str(Path(sys.executable).with_name("moto_server"))
PART = 5 * 2**20  # S3's smallest multipart part


@pytest.fixture
def bucket(aws_env: str) -> str:
    """A fresh bucket on moto's S3."""
    name = f"adapters-{uuid.uuid4().hex[:16]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def adapter_dir(tmp_path: Path) -> Path:
    d = tmp_path / "adapter"
    (d / "checkpoints/step-000002").mkdir(parents=True)
    (d / "checkpoints/step-000002/optimizer.pt").write_bytes(b"big and local")
    (d / "adapter_config.json").write_text('{"r": 8}')
    (d / "mmrag_adapter.json").write_text('{"base_model": "tiny"}')
    (d / "adapter_model.safetensors").write_bytes(os.urandom(PART + 2**20))  # two parts
    return d


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_push_then_pull_round_trips_every_file(bucket: str, adapter_dir: Path, tmp_path: Path) -> None:
    keys = push(adapter_dir, f"s3://{bucket}/team/charts-v1", part_size=PART)
    assert keys[-1] == f"team/charts-v1/{INDEX_NAME}"  # the index goes last: a partial push is never complete
    assert not any("checkpoints" in k for k in keys)
    head = boto3.client("s3").head_object(Bucket=bucket, Key="team/charts-v1/adapter_model.safetensors")
    assert head["ETag"].strip('"').endswith("-2")  # uploaded in two parts

    dest = pull(f"s3://{bucket}/team/charts-v1/", tmp_path / "pulled", part_size=PART)
    expected = {k: v for k, v in _files(adapter_dir).items() if not k.startswith("checkpoints/")}
    assert _files(dest) == expected


def test_pull_refuses_a_file_changed_on_s3(bucket: str, adapter_dir: Path, tmp_path: Path) -> None:
    push(adapter_dir, f"s3://{bucket}/a")
    boto3.client("s3").put_object(Bucket=bucket, Key="a/adapter_config.json", Body=b'{"r": 64}')
    with pytest.raises(ChecksumMismatchError, match=r"adapter_config\.json"):
        pull(f"s3://{bucket}/a", tmp_path / "pulled")
    assert not (tmp_path / "pulled/adapter_config.json").exists()


def test_errors_are_one_clear_line(bucket: str, adapter_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(S3Error, match="not an S3 URI"):
        push(adapter_dir, "https://example.com/x")
    with pytest.raises(S3Error, match="NoSuchBucket"):
        push(adapter_dir, "s3://no-such-bucket-here/x")
    with pytest.raises(S3Error, match="NoSuchKey"):
        pull(f"s3://{bucket}/never-pushed", tmp_path / "x")


def _files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def _put_hostile(bucket: str, prefix: str, names: list[str], entry: object = None) -> None:
    """An index naming `names` (each also put as an object, so a pull that trusts the index can write it)."""
    s3 = boto3.client("s3")
    body = b"written by a hostile index"
    for name in names:
        if name and name.isprintable():  # moto takes no control characters in keys
            s3.put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=body)
    sha256 = hashlib.sha256(body).hexdigest()
    files = {name: {"sha256": sha256, "size": len(body)} if entry is None else entry for name in names}
    s3.put_object(Bucket=bucket, Key=f"{prefix}/{INDEX_NAME}", Body=json.dumps({"files": files}).encode())


HOSTILE_NAMES = {
    "parent": "../escaped.txt",
    "parent below a folder": "sub/../../escaped.txt",
    "absolute": "{outside}/escaped.txt",
    "backslashes": "..\\..\\escaped.txt",
    "backslash in a folder": "sub\\..\\escaped.txt",
    "empty part": "sub//escaped.txt",
    "dot part": "./escaped.txt",
    "trailing slash": "escaped.txt/",
    "empty name": "",
    "NUL": "escaped\x00.txt",
    "newline": "escaped\n.txt",
}


@pytest.mark.parametrize("case", list(HOSTILE_NAMES))
def test_pull_refuses_a_hostile_index_and_writes_nothing(case: str, bucket: str, tmp_path: Path) -> None:
    outside, dest = tmp_path / "outside", tmp_path / "cache/adapters/x"
    outside.mkdir()
    name = HOSTILE_NAMES[case].format(outside=outside)
    _put_hostile(bucket, "evil", ["adapter_config.json", name])
    with pytest.raises(S3Error, match="refusing file name"):
        pull(f"s3://{bucket}/evil", dest)
    assert _files_under(tmp_path) == {"outside"}  # the index is checked before dest is even made


@pytest.mark.parametrize(
    ("names", "entry", "message"),
    [
        (["adapter_config.json"], "not an object", "not a valid index"),
        (["adapter_config.json"], {"size": 3}, "not a valid index"),
        (["adapter_config.json"], {"sha256": 42}, "has no valid sha256"),
        (["a", "a/b"], None, "'a' is both a file and a folder"),
    ],
)
def test_pull_refuses_a_malformed_index_with_one_error(
    names: list[str], entry: object, message: str, bucket: str, tmp_path: Path
) -> None:
    _put_hostile(bucket, "bad", names, entry)
    with pytest.raises(S3Error, match=message):
        pull(f"s3://{bucket}/bad", tmp_path / "dest")
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_pull_refuses_a_deeply_nested_index(bucket: str, tmp_path: Path) -> None:
    body = b'{"files": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    boto3.client("s3").put_object(Bucket=bucket, Key=f"deep/{INDEX_NAME}", Body=body)
    with pytest.raises(S3Error, match="not a valid index"):
        pull(f"s3://{bucket}/deep", tmp_path / "dest")


def test_pull_never_writes_through_a_symlink_out_of_the_destination(bucket: str, tmp_path: Path) -> None:
    outside, dest = tmp_path / "outside", tmp_path / "dest"
    outside.mkdir()
    dest.mkdir()
    (dest / "sub").symlink_to(outside)
    _put_hostile(bucket, "link", ["sub/escaped.txt"])
    with pytest.raises(S3Error, match="resolves outside"):
        pull(f"s3://{bucket}/link", dest)
    assert list(outside.iterdir()) == []


UNSAFE_URIS = [
    "s3://bucket/../../x",
    "s3://bucket/team/../../../x",
    "s3://../x",
    "s3://./x",
    "s3://bucket/a//b",
    "s3://bucket/./a",
    "s3://bucket/..\\..\\x",
    "s3://bucket/a\x00b",
]


@pytest.mark.parametrize("uri", UNSAFE_URIS)
def test_unsafe_uris_are_refused_before_any_transfer(uri: str, adapter_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(S3Error, match="S3 URI"):
        S3Uri.parse(uri)
    with pytest.raises(S3Error, match="S3 URI"):
        push(adapter_dir, uri, client=object())  # a client that would fail if used
    with pytest.raises(S3Error, match="S3 URI"):
        pull(uri, tmp_path / "dest", client=object())
    assert not (tmp_path / "dest").exists()


@pytest.mark.parametrize("uri", UNSAFE_URIS)
def test_the_adapter_cache_dir_of_an_unsafe_uri_is_refused(uri: str, tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match="expected s3://bucket/prefix"):
        s3_cache_dir(uri, tmp_path / "cache")


def test_the_adapter_cache_dir_of_a_uri_is_inside_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert s3_cache_dir("s3://my.bucket/team/charts-v1/", cache) == cache / "adapters/my.bucket/team/charts-v1"
