"""The local Weaviate server through `mmrag weaviate ...`, as a user runs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from mmrag.core.client import connect, local_server
from mmrag.core.errors import ServerStartError
from mmrag.core.server import LocalWeaviate, free_port
from mmrag.core.settings import Settings
from tests.helpers import CACHE_DIR, cli_env, one_object_collection, run_cli

pytestmark = pytest.mark.slow  # servers of their own, started, killed and restarted

mmrag = run_cli


@pytest.fixture
def own_settings(weaviate_binary: Path, tmp_path: Path) -> Settings:
    """A second server of this test's own (the session one keeps running), from the cached binary."""
    return Settings(
        profile="tiny",
        data_dir=tmp_path,
        cache_dir=CACHE_DIR,
        collection="Survivors",
        weaviate_http_port=free_port(),
        weaviate_grpc_port=free_port(),
    )


def test_start_status_stop_and_data_survives_restart(own_settings: Settings) -> None:
    env = cli_env(own_settings)
    assert mmrag(env, "weaviate", "status").returncode == 1

    started = mmrag(env, "weaviate", "start")
    assert started.returncode == 0, started.stderr
    assert f"127.0.0.1:{own_settings.weaviate_http_port}" in started.stdout
    status = mmrag(env, "weaviate", "status")
    assert status.returncode == 0 and "ready" in status.stdout

    with connect(own_settings, start_local=False) as client:
        _, uid = one_object_collection(client, own_settings.collection)

    assert mmrag(env, "weaviate", "stop").returncode == 0
    assert mmrag(env, "weaviate", "status").returncode == 1
    assert mmrag(env, "weaviate", "start").returncode == 0
    try:
        with connect(own_settings, start_local=False) as client:
            obj = client.collections.use(own_settings.collection).query.fetch_object_by_id(uid, include_vector=True)
            assert obj is not None and obj.properties["text"] == "kept"
            assert obj.vector["default"] == pytest.approx([1.0, 0.0, 0.5])
    finally:
        assert "stopped" in mmrag(env, "weaviate", "stop").stdout


def test_start_right_after_a_crash_is_quick_and_keeps_the_data(own_settings: Settings) -> None:
    # A crash leaves the server's connections in TIME-WAIT for a minute; they must not count as "port in use".
    server = local_server(own_settings)
    pid = server.start().pid
    assert pid is not None
    with connect(own_settings, start_local=False) as client:
        collection, uid = one_object_collection(client, own_settings.collection)
        for _ in range(3):  # open connections on the REST and the gRPC port
            assert client.is_ready() and len(collection.query.fetch_objects(limit=5).objects) == 1
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)

    started = time.monotonic()
    try:
        assert server.start(timeout=60).ready
        assert time.monotonic() - started < 20
        with connect(own_settings, start_local=False) as client:
            obj = client.collections.use(own_settings.collection).query.fetch_object_by_id(uid)
            assert obj is not None and obj.properties["text"] == "kept"
    finally:
        server.stop()


def test_a_data_dir_starts_on_other_ports_with_its_data(own_settings: Settings) -> None:
    # Weaviate keeps its node name in the data: it must not change with the port (it once was named after it).
    with connect(own_settings, start_local=True) as client:  # a writer's connect starts the server
        _, uid = one_object_collection(client, own_settings.collection)
    local_server(own_settings).stop()
    moved = own_settings.model_copy(update={"weaviate_http_port": free_port(), "weaviate_grpc_port": free_port()})
    try:
        with connect(moved, start_local=True) as client:
            obj = client.collections.use(moved.collection).query.fetch_object_by_id(uid)
            assert obj is not None and obj.properties["text"] == "kept"
    finally:
        local_server(moved).stop()


def test_anonymous_requests_are_refused(weaviate_server: LocalWeaviate) -> None:
    # gRPC binds every interface upstream, so the local server requires its API key.
    url = f"http://127.0.0.1:{weaviate_server.http_port}/v1/schema"
    assert httpx.get(url).status_code == 401
    key = weaviate_server.api_key()
    assert httpx.get(url, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert (weaviate_server.key_file.stat().st_mode & 0o077) == 0


def test_rest_api_listens_on_loopback_only(weaviate_server: LocalWeaviate) -> None:
    own = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=False).stdout.split()
    addresses = [a for a in own if not a.startswith("127.") and a != "::1"]
    if not addresses:
        pytest.skip("this machine has no non-loopback address")
    family = socket.AF_INET6 if ":" in addresses[0] else socket.AF_INET
    with socket.socket(family) as s, pytest.raises(OSError):
        s.settimeout(1)
        s.connect((addresses[0], weaviate_server.http_port))


def test_taken_port_is_a_clear_error(weaviate_binary: Path, tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        server = LocalWeaviate(weaviate_binary, tmp_path, port, free_port())
        with pytest.raises(ServerStartError, match=f"port {port} .* in use.*MMRAG_WEAVIATE_HTTP_PORT"):
            server.start()


def test_missing_binary_is_a_clear_cli_error(own_settings: Settings, tmp_path: Path) -> None:
    result = mmrag(cli_env(own_settings, MMRAG_CACHE_DIR=str(tmp_path / "empty")), "weaviate", "start")
    assert result.returncode == 1
    assert "not installed" in result.stderr and "make setup" in result.stderr
    assert "Traceback" not in result.stderr
