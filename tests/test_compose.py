"""docker-compose.yml cannot run here (no Docker engine): check what it declares."""

import re
import subprocess
from pathlib import Path

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
