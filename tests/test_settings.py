import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from mmrag.commands.settings import BEGIN, END, with_settings_table
from mmrag.core.errors import ConfigError
from mmrag.core.setting_sources import CONFIG_VAR, ENV_FILE_VAR, Origin
from mmrag.core.settings import Settings, load_settings, setting_origins, settings_table
from tests.helpers import clear_mmrag_env, run_cli


def test_defaults_name_the_real_models(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("MMRAG_PROFILE", "MMRAG_CLIP_MODEL", "MMRAG_VLM_MODEL", "MMRAG_WEAVIATE_URL"):
        monkeypatch.delenv(key, raising=False)
    s = load_settings()
    assert s.profile == "default"
    assert (s.clip_model, s.clip_pretrained) == ("ViT-B-32", "laion2b_s34b_b79k")
    assert s.vlm_model == "llava-hf/llava-onevision-qwen2-0.5b-ov-hf"
    assert s.weaviate_url is None


def test_environment_overrides_and_paths_expand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMRAG_PROFILE", "tiny")
    monkeypatch.setenv("MMRAG_DATA_DIR", "~/somewhere")
    monkeypatch.setenv("MMRAG_WEAVIATE_HTTP_PORT", "9123")
    monkeypatch.setenv("MMRAG_WEAVIATE_API_KEY", "s3cret")
    s = load_settings()
    assert s.profile == "tiny"
    assert s.data_dir == Path.home() / "somewhere"
    assert s.weaviate_http_port == 9123
    assert "s3cret" not in repr(s)  # secrets never printed
    assert s.weaviate_api_key is not None and s.weaviate_api_key.get_secret_value() == "s3cret"


@pytest.mark.parametrize(
    ("var", "value"),
    [("MMRAG_COLLECTION", "lowercase"), ("MMRAG_WEAVIATE_HTTP_PORT", "70000"), ("MMRAG_PROFILE", "huge")],
)
def test_invalid_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=var):
        load_settings()


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(ValueError):
        s.collection = "Other"  # type: ignore[misc]


README = Path(__file__).parents[1] / "README.md"


def test_readme_settings_table_is_generated_from_settings() -> None:
    text = README.read_text()
    assert BEGIN in text and END in text, f"README.md lost its settings markers: {BEGIN} ... {END}"
    assert with_settings_table(text, settings_table()) == text, (
        "README.md's settings table differs from mmrag/core/settings.py: run `mmrag settings --readme README.md`"
    )


def test_every_setting_is_documented() -> None:
    undocumented = [name for name, field in Settings.model_fields.items() if not field.description]
    assert not undocumented
    table = settings_table()
    assert "| `MMRAG_LOG_LEVEL` | `WARNING` |" in table and "| `MMRAG_WEAVIATE_URL` | unset |" in table
    assert "| `MMRAG_PDF_FIGURES` | `true` |" in table


def test_settings_table_replaces_only_the_marked_lines() -> None:
    text = f"# Title\n\nintro\n{BEGIN}\n| old |\n{END}\nafter\n"
    assert with_settings_table(text, "| new |\n") == f"# Title\n\nintro\n{BEGIN}\n| new |\n{END}\nafter\n"
    with pytest.raises(ConfigError, match="settings:begin"):
        with_settings_table("no markers\n", "| new |\n")


def test_bedrock_default_is_the_enrichers() -> None:
    from mmrag.finetune.bedrock import DEFAULT_MODEL_ID

    assert Settings.model_fields["bedrock_model"].default == DEFAULT_MODEL_ID


MMRAG_READ = re.compile(r"(os\.environ|getenv\(|envvar=)[^\n]*MMRAG_|MMRAG_[^\n]*(os\.environ|getenv\()")


def test_mmrag_variables_are_read_by_settings_only() -> None:
    """Every MMRAG_* variable is a Settings field, so it is typed, checked and in the README's table."""
    root = Path(__file__).parents[1]
    offenders = [
        f"{path.relative_to(root)}:{n}: {line.strip()}"
        for package in ("mmrag", "rag_app", "indexer", "finetune", "ui")
        for path in sorted((root / package).rglob("*.py"))
        if path != root / "mmrag/core/settings.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if MMRAG_READ.search(line)
    ]
    assert not offenders, "read these through mmrag.core.settings.Settings:\n" + "\n".join(offenders)


def test_log_level_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMRAG_LOG_LEVEL", "DEBUG")
    assert load_settings().log_level == "DEBUG"
    monkeypatch.setenv("MMRAG_LOG_LEVEL", "LOUD")
    with pytest.raises(ConfigError, match="MMRAG_LOG_LEVEL"):
        load_settings()


# Sources: flags > environment > .env > mmrag.toml > defaults.


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current folder, no MMRAG_* variable, and the files looked for where a user's are: in the cwd."""
    clear_mmrag_env(monkeypatch)
    monkeypatch.delenv(ENV_FILE_VAR)
    monkeypatch.delenv(CONFIG_VAR)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_dotenv_file_is_read(here: Path) -> None:
    assert load_settings().k == 4
    (here / ".env").write_text("# comment\nOTHER_TOOL=1\nMMRAG_K=2\nexport MMRAG_COLLECTION='Docs'\n")
    s = load_settings()
    assert (s.k, s.collection) == (2, "Docs")
    assert setting_origins()["k"] == Origin(".env", here / ".env")


def test_toml_file_is_read_by_field_name(here: Path) -> None:
    (here / "mmrag.toml").write_text('k = 3\ncollection = "Docs"\npdf_figures = false\nmin_image_score = 0.5\n')
    s = load_settings()
    assert (s.k, s.collection, s.pdf_figures, s.min_image_score) == (3, "Docs", False, 0.5)
    assert setting_origins()["k"] == Origin("mmrag.toml", here / "mmrag.toml")
    assert setting_origins()["mode"] == Origin("default")


@pytest.mark.parametrize(
    ("sources", "k", "origin"),
    [
        ({"env", ".env", "toml"}, 10, "env"),
        ({"env", ".env"}, 10, "env"),
        ({"env", "toml"}, 10, "env"),
        ({".env", "toml"}, 20, ".env"),
        ({"toml"}, 30, "mmrag.toml"),
        (set(), 4, "default"),
    ],
)
def test_precedence_env_dotenv_toml_default(
    here: Path, monkeypatch: pytest.MonkeyPatch, sources: set[str], k: int, origin: str
) -> None:
    if "env" in sources:
        monkeypatch.setenv("MMRAG_K", "10")
    if ".env" in sources:
        (here / ".env").write_text("MMRAG_K=20\n")
    if "toml" in sources:
        (here / "mmrag.toml").write_text("k = 30\n")
    assert load_settings().k == k
    assert setting_origins()["k"].kind == origin


def test_flags_beat_every_other_source(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMRAG_K", "10")
    (here / ".env").write_text("MMRAG_K=20\nMMRAG_MODE=text\n")
    (here / "mmrag.toml").write_text('k = 30\nmode = "image"\ncollection = "Docs"\n')
    s = load_settings(k=7)
    assert (s.k, s.mode, s.collection) == (7, "text", "Docs")
    origins = setting_origins(k=7)
    assert [origins[name].kind for name in ("k", "mode", "collection", "device")] == [
        "flag",
        ".env",
        "mmrag.toml",
        "default",
    ]


def test_named_files_and_no_files(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (here / ".env").write_text("MMRAG_K=20\n")
    (here / "mmrag.toml").write_text('k = 30\ncollection = "Here"\n')
    elsewhere = here / "conf"
    elsewhere.mkdir()
    (elsewhere / "prod.env").write_text("MMRAG_MODE=text\n")
    (elsewhere / "prod.toml").write_text('collection = "Prod"\n')
    monkeypatch.setenv(ENV_FILE_VAR, str(elsewhere / "prod.env"))
    monkeypatch.setenv(CONFIG_VAR, str(elsewhere / "prod.toml"))
    s = load_settings()
    assert (s.k, s.mode, s.collection) == (4, "text", "Prod")  # the files in the cwd are not read
    assert setting_origins()["collection"] == Origin("mmrag.toml", elsewhere / "prod.toml")
    monkeypatch.setenv(ENV_FILE_VAR, "")
    monkeypatch.setenv(CONFIG_VAR, "")
    s = load_settings()
    assert (s.k, s.mode, s.collection) == (4, "hybrid", "Mmrag")
    monkeypatch.setenv(CONFIG_VAR, str(elsewhere / "missing.toml"))
    with pytest.raises(ConfigError, match=f"^{CONFIG_VAR}=.*missing.toml: no such file"):
        load_settings()


@pytest.mark.parametrize(("file", "text"), [(".env", "MMRAG_K=2\n"), ("mmrag.toml", "k = 2\n")])
def test_a_byte_order_mark_is_not_part_of_the_first_name(here: Path, file: str, text: str) -> None:
    (here / file).write_text(text, encoding="utf-8-sig")  # as Windows editors save
    assert load_settings().k == 2


def test_a_dotenv_folder_is_not_a_settings_file(here: Path) -> None:
    (here / ".env" / "bin").mkdir(parents=True)  # a virtual environment named .env, as many projects have
    assert load_settings().k == 4


def test_unknown_variables_stay_ignored_in_the_environment(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMRAG_NO_SUCH_SETTING", "1")
    assert load_settings().k == 4


@pytest.mark.parametrize(
    ("file", "text", "message"),
    [
        ("mmrag.toml", "k = 2\nmode = = 3\n", r"^mmrag\.toml \(.*mmrag\.toml\): invalid TOML: .*at line 2"),
        ("mmrag.toml", "colection = 'Docs'\n", r"^mmrag\.toml \(.*\): unknown setting 'colection' .*'collection'"),
        ("mmrag.toml", "MMRAG_K = 2\n", r"unknown setting 'MMRAG_K' \(write `k = \.\.\.`"),
        ("mmrag.toml", "[mmrag]\nk = 2\n", r"unknown setting 'mmrag' \(settings go at the top level"),
        ("mmrag.toml", "k = 0\n", r"^invalid settings: k = 0 in mmrag\.toml \(.*\): Input should be greater"),
        (".env", "MMRAG_K=2\nMMRAG_KK=3\n", r"^\.env \(.*\.env\) line 2: unknown setting MMRAG_KK"),
        (".env", "MMRAG_K=2\nMMRAG_COLLECTION='Docs\n", r"^\.env \(.*\) line 2: not a NAME=value line"),
        (".env", "MMRAG_CONFIG=x.toml\n", r"line 1: MMRAG_CONFIG is read from the environment only"),
        (".env", "MMRAG_PROFILE=huge\n", r"^invalid settings: MMRAG_PROFILE=huge in \.env \(.*\.env\): Input"),
    ],
)
def test_bad_files_name_the_file_and_the_place(here: Path, file: str, text: str, message: str) -> None:
    (here / file).write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings()
    assert "\n" not in str(caught.value)


def test_a_bad_value_names_its_origin(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (here / "mmrag.toml").write_text('collection = "lower"\n')
    monkeypatch.setenv("MMRAG_K", "0")
    with pytest.raises(ConfigError) as caught:
        load_settings(mode="bogus")
    problems = str(caught.value).removeprefix("invalid settings: ").split("; ")
    assert sorted(p.split(":")[0] for p in problems) == sorted(
        [f'collection = "lower" in mmrag.toml ({here / "mmrag.toml"})', "MMRAG_K=0 (environment)", "mode=bogus (flag)"]
    )


def test_a_bad_secret_is_never_printed(here: Path) -> None:
    (here / "mmrag.toml").write_text("weaviate_api_key = 12345678\n")  # a number where a string belongs
    with pytest.raises(ConfigError, match=r"weaviate_api_key = \*{10} in mmrag\.toml") as caught:
        load_settings()
    assert "12345678" not in str(caught.value)


# `mmrag config`: the real command, in a folder of its own.


def _user_env(**extra: str) -> dict[str, str]:
    """A user's environment: no MMRAG_* variable, so the files are looked for in the current folder."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MMRAG_")} | {"COLUMNS": "200"} | extra


def _config_json(cwd: Path, **env: str) -> dict[str, dict[str, object]]:
    result = run_cli(_user_env(**env), "config", "--json", cwd=cwd, timeout=60)
    assert result.returncode == 0, result.stderr
    document: dict[str, dict[str, object]] = json.loads(result.stdout)
    return document


def test_mmrag_config_reports_values_and_origins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MMRAG_K=2\nMMRAG_WEAVIATE_API_KEY=s3cret-key\n")
    (tmp_path / "mmrag.toml").write_text('k = 3\ncollection = "Docs"\napi_key = "t0ken-secret"\n')
    document = _config_json(tmp_path, MMRAG_MODE="text")
    settings = document["settings"]
    assert settings["k"] == {"value": 2, "origin": f".env ({tmp_path / '.env'})"}
    assert settings["collection"] == {"value": "Docs", "origin": f"mmrag.toml ({tmp_path / 'mmrag.toml'})"}
    assert settings["mode"] == {"value": "text", "origin": "env"}
    assert settings["device"] == {"value": "auto", "origin": "default"}
    assert settings["weaviate_api_key"] == {"value": "**********", "origin": f".env ({tmp_path / '.env'})"}
    assert settings["api_key"] == {"value": "**********", "origin": f"mmrag.toml ({tmp_path / 'mmrag.toml'})"}
    assert set(settings) == set(Settings.model_fields)
    assert document["files"] == {
        "env_file": {"path": str(tmp_path / ".env"), "found": True},
        "config": {"path": str(tmp_path / "mmrag.toml"), "found": True},
    }

    table = run_cli(_user_env(), "config", cwd=tmp_path, timeout=60)
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if " k " in line)
    assert re.search(r"\bk\b.*\b2\b.*\.env \(", row), row
    names = run_cli(_user_env(), "settings", cwd=tmp_path, timeout=60)
    assert "MMRAG_K=2" in names.stdout.splitlines() and "MMRAG_COLLECTION=Docs" in names.stdout.splitlines()
    for shown in (table.stdout, names.stdout):
        assert "**********" in shown and "s3cret-key" not in shown and "t0ken-secret" not in shown


def test_mmrag_config_with_named_files_and_none(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MMRAG_K=2\n")
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "team.toml").write_text("k = 9\n")
    named = _config_json(tmp_path, MMRAG_ENV_FILE="", MMRAG_CONFIG=str(conf / "team.toml"))
    assert named["settings"]["k"] == {"value": 9, "origin": f"mmrag.toml ({conf / 'team.toml'})"}
    assert named["files"]["env_file"] == {"path": None, "found": False}
    nothing = _config_json(tmp_path, MMRAG_ENV_FILE="", MMRAG_CONFIG="")
    assert nothing["settings"]["k"] == {"value": 4, "origin": "default"}


@pytest.mark.parametrize(
    ("file", "text", "message"),
    [
        ("mmrag.toml", "k = 2\nmode = [\n", "mmrag.toml ({}): invalid TOML: Invalid value (at the end, line 2)"),
        ("mmrag.toml", "kk = 2\n", "mmrag.toml ({}): unknown setting 'kk' (did you mean 'k'?)"),
        (".env", "MMRAG_K=many\n", "invalid settings: MMRAG_K=many in .env ({}): Input should be a valid integer"),
    ],
)
def test_mmrag_config_bad_files_end_in_one_line(tmp_path: Path, file: str, text: str, message: str) -> None:
    (tmp_path / file).write_text(text)
    result = run_cli(_user_env(), "config", cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: " + message.format(tmp_path / file)), result.stderr


def test_suite_reads_no_settings_file_from_the_repository() -> None:
    """A developer's .env in the checkout must not reach the tests (tests/helpers.py turns both files off)."""
    assert os.environ.get(ENV_FILE_VAR) == "" and os.environ.get(CONFIG_VAR) == ""
    root = Path(__file__).parents[1]
    assert (
        ".env"
        in subprocess.run(
            ["git", "check-ignore", "--no-index", ".env"], cwd=root, capture_output=True, text=True
        ).stdout
    )
