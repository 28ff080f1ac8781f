"""Small helpers shared by test modules (test modules never import each other, nor conftest: fixtures come from
conftest by name, plain functions and constants from here)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
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
TRANSFORMERS_SCRIPT = str(Path(sys.executable).with_name("transformers"))


class TransformersServer:
    """A real `transformers serve` of one checkpoint on a free loopback port (CPU, float32 as the local backend),
    for the server backend's tests and `bench/serving.py`; `kill` and `start` again (same port) for outage tests."""

    def __init__(self, model: str, log: Path, *, port: int | None = None, continuous_batching: bool = False) -> None:
        self.model, self.log = model, log
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._extra = ["--continuous-batching"] if continuous_batching else []
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 180) -> TransformersServer:
        import time

        import httpx

        command = [TRANSFORMERS_SCRIPT, "serve", self.model, "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--device", "cpu", "--dtype", "float32", *self._extra]
        hub_cache = self.log.parent / "hub-cache"  # empty: its /v1/models lists the cache, so it lists nothing
        hub_cache.mkdir(parents=True, exist_ok=True)
        env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub_cache), "TRANSFORMERS_VERBOSITY": "error"}
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"transformers serve exited ({self._process.returncode}): see {self.log}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"transformers serve did not start in {timeout_s:.0f} s: see {self.log}")

    def kill(self) -> None:
        """Die at once, as a crashed server does (requests in flight lose their connection)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=30)
            self._process = None

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=30)
            self._process = None

    def __enter__(self) -> TransformersServer:
        return self.start() if self._process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
    for name in sorted(settings.model_fields_set):  # the rest that was set on purpose (generator_url, k, ...)
        value = getattr(settings, name)
        if value is not None:
            secret = getattr(value, "get_secret_value", None)
            env.setdefault(f"MMRAG_{name.upper()}", str(secret() if secret else value))
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
    "shape",
    "origin",
    "score",
    "text_similarity",
    "clip_similarity",
    "bm25",
}
"""What `search --json`, `ask --json` and `batch` say of each source."""


LANGUAGE_MODEL_LORA = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def make_adapter(
    out: Path, base_dir: str, *, seed: int, base_model: str | None = None, style: str | None = None
) -> str:
    """A random (non-zero) LoRA on the language model of the tiny base, saved with its manifest as training would."""
    import torch
    from peft import LoraConfig, get_peft_model

    from mmrag.core.manifest import AdapterManifest
    from mmrag.core.models import load_vlm
    from mmrag.core.prompts import PROMPT_STYLE

    base, _ = load_vlm(base_dir, "cpu")
    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=LANGUAGE_MODEL_LORA, init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(str(out))
    AdapterManifest(base_model=base_model or base_dir, prompt_style=style or PROMPT_STYLE).save(out)
    return str(out)


def kill_once_written(process: subprocess.Popen[Any], written: Callable[[], int], timeout: float = 240) -> int:
    """SIGKILL `process` as soon as `written()` counts something stored (a crash mid-run); that count (0: the run
    ended, or the time ran out, first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if count := written():
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return count
        time.sleep(0.02)
    process.wait()
    return 0
