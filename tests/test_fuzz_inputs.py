"""Property tests (Hypothesis) over the inputs users control: upload names, dataset files, MMRAG_* variables.

Each property is what a user relies on whatever they send: a saved upload stays a plain file inside the upload
folder; `mmrag finetune validate` reports every defect on its line and never crashes; bad settings are one
ConfigError. Every crash these found has a named regression test beside the code's other tests.
"""

from __future__ import annotations

import json
import os
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mmrag.core.errors import ConfigError
from mmrag.core.settings import Settings, load_settings
from mmrag.finetune.validate import validate_file
from mmrag.ui.uploads import BadUploadError, Upload, check_upload, safe_name, save_upload
from tests.badfiles import bomb_png
from tests.helpers import NO_SETTINGS_FILES

pytestmark = pytest.mark.slow  # fuzzed inputs

FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
"""Quick runs without an example database in the tree; failures print the example to turn into a named test."""

SEPARATORS = "/\\\0"

# --- upload names ----------------------------------------------------------------------------------------------

tricky_names = st.lists(
    st.one_of(
        st.text(max_size=40),
        st.sampled_from(["/", "\\", "..", ".", "\0", " ", "-", "_", "．", "／", "＼", "\u202e", "\ufdfa"]),
        st.sampled_from([".png", ".PDF", ".md", ".txt", ".ｐｎｇ", ".tar.gz", "."]),
        st.text(st.characters(min_codepoint=0x20000, max_codepoint=0x2A6DF), min_size=50, max_size=150),
    ),
    max_size=8,
).map("".join)


@FUZZ
@given(name=tricky_names)
def test_any_upload_name_is_saved_as_a_plain_file_inside_the_folder(name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "uploads"
        saved = save_upload(Upload(name, b"data"), folder)
        again = save_upload(Upload(name, b"other data"), folder)  # the -1 variant of the same name
        for path in saved, again:
            assert path.parent == folder and path.is_file()
            assert not path.name.startswith(".") and not any(c in path.name for c in SEPARATORS)
            assert path.name.isprintable()
            assert 0 < len(path.name.encode()) <= 255
        assert sorted(p.name for p in folder.iterdir()) == sorted({saved.name, again.name})  # no .part left
        assert saved.read_bytes() == b"data" and again.read_bytes() == b"other data"


plain_stems = st.text(
    st.characters(categories=["Lu", "Ll", "Lo", "Nd"]) | st.sampled_from("_-"), min_size=1, max_size=60
).filter(lambda s: s[0] not in "_-" and s[-1] not in "_-" and unicodedata.normalize("NFKC", s) == s)


@FUZZ
@given(stem=plain_stems, suffix=st.sampled_from([".png", ".jpg", ".pdf", ".md", ".txt", ".html"]), folder=st.text())
def test_a_plain_name_is_kept_recognisable(stem: str, suffix: str, folder: str) -> None:
    name = safe_name(f"{folder}/{stem}{suffix}")
    assert name.endswith(suffix)
    kept = name.removesuffix(suffix)
    assert kept and stem.startswith(kept)  # the whole stem, or its start when it is over 100 chars / 200 bytes
    assert kept == stem or len(stem) > 100 or len(stem.encode()) > 200 - len(suffix)


@FUZZ
@given(name=tricky_names, data=st.binary(max_size=64) | st.sampled_from([b"%PDF-1.7\n", b"\x89PNG\r\n\x1a\n"]))
def test_checking_an_upload_raises_nothing_but_bad_upload_error(name: str, data: bytes) -> None:
    try:
        check_upload(Upload(name, data), 32)
    except BadUploadError as e:
        assert str(e)


# --- dataset files for `mmrag finetune validate` ----------------------------------------------------------------


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz-images")
    Image.new("RGB", (8, 8), "white").save(root / "chart.png")
    (root / "bomb.png").write_bytes(bomb_png(60_000, 60_000))
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot a png")
    (root / "folder.png").mkdir()
    return root


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)
weird_strings = st.text(max_size=20) | st.sampled_from(["", "<image>", "<image>\n<image>", "\0", "\u2028", "\ud800"])
images_named = st.sampled_from(["chart.png", "bomb.png", "corrupt.png", "folder.png", "missing.png", "", "/", ".."])
turns = st.fixed_dictionaries(
    {},
    optional={
        "from": st.sampled_from(["human", "gpt", "system"]) | json_values,
        "value": st.sampled_from(["<image>\nWhat is the peak?", "42 [1]", " "]) | weird_strings | json_values,
    },
)
records = st.fixed_dictionaries(
    {},
    optional={
        "id": st.sampled_from(["a", "b"]) | st.integers() | json_values,
        "image": images_named | weird_strings | json_values,
        "conversations": st.lists(turns, max_size=4) | json_values,
        "extra": json_values,
    },
)
raw_lines = st.sampled_from(["", "{", "]", "[", "7" * 5000, "[" * 5000 + "]" * 5000, "NaN", "{}"]) | st.text(
    max_size=30
)


@st.composite
def dataset_files(draw: st.DrawFn) -> str:
    """A JSONL file, a JSON array or any text, with LLaVA-like records of every wrong shape and nesting."""
    items = draw(st.lists(records | json_values, max_size=6))
    kind = draw(st.sampled_from(["jsonl", "array", "text"]))
    ascii_only = draw(st.booleans())
    if kind == "array":
        return json.dumps(items, indent=draw(st.sampled_from([None, 1])), ensure_ascii=ascii_only)
    if kind == "jsonl":
        lines = [json.dumps(item, ensure_ascii=ascii_only) for item in items]
        for raw in draw(st.lists(raw_lines, max_size=3)):
            lines.insert(draw(st.integers(0, len(lines))), raw)
        return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\r\n"]))
    return draw(st.text(max_size=200) | raw_lines)


@FUZZ
@given(text=dataset_files())
def test_validate_never_raises_and_names_a_line_for_every_problem(text: str, images: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.jsonl"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        report = validate_file(path, image_root=images)
    lines = max(len(text.splitlines()), text.count("\n") + 1)
    for issue in report.issues:
        assert 1 <= issue.line <= lines, issue
        printed = issue.format(path)
        assert printed.isprintable() and printed.encode("utf-8")
    assert report.ok == (not report.issues)


# --- MMRAG_* settings -------------------------------------------------------------------------------------------

ENV_VARS = sorted(f"MMRAG_{name.upper()}" for name in Settings.model_fields)
env_values = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\0"), max_size=30),
    st.sampled_from(["", " ", "nan", "inf", "-inf", "1e999", "9" * 5000, "-1", "0", "true", "{}", "[]", "null"]),
    st.integers().map(str),
    st.floats().map(str),
).filter(lambda value: not value.startswith("~"))  # ~user: see test_a_home_dir_of_an_unknown_user_is_a_config_error


@FUZZ
@given(env=st.dictionaries(st.sampled_from(ENV_VARS), env_values, max_size=6))
def test_any_mmrag_variables_give_settings_or_one_config_error(env: dict[str, str]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("MMRAG_") and k not in NO_SETTINGS_FILES]:
            patch.delenv(key)
        for key, value in env.items():
            patch.setenv(key, value)
        try:
            result: Any = load_settings()
        except ConfigError as e:
            result = e
    assert isinstance(result, Settings) or str(result).startswith("invalid settings: MMRAG_")


@pytest.mark.parametrize("var", ["MMRAG_DATA_DIR", "MMRAG_CACHE_DIR"])
def test_a_home_dir_of_an_unknown_user_is_a_config_error(var: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(var, "~no-such-user-here/mmrag")
    with pytest.raises(ConfigError, match=var):
        load_settings()
