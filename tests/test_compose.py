"""docker-compose.yml cannot run here (no Docker engine): check what it declares."""

from pathlib import Path

import yaml

from mmrag.server import WEAVIATE_VERSION

COMPOSE = yaml.safe_load((Path(__file__).parents[1] / "docker-compose.yml").read_text())


def test_weaviate_service_is_pinned_persistent_and_protected() -> None:
    weaviate = COMPOSE["services"]["weaviate"]
    assert weaviate["image"].endswith(f"/weaviate:{WEAVIATE_VERSION}")  # the same pin as `make setup`
    assert {"127.0.0.1:8080:8080", "127.0.0.1:50051:50051"} <= set(weaviate["ports"])
    volume, mount = weaviate["volumes"][0].split(":")
    assert volume in COMPOSE["volumes"] and mount == weaviate["environment"]["PERSISTENCE_DATA_PATH"]
    assert weaviate["environment"]["AUTHENTICATION_APIKEY_ENABLED"] == "true"
    assert weaviate["environment"]["AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED"] == "false"


def test_app_points_at_the_weaviate_service() -> None:
    app = COMPOSE["services"]["app"]
    env = app["environment"]
    assert env["MMRAG_WEAVIATE_URL"] == "http://weaviate:8080"
    assert env["MMRAG_WEAVIATE_GRPC_URL"] == "http://weaviate:50051"
    assert (
        env["MMRAG_WEAVIATE_API_KEY"]
        == COMPOSE["services"]["weaviate"]["environment"]["AUTHENTICATION_APIKEY_ALLOWED_KEYS"]
    )
    assert app["depends_on"]["weaviate"]["condition"] == "service_healthy"
    assert app["build"] == "." and (Path(__file__).parents[1] / "Dockerfile").is_file()
    assert "127.0.0.1:8501:8501" in app["ports"]
