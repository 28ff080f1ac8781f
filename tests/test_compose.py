"""docker-compose.yml cannot run here (no Docker engine): check what it declares."""

import re
from pathlib import Path

import yaml

from mmrag.core.server import WEAVIATE_VERSION

COMPOSE_TEXT = (Path(__file__).parents[1] / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
REQUIRED = re.compile(r"\$\{(?P<name>[A-Z_]+):\?[^}]+\}")
"""Compose's required-variable form: `${NAME:?message}` stops `docker compose up` while NAME is unset or empty."""


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


def test_secrets_have_no_default_and_must_be_set_by_the_user() -> None:
    weaviate = COMPOSE["services"]["weaviate"]["environment"]
    app = COMPOSE["services"]["app"]["environment"]
    secrets = {
        "WEAVIATE_API_KEY": [weaviate["AUTHENTICATION_APIKEY_ALLOWED_KEYS"], app["MMRAG_WEAVIATE_API_KEY"]],
        "WEAVIATE_CLUSTER_PASSWORD": [weaviate["CLUSTER_BASIC_AUTH_PASSWORD"]],
    }
    for name, values in secrets.items():
        for value in values:
            required = REQUIRED.fullmatch(value)
            assert required is not None and required["name"] == name, value
    # No fallback value anywhere for a secret: neither `${NAME:-default}` nor `${NAME-default}`.
    assert not re.search(r"\$\{(WEAVIATE_API_KEY|WEAVIATE_CLUSTER_PASSWORD):?-", COMPOSE_TEXT)
    assert "change-me" not in COMPOSE_TEXT


def test_weaviate_cluster_api_requires_basic_auth_and_debug_listeners_are_off() -> None:
    env = COMPOSE["services"]["weaviate"]["environment"]
    assert env["CLUSTER_BASIC_AUTH_USERNAME"]
    assert env["GO_PROFILING_DISABLE"] == "true"
    assert env.get("PROMETHEUS_MONITORING_ENABLED", "false") == "false"
