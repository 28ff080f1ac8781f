from pathlib import Path

import pytest

from mmrag.core.errors import ConfigError
from mmrag.core.settings import load_settings


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
