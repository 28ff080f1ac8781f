"""The REST API: `create_app(settings)` is the FastAPI app that `mmrag serve` runs.

Endpoints only parse input and call library functions (rag_app, indexer); the long-lived pieces (Weaviate client,
encoders, VLM) are the server's `Resources`. Every error is JSON, `{"error": {"message": one line, "type": ...}}`,
with a status that says whose fault it is (400 the request, 401 the key, 404 an unknown collection, job or object,
413 a file too large, 503 Weaviate or a model unavailable); never a traceback. Sync endpoints run in FastAPI's
thread pool, so searches run concurrently.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, File, Form, UploadFile
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from mmrag.api import schemas
from mmrag.api.errors import add_error_handlers, error_body
from mmrag.api.events import answer_parts, event_stream, sse
from mmrag.api.jobs import JobQueue, save_uploads
from mmrag.api.openai import chat_router
from mmrag.api.resources import Resources, with_overrides
from mmrag.core.errors import ConfigError, MmragError
from mmrag.core.settings import Settings
from mmrag.indexer.uploads import Upload, UploadTooLargeError
from mmrag.rag_app.chain import Prepared, RagChain

log = logging.getLogger(__name__)

MAX_FILES = 20
"""Files in one upload request."""
_LOOPBACK_NAMES = ("localhost",)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def api_key(settings: Settings) -> bytes | None:
    """MMRAG_API_KEY's bytes; None when it is unset or blank (a blank key guards nothing)."""
    key = settings.api_key.get_secret_value().strip() if settings.api_key is not None else ""
    return key.encode() if key else None


def check_binding(host: str, key: bytes | None) -> None:
    """Refuse to listen beyond loopback without an API key (ConfigError)."""
    if key is None and not _is_loopback(host):
        raise ConfigError(f"refusing to serve on {host} without an API key: set MMRAG_API_KEY, or listen on 127.0.0.1")


def check_port(host: str, port: int) -> None:
    """Fail in one line (ConfigError) when `host:port` cannot be listened on (taken, or not an address here)."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind((host.strip("[]"), port))
    except OSError as e:
        reason = e.strerror or str(e)
        raise ConfigError(f"cannot listen on {host}:{port} ({reason}): choose another --host/--port") from e


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


class BodyLimit:
    """Refuse (413) a request whose declared body is larger than any allowed upload, before it is read and spooled
    to disk. (A body sent without Content-Length is still capped per file when it is checked.)"""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            declared = dict(scope["headers"]).get(b"content-length", b"0")
            if declared.isdigit() and int(declared) > self.max_bytes:
                limit = f"{self.max_bytes // 2**20} MB"
                response = _too_large(f"request body too large ({int(declared) / 2**20:.1f} MB; at most {limit})")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _too_large(message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "RequestTooLarge"}}, status_code=413)


def create_app(settings: Settings, *, retrieval_only: bool = False) -> FastAPI:
    """The API over `settings` (the default collection, models and limits of every request)."""
    resources = Resources(settings, retrieval_only=retrieval_only)
    jobs = JobQueue(resources.embedders)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:  # connect now (starting the local Weaviate if it is down), so the first request does not wait
            await run_in_threadpool(resources.client)
        except MmragError as e:  # /healthz says so, and each request tries again
            log.warning("Weaviate: %s", e)
        yield
        jobs.stop()
        resources.close()

    app = FastAPI(
        title="mmrag",
        summary="Multimodal RAG over charts and documents: search, ask with cited sources, index uploads.",
        lifespan=lifespan,
        responses={400: {"model": schemas.ErrorResponse}, 401: {"model": schemas.ErrorResponse}},
    )
    app.state.resources, app.state.jobs = resources, jobs
    app.add_middleware(BodyLimit, max_bytes=MAX_FILES * (settings.max_upload_mb + 1) * 1024 * 1024)
    add_error_handlers(app)
    app.include_router(_health_router(resources))
    guarded = [Depends(_key_check(settings))]
    app.include_router(_query_router(resources), dependencies=guarded)
    app.include_router(_index_router(resources, jobs), dependencies=guarded)
    app.include_router(_collections_router(settings), dependencies=guarded)
    app.include_router(chat_router(resources), dependencies=guarded)
    return app


# Auth


def _key_check(settings: Settings) -> Callable[..., None]:
    """Every guarded endpoint needs `Authorization: Bearer MMRAG_API_KEY` when a key is set (compared in constant
    time)."""
    bearer = HTTPBearer(auto_error=False, description="MMRAG_API_KEY, when the server has one.")
    expected = api_key(settings)

    def check(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if expected is None:
            return
        if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), expected):
            raise HTTPException(401, "missing or wrong API key (Authorization: Bearer KEY)", _CHALLENGE)

    return check


# Endpoints


def _health_router(resources: Resources) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=schemas.Health, responses={503: {"model": schemas.Health}})
    def healthz() -> JSONResponse:
        """Whether the server works (Weaviate answers), its default collection and models. Needs no key."""
        s = resources.settings
        ready = resources.weaviate_ready()
        models = {
            "profile": s.profile,
            "clip": s.clip_model,
            "text": s.text_model,
            "vlm": None if resources.retrieval_only else s.vlm_model,
            "adapter": s.adapter,
        }
        body = {"ok": ready, "weaviate": ready, "collection": s.collection, "models": models}
        return JSONResponse(body, status_code=200 if ready else 503)

    return router


def _query_router(resources: Resources) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["query"])

    @router.post("/search", response_model=schemas.SearchResponse)
    def search(body: schemas.SearchRequest) -> dict[str, Any]:
        """Ranked sources for a query, best first; no answer generated."""
        from mmrag.rag_app.chain import check_question
        from mmrag.rag_app.sources import Source

        query = check_question(body.query)
        settings = with_overrides(resources.settings, k=body.k, mode=body.mode, collection=body.collection)
        chain = resources.chain(settings, retrieval_only=True)
        documents = chain.retriever.invoke(query, kinds=tuple(body.kinds), source_prefix=body.source)
        sources = [Source.from_document(n, d) for n, d in enumerate(documents, start=1)]
        return {"results": [{"rank": s.n} | s.as_json() for s in sources]}

    @router.post(
        "/ask",
        response_model=schemas.AnswerResponse,
        responses={200: {"content": {"text/event-stream": {}}, "description": "JSON, or events with `stream`"}},
    )
    def ask(body: schemas.AskRequest) -> Any:
        """An answer with its numbered sources; with `stream`, server-sent events: `sources`, each `token` as it is
        generated, then `done` with the whole answer (or `error`)."""
        settings = with_overrides(
            resources.settings, k=body.k, mode=body.mode, collection=body.collection, adapter=body.adapter
        )
        chain = resources.chain(settings, retrieval_only=body.retrieval_only or resources.retrieval_only)
        options = chain.options.replace(kinds=tuple(body.kinds), source_prefix=body.source)
        prepared = chain.prepare(body.question, options)
        if body.stream:
            return event_stream(_answer_events(chain, prepared))
        return chain.finish(prepared).as_json()

    return router


def _answer_events(chain: RagChain, prepared: Prepared) -> Iterator[bytes]:
    yield sse({"sources": [s.as_json() for s in prepared.sources]}, "sources")
    try:
        for part in answer_parts(chain, prepared):
            yield sse({"text": part}, "token") if isinstance(part, str) else sse(part.as_json(), "done")
    except Exception as e:  # the status line is sent already: the error is the last event
        if not isinstance(e, MmragError):
            log.error("streamed answer failed", exc_info=e)
        yield sse(error_body(e), "error")


def _index_router(resources: Resources, jobs: JobQueue) -> APIRouter:
    router = APIRouter(prefix="/v1/index", tags=["index"])

    @router.post("", status_code=202, response_model=schemas.JobResponse)
    def index(
        files: Annotated[list[UploadFile], File(description="Charts, PDFs and text files.")],
        collection: Annotated[str | None, Form(description="Collection (default: MMRAG_COLLECTION).")] = None,
    ) -> dict[str, Any]:
        """Check and save the files, then index them in the background: poll `GET /v1/index/{id}`. A refused file
        (type, content, size) means nothing is saved."""
        settings = with_overrides(resources.settings, collection=collection or None)
        if len(files) > MAX_FILES:
            raise ConfigError(f"too many files ({len(files)}; at most {MAX_FILES} per request)")
        uploads = [_read(f, settings.max_upload_mb) for f in files]
        paths = save_uploads(settings, uploads)
        return jobs.submit(settings, [u.name for u in uploads], paths).as_json()

    @router.get("/{job_id}", response_model=schemas.JobResponse)
    def job(job_id: str) -> dict[str, Any]:
        """A job's state (queued, running, done, failed), its progress, and when done the index report."""
        return jobs.get(job_id).as_json()

    return router


def _read(file: UploadFile, max_upload_mb: int) -> Upload:
    name = file.filename or "upload"
    limit = max_upload_mb * 1024 * 1024
    size = file.size if file.size is not None else 0
    if size > limit:  # refused before it is read into memory
        raise UploadTooLargeError(f"{name}: too large ({size / 2**20:.1f} MB; at most {max_upload_mb} MB)")
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise UploadTooLargeError(f"{name}: too large (more than {max_upload_mb} MB)")
    return Upload(name, data)


def _collections_router(settings: Settings) -> APIRouter:
    from mmrag.indexer import service

    router = APIRouter(prefix="/v1/collections", tags=["collections"])

    @router.get("", response_model=schemas.CollectionList)
    def collections() -> dict[str, Any]:
        """Every collection mmrag built on the server, with its objects and models."""
        return {"collections": [c.as_json() for c in service.list_collections(settings)]}

    @router.get("/{name}")
    def collection(name: str) -> dict[str, Any]:
        """A collection's objects, in all and by kind, and the models that built it."""
        return service.show_collection(settings, with_overrides(settings, collection=name).collection).as_json()

    @router.delete("/{name}", response_model=schemas.Dropped)
    def drop(name: str) -> dict[str, Any]:
        """Delete a collection, schema included (its uploaded files stay under the data folder)."""
        checked = with_overrides(settings, collection=name).collection
        return {"collection": checked, "deleted": service.drop_collection(settings, checked)}

    return router
