"""The Streamlit page through streamlit.testing.v1.AppTest: a real Weaviate, the tiny profile, the sample corpus."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from mmrag.commands.sample_corpus import write_sample_corpus
from mmrag.commands.ui import APP
from mmrag.core import prompts
from mmrag.core.server import LocalWeaviate, free_port
from mmrag.core.settings import Settings
from mmrag.core.tiny import tiny_clip_dir
from mmrag.indexer.service import index_paths
from tests.helpers import cli_env, module_settings

pytestmark = pytest.mark.slow  # the Streamlit app over an indexed corpus, answering

QUESTION = "What was the revenue in the fourth quarter?"
SOURCE_LINE = re.compile(r"^\*\*\[(\d+)\]\*\* (.+)$")
KIND_LINE = re.compile(r"^(image|page|text|table) · score -?\d+\.\d{3}$")


@pytest.fixture(scope="module")
def corpus_settings(weaviate_server: LocalWeaviate, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The sample corpus indexed once for this module's tests (which only read it)."""
    settings = module_settings(weaviate_server, "U")
    index_paths(settings, write_sample_corpus(tmp_path_factory.mktemp("sample")), workers=0)
    return settings


def page(monkeypatch: pytest.MonkeyPatch, settings: Settings, **env: str) -> AppTest:
    """The page as a new browser session would get it, with the settings in its MMRAG_* environment."""
    for key in [k for k in os.environ if k.startswith("MMRAG_")]:
        monkeypatch.delenv(key)
    for key, value in cli_env(settings, MMRAG_MAX_NEW_TOKENS="8", **env).items():
        monkeypatch.setenv(key, value)
    app = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not app.exception, app.exception
    return app


def ask(app: AppTest, question: str) -> AppTest:
    app.chat_input[0].set_value(question).run()
    assert not app.exception, app.exception
    return app


def source_lines(app: AppTest) -> list[tuple[int, str]]:
    """(number, path and page) of each source shown, in page order."""
    found = [m for md in app.main.markdown if (m := SOURCE_LINE.match(md.value))]
    return [(int(m[1]), m[2].replace("\\", "")) for m in found]


def source_kinds(app: AppTest) -> list[str]:
    return [m[1] for c in app.main.caption if (m := KIND_LINE.match(c.value))]


def test_question_gets_an_answer_and_numbered_sources_with_thumbnails(
    monkeypatch: pytest.MonkeyPatch, corpus_settings: Settings
) -> None:
    app = ask(page(monkeypatch, corpus_settings), QUESTION)
    user, assistant = app.chat_message
    assert user.markdown[0].value == QUESTION
    answer = assistant.markdown[0].value
    assert answer.strip() and answer != prompts.NOT_FOUND
    assert "**Sources**" in [md.value for md in assistant.markdown]
    sources = source_lines(app)
    assert sorted(n for n, _ in sources) == list(range(1, len(sources) + 1))
    assert ("charts/revenue_by_quarter.png") in {where for _, where in sources}
    kinds = source_kinds(app)
    assert len(kinds) == len(sources) and "image" in kinds
    assert len(app.main.image) == sum(kind in ("image", "page") for kind in kinds)  # a thumbnail per chart, page
    assert [e.value for e in app.error] == []

    app.run()  # any rerun (a widget touched) keeps the history
    assert len(app.chat_message) == 2 and app.chat_message[1].markdown[0].value == answer
    assert len(source_lines(app)) == len(sources)


def test_unrelated_question_says_not_found(monkeypatch: pytest.MonkeyPatch, corpus_settings: Settings) -> None:
    app = ask(page(monkeypatch, corpus_settings), "What is the airspeed velocity of an unladen swallow?")
    assistant = app.chat_message[1]
    assert [md.value for md in assistant.markdown] == [prompts.NOT_FOUND]
    assert source_lines(app) == [] and not app.main.image


def test_sidebar_k_and_retrieval_only(monkeypatch: pytest.MonkeyPatch, corpus_settings: Settings) -> None:
    app = page(monkeypatch, corpus_settings)
    app.sidebar.slider[0].set_value(1)
    app.sidebar.toggle[0].set_value(True)
    ask(app, QUESTION)
    assert len(source_lines(app)) == 1
    assert "Retrieval only: no answer generated." in [c.value for c in app.main.caption]
    app.sidebar.slider[0].set_value(10)
    ask(app, QUESTION)
    numbers = [n for n, _ in source_lines(app)][1:]  # after the first turn's one source
    assert len(numbers) >= 3 and sorted(numbers) == list(range(1, len(numbers) + 1))


def test_sidebar_shows_index_stats(monkeypatch: pytest.MonkeyPatch, corpus_settings: Settings) -> None:
    app = page(monkeypatch, corpus_settings)
    assert int(app.sidebar.metric[0].value) > 0
    kinds = app.sidebar.caption[1].value  # after the tiny profile's note
    assert "image:" in kinds and "page:" in kinds and "text:" in kinds


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (120, 90), (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_upload_indexes_good_files_and_reports_bad_ones(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    app = page(monkeypatch, settings)
    assert "is empty" in app.sidebar.info[0].value
    app.file_uploader[0].set_value(
        [
            ("red_chart.png", png_bytes(), "image/png"),
            ("red_chart.txt", b"A red chart of quarterly penguin sightings.", "text/plain"),
            ("../../evil.md", b"# Penguins\n\nPenguin sightings doubled in spring.", "text/markdown"),
            ("fake.png", b"just some text pretending to be an image", "image/png"),
        ]
    )
    app.button[0].click().run()  # the form's "Index" button
    assert not app.exception, app.exception
    assert app.success[0].value.startswith("Indexed 3 files")
    assert [w.value for w in app.warning] == [
        "**fake.png** was not indexed: named .png but its content is text, not an image"
    ]
    assert int(app.sidebar.metric[0].value) >= 2
    saved = sorted(p.name for p in (settings.data_dir / "uploads" / settings.collection).iterdir())
    assert saved == ["evil.md", "red_chart.png", "red_chart.txt"]

    ask(app, "How many penguin sightings?")
    assert "evil.md" in {where for _, where in source_lines(app)}


def test_problems_show_as_one_message(monkeypatch: pytest.MonkeyPatch, corpus_settings: Settings) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    app = page(monkeypatch, corpus_settings, MMRAG_WEAVIATE_URL=down)
    assert app.title[0].value == "mmrag" and "cannot reach" in app.sidebar.error[0].value
    ask(app, QUESTION)
    assert "cannot reach" in app.main.error[0].value

    # Real-model profile with a VLM that is not there: the page renders (nothing loads), asking says what is missing.
    tiny_clip = f"local-dir:{tiny_clip_dir(corpus_settings.cache_dir)}"
    app = page(monkeypatch, corpus_settings, MMRAG_PROFILE="default", MMRAG_CLIP_MODEL=tiny_clip)
    assert [e.value for e in app.error] == []
    app.sidebar.text_input[1].set_value("/nonexistent/vlm").run()
    ask(app, QUESTION)
    assert app.main.error[0].value == "model directory /nonexistent/vlm does not exist"

    app = page(monkeypatch, corpus_settings)
    app.sidebar.text_input[2].set_value(str(Path("/nonexistent/adapter")))
    ask(app, QUESTION)
    assert "adapter" in app.main.error[0].value.lower()

    app.sidebar.text_input[0].set_value("lower case")
    app.run()
    assert "MMRAG_COLLECTION" in app.sidebar.error[0].value and not app.chat_input
