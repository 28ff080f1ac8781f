"""Adapters to S3 and back through boto3, against moto's S3 server on loopback."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import boto3
import pytest

from finetune.s3 import INDEX_NAME, ChecksumMismatchError, S3Error, pull, push

MOTO_SERVER = str(Path(sys.executable).with_name("moto_server"))
PART = 5 * 2**20  # S3's smallest multipart part


@pytest.fixture
def bucket(aws_env: str, request: pytest.FixtureRequest) -> str:
    """A fresh bucket on moto's S3."""
    name = f"adapters-{request.node.name.lower().replace('_', '-')[:40]}"
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
