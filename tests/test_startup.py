"""Read-only commands start quickly and never start a server: no model library on their path, and a stopped local
Weaviate is reported in one line (exit 1) with nothing started or written."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mmrag.core.client import connect
from mmrag.core.server import free_port
from mmrag.core.settings import Settings
from mmrag.indexer.store import Store
from tests.helpers import CACHE_DIR, cli_env, run_cli

MODEL_LIBRARIES = ("torch", "transformers", "open_clip", "sentence_transformers")

# Runs the command in-process in a fresh interpreter, then reports which model libraries got imported.
_PROBE = """
import json, sys
from mmrag.commands.app import main
status = main(sys.argv[1:])
print(json.dumps({"status": status, "loaded": sorted({m.split(".")[0] for m in sys.modules} & set(%r))}))
"""


def _loaded_by(env: dict[str, str], *args: str) -> dict[str, object]:
    probe = _PROBE % (MODEL_LIBRARIES,)
    result = subprocess.run(
        [sys.executable, "-c", probe, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.stdout.strip(), result.stderr
    report: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


@pytest.mark.parametrize(
    "args",
    [("stats",), ("collections", "list"), ("collections", "show", "{collection}"), ("config",), ("--help",)],
)
def test_read_only_commands_import_no_model_library(settings: Settings, args: tuple[str, ...]) -> None:
    with connect(settings) as client:  # a real, empty mmrag collection for stats and show to report
        Store(client, settings.collection).ensure("some-clip", "some-text", lambda: (4, 4))
    report = _loaded_by(cli_env(settings), *(a.format(collection=settings.collection) for a in args))
    assert report["status"] == 0
    assert report["loaded"] == []


@pytest.fixture
def stopped(tmp_path: Path) -> Settings:
    """Settings for a local server of their own (a private data dir, free ports) that is not running."""
    return Settings(
        profile="tiny",
        data_dir=tmp_path / "data",
        cache_dir=CACHE_DIR,
        device="cpu",
        weaviate_http_port=free_port(),
        weaviate_grpc_port=free_port(),
    )


@pytest.mark.parametrize("args", [("stats",), ("search", "revenue"), ("collections", "list")])
def test_readers_report_a_stopped_server_and_start_nothing(stopped: Settings, args: tuple[str, ...]) -> None:
    result = run_cli(cli_env(stopped), *args, timeout=120)
    port = stopped.weaviate_http_port
    assert result.returncode == 1
    assert result.stderr == (
        f"error: the local Weaviate (127.0.0.1:{port}) is not running: "
        "start it with `mmrag weaviate start` (or index files)\n"
    )
    assert not (stopped.data_dir / "weaviate").exists()  # no pid file, no key, no database
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # nothing listens on the server's port


def test_a_stopped_server_is_reported_before_any_model_loads(stopped: Settings) -> None:
    report = _loaded_by(cli_env(stopped), "stats")
    assert report == {"status": 1, "loaded": []}
