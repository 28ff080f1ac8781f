"""A local 3-node Weaviate cluster (`mmrag weaviate start --nodes 3`) with replication factor 3 and QUORUM: a node
killed with SIGKILL during indexing or during a stream of searches costs nothing, and once it is back every object
is on every replica, once."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mmrag.core.client import connect, local_cluster
from mmrag.core.errors import MmragError, WeaviateUnavailableError
from mmrag.core.server import LocalWeaviate, listening_sockets
from mmrag.core.settings import Settings
from mmrag.indexer.embedders import ClipEmbedder, TextEmbedder, embedders_for
from mmrag.indexer.pipeline import Indexer
from mmrag.indexer.store import Replication, Store
from mmrag.rag_app.search import Searcher, SearchOptions
from tests.corpus import write_many_charts
from tests.helpers import CACHE_DIR, cli_env, run_cli

pytestmark = pytest.mark.slow  # a cluster of three servers, nodes killed and restarted

N_CHARTS = 30
REPAIR_TIMEOUT_S = 90


@pytest.fixture(scope="module")
def cluster_settings(weaviate_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings on a 3-node local cluster started through the CLI, as a user starts it; stopped at the end."""
    settings = Settings(
        profile="tiny",
        data_dir=tmp_path_factory.mktemp("cluster"),
        cache_dir=CACHE_DIR,
        collection="Replicated",
        device="cpu",
        replication_factor=3,
        write_consistency="QUORUM",
        read_consistency="QUORUM",
    )
    env = cli_env(settings)
    started = run_cli(env, "weaviate", "start", "--nodes", "3")
    assert started.returncode == 0, started.stderr
    try:
        yield settings
    finally:
        stopped = run_cli(env, "weaviate", "stop")
        assert "cluster stopped" in stopped.stdout, stopped.stdout + stopped.stderr


@pytest.fixture(scope="module")
def embedders() -> tuple[ClipEmbedder, TextEmbedder]:
    return embedders_for(Settings(profile="tiny", cache_dir=CACHE_DIR, device="cpu"))


def nodes(settings: Settings) -> list[LocalWeaviate]:
    return local_cluster(settings).nodes()


def kill(node: LocalWeaviate) -> None:
    """SIGKILL, as a crash: no shutdown, nothing flushed."""
    pid = node.status().pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while node.status().running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not node.status().running


def ids_on_node(settings: Settings, node_name: str, ids: list[str]) -> set[str]:
    """The ids of `ids` that node `node_name` holds itself (REST `node_name`: that replica answers alone)."""
    node = nodes(settings)[0]
    headers = {"Authorization": f"Bearer {node.api_key()}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{node.http_port}", headers=headers, trust_env=False) as http:
        found = set()
        for uid in ids:
            response = http.get(f"/v1/objects/{settings.collection}/{uid}", params={"node_name": node_name})
            if response.status_code == 200:
                found.add(uid)
        return found


def assert_on_every_replica(settings: Settings, expected: int) -> None:
    """Every object, once, in a full read; then (waiting, bounded, for async repair) on each of the three nodes."""
    with connect(settings) as client:
        store = Store(client, settings.collection, Replication(read="ALL"))
        ids = [obj.id or "" for obj in store.objects()]
        inventory = store.inventory()
    assert len(ids) == len(set(ids)) == expected  # nothing duplicated, nothing lost
    assert all(len(state.counts) == 1 and state.complete(next(iter(state.counts))) for state in inventory.values())
    deadline = time.monotonic() + REPAIR_TIMEOUT_S
    missing: dict[str, int] = {}
    for node in nodes(settings):
        name = node.membership.name if node.membership else ""
        while (held := ids_on_node(settings, name, ids)) != set(ids) and time.monotonic() < deadline:
            time.sleep(1)
        missing[name] = len(set(ids) - held)
    assert missing == {"node0": 0, "node1": 0, "node2": 0}


@pytest.fixture(scope="module")
def indexed(cluster_settings: Settings, embedders: tuple[ClipEmbedder, TextEmbedder], tmp_path_factory) -> int:  # type: ignore[no-untyped-def]
    """Charts indexed while node2 is killed after the first file; the objects expected."""
    settings = cluster_settings
    root = write_many_charts(tmp_path_factory.mktemp("charts"), N_CHARTS)
    victim = nodes(settings)[2]

    def kill_after_first_file(done: int, total: int, items: int) -> None:
        if done == 1:
            kill(victim)

    with connect(settings) as client:
        indexer = Indexer(Store.from_settings(client, settings), *embedders, workers=0)
        try:
            report = indexer.run([root], progress=kill_after_first_file)
        except MmragError:  # failed loudly: a rerun completes what is missing
            report = indexer.run([root])
    assert not victim.status().running
    assert not report.failures
    victim.start()
    with connect(settings) as client:
        stats = Store(client, settings.collection).stats()
    assert stats.objects == N_CHARTS  # one object per chart (caption in its text)
    return stats.objects


def test_indexing_survives_a_killed_node_and_every_replica_catches_up(cluster_settings: Settings, indexed: int) -> None:
    assert_on_every_replica(cluster_settings, indexed)


def test_searches_keep_answering_while_a_node_is_killed(
    cluster_settings: Settings, indexed: int, embedders: tuple[ClipEmbedder, TextEmbedder]
) -> None:
    settings = cluster_settings
    results: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def search_stream(searcher: Searcher) -> None:
        while not stop.is_set():
            try:
                results.append(len(searcher.search("chart number 7", SearchOptions(k=3))))
            except BaseException as e:
                errors.append(e)
                return

    victim = nodes(settings)[1]
    with connect(settings) as client:
        searcher = Searcher(Store.from_settings(client, settings), *embedders)
        thread = threading.Thread(target=search_stream, args=(searcher,))
        thread.start()
        try:
            while len(results) < 5 and thread.is_alive():
                time.sleep(0.05)
            kill(victim)
            before = len(results)
            while len(results) < before + 20 and thread.is_alive():
                time.sleep(0.05)
        finally:
            stop.set()
            thread.join(timeout=60)
    victim.start()
    assert not errors, errors[0]
    assert len(results) >= 25 and set(results) == {3}
    assert_on_every_replica(settings, indexed)


FAILOVER_TIMEOUT_S = 180


def read_count_after_failover(settings: Settings) -> int:
    """The collection's count read through the next live node. Schema reads wait on the raft leader: when the killed
    node led, they time out until the others elect a new one, so the read is retried (bounded) until they have."""
    deadline = time.monotonic() + FAILOVER_TIMEOUT_S
    while True:
        try:
            with connect(settings) as client:
                return Store(client, settings.collection, Replication(read="QUORUM")).stats().objects
        except WeaviateUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def test_the_client_uses_the_next_live_node_and_status_shows_each(cluster_settings: Settings, indexed: int) -> None:
    settings = cluster_settings
    first = nodes(settings)[0]
    kill(first)
    try:
        status = run_cli(cli_env(settings), "weaviate", "status")
        assert status.returncode == 1  # a node is down
        assert "node0 is not running" in status.stdout  # the others: ready, or starting while raft elects a leader
        assert f"node1 ready at http://127.0.0.1:{nodes(settings)[1].http_port}" in status.stdout.replace(
            "starting", "ready"
        )
        assert read_count_after_failover(settings) == indexed  # node0 is down: node1 answers
    finally:
        first.start()
    assert run_cli(cli_env(settings), "weaviate", "status").returncode == 0


def test_nodes_listen_beyond_loopback_only_where_the_single_node_does(cluster_settings: Settings) -> None:
    for node in nodes(cluster_settings):
        pid, member = node.status().pid, node.membership
        assert pid is not None and member is not None
        sockets = listening_sockets(pid)
        assert {s.port for s in sockets} == {node.http_port, node.grpc_port, *member.ports}
        data_port = member.gossip_port + 1  # gRPC and the cluster API have no bind setting; both need credentials
        assert all(s.loopback_only == (s.port not in (node.grpc_port, data_port)) for s in sockets)


def test_a_factor_above_the_live_nodes_is_a_clear_error(cluster_settings: Settings) -> None:
    with connect(cluster_settings) as client:
        store = Store(client, "TooMany", Replication(factor=4))
        with pytest.raises(MmragError, match="MMRAG_REPLICATION_FACTOR=4 needs 4 nodes, but the cluster has 3 live"):
            store.ensure("clip", "text", lambda: (4, 4))
        assert not store.exists()
