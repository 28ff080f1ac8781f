from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from mmrag.core.client import connect
from mmrag.core.errors import ConfigError, WeaviateUnavailableError
from mmrag.core.server import free_port
from mmrag.core.settings import Settings
from tests.helpers import cli_env, run_cli


def test_unreachable_url_is_one_clear_error(settings: Settings) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    bad = settings.model_copy(update={"weaviate_url": url})
    with pytest.raises(WeaviateUnavailableError, match=f"cannot reach Weaviate at {url}.*MMRAG_WEAVIATE_URL"):
        connect(bad)


def test_a_reader_never_starts_the_local_server(tmp_path: Path) -> None:
    stopped = Settings(data_dir=tmp_path, weaviate_http_port=free_port(), weaviate_grpc_port=free_port())
    port = stopped.weaviate_http_port
    with pytest.raises(WeaviateUnavailableError, match=rf"^the local Weaviate \(127.0.0.1:{port}\) is not running"):
        connect(stopped)
    assert list(tmp_path.iterdir()) == []  # no pid file, no API key, no database


def test_malformed_url_is_a_config_error(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="MMRAG_WEAVIATE_URL"):
        connect(settings.model_copy(update={"weaviate_url": "weaviate:8080"}))


def test_external_url_with_api_key_connects(settings: Settings, weaviate_server) -> None:  # type: ignore[no-untyped-def]
    external = settings.model_copy(
        update={
            "weaviate_url": f"http://127.0.0.1:{weaviate_server.http_port}",
            "weaviate_grpc_url": f"http://127.0.0.1:{weaviate_server.grpc_port}",
            "weaviate_api_key": SecretStr(weaviate_server.api_key()),
        }
    )
    with connect(external) as client:
        assert client.is_ready()


@pytest.mark.slow
def test_demo_writes_and_reads_back(settings: Settings) -> None:
    result = run_cli(cli_env(settings), "demo", timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Indexed 5 files" in result.stdout and "objects" in result.stdout


@pytest.mark.slow
def test_demo_rebuilds_its_own_collection_made_by_an_older_mmrag(settings: Settings) -> None:
    from mmrag.commands.demo import DEMO_COLLECTION
    from mmrag.indexer.store import CollectionInfo, Store

    with connect(settings) as client:
        Store(client, DEMO_COLLECTION)._create(CollectionInfo("old-clip", 4, "old-text", 4, schema_version=1))
    result = run_cli(cli_env(settings, MMRAG_COLLECTION=DEMO_COLLECTION), "demo", timeout=600)
    assert result.returncode == 0, result.stderr
    assert "built by an older version of mmrag" in result.stdout and "Indexed 5 files" in result.stdout
