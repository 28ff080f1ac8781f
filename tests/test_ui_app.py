"""The Streamlit page through streamlit.testing.v1.AppTest: a real Weaviate, the tiny profile, the sample corpus."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from mmrag.commands.sample_corpus import write_sample_corpus
from mmrag.commands.ui import APP
from mmrag.core import prompts
from mmrag.core.models import resolve_models
from mmrag.core.server import LocalWeaviate, free_port
from mmrag.core.settings import Settings
from mmrag.core.tiny import tiny_clip_dir
from mmrag.indexer.service import index_paths
from mmrag.rag_app.followup import standalone_question
from mmrag.rag_app.service import make_generator
from mmrag.ui import chat
from tests.helpers import NO_SETTINGS_FILES, TransformersServer, cli_env, module_settings

pytestmark = pytest.mark.slow  # the Streamlit app over an indexed corpus, answering

QUESTION = "What was the revenue in the fourth quarter?"
QUESTION_CHART = "revenue_by_quarter.png"
"""The chart QUESTION finds first; "and in 2022?" alone does not find it (the sample corpus, k=3)."""
FOLLOW_UP = "and in 2022?"
SOURCE_LINE = re.compile(r"^\*\*\[(\d+)\]\*\* (.+)$")
KIND_LINE = re.compile(r"^rank (\d+) · (image|page|text|table) · score (-?\d+\.\d{4})$")
SEARCHED = "searched for: "


@pytest.fixture(scope="module")
def corpus_settings(weaviate_server: LocalWeaviate, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The sample corpus indexed once for this module's tests (which only read it)."""
    settings = module_settings(weaviate_server, "U")
    index_paths(settings, write_sample_corpus(tmp_path_factory.mktemp("sample")), workers=0)
    return settings


def page(monkeypatch: pytest.MonkeyPatch, settings: Settings, **env: str) -> AppTest:
    """The page as a new browser session would get it, with the settings in its MMRAG_* environment."""
    for key in [k for k in os.environ if k.startswith("MMRAG_") and k not in NO_SETTINGS_FILES]:
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


def source_lines(app: AppTest | Any) -> list[tuple[int, str]]:
    """(number, path and page) of each source shown (on the page, or in one chat message), in page order."""
    block = app.main if isinstance(app, AppTest) else app
    found = [m for md in block.markdown if (m := SOURCE_LINE.match(md.value))]
    return [(int(m[1]), m[2].replace("\\", "")) for m in found]


def source_ranks(app: AppTest) -> list[tuple[int, str, float]]:
    """(rank, kind, score) of each source shown, in page order."""
    return [(int(m[1]), m[2], float(m[3])) for c in app.main.caption if (m := KIND_LINE.match(c.value))]


def source_kinds(app: AppTest) -> list[str]:
    return [kind for _, kind, _ in source_ranks(app)]


def searched_for(message: Any) -> list[str]:
    """The "searched for" captions under a user's message."""
    return [c.value.removeprefix(SEARCHED) for c in message.caption if c.value.startswith(SEARCHED)]


def new_chat(app: AppTest) -> AppTest:
    next(b for b in app.sidebar.button if b.label == "New chat").click().run()
    assert not app.exception, app.exception
    return app


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
    assert any(where.endswith(f"charts/{QUESTION_CHART}") for _, where in sources)
    ranks = source_ranks(app)
    assert [rank for rank, _, _ in ranks] == [n for n, _ in sources]  # each source shows its rank and score
    by_rank = [score for _, _, score in sorted(ranks)]
    assert by_rank == sorted(by_rank, reverse=True)  # [1] is the best
    kinds = source_kinds(app)
    assert len(kinds) == len(sources) and "image" in kinds
    assert len(app.main.image) == sum(kind in ("image", "page") for kind in kinds)  # a thumbnail per chart, page
    assert [e.value for e in app.error] == []

    app.run()  # any rerun (a widget touched) keeps the history
    assert len(app.chat_message) == 2 and app.chat_message[1].markdown[0].value == answer
    assert len(source_lines(app)) == len(sources)


def test_a_server_backend_answers_the_page_as_the_local_model_does(
    monkeypatch: pytest.MonkeyPatch, corpus_settings: Settings, tmp_path: Path
) -> None:
    local = ask(page(monkeypatch, corpus_settings), QUESTION).chat_message[1]
    with TransformersServer(resolve_models(corpus_settings).vlm_model, tmp_path / "serve.log") as server:
        app = ask(
            page(monkeypatch, corpus_settings, MMRAG_GENERATOR_BACKEND="openai", MMRAG_GENERATOR_URL=server.url),
            QUESTION,
        )
    served = app.chat_message[1]
    assert served.markdown[0].value == local.markdown[0].value and served.markdown[0].value.strip()
    assert source_lines(served) == source_lines(local)
    assert [e.value for e in app.error] == []


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


def test_follow_up_is_searched_with_the_previous_question(
    monkeypatch: pytest.MonkeyPatch, corpus_settings: Settings
) -> None:
    app = page(monkeypatch, corpus_settings, MMRAG_K="3")
    app.sidebar.toggle[0].set_value(True)  # retrieval only: the previous question, then the follow-up
    ask(app, QUESTION)
    ask(app, FOLLOW_UP)
    first, _, follow_up, answer = app.chat_message
    assert searched_for(first) == []
    assert searched_for(follow_up) == [f"{QUESTION} {FOLLOW_UP}"]
    assert any(where.endswith(QUESTION_CHART) for _, where in source_lines(answer))

    new_chat(app)  # no history: the follow-up alone, which does not find the chart
    assert not app.chat_message
    ask(app, FOLLOW_UP)
    follow_up, answer = app.chat_message
    assert follow_up.markdown[0].value == FOLLOW_UP and searched_for(follow_up) == []
    assert source_lines(answer) and not any(where.endswith(QUESTION_CHART) for _, where in source_lines(answer))

    app.run()  # a rerun shows the kept turns with what they searched for
    assert len(app.chat_message) == 2 and searched_for(app.chat_message[0]) == []


def test_follow_up_is_rewritten_by_the_vlm(monkeypatch: pytest.MonkeyPatch, corpus_settings: Settings) -> None:
    app = ask(ask(page(monkeypatch, corpus_settings), QUESTION), FOLLOW_UP)
    turns = app.session_state["turns"]
    assert [t.question for t in turns] == [QUESTION, FOLLOW_UP] and turns[0].answer
    vlm = make_generator(corpus_settings)  # the page's tiny VLM: greedy, so it rewrites the same
    rewritten = standalone_question(FOLLOW_UP, chat.history(turns[:1]), vlm, adapter=corpus_settings.adapter)
    assert rewritten != f"{QUESTION} {FOLLOW_UP}"  # the tiny VLM's (random) words, not the retrieval-only rule
    assert turns[1].searched == rewritten
    assert searched_for(app.chat_message[2]) == [chat.escape(rewritten)]
    assert not app.error

    new_chat(app)
    assert not app.chat_message and app.session_state["turns"] == []


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
    next(b for b in app.button if b.label == "Index").click().run()  # the form's button
    assert not app.exception, app.exception
    assert app.success[0].value.startswith("Indexed 3 files")
    assert [w.value for w in app.warning] == [
        "**fake.png** was not indexed: named .png but its content is text, not an image"
    ]
    assert int(app.sidebar.metric[0].value) >= 2
    saved = sorted(p.name for p in (settings.data_dir / "uploads" / settings.collection).iterdir())
    assert saved == ["evil.md", "red_chart.png", "red_chart.txt"]

    ask(app, "How many penguin sightings?")
    assert any(where.endswith("/evil.md") for _, where in source_lines(app))


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
    error = app.sidebar.error[0].value
    assert "collection" in error.lower() and "capital letter" in error and not app.chat_input
