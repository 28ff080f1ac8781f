"""What the local Weaviate exposes to a client without credentials, port by port, and what it inherits from us."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from mmrag.core.client import connect
from mmrag.core.server import (
    CLUSTER_USER,
    LocalWeaviate,
    free_port,
    listening_sockets,
    probe_without_credentials,
)
from mmrag.core.settings import Settings
from tests.helpers import one_object_collection

UNAUTHENTICATED_LOOPBACK = ("CLUSTER_GOSSIP_BIND_PORT", "RAFT_PORT", "RAFT_INTERNAL_RPC_PORT")
"""Gossip and raft have no authentication upstream: bound to 127.0.0.1, reachable by this machine's users only."""


def server_environment(pid: int) -> dict[str, str]:
    """The environment the server process runs with."""
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode().split("=", 1) for entry in entries if entry)


def running_pid(server: LocalWeaviate) -> int:
    pid = server.status().pid
    assert pid is not None
    return pid


def store_one_object(settings: Settings) -> tuple[str, str]:
    """A collection with one object in it: (object id, shard name)."""
    with connect(settings, start_local=False) as client:
        collection, uid = one_object_collection(client, settings.collection, "confidential")
        shard = collection.config.get_shards()[0].name
    return uid, shard


def http_statuses(answer: str) -> dict[str, int]:
    """{"GET /v1/schema": 401, ...} from a probe's answer "HTTP 401: GET /v1/schema, ...; 404: ..."."""
    assert answer.startswith("HTTP "), answer
    statuses = {}
    for group in answer.removeprefix("HTTP ").split("; "):
        status, calls = group.split(": ", 1)
        statuses |= dict.fromkeys(calls.split(", "), int(status))
    return statuses


def test_every_listening_port_answers_no_data_without_credentials(
    weaviate_server: LocalWeaviate, settings: Settings
) -> None:
    store_one_object(settings)
    pid = running_pid(weaviate_server)
    env = server_environment(pid)
    http_port, grpc_port = weaviate_server.http_port, weaviate_server.grpc_port
    data_port = int(env["CLUSTER_DATA_BIND_PORT"])
    loopback = {int(env[name]) for name in UNAUTHENTICATED_LOOPBACK}
    sockets = listening_sockets(pid)
    assert {s.port for s in sockets} == {http_port, grpc_port, data_port, *loopback}  # nothing else listens

    answers = {s.port: probe_without_credentials("127.0.0.1", s.port) for s in sockets}
    assert all(settings.collection not in answer for answer in answers.values())
    rest, cluster = http_statuses(answers[http_port]), http_statuses(answers[data_port])
    assert rest["GET /v1/schema"] == rest["GET /v1/nodes"] == 401
    assert set(cluster.values()) <= {401, 404} and cluster["DELETE /indices/.../objects/..."] == 401
    assert cluster["GET /nodes/status"] == cluster["GET /cluster/users/db"] == 401
    assert answers[grpc_port].startswith("gRPC Search: ") and "unauthorized" in answers[grpc_port]
    for s in sockets:  # what answers without credentials is out of other machines' reach
        assert s.loopback_only == (s.port not in (grpc_port, data_port)), (s, answers[s.port])


def test_cluster_api_refuses_reads_and_deletes_without_the_password(
    weaviate_server: LocalWeaviate, settings: Settings
) -> None:
    uid, shard = store_one_object(settings)
    env = server_environment(running_pid(weaviate_server))
    name = settings.collection
    obj = f"/indices/{name}/shards/{shard}/objects/{uid}"
    with httpx.Client(base_url=f"http://127.0.0.1:{env['CLUSTER_DATA_BIND_PORT']}", trust_env=False) as cluster:
        for method, path in [
            ("GET", f"/nodes/status/{name}?output=verbose"),
            ("GET", "/nodes/status?output=verbose"),
            ("GET", obj),
            ("DELETE", obj),
        ]:
            response = cluster.request(method, path)
            assert response.status_code == 401, (method, path)
            assert name not in response.text and uid not in response.text
        wrong = cluster.get(f"/nodes/status/{name}?output=verbose", auth=(CLUSTER_USER, "guess"))
        assert wrong.status_code == 401
        password = weaviate_server.cluster_password()
        assert cluster.get(f"/nodes/status/{name}?output=verbose", auth=(CLUSTER_USER, password)).status_code == 200
    assert (weaviate_server.cluster_password_file.stat().st_mode & 0o077) == 0
    assert env["CLUSTER_BASIC_AUTH_PASSWORD"] == password
    with connect(settings, start_local=False) as client:  # the refused DELETE deleted nothing
        assert client.collections.use(name).query.fetch_object_by_id(uid) is not None


def test_server_inherits_no_secrets_from_the_environment(
    weaviate_binary: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentinel = f"sentinel-{uuid.uuid4().hex}"
    monkeypatch.setenv("MMRAG_TEST_SECRET", sentinel)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", sentinel)
    monkeypatch.setenv("MMRAG_WEAVIATE_API_KEY", sentinel)
    monkeypatch.setenv("HF_TOKEN", sentinel)
    server = LocalWeaviate(weaviate_binary, tmp_path, free_port(), free_port())
    server.start()
    try:
        env = server_environment(running_pid(server))
    finally:
        server.stop()
    assert sentinel not in "\0".join(f"{k}={v}" for k, v in env.items())
    assert not [name for name in env if name.startswith(("MMRAG_", "AWS_", "HF_"))]
    assert env["AUTHENTICATION_APIKEY_ALLOWED_KEYS"] == server.api_key()  # its own settings do arrive
