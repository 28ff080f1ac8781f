"""The mmrag page: ask about your charts and documents, read the cited sources, add documents.

Run it with `mmrag ui`. The page parses input and calls library functions (ui.chat, ui.uploads, rag_app, indexer);
it never talks to Weaviate itself. The client, embedders and VLM are built once per process (st.cache_resource)
and load on first use, so the page renders before any model loads. Every MmragError shows as one message.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, get_args

import streamlit as st

from mmrag.core.errors import MmragError
from mmrag.core.filetypes import SUPPORTED_SUFFIXES
from mmrag.core.settings import Settings, load_settings
from mmrag.indexer.store import UnknownCollectionError
from mmrag.ui import chat, uploads

if TYPE_CHECKING:
    from mmrag.indexer.store import CollectionStats
    from mmrag.rag_app.generator import Generator

MODES: tuple[str, ...] = get_args(Settings.model_fields["mode"].annotation)
TURNS = "turns"
LAST_UPLOAD = "last_upload"
GRID = 3  # thumbnails per row under an answer (a bare string here would be shown: Streamlit's "magic")


# Long-lived pieces: one per process, keyed by what builds them (the Settings object itself is not hashed).


@st.cache_resource(show_spinner=False, on_release=lambda client: client.close())
def _client(address: str, _settings: Settings) -> Any:
    """The Weaviate client (the local server starts on demand)."""
    from mmrag.core.client import connect

    return connect(_settings, start_local=True)


@st.cache_resource(show_spinner=False)
def _embedders(models: str, _settings: Settings) -> chat.Embedders:
    from mmrag.indexer.embedders import embedders_for

    return chat.Embedders(*embedders_for(_settings))


@st.cache_resource(show_spinner=False)
def _generator(model: str, _settings: Settings) -> Generator:
    """The VLM (or the server's client), shared by the sessions: each question's request names its session's adapter
    (the chain's), so the base never reloads and a session never answers with another's adapter. On a server backend
    the sessions' questions are answered concurrently; the local model answers one at a time."""
    from mmrag.rag_app.service import make_generator

    return make_generator(_settings)


@st.cache_data(ttl=30, show_spinner=False)
def _stats(collection: str, _settings: Settings) -> CollectionStats:
    from mmrag.indexer.service import collection_stats

    return collection_stats(_settings)


def _keys(settings: Settings) -> tuple[str, str, str]:
    s = settings
    address = f"{s.weaviate_url or '127.0.0.1'}|{s.weaviate_http_port}|{s.weaviate_grpc_port}|{s.data_dir}"
    models = f"{s.profile}|{s.clip_model}|{s.clip_pretrained}|{s.text_model}|{s.device}"
    vlm = f"{s.profile}|{s.vlm_model}|{s.device}|{s.four_bit}|{s.max_new_tokens}|{s.generator_backend}"
    if s.generator_backend != "local":  # one client per server and model; its requests run concurrently
        vlm += f"|{s.generator_url}|{s.generator_model}|{s.generator_concurrency}"
    return address, models, vlm


# Sidebar


def sidebar_settings(base: Settings) -> tuple[Settings, bool] | None:
    """The settings chosen in the sidebar (checked), and the retrieval-only switch; None (and a message) if invalid."""
    with st.sidebar:
        st.button(
            "New chat", on_click=new_chat, icon=":material/add_comment:", help="Start over: follow-ups forget the chat"
        )
        st.header("Settings")
        collection = st.text_input("Collection", base.collection, help="Weaviate collection (starts with a capital)")
        mode = st.selectbox("Retrieval mode", MODES, index=MODES.index(base.mode))
        k = st.slider("Sources per question (k)", 1, max(20, base.k), base.k)
        tiny = base.profile == "tiny"
        vlm = st.text_input(
            "VLM", base.vlm_model, disabled=tiny, help="the tiny profile uses its tiny local VLM" if tiny else None
        )
        if tiny:
            st.caption("Tiny profile: tiny random local models, so answers are not meaningful.")
        adapter = st.text_input("LoRA adapter", base.adapter or "", placeholder="a directory or s3://bucket/prefix")
        retrieval_only = st.toggle("Retrieval only", help="Show the sources without generating an answer")
    try:
        settings = load_settings(
            collection=collection.strip(), mode=mode, k=k, vlm_model=vlm.strip(), adapter=adapter.strip() or None
        )
    except MmragError as e:
        st.sidebar.error(str(e))
        return None
    return settings, retrieval_only


def show_stats(settings: Settings) -> None:
    with st.sidebar:
        st.subheader("Index")
        try:
            stats = _stats(settings.collection, settings)
        except UnknownCollectionError:
            st.info(f"Collection {settings.collection} is empty: add documents to start.")
            return
        except MmragError as e:
            st.error(str(e))
            return
        st.metric("Objects", stats.objects)
        st.caption(" · ".join(f"{kind}: {n}" for kind, n in sorted(stats.by_kind.items())))
        info = stats.info
        st.caption(f"clip: {info.clip_model} ({info.clip_dim}-d) · text: {info.text_model} ({info.text_dim}-d)")


# Adding documents


def upload_section(settings: Settings, expanded: bool) -> None:
    with st.expander("Add documents", expanded=expanded, icon=":material/upload_file:"):
        with st.form("upload", clear_on_submit=True, border=False):
            files = st.file_uploader(
                "Charts, PDFs and text files",
                type=sorted(s.lstrip(".") for s in SUPPORTED_SUFFIXES),
                accept_multiple_files=True,
                max_upload_size=settings.max_upload_mb,
                help=f"Checked by content; at most {settings.max_upload_mb} MB each.",
            )
            submitted = st.form_submit_button("Index", icon=":material/database_upload:")
        if submitted and files:
            index_files(settings, [uploads.Upload(f.name, f.getvalue()) for f in files])
        report = st.session_state.get(LAST_UPLOAD)
        if report is not None:
            show_upload_report(report)


def index_files(settings: Settings, files: list[uploads.Upload]) -> None:
    bar = st.progress(0.0, text=f"Indexing {len(files)} files…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / total if total else 1.0, text=f"Indexed {done} of {total} files")

    try:
        embedders = _embedders(_keys(settings)[1], settings)
        report = uploads.index_uploads(settings, files, progress=progress, embedders=(embedders.clip, embedders.text))
    except MmragError as e:
        st.error(f"Nothing was indexed: {e}")
        return
    finally:
        bar.empty()
    st.session_state[LAST_UPLOAD] = report
    _stats.clear()


def show_upload_report(report: uploads.UploadReport) -> None:
    if report.indexed:
        already = f", {report.unchanged} already indexed" if report.unchanged else ""
        st.success(f"Indexed {len(report.indexed)} files ({report.written} objects written{already}).")
    for name, reason in report.failures:
        st.warning(f"**{chat.escape(name)}** was not indexed: {chat.escape(reason)}", icon=":material/block:")


# Chat


def ask(settings: Settings, question: str, retrieval_only: bool, turns: list[chat.ChatTurn]) -> chat.ChatTurn:
    """Answer in the current chat message (streamed) and return the turn for the history; a follow-up of `turns`
    is made standalone first, and that question is retrieved and answered for."""
    turn = chat.ChatTurn(question, settings.collection, retrieval_only=retrieval_only)
    address, models, vlm = _keys(settings)
    try:
        with st.spinner("Searching your documents… (the first question also loads the models)"):
            generator = None if retrieval_only else _generator(vlm, settings)
            chain = chat.build_chain(settings, _client(address, settings), _embedders(models, settings), generator)
            searched = chat.standalone(question, turns, generator, settings.adapter)
            if searched != " ".join(question.split()):
                turn.searched = searched
            prepared = chain.prepare(searched)
        started = time.perf_counter()
        pieces: list[str] = []
        if generator is not None or prepared.request is None:
            st.write_stream(chat.escape_answer(p) for p in _kept(chain.stream(prepared), pieces))
        answer = chain.answer_from_text(prepared, "".join(pieces), time.perf_counter() - started)
        turn.answer, turn.abstained, turn.timings = answer.text, answer.abstained, answer.timings
        turn.cited = chat.cite(chain.images, answer.sources)
    except UnknownCollectionError:
        turn.error = f"Collection {settings.collection} is empty: add documents first."
    except MmragError as e:
        turn.error = str(e)
    return turn


def _kept(pieces: Iterator[str], into: list[str]) -> Iterator[str]:
    for piece in pieces:
        into.append(piece)
        yield piece


def show_question(turn: chat.ChatTurn) -> None:
    """The user's side of a turn: the question, and what was searched for when that differs (a follow-up)."""
    st.markdown(chat.escape(turn.question))
    if turn.searched:
        st.caption(f"searched for: {chat.escape(turn.searched)}")


def show_turn(index: int, turn: chat.ChatTurn, settings: Settings, streamed: bool = False) -> None:
    """The assistant's side of a turn: the answer (unless it was just streamed), then its numbered sources."""
    if turn.error:
        st.error(turn.error, icon=":material/error:")
        return
    if not streamed and turn.answer:
        st.markdown(chat.escape_answer(turn.answer))
    if turn.retrieval_only and not turn.abstained:
        st.caption("Retrieval only: no answer generated.")
    if turn.cited:
        show_sources(index, turn.cited, turn.collection, settings)


def show_sources(index: int, cited: list[chat.Cited], collection: str, settings: Settings) -> None:
    """Charts, figure crops and pages as a grid of thumbnails, then tables and text snippets; each with its number,
    path, page, label and caption, and score."""
    st.markdown("**Sources**")
    visual = [(c, c.thumbnail) for c in cited if c.thumbnail]
    for start in range(0, len(visual), GRID):
        for column, (one, thumbnail) in zip(st.columns(GRID), visual[start : start + GRID], strict=False):
            with column.container(border=True):
                st.image(thumbnail, width="stretch")
                describe(one, 140)
                if st.button("Enlarge", key=f"enlarge-{index}-{one.source.n}", icon=":material/zoom_in:"):
                    enlarge(one, collection, settings)
    for one in cited:
        if not one.thumbnail:
            with st.container(border=True):
                describe(one, 400)
                if one.table:
                    st.markdown(one.table)
                if one.source.bbox is not None and st.button(
                    "Show on page", key=f"page-{index}-{one.source.n}", icon=":material/zoom_in:"
                ):
                    enlarge(one, collection, settings)


def describe(cited: chat.Cited, limit: int) -> None:
    """Number (its rank: 1 is the best), path, page and label; kind and score; then the caption (a figure, a table)
    or the text."""
    s = cited.source
    st.markdown(f"**[{s.n}]** {chat.escape(cited.location)}")
    origin = {"ocr": " · OCR text", "chart-data": " · native chart (drawn from its data)"}.get(s.origin or "", "")
    st.caption(f"rank {s.n} · {s.kind}{origin} · score {s.score:.4f}")
    shown = s.caption or ("" if cited.table else s.text)
    if shown:
        st.caption(chat.escape(chat.snippet(shown, limit)))


@st.dialog("Source", width="large")
def enlarge(cited: chat.Cited, collection: str, settings: Settings) -> None:
    st.markdown(f"**[{cited.source.n}]** {chat.escape(cited.location)}")
    address, _, _ = _keys(settings)
    try:
        image = chat.full_image(_client(address, settings), collection, cited.source)
    except MmragError as e:
        st.error(str(e))
        return
    if image is not None:
        st.image(image, width="stretch")
    elif cited.thumbnail:
        st.image(cited.thumbnail, width="stretch")
    if cited.source.caption:
        st.caption(chat.escape(cited.source.caption))


def new_chat() -> None:
    """Forget the chat: its shown turns and the history follow-ups are read against."""
    st.session_state[TURNS] = []


def chat_section(settings: Settings, retrieval_only: bool) -> None:
    turns: list[chat.ChatTurn] = st.session_state.setdefault(TURNS, [])
    for index, turn in enumerate(turns):
        with st.chat_message("user"):
            show_question(turn)
        with st.chat_message("assistant"):
            show_turn(index, turn, settings)
    question = st.chat_input("Ask about your charts and documents")
    if question and question.strip():
        with st.chat_message("user"):
            st.markdown(chat.escape(question))
            searched = st.empty()
        with st.chat_message("assistant"):
            turn = ask(settings, question, retrieval_only, turns)
            if turn.searched:
                searched.caption(f"searched for: {chat.escape(turn.searched)}")
            show_turn(len(turns), turn, settings, streamed=True)
        turns.append(turn)


def main() -> None:
    st.set_page_config(page_title="mmrag", page_icon=":material/query_stats:", layout="wide")
    st.title("mmrag", anchor=False)
    st.caption("Ask about your charts and documents; every answer cites the sources it used.")
    try:
        base = load_settings()
    except MmragError as e:
        st.error(str(e))
        return
    chosen = sidebar_settings(base)
    if chosen is None:
        return
    settings, retrieval_only = chosen
    upload_section(settings, expanded=not st.session_state.get(TURNS))
    chat_section(settings, retrieval_only)
    show_stats(settings)


main()
