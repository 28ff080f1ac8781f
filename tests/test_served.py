"""The server backend against a real `transformers serve` on loopback (the tiny checkpoints, CPU, greedy): the same
answers as the local backend, streaming and LLM callbacks through the chat models, concurrency, retries, outages."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import HumanMessage
from langchain_core.outputs import LLMResult
from PIL import Image

from mmrag.api.app import create_app
from mmrag.core import prompts
from mmrag.core.adapters import AdapterError
from mmrag.core.errors import ConfigError, ServerUnavailableError
from mmrag.core.server import LocalWeaviate, free_port
from mmrag.core.settings import Settings
from mmrag.core.tiny import ensure_tiny_models, tiny_vlm_dir
from mmrag.rag_app.chat_model import decode_image, request_from_messages, request_messages
from mmrag.rag_app.generator import GenerationRequest, LocalGenerator, Usage
from mmrag.rag_app.served import ServerGenerator
from mmrag.rag_app.service import make_generator, open_chain
from tests.corpus import write_known_corpus
from tests.helpers import CACHE_DIR, MMRAG_SCRIPT, TransformersServer, cli_env, make_adapter, module_settings, run_cli

NEW_TOKENS = 10


def picture(seed: int, size: tuple[int, int] = (56, 40)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def requests() -> list[GenerationRequest]:
    """Charts (one image each), a two-image prompt and a text-only one: every prompt shape the chain builds."""
    chart = [GenerationRequest.chart(f"What is the value in {year}?", picture(year)) for year in (2019, 2020, 2021)]
    two = (prompts.ContextItem(1, "image", "a.png"), prompts.ContextItem(2, "page", "b.pdf p.1", "A caption."))
    texts = (prompts.ContextItem(1, "text", "notes.md", "Revenue grew 12% in 2021."),)
    return [
        *chart,
        GenerationRequest("Which is larger?", (picture(1), picture(2, (64, 48))), two),
        GenerationRequest("How much did revenue grow?", (), texts),
    ]


def same_text(streamed: str, whole: str) -> bool:
    """`transformers serve`'s streamer drops a last, incomplete UTF-8 sequence (the tiny random model emits
    arbitrary bytes; a real model does not end mid-character), so a streamed answer may lack a last U+FFFD."""
    return streamed == whole or streamed == whole.rstrip("\ufffd").rstrip()


@pytest.fixture(scope="module")
def base_dir() -> str:
    ensure_tiny_models(CACHE_DIR)
    return str(tiny_vlm_dir(CACHE_DIR))


@pytest.fixture(scope="module")
def server(base_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TransformersServer]:
    with TransformersServer(base_dir, tmp_path_factory.mktemp("serve") / "serve.log") as running:
        yield running


@pytest.fixture(scope="module")
def local(base_dir: str) -> LocalGenerator:
    return LocalGenerator(base_dir, "cpu", cache_dir=CACHE_DIR, max_new_tokens=NEW_TOKENS)


def served(url: str, model: str, **kwargs: Any) -> ServerGenerator:
    options: dict[str, Any] = {"base_model": model, "cache_dir": CACHE_DIR, "max_new_tokens": NEW_TOKENS} | kwargs
    return ServerGenerator(url, model, **options)


# Same answers


def test_the_server_answers_as_the_local_model_does(
    server: TransformersServer, local: LocalGenerator, base_dir: str
) -> None:
    remote = served(server.url, base_dir)
    remote.check()
    assert remote.max_images == local.max_images == 4  # read from the base's config
    for request in requests():
        here, there = local.complete(request), remote.complete(request)
        assert there.text == here.text and here.text
        assert there.usage == here.usage  # the same prompt tokens (images expanded alike) and new tokens
        usage = Usage()
        assert same_text("".join(remote.stream(request, usage)), here.text)
        assert usage == here.usage
    batch = requests()
    assert remote.generate_batch(batch) == local.generate_batch(batch)


def test_a_merged_adapter_answers_alike_locally_and_served(
    base_dir: str, local: LocalGenerator, tmp_path: Path
) -> None:
    adapter = make_adapter(tmp_path / "adapter", base_dir, seed=7)
    merged = tmp_path / "merged"
    result = run_cli(
        cli_env(Settings(profile="tiny", cache_dir=CACHE_DIR, device="cpu")),
        "finetune",
        "merge",
        adapter,
        "--out",
        str(merged),
    )
    assert result.returncode == 0, result.stderr
    on_merged = LocalGenerator(str(merged), "cpu", cache_dir=CACHE_DIR, max_new_tokens=NEW_TOKENS)
    with TransformersServer(str(merged), tmp_path / "serve.log") as server:
        remote = served(server.url, str(merged))
        for request in requests():
            with_adapter = local.generate(replace(request, adapter=adapter))
            assert remote.generate(request) == on_merged.generate(request) == with_adapter
            assert with_adapter != local.generate(request) or not request.images  # the adapter changes answers


# LangChain: the chat models, the chain's runnable, callbacks


class Events(BaseCallbackHandler):
    """What a tracer (LangSmith, Langfuse) would receive."""

    def __init__(self) -> None:
        self.started = 0
        self.tokens: list[str] = []
        self.ended: list[LLMResult] = []

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.started += 1

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        self.ended.append(response)

    def usage(self) -> dict[str, int]:
        message = self.ended[-1].generations[0][0].message  # type: ignore[attr-defined]
        return {k: message.usage_metadata[k] for k in ("input_tokens", "output_tokens")}


@pytest.mark.parametrize("backend", ["local", "server"])
def test_chat_models_stream_tokens_and_report_usage_to_callbacks(
    backend: str, server: TransformersServer, local: LocalGenerator, base_dir: str
) -> None:
    generator = local if backend == "local" else served(server.url, base_dir)
    request = requests()[1]  # an answer of several words: the local streamer sends whole words
    expected = local.complete(request)
    events = Events()
    chunks = list(generator.chat_model().stream(request_messages(request), config={"callbacks": [events]}))
    pieces = [c.content for c in chunks if c.content]
    assert len(pieces) > 1  # token by token, not one chunk
    assert same_text("".join(str(p) for p in pieces).strip(), expected.text)
    assert events.started == 1 and len(events.ended) == 1 and events.tokens
    assert events.usage() == {
        "input_tokens": expected.usage.prompt_tokens,
        "output_tokens": expected.usage.completion_tokens,
    }
    invoked = Events()
    message = generator.chat_model().invoke(request_messages(request), config={"callbacks": [invoked]})
    assert str(message.content).strip() == expected.text and invoked.usage() == events.usage()


def test_the_local_chat_model_takes_only_one_turn_of_data_url_images(local: LocalGenerator) -> None:
    url = request_messages(GenerationRequest.chart("q", picture(3)))[0]["content"][0]["image_url"]["url"]
    assert np.array_equal(np.asarray(decode_image(url)), np.asarray(picture(3)))  # lossless, as the server sees it
    request = request_from_messages([HumanMessage(content=[{"type": "image_url", "image_url": {"url": url}}, "Q?"])])
    assert len(request.images) == 1 and request.prompt_text == "Q?"
    refusals = {
        "fetches nothing": [HumanMessage(content=[{"type": "image_url", "image_url": {"url": "http://x/a.png"}}, "Q"])],
        "one user message": [HumanMessage(content="a"), HumanMessage(content="b")],
        "not a readable picture": [
            HumanMessage(content=[{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}, "Q"])
        ],
        "no text": [HumanMessage(content=[{"type": "image_url", "image_url": {"url": url}}])],
    }
    for reason, messages in refusals.items():
        with pytest.raises(ValueError, match=reason):
            local.chat_model().invoke(messages)
    with pytest.raises(ValueError, match="at most 4 per prompt"):
        local.generate(
            request_from_messages(
                [HumanMessage(content=[*[{"type": "image_url", "image_url": {"url": url}}] * 5, "Q"])]
            )
        )


@pytest.fixture(scope="module")
def corpus(weaviate_server: LocalWeaviate, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = module_settings(weaviate_server, "Served", max_new_tokens=24)
    root = write_known_corpus(tmp_path_factory.mktemp("known"))
    result = run_cli(cli_env(settings), "index", str(root), "--workers", "0", "--json")
    assert result.returncode == 0, result.stderr
    return settings


def on_server(settings: Settings, server: TransformersServer, **more: object) -> Settings:
    return settings.model_copy(update={"generator_backend": "openai", "generator_url": server.url, **more})


def test_the_chain_streams_its_answer_through_either_backend(corpus: Settings, server: TransformersServer) -> None:
    question = "How much rain falls in Seattle?"
    answers = {}
    for name, settings in (("local", corpus), ("server", on_server(corpus, server))):
        with open_chain(settings, generator=make_generator(settings)) as chain:
            events = Events()
            chunks = list(chain.as_runnable().stream(question, config={"callbacks": [events]}))
            whole = chain.as_runnable().invoke(question)
            asked = chain.ask(question)
        assert [s.source for s in chunks[0]["sources"]] == [s.source for s in asked.sources]  # the sources first
        pieces = [c["answer"] for c in chunks if "answer" in c]
        assert len(pieces) > 1 and same_text("".join(pieces), asked.text)
        assert whole["answer"] == asked.text and whole["abstained"] == asked.abstained
        assert len(events.ended) == 1 and events.usage()["output_tokens"] > 0
        answers[name] = asked.text
    assert answers["server"] == answers["local"]


def test_ask_and_batch_through_the_command_line_on_a_server(
    corpus: Settings, server: TransformersServer, tmp_path: Path
) -> None:
    question = "What were the quarterly sales figures?"
    here = run_cli(cli_env(corpus), "ask", question, "--json")
    there = run_cli(cli_env(on_server(corpus, server)), "ask", question, "--json")
    assert here.returncode == there.returncode == 0, there.stderr
    assert json.loads(there.stdout)["answer"] == json.loads(here.stdout)["answer"]
    assert [s["id"] for s in json.loads(there.stdout)["sources"]] == [
        s["id"] for s in json.loads(here.stdout)["sources"]
    ]

    ids = [f"q{i}" for i in range(12)]
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"id": i, "question": f"{i}: rain in Seattle?"}) + "\n" for i in ids))
    out = tmp_path / "answers.jsonl"
    proxy = FaultProxy(server.url)
    try:
        env = cli_env(on_server(corpus, server, generator_url=proxy.url))
        result = run_cli(env, "batch", str(questions), "--out", str(out), "--concurrency", "4", "--json")
        assert result.returncode == 0, result.stderr
        assert 1 < proxy.most_in_flight <= 4 and proxy.chat_requests == len(ids)  # answered concurrently
    finally:
        proxy.close()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(ids) and all(r["error"] is None and r["answer"] for r in rows)


# Concurrency, retries, outages


class FaultProxy:
    """A loopback proxy in front of the real server that counts requests in flight and can answer the first
    `fail_first` chat requests with `status` (a busy or failing engine)."""

    def __init__(self, upstream: str, *, fail_first: int = 0, status: int = 503, delay_s: float = 0) -> None:
        self.upstream, self.fail_first, self.status = upstream.removesuffix("/v1"), fail_first, status
        self.delay_s = delay_s
        self.chat_requests, self.in_flight, self.most_in_flight = 0, 0, 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._relay(httpx.get(proxy.upstream + self.path, timeout=60))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with proxy._lock:
                    proxy.chat_requests += 1
                    failing = proxy.chat_requests <= proxy.fail_first
                    proxy.in_flight += 1
                    proxy.most_in_flight = max(proxy.most_in_flight, proxy.in_flight)
                try:
                    time.sleep(proxy.delay_s)
                    if failing:
                        error = json.dumps({"error": {"message": "engine overloaded"}}).encode()
                        self.send_response(proxy.status)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(error)))
                        self.end_headers()
                        self.wfile.write(error)
                        return
                    self._relay(
                        httpx.post(
                            proxy.upstream + self.path,
                            content=body,
                            headers={"Content-Type": "application/json"},
                            timeout=120,
                        )
                    )
                finally:
                    with proxy._lock:
                        proxy.in_flight -= 1

            def _relay(self, response: httpx.Response) -> None:
                self.send_response(response.status_code)
                self.send_header("Content-Type", response.headers.get("content-type", "application/json"))
                self.send_header("Content-Length", str(len(response.content)))
                self.end_headers()
                self.wfile.write(response.content)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def test_requests_run_concurrently_up_to_the_limit(server: TransformersServer, base_dir: str) -> None:
    proxy = FaultProxy(server.url)
    try:
        remote = served(proxy.url, base_dir, concurrency=3)
        batch = [replace(requests()[4], question=f"How much did revenue grow in {year}?") for year in range(9)]
        answers = remote.generate_batch(batch)
        assert len(answers) == 9 and all(answers)
        assert proxy.chat_requests == 9 and proxy.most_in_flight == 3  # concurrent, never beyond the setting
    finally:
        proxy.close()


@pytest.mark.parametrize("status", [429, 503])
def test_a_busy_server_is_retried_with_backoff(
    status: int, server: TransformersServer, local: LocalGenerator, base_dir: str
) -> None:
    request = requests()[0]
    proxy = FaultProxy(server.url, fail_first=2, status=status)
    try:
        assert served(proxy.url, base_dir, retries=2).generate(request) == local.generate(request)
        assert proxy.chat_requests == 3
    finally:
        proxy.close()
    proxy = FaultProxy(server.url, fail_first=5, status=status)
    try:
        with pytest.raises(ServerUnavailableError, match=f"busy or failing \\({status}\\): engine overloaded"):
            served(proxy.url, base_dir, retries=1).generate(request)
        assert proxy.chat_requests == 2
    finally:
        proxy.close()


def test_a_server_slower_than_the_timeout_is_one_clear_error(server: TransformersServer, base_dir: str) -> None:
    proxy = FaultProxy(server.url, delay_s=3)
    try:
        with pytest.raises(ServerUnavailableError, match="did not answer in time"):
            served(proxy.url, base_dir, timeout_s=1, retries=0).generate(requests()[0])
    finally:
        proxy.close()


def test_the_rest_api_answers_concurrently_through_a_server(corpus: Settings, server: TransformersServer) -> None:
    questions = [f"How much rain falls in Seattle in month {month}?" for month in range(1, 9)]
    with open_chain(corpus, generator=make_generator(corpus)) as chain:
        expected = [chain.ask(q).text for q in questions]
    proxy = FaultProxy(server.url)
    try:
        settings = on_server(corpus, server, generator_url=proxy.url)
        with TestClient(create_app(settings)) as client, ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda q: client.post("/v1/ask", json={"question": q}), questions))
        assert [r.status_code for r in replies] == [200] * len(questions)
        assert [r.json()["answer"] for r in replies] == expected
        assert proxy.most_in_flight > 1  # the API's requests reached the server together
    finally:
        proxy.close()
    down = on_server(corpus, server, generator_url=f"http://127.0.0.1:{free_port()}/v1", generator_retries=0)
    with TestClient(create_app(down)) as client:
        reply = client.post("/v1/ask", json={"question": questions[0]})
    assert reply.status_code == 503 and "cannot reach the answer server" in reply.json()["error"]["message"]


def test_clear_errors_when_the_server_is_down_or_the_model_unknown(
    corpus: Settings, server: TransformersServer, tmp_path: Path, base_dir: str
) -> None:
    down = f"http://127.0.0.1:{free_port()}/v1"
    cases = {
        "cannot reach the answer server at " + down: on_server(corpus, server, generator_url=down),
        "does not serve 'no-such-model'": on_server(corpus, server, generator_model="no-such-model"),
        "MMRAG_GENERATOR_URL is not set": corpus.model_copy(update={"generator_backend": "openai"}),
    }
    for message, settings in cases.items():
        result = run_cli(cli_env(settings, MMRAG_GENERATOR_RETRIES="0"), "ask", "rain in Seattle?")
        assert result.returncode == 1 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    with pytest.raises(ServerUnavailableError, match="cannot reach"):
        served(down, base_dir, retries=0).generate(requests()[0])


def test_adapters_on_a_server_are_served_names_checked_against_the_base(
    server: TransformersServer, base_dir: str, tmp_path: Path
) -> None:
    remote = served(server.url, base_dir)
    other_base = make_adapter(tmp_path / "other", str(tiny_vlm_dir(CACHE_DIR, "llava")), seed=1)
    with pytest.raises(AdapterError, match="trained on"):  # the manifest check still applies
        remote.resolve_adapter(f"charts={other_base}")
    fits = make_adapter(tmp_path / "fits", base_dir, seed=2)
    assert remote.resolve_adapter(f"charts={fits}") == "charts"
    with pytest.raises(AdapterError, match="--adapter NAME="):  # a dir alone: which served name is it?
        remote.resolve_adapter(fits)
    with pytest.raises(ConfigError, match="does not serve 'charts'"):  # transformers serve has no LoRA
        remote.generate(replace(requests()[0], adapter=f"charts={fits}"))


class VllmModels(BaseHTTPRequestHandler):
    """vLLM's documented `GET /v1/models` for `vllm serve llava-hf/llava-1.5-7b-hf --enable-lora --lora-modules
    charts=/adapters/charts` (vLLM needs a GPU, so the model list is all of it that runs here)."""

    root = ""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = json.dumps(
            {
                "object": "list",
                "data": [
                    {
                        "id": "llava",
                        "object": "model",
                        "owned_by": "vllm",
                        "root": "llava-hf/llava-1.5-7b-hf",
                        "parent": None,
                    },
                    {"id": "charts", "object": "model", "owned_by": "vllm", "root": self.root, "parent": "llava"},
                ],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_a_vllm_model_list_gives_the_base_and_the_adapters(tmp_path: Path, base_dir: str) -> None:
    adapter = make_adapter(tmp_path / "charts", base_dir, seed=3)  # trained on the tiny base, not on llava-1.5
    VllmModels.root = adapter
    listing = ThreadingHTTPServer(("127.0.0.1", 0), VllmModels)
    threading.Thread(target=listing.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{listing.server_address[1]}/v1"
        remote = ServerGenerator(url, "llava", base_model=base_dir, cache_dir=CACHE_DIR)
        remote.check()  # "llava" is listed
        with pytest.raises(AdapterError, match=r"llava-1\.5-7b-hf"):  # the listed parent's root is the base in use
            remote.resolve_adapter("charts")
        with pytest.raises(AdapterError, match="does not serve the adapter 'tables'"):
            remote.resolve_adapter(f"tables={adapter}")
        with pytest.raises(ConfigError, match="does not serve 'llava-7b'"):
            ServerGenerator(url, "llava-7b", base_model=base_dir, cache_dir=CACHE_DIR).check()
    finally:
        listing.shutdown()
        listing.server_close()


@pytest.mark.slow
def test_a_server_killed_mid_batch_loses_and_repeats_nothing(corpus: Settings, base_dir: str, tmp_path: Path) -> None:
    engine = TransformersServer(base_dir, tmp_path / "serve.log").start()
    try:
        settings = on_server(corpus, engine, max_new_tokens=24)
        env = cli_env(settings, MMRAG_GENERATOR_RETRIES="1")
        ids = [f"q{i}" for i in range(80)]
        questions = tmp_path / "q.jsonl"
        questions.write_text("".join(json.dumps({"id": i, "question": f"{i}: rain in Seattle?"}) + "\n" for i in ids))
        out = tmp_path / "answers.jsonl"
        args = [MMRAG_SCRIPT, "batch", str(questions), "--out", str(out), "--concurrency", "4", "--json"]
        process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while (
            process.poll() is None
            and time.monotonic() < deadline
            and not (out.exists() and len(out.read_text().splitlines()) >= 8)
        ):
            time.sleep(0.05)
        engine.kill()
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 1 and "same command" in stderr, stderr
        assert len(stderr.strip().splitlines()) == 1, stderr
        saved = [json.loads(line) for line in out.read_text().splitlines()]
        assert 8 <= len(saved) < len(ids), "the kill did not land mid-run"
        assert all(row["error"] is None for row in saved)  # no row is marked done by the outage

        engine.start()  # the same port: the rerun finds it where the settings say
        result = run_cli(env, "batch", str(questions), "--out", str(out), "--concurrency", "4", "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["skipped"] == len(saved)
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert sorted(row["id"] for row in rows) == sorted(ids)  # each once: none lost, none twice
        assert all(row["error"] is None and row["answer"] for row in rows)
        assert rows[: len(saved)] == saved  # the first run's answers are kept as they were
    finally:
        engine.stop()
