"""Shared fixtures: a real Weaviate on free loopback ports, tiny checkpoints through the real loaders."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mmrag.core.server import LocalWeaviate, binary_path, free_port
from mmrag.core.settings import Settings, load_settings

# Rebuildable things (the Weaviate binary, tiny checkpoints) live in the user's cache across test runs.
CACHE_DIR = load_settings().cache_dir


@pytest.fixture(scope="session")
def weaviate_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalWeaviate]:
    binary = binary_path(CACHE_DIR)
    if not binary.is_file():
        pytest.fail(f"Weaviate binary missing at {binary}: run `make setup`")
    server = LocalWeaviate(binary, tmp_path_factory.mktemp("weaviate-data"), free_port(), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(weaviate_server: LocalWeaviate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Tiny profile, the session's Weaviate, and a collection of this test's own."""
    for key in list(os.environ):
        if key.startswith("MMRAG_"):
            monkeypatch.delenv(key)
    return Settings(
        profile="tiny",
        data_dir=weaviate_server.root.parent,
        cache_dir=CACHE_DIR,
        collection=f"T{uuid.uuid4().hex[:12]}",
        weaviate_http_port=weaviate_server.http_port,
        weaviate_grpc_port=weaviate_server.grpc_port,
        device="cpu",
    )


def module_settings(server: LocalWeaviate, prefix: str, **overrides: object) -> Settings:
    """Tiny-profile settings on the session's Weaviate with a fresh collection, for module-scoped corpora."""
    values: dict[str, object] = {
        "profile": "tiny",
        "data_dir": server.root.parent,
        "cache_dir": CACHE_DIR,
        "collection": f"{prefix}{uuid.uuid4().hex[:10]}",
        "weaviate_http_port": server.http_port,
        "weaviate_grpc_port": server.grpc_port,
        "device": "cpu",
        "max_new_tokens": 8,
    }
    return Settings(**(values | overrides))  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on loopback (a real HTTP server speaking the S3 API)."""
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("moto_server did not start")
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def aws_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The standard AWS variables point boto3 at moto, as a user points them at MinIO."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return s3_endpoint


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that makes the `mmrag` command use these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMRAG_")}
    env.update(
        MMRAG_PROFILE=settings.profile,
        MMRAG_DATA_DIR=str(settings.data_dir),
        MMRAG_CACHE_DIR=str(settings.cache_dir),
        MMRAG_COLLECTION=settings.collection,
        MMRAG_WEAVIATE_HTTP_PORT=str(settings.weaviate_http_port),
        MMRAG_WEAVIATE_GRPC_PORT=str(settings.weaviate_grpc_port),
        MMRAG_DEVICE=settings.device,
        HF_HUB_OFFLINE="1",
    )
    env.update(extra)
    return env


MMRAG_SCRIPT = str(Path(sys.executable).with_name("mmrag"))


def run_cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the installed `mmrag` command as a user would."""
    return subprocess.run([MMRAG_SCRIPT, *args], env=env, capture_output=True, text=True, timeout=timeout)
