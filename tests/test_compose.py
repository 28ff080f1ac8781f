"""docker-compose.yml cannot run here (no Docker engine): check what it declares."""

import re
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from mmrag.core.server import WEAVIATE_VERSION
from tests.helpers import clear_mmrag_env

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


# -- the vllm profile: an OpenAI-compatible answer server on the GPU (MMRAG_GENERATOR_BACKEND=openai)

VLLM = COMPOSE["services"]["vllm"]
COMPOSE_VARIABLE = re.compile(r"(?<!\$)\$\{(?P<name>[A-Z_]+)(?P<modifier>:?[-?])?")
"""A variable compose substitutes when it reads the file (`$${NAME}` is a literal `${NAME}` for the container)."""


def _interpolated(value: str, env: dict[str, str]) -> str:
    """`value` as compose substitutes it: `${NAME}`, `${NAME:-default}` (nested), `${NAME:?message}`, `$$`.
    A stand-in for `docker compose config`, which needs the compose plugin (not installed here)."""
    out, i = [], 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
        elif value.startswith("${", i):
            depth, j = 1, i + 2
            while depth:
                depth += {"{": 1, "}": -1}.get(value[j], 0)
                j += 1
            body = value[i + 2 : j - 1]
            name, sep, rest = re.match(r"([A-Z_]+)(:-|:\?)?(.*)", body, re.S).groups()  # type: ignore[union-attr]
            current = env.get(name, "")
            if sep == ":?" and not current:
                raise ValueError(f"required variable {name} is missing a value: {rest}")
            out.append(current if current or sep != ":-" else _interpolated(rest, env))
            i = j
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def _app_environment(env: dict[str, str]) -> dict[str, str]:
    return {k: _interpolated(str(v), env) for k, v in COMPOSE["services"]["app"]["environment"].items()}


def test_vllm_service_is_opt_in_pinned_on_loopback_and_on_the_gpu() -> None:
    assert VLLM["profiles"] == ["vllm"]  # a plain `docker compose up` leaves it out
    image, _, tag = VLLM["image"].partition(":")
    assert image == "vllm/vllm-openai" and re.fullmatch(r"v\d+\.\d+\.\d+", tag), VLLM["image"]
    assert VLLM["ports"] and all(port.startswith("127.0.0.1:") for port in VLLM["ports"])
    devices = VLLM["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert "/health" in " ".join(VLLM["healthcheck"]["test"])
    app = COMPOSE["services"]["app"]
    assert app["depends_on"]["vllm"] == {"condition": "service_healthy", "required": False}


def test_vllm_serves_llava_1_5_with_the_read_only_adapters_and_their_rank() -> None:
    from mmrag.finetune.train import TrainConfig

    command = " ".join(VLLM["command"]).replace("=", " ").split()
    assert command[0] == "llava-hf/llava-1.5-7b-hf"
    assert "--enable-lora" in command
    name, path = command[command.index("--lora-modules") + 1 : command.index("--lora-modules") + 3]
    assert (name, path) == ("charts", "/adapters/charts")
    # an adapter trained with `mmrag finetune train`'s default rank loads
    assert int(command[command.index("--max-lora-rank") + 1]) >= TrainConfig().lora_r
    assert "./adapters:/adapters:ro" in VLLM["volumes"]
    assert any(
        v.split(":")[0] in COMPOSE["volumes"] and v.endswith(":/root/.cache/huggingface") for v in VLLM["volumes"]
    )


def test_vllm_needs_its_key_only_when_its_profile_is_on() -> None:
    """Compose substitutes every service's variables, profiles on or off: the key is required inside the container
    (its entrypoint), so `docker compose up` without the profile needs no VLLM_API_KEY, and no key has a default."""
    for match in COMPOSE_VARIABLE.finditer(COMPOSE_TEXT):
        if match["modifier"] in (":?", "?"):
            assert match["name"] in {"WEAVIATE_API_KEY", "WEAVIATE_CLUSTER_PASSWORD"}, match[0]
    for value in re.findall(r"(?<!\$)\$\{VLLM_API_KEY([^}]*)\}", COMPOSE_TEXT):
        assert value == ":-", value  # passed on as is: empty when unset, never a made-up key
    _interpolated(COMPOSE_TEXT, {"WEAVIATE_API_KEY": "k", "WEAVIATE_CLUSTER_PASSWORD": "p"})  # no required variable


def test_vllm_refuses_to_start_without_a_key_and_serves_with_it(tmp_path: Path) -> None:
    """The container's entrypoint, run with /bin/sh and a stand-in `vllm` that prints its arguments."""
    fake = tmp_path / "vllm"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    argv = [_interpolated(a, {}) for a in VLLM["entrypoint"]] + [_interpolated(a, {}) for a in VLLM["command"]]
    assert argv[0] == "/bin/sh"

    def start(key: str | None) -> subprocess.CompletedProcess[str]:
        env = {"PATH": f"{tmp_path}:/usr/bin:/bin"} | ({"VLLM_API_KEY": key} if key is not None else {})
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=False)

    for missing in (None, ""):
        refused = start(missing)
        assert refused.returncode != 0 and "set VLLM_API_KEY" in refused.stderr, refused
        assert refused.stdout == ""  # vllm never ran
    served = start("s3cret")
    assert served.returncode == 0, served.stderr
    args = served.stdout.splitlines()
    assert args[0] == "serve" and args[1:-2] == VLLM["command"]
    assert args[-2:] == ["--api-key", "s3cret"]


def test_app_keeps_its_own_model_unless_asked_for_the_vllm_service(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmrag.core.settings import load_settings
    from mmrag.rag_app.service import make_generator

    secrets = {"WEAVIATE_API_KEY": "k", "WEAVIATE_CLUSTER_PASSWORD": "p"}
    clear_mmrag_env(monkeypatch)
    for name, value in _app_environment(secrets).items():
        monkeypatch.setenv(name, value)
    assert load_settings().generator_backend == "local"

    clear_mmrag_env(monkeypatch)
    for name, value in _app_environment(secrets | {"MMRAG_GENERATOR_BACKEND": "openai", "VLLM_API_KEY": "s"}).items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    key = settings.generator_api_key
    assert key is not None and key.get_secret_value() == "s"
    served = make_generator(settings)  # cheap: nothing connects yet
    port = VLLM["ports"][0].rsplit(":", 1)[1]
    assert served.url == f"http://vllm:{port}/v1"  # type: ignore[attr-defined]
    assert served.model_id == VLLM["command"][0]
    assert served.max_images == 1  # LLaVA-1.5: one image per prompt


# -- docker-compose.cluster.yml: `mmrag weaviate start --nodes 3` in containers, with the app on top

CLUSTER_TEXT = (Path(__file__).parents[1] / "docker-compose.cluster.yml").read_text()
CLUSTER = yaml.safe_load(CLUSTER_TEXT)  # YAML merge keys resolved: each node as compose sees it
NODES = {name: s for name, s in CLUSTER["services"].items() if "CLUSTER_HOSTNAME" in s.get("environment", {})}
"""The Weaviate services, node0 first."""
SECRETS = {"WEAVIATE_API_KEY": "k", "WEAVIATE_CLUSTER_PASSWORD": "p"}


def _join(value: str) -> list[tuple[str, int]]:
    """`host:port,host:port` as Weaviate splits CLUSTER_JOIN and RAFT_JOIN."""
    return [(host, int(port)) for host, _, port in (a.rpartition(":") for a in value.split(","))]


def test_cluster_has_the_local_clusters_three_nodes(tmp_path: Path) -> None:
    from mmrag.core.cluster import LocalCluster

    local = LocalCluster(tmp_path / "weaviate", tmp_path)
    local._create(3)  # the layout `mmrag weaviate start --nodes 3` creates (nothing starts)
    assert list(NODES) == [node.membership.name for node in local.nodes() if node.membership]
    for name, node in NODES.items():
        assert node["environment"]["CLUSTER_HOSTNAME"] == name  # its service name: Docker's DNS finds it


def test_cluster_nodes_are_pinned_persistent_and_protected_as_the_single_node() -> None:
    single = COMPOSE["services"]["weaviate"]
    volumes = [node["volumes"] for node in NODES.values()]
    assert len({v[0].split(":")[0] for v in volumes}) == len(NODES)  # a volume of its own per node
    for name, node in NODES.items():
        env = node["environment"]
        assert node["image"] == single["image"] and node["image"].endswith(f":{WEAVIATE_VERSION}"), name
        volume, mount = node["volumes"][0].split(":")
        assert volume in CLUSTER["volumes"] and mount == env["PERSISTENCE_DATA_PATH"]
        assert node["restart"] == single["restart"] and node["healthcheck"]["test"] == single["healthcheck"]["test"]
        # docker-compose.yml's auth and hardening on every node: only the topology differs
        for key, value in single["environment"].items():
            if key in ("CLUSTER_HOSTNAME", "RAFT_BOOTSTRAP_EXPECT"):
                continue
            secret = REQUIRED.fullmatch(value)
            if secret:
                required = REQUIRED.fullmatch(env[key])
                assert required is not None and required["name"] == secret["name"], (name, key)
            else:
                assert env[key] == value, (name, key)


def test_cluster_raft_and_gossip_name_every_node() -> None:
    raft = {f"{name}:{node['environment']['RAFT_PORT']}" for name, node in NODES.items()}
    for name, node in NODES.items():
        env = node["environment"]
        assert set(env["RAFT_JOIN"].split(",")) == raft  # every voter, on the port it listens on
        assert int(env["RAFT_BOOTSTRAP_EXPECT"]) == len(NODES) == 3
        assert int(env["CLUSTER_DATA_BIND_PORT"]) == int(env["CLUSTER_GOSSIP_BIND_PORT"]) + 1  # Weaviate's convention
        peers = {(p, int(n["environment"]["CLUSTER_GOSSIP_BIND_PORT"])) for p, n in NODES.items() if p != name}
        assert set(_join(env["CLUSTER_JOIN"])) == peers, name  # rejoins whichever peer is up after a restart


def test_cluster_needs_both_secrets_and_has_no_default_for_them() -> None:
    secrets = [("WEAVIATE_API_KEY", CLUSTER["services"]["app"]["environment"]["MMRAG_WEAVIATE_API_KEY"])]
    for node in NODES.values():
        secrets.append(("WEAVIATE_API_KEY", node["environment"]["AUTHENTICATION_APIKEY_ALLOWED_KEYS"]))
        secrets.append(("WEAVIATE_CLUSTER_PASSWORD", node["environment"]["CLUSTER_BASIC_AUTH_PASSWORD"]))
    for name, value in secrets:
        required = REQUIRED.fullmatch(value)
        assert required is not None and required["name"] == name, value
    assert not re.search(r"\$\{(WEAVIATE_API_KEY|WEAVIATE_CLUSTER_PASSWORD):?-", CLUSTER_TEXT)
    for missing in SECRETS:
        with pytest.raises(ValueError, match=f"required variable {missing}"):
            _interpolated(CLUSTER_TEXT, {k: v for k, v in SECRETS.items() if k != missing})
    _interpolated(CLUSTER_TEXT, SECRETS)  # nothing else is required (VLLM_API_KEY only inside its container)


def test_cluster_publishes_nothing_beyond_loopback() -> None:
    published = [p for s in CLUSTER["services"].values() for p in s.get("ports", [])]
    assert published and all(p.startswith("127.0.0.1:") for p in published), published
    assert len({p.split(":")[1] for p in published}) == len(published)  # no host port taken twice
    assert not any("network_mode" in s for s in CLUSTER["services"].values())
    for node in NODES.values():  # gossip, data and raft stay on the compose network
        inside = {int(p.rsplit(":", 1)[1]) for p in node["ports"]}
        env = node["environment"]
        internal = ("CLUSTER_GOSSIP_BIND_PORT", "CLUSTER_DATA_BIND_PORT", "RAFT_PORT", "RAFT_INTERNAL_RPC_PORT")
        assert inside == {8080, 50051} and not inside & {int(env[k]) for k in internal}


def test_cluster_host_urls_in_the_header_reach_each_node_in_order() -> None:
    """The MMRAG_WEAVIATE_URL / _GRPC_URL lines the file's header gives for a mmrag on the host."""
    header = dict(re.findall(r"^#\s+(MMRAG_WEAVIATE_(?:GRPC_)?URL)=(\S+)$", CLUSTER_TEXT, re.M))
    for variable, inside in (("MMRAG_WEAVIATE_URL", 8080), ("MMRAG_WEAVIATE_GRPC_URL", 50051)):
        host_ports = [urlparse(u).port for u in header[variable].split(",")]
        published = [
            next(int(p.split(":")[1]) for p in node["ports"] if p.endswith(f":{inside}")) for node in NODES.values()
        ]
        assert host_ports == published, variable


def test_cluster_app_reaches_every_node_and_keeps_three_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmrag.core.client import _remote_urls
    from mmrag.core.settings import load_settings

    app = CLUSTER["services"]["app"]
    clear_mmrag_env(monkeypatch)
    for name, value in app["environment"].items():
        monkeypatch.setenv(name, _interpolated(str(value), SECRETS))
    settings = load_settings()
    # the client tries every node, in order, each with its own gRPC address
    assert _remote_urls(settings) == [(f"http://{n}:8080", f"http://{n}:50051") for n in NODES]
    assert all(node["command"][node["command"].index("--port") + 1] == "8080" for node in NODES.values())
    assert settings.replication_factor == len(NODES)
    assert (settings.write_consistency, settings.read_consistency, settings.async_replication) == (
        "QUORUM",
        "QUORUM",
        True,
    )
    assert all(app["depends_on"][n] == {"condition": "service_healthy"} for n in NODES)


def test_cluster_app_and_vllm_are_the_single_nodes_apart_from_weaviate() -> None:
    """A user switching files keeps every other setting and the vllm profile."""
    single, cluster = COMPOSE["services"], CLUSTER["services"]
    assert cluster["vllm"] == single["vllm"]
    cluster_only = {"MMRAG_REPLICATION_FACTOR", "MMRAG_WRITE_CONSISTENCY", "MMRAG_READ_CONSISTENCY"}
    cluster_only |= {"MMRAG_ASYNC_REPLICATION", "MMRAG_WEAVIATE_URL", "MMRAG_WEAVIATE_GRPC_URL"}
    env = {k: v for k, v in cluster["app"]["environment"].items() if k not in cluster_only}
    assert env == {k: v for k, v in single["app"]["environment"].items() if k not in cluster_only}
    for key in ("build", "image", "command", "ports", "volumes"):
        assert cluster["app"][key] == single["app"][key], key
    assert cluster["app"]["depends_on"]["vllm"] == single["app"]["depends_on"]["vllm"]
