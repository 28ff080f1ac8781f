"""The REST API (`mmrag serve`) over a real Weaviate and the tiny profile's real models: every endpoint, streamed
answers parsed as a client parses them, auth, upload checks, indexing jobs, errors as JSON."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import SecretStr

from mmrag.api.app import api_key, check_binding, create_app
from mmrag.core.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from mmrag.core.errors import ConfigError
from mmrag.core.manifest import AdapterManifest
from mmrag.core.prompts import PROMPT_STYLE
from mmrag.core.server import LocalWeaviate, free_port
from mmrag.core.settings import Settings
from mmrag.indexer.service import index_paths
from mmrag.indexer.uploads import uploads_dir
from tests.corpus import write_known_corpus
from tests.helpers import MMRAG_SCRIPT, SOURCE_KEYS, cli_env, module_settings

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def corpus(weaviate_server: LocalWeaviate, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The known corpus indexed once through the real indexer (the module's requests only read it)."""
    settings = module_settings(weaviate_server, "Api", max_new_tokens=6)
    report = index_paths(settings, [write_known_corpus(tmp_path_factory.mktemp("known"))], workers=0)
    assert report.indexed == 5 and not report.failures  # three texts, two charts (with caption sidecars)
    return settings


@pytest.fixture(scope="module")
def api(corpus: Settings) -> Iterator[TestClient]:
    """The API with the tiny VLM, its key set."""
    with TestClient(create_app(corpus.model_copy(update={"api_key": SecretStr(KEY)}))) as client:
        client.headers["Authorization"] = f"Bearer {KEY}"
        yield client


@pytest.fixture(scope="module")
def retrieval(corpus: Settings) -> Iterator[TestClient]:
    """A retrieval-only API (`mmrag serve --retrieval-only`) without a key."""
    with TestClient(create_app(corpus, retrieval_only=True)) as client:
        yield client


def events(response: httpx.Response) -> list[tuple[str, str]]:
    """(event, data) pairs of a text/event-stream body, as a browser's EventSource reads them."""
    assert response.headers["content-type"].startswith("text/event-stream")
    parsed = []
    for block in response.text.split("\n\n"):
        lines = [line for line in block.splitlines() if line and not line.startswith(":")]
        if lines:
            event = next((line[7:] for line in lines if line.startswith("event: ")), "message")
            parsed.append((event, "\n".join(line[6:] for line in lines if line.startswith("data: "))))
    return parsed


def assert_error(response: httpx.Response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert fragment in error["message"] and "\n" not in error["message"] and error["type"]
    assert "Traceback" not in response.text


def finished(client: TestClient, accepted: httpx.Response, timeout: float = 60) -> dict[str, Any]:
    """The indexing job `accepted` (202) once it is done or failed, polled as a client polls it."""
    assert accepted.status_code == 202, accepted.text
    job = accepted.json()
    deadline = time.monotonic() + timeout
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = client.get(f"/v1/index/{job['id']}").json()
    return job


def png(colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (80, 60), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_health_and_docs(api: TestClient, corpus: Settings) -> None:
    bare = api.get("/healthz", headers={"Authorization": ""})  # no key needed
    assert bare.status_code == 200
    body = bare.json()
    assert body["ok"] is body["weaviate"] is True and body["collection"] == corpus.collection
    assert body["models"]["profile"] == "tiny" and body["models"]["vlm"] == corpus.vlm_model
    schema = api.get("/openapi.json").json()
    assert {"/v1/search", "/v1/ask", "/v1/index", "/v1/chat/completions", "/v1/collections/{name}"} <= set(
        schema["paths"]
    )
    assert "SearchRequest" in schema["components"]["schemas"]


def test_search_ranks_sources(retrieval: TestClient) -> None:
    found = retrieval.post("/v1/search", json={"query": "quarterly revenue subscription sales", "k": 3})
    assert found.status_code == 200, found.text
    results = found.json()["results"]
    assert [r["rank"] for r in results] == [1, 2, 3]
    assert set(results[0]) == SOURCE_KEYS | {"rank"} and results[0]["source"] == "finance/revenue.txt"
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    texts = retrieval.post("/v1/search", json={"query": "rainfall", "kinds": ["image"], "mode": "text", "k": 5})
    assert texts.status_code == 200 and {r["kind"] for r in texts.json()["results"]} == {"image"}
    under = retrieval.post("/v1/search", json={"query": "match", "source": "sports/"}).json()["results"]
    assert under and all(r["source"].startswith("sports/") for r in under)


def test_ask_answers_with_sources(api: TestClient, retrieval: TestClient) -> None:
    answered = api.post("/v1/ask", json={"question": "What did photosynthesis turn into sugar?", "k": 2})
    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert set(body) == {"answer", "abstained", "sources", "timings"} and "generate_s" in body["timings"]
    assert body["abstained"] or body["sources"][0]["source"] == "science/biology.txt"
    only = retrieval.post("/v1/ask", json={"question": "photosynthesis sunlight sugar oxygen", "k": 2}).json()
    assert only["answer"] == "" and only["sources"][0]["source"] == "science/biology.txt"
    assert "generate_s" not in only["timings"]


def test_ask_streams_sources_tokens_then_done(api: TestClient) -> None:
    streamed = api.post("/v1/ask", json={"question": "quarterly revenue subscription sales", "stream": True})
    assert streamed.status_code == 200 and streamed.headers["cache-control"] == "no-cache"
    parsed = events(streamed)
    names = [name for name, _ in parsed]
    assert names[0] == "sources" and names[-1] == "done" and set(names) <= {"sources", "token", "done"}
    sources = json.loads(parsed[0][1])["sources"]
    done = json.loads(parsed[-1][1])
    tokens = "".join(json.loads(data)["text"] for name, data in parsed if name == "token")
    assert done["answer"] == tokens.strip() and tokens.strip()
    assert done["abstained"] or [s["id"] for s in done["sources"]] == [s["id"] for s in sources]


def test_a_failure_mid_stream_is_the_last_event(api: TestClient, tmp_path: Path) -> None:
    """An adapter that passes the checks made before answering (manifest, file names) but whose weights do not load:
    the answer has started streaming, so the failure comes as an `error` event, not a status."""
    generator = api.app.state.resources.generator()
    broken = tmp_path / "adapter"
    broken.mkdir()
    AdapterManifest(base_model=generator.model_id, prompt_style=PROMPT_STYLE).save(broken)
    (broken / ADAPTER_CONFIG).write_text("{}")
    (broken / ADAPTER_WEIGHTS).write_bytes(b"not safetensors")
    question = {"question": "quarterly revenue subscription sales", "stream": True, "adapter": str(broken)}
    parsed = events(api.post("/v1/ask", json=question))
    assert [name for name, _ in parsed] == ["sources", "error"]
    assert json.loads(parsed[0][1])["sources"]
    error = json.loads(parsed[1][1])["error"]
    assert error["type"] == "AdapterError" and error["message"].startswith("cannot load the adapter")
    assert api.post("/v1/ask", json={"question": "quarterly revenue", "k": 1}).status_code == 200  # still answers


def test_errors_are_one_line_json(retrieval: TestClient, corpus: Settings) -> None:
    assert_error(retrieval.post("/v1/ask", json={"question": "   "}), 400, "the question is empty")
    assert_error(retrieval.post("/v1/search", json={"query": "x", "mode": "psychic"}), 400, "mode")
    assert_error(retrieval.post("/v1/search", json={"query": "x", "kinds": ["chart"]}), 400, "unknown kind 'chart'")
    assert_error(retrieval.post("/v1/search", json={"query": "x", "k": 0}), 400, "k")
    assert_error(retrieval.post("/v1/search", json={"query": "x", "top": 3}), 400, "top")
    assert_error(retrieval.post("/v1/search", json={"query": "x", "collection": "lower"}), 400, "capital letter")
    assert_error(retrieval.post("/v1/search", json={"query": "x", "collection": "Nothing"}), 404, "Nothing")
    assert_error(retrieval.get("/v1/collections/Nothing"), 404, "Nothing")
    assert_error(retrieval.get("/v1/index/no-such-job"), 404, "no-such-job")
    assert_error(retrieval.get("/v1/nowhere"), 404, "Not Found")
    assert_error(
        retrieval.post("/v1/search", content=b"{not json", headers={"content-type": "application/json"}), 400, "JSON"
    )


def test_weaviate_down_is_503(tmp_path: Path) -> None:
    down = Settings(profile="tiny", data_dir=tmp_path, weaviate_url=f"http://127.0.0.1:{free_port()}", device="cpu")
    with TestClient(create_app(down, retrieval_only=True)) as client:
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json()["weaviate"] is False
        assert_error(client.post("/v1/search", json={"query": "revenue"}), 503, "cannot reach")
        assert_error(client.get("/v1/collections"), 503, "cannot reach")
        job = finished(client, client.post("/v1/index", files=[("files", ("notes.md", b"# N", "text/markdown"))]))
        assert job["state"] == "failed" and job["error"].startswith("cannot reach") and job["report"] is None


def test_a_key_guards_every_endpoint_but_healthz(api: TestClient) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"}):
        for method, path in (("POST", "/v1/search"), ("GET", "/v1/collections"), ("GET", "/v1/models")):
            refused = api.request(method, path, json={"query": "revenue"}, headers=headers)
            assert_error(refused, 401, "API key")
            assert refused.headers["www-authenticate"] == "Bearer"
    assert api.post("/v1/search", json={"query": "revenue"}).status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "api.example.com"])
def test_serving_beyond_loopback_needs_a_key(host: str) -> None:
    for blank in (None, SecretStr(""), SecretStr("  ")):
        with pytest.raises(ConfigError, match="MMRAG_API_KEY"):
            check_binding(host, api_key(Settings(api_key=blank)))
    check_binding(host, api_key(Settings(api_key=SecretStr(KEY))))
    for loopback in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        check_binding(loopback, None)


def test_uploads_are_checked_before_anything_is_saved(corpus: Settings) -> None:
    settings = corpus.model_copy(update={"collection": f"{corpus.collection}Checks", "max_upload_mb": 1})
    with TestClient(create_app(settings, retrieval_only=True)) as client:
        big = ("files", ("big.md", b"# x\n" + b"a" * (1024 * 1024 + 1), "text/markdown"))
        assert_error(client.post("/v1/index", files=[big]), 413, "big.md: too large")
        bad = [("files", ("chart.png", png(), "image/png")), ("files", ("data.xyz", b"1,2", "text/plain"))]
        assert_error(client.post("/v1/index", files=bad), 400, "data.xyz: unsupported file type .xyz")
        fake = ("files", ("report.pdf", b"plain words", "application/pdf"))
        assert_error(client.post("/v1/index", files=[fake]), 400, "report.pdf: named .pdf but its content is text")
        assert_error(client.post("/v1/index", data={"collection": "x"}), 400, "files")
        huge = client.post("/v1/index", content=b"x", headers={"content-length": str(50 * 2**20)})
        assert_error(huge, 413, "request body too large")  # refused before a byte of the body is read
    assert not uploads_dir(
        corpus.data_dir, settings.collection
    ).exists()  # a refused upload saves nothing, not even the good file


def test_index_job_runs_to_done_then_collections(retrieval: TestClient, corpus: Settings) -> None:
    name = f"{corpus.collection}Up"
    files = [
        ("files", ("../../evil/sales.md", b"# Sales\n\nWidget sales doubled in the northern region.", "text/md")),
        ("files", ("red.png", png(), "image/png")),
    ]
    accepted = retrieval.post("/v1/index", files=files, data={"collection": name})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["state"] in ("queued", "running") and accepted.json()["files_total"] == 2
    job = finished(retrieval, accepted)
    assert job["state"] == "done" and job["collection"] == name, job
    assert job["files_done"] == 2 and job["report"]["files"] == {"seen": 2, "indexed": 2, "unchanged": 0, "failed": 0}
    assert sorted(p.name for p in uploads_dir(corpus.data_dir, name).iterdir()) == ["red.png", "sales.md"]

    hits = retrieval.post("/v1/search", json={"query": "widget sales northern region", "collection": name}).json()
    assert hits["results"][0]["source"].endswith("sales.md")
    listed = retrieval.get("/v1/collections").json()["collections"]
    assert {c["collection"] for c in listed} >= {name, corpus.collection}
    shown = retrieval.get(f"/v1/collections/{name}").json()
    assert shown["objects"] == 2 and shown["by_kind"] == {"image": 1, "text": 1}
    assert retrieval.delete(f"/v1/collections/{name}").json() == {"collection": name, "deleted": 2}
    assert_error(retrieval.get(f"/v1/collections/{name}"), 404, name)


def chat(client: TestClient, messages: list[dict[str, Any]], **extra: Any) -> httpx.Response:
    return client.post("/v1/chat/completions", json={"model": "mmrag", "messages": messages} | extra)


def test_chat_completions_openai_shape(api: TestClient) -> None:
    assert [m["id"] for m in api.get("/v1/models").json()["data"]] == ["mmrag"]
    question = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "revenue subscription sales"}]
    reply = chat(api, question, temperature=0.2, max_tokens=50, top_p=1)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-") and body["model"] == "mmrag"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"] and choice["finish_reason"]
    assert set(body["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert isinstance(body["sources"], list) and body["standalone_question"] == "revenue subscription sales"

    streamed = chat(api, [{"role": "user", "content": [{"type": "text", "text": "revenue subscription"}]}], stream=True)
    data = [payload for _, payload in events(streamed)]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and "sources" in chunks[-1]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks).strip()

    assert_error(chat(api, question, model="gpt-4"), 404, "unknown model 'gpt-4'")
    assert_error(chat(api, [{"role": "assistant", "content": "hi"}]), 400, "last message")


def test_chat_history_makes_a_follow_up_standalone(retrieval: TestClient) -> None:
    messages = [
        {"role": "user", "content": "What was the monthly rainfall in Seattle?"},
        {"role": "assistant", "content": "Wettest in November [1]."},
        {"role": "user", "content": "and the driest month?"},
    ]
    body = chat(retrieval, messages).json()
    assert body["standalone_question"] == "What was the monthly rainfall in Seattle? and the driest month?"
    content = body["choices"][0]["message"]["content"]
    assert content.startswith("Retrieval only") and "[1]" in content and body["sources"]


@pytest.mark.slow
def test_mmrag_serve_over_http(corpus: Settings) -> None:
    """The installed command: a search and a streamed ask over real HTTP; beyond loopback without a key, or on a
    port in use, it refuses in one line."""
    env = cli_env(corpus)
    refused = subprocess.run(
        [MMRAG_SCRIPT, "serve", "--host", "0.0.0.0"], env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert "MMRAG_API_KEY" in refused.stderr

    port = free_port()
    server = subprocess.Popen(
        [MMRAG_SCRIPT, "serve", "--port", str(port), "--retrieval-only"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, server.stderr and server.stderr.read()
            time.sleep(0.2)
        taken = subprocess.run(
            [MMRAG_SCRIPT, "serve", "--port", str(port)], env=env, capture_output=True, text=True, timeout=60
        )
        assert taken.returncode == 1 and taken.stderr.strip().splitlines() == [
            f"error: cannot listen on 127.0.0.1:{port} (Address already in use): choose another --host/--port"
        ]
        found = httpx.post(f"{url}/v1/search", json={"query": "football world cup penalties"}, timeout=30)
        assert found.json()["results"][0]["source"] == "sports/football.txt"
        with httpx.stream("POST", f"{url}/v1/ask", json={"question": "football penalties", "stream": True}) as r:
            body = "".join(r.iter_text())
        assert body.startswith("event: sources\n") and "event: done\n" in body
    finally:
        server.terminate()
        assert server.wait(timeout=20) in (0, -signal.SIGTERM)  # uvicorn stops cleanly, then re-raises the signal
