"""Small helpers shared by test modules (test modules never import each other, nor conftest: fixtures come from
conftest by name, plain functions and constants from here)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import weaviate
import weaviate.classes as wvc

from mmrag.core.server import LocalWeaviate, binary_path, free_port
from mmrag.core.setting_sources import CONFIG_VAR, ENV_FILE_VAR
from mmrag.core.settings import Settings, load_settings

NO_SETTINGS_FILES = {ENV_FILE_VAR: "", CONFIG_VAR: ""}
"""A `.env` or `mmrag.toml` in the current folder (the repo root under pytest) would reach every test and every
`mmrag` command the tests start: the suite reads neither (set here, before anything reads settings; `cli_env` and
`clear_mmrag_env` keep it), and a test that wants a file names it."""
os.environ.update(NO_SETTINGS_FILES)

CACHE_DIR = load_settings().cache_dir
"""Rebuildable things (the Weaviate binary, tiny checkpoints) live in the user's cache across test runs."""

MMRAG_SCRIPT = str(Path(sys.executable).with_name("mmrag"))


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


@contextmanager
def private_weaviate(work: Path) -> Iterator[tuple[Settings, LocalWeaviate]]:
    """Tiny-profile CPU settings on a Weaviate of their own (its data under `work`), started here, stopped on exit
    by whichever process (re)started it meanwhile: `stop` reads the pid from the server's state file."""
    http, grpc = free_port(), free_port()
    settings = Settings(
        profile="tiny",
        data_dir=work / "data",
        cache_dir=CACHE_DIR,
        device="cpu",
        weaviate_http_port=http,
        weaviate_grpc_port=grpc,
    )
    server = LocalWeaviate(binary_path(CACHE_DIR), settings.data_dir, http, grpc)
    server.start()
    try:
        yield settings, server
    finally:
        server.stop()


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that makes the `mmrag` command use these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMRAG_")} | NO_SETTINGS_FILES
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


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 300, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed `mmrag` command as a user would (in `cwd`, by default this process's current folder)."""
    return subprocess.run([MMRAG_SCRIPT, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def clear_mmrag_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset every MMRAG_* variable for this test, except the ones that keep settings files out of the suite."""
    for key in [k for k in os.environ if k.startswith("MMRAG_") and k not in NO_SETTINGS_FILES]:
        monkeypatch.delenv(key)


def one_object_collection(client: weaviate.WeaviateClient, name: str, text: str = "kept") -> tuple[Any, str]:
    """A new collection holding one object (self-provided vector [1, 0, 0.5]): the collection and the object's id."""
    collection = client.collections.create(
        name,
        vector_config=wvc.config.Configure.Vectors.self_provided(),
        properties=[wvc.config.Property(name="text", data_type=wvc.config.DataType.TEXT)],
    )
    return collection, str(collection.data.insert({"text": text}, vector=[1.0, 0.0, 0.5]))


SOURCE_KEYS = {
    "n",
    "id",
    "kind",
    "source",
    "source_path",
    "path",
    "page",
    "label",
    "figure_label",
    "caption",
    "text",
    "image",
    "bbox",
    "score",
    "text_similarity",
    "clip_similarity",
    "bm25",
}
"""What `search --json`, `ask --json` and `batch` say of each source."""
