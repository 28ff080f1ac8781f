import re
from pathlib import Path

import pytest

from mmrag.commands.settings import BEGIN, END, with_settings_table
from mmrag.core.errors import ConfigError
from mmrag.core.settings import Settings, load_settings, settings_table


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
