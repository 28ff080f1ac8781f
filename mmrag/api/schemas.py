"""The JSON bodies of the REST API (what /docs and /openapi.json describe). A field left out takes the server's
setting (MMRAG_*)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Mode = Literal["image", "text", "hybrid"]
JobState = Literal["queued", "running", "done", "failed"]
SOURCE_HELP = (
    "Only objects of this file or of files under this folder (an absolute path on the server), of files matching "
    "an absolute glob (* and ?), or whose source as indexed (relative to the folder indexed) starts with this text."
)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt option is an error, never silently ignored


class SearchRequest(_Body):
    query: str = Field(description="What to look for.", examples=["revenue by region"])
    k: int | None = Field(None, ge=1, le=100, description="Number of results (default: MMRAG_K).")
    mode: Mode | None = Field(None, description="Retrieval mode (default: MMRAG_MODE).")
    kinds: list[str] = Field(default_factory=list, description="Only these kinds (image, page, text, table).")
    source: str | None = Field(None, description=SOURCE_HELP)
    collection: str | None = Field(None, description="Collection (default: MMRAG_COLLECTION).")


class AskRequest(_Body):
    question: str = Field(description="A question about the indexed documents.", examples=["What was Q4 revenue?"])
    k: int | None = Field(None, ge=1, le=100, description="Sources to retrieve (default: MMRAG_K).")
    mode: Mode | None = Field(None, description="Retrieval mode (default: MMRAG_MODE).")
    kinds: list[str] = Field(default_factory=list, description="Only these kinds (image, page, text, table).")
    source: str | None = Field(None, description=SOURCE_HELP)
    collection: str | None = Field(None, description="Collection (default: MMRAG_COLLECTION).")
    adapter: str | None = Field(None, description="LoRA adapter dir or s3:// URI (default: MMRAG_ADAPTER).")
    retrieval_only: bool = Field(False, description="Only retrieve; no answer generated.")
    stream: bool = Field(False, description="Server-sent events: `sources`, `token`s, then `done` (or `error`).")


class SearchResponse(BaseModel):
    results: list[dict[str, Any]] = Field(description="Ranked sources, best first (`rank` 1 is the best).")


class AnswerResponse(BaseModel):
    answer: str
    abstained: bool
    sources: list[dict[str, Any]]
    timings: dict[str, float]


class ModelNames(BaseModel):
    profile: str = Field(description="`default` (real checkpoints) or `tiny` (tiny local models).")
    clip: str
    text: str
    vlm: str | None = Field(description="None on a retrieval-only server.")
    adapter: str | None


class Health(BaseModel):
    ok: bool = Field(description="The server works: Weaviate answers.")
    weaviate: bool
    collection: str
    models: ModelNames


class JobResponse(BaseModel):
    id: str
    state: JobState
    collection: str
    files_done: int
    files_total: int
    files: list[str] = Field(description="The uploaded files, by the names they were sent with.")
    report: dict[str, Any] | None = Field(None, description="When done: what `mmrag index --json` prints.")
    error: str | None = Field(None, description="When failed: why, in one line.")


class CollectionList(BaseModel):
    collections: list[dict[str, Any]]


class Dropped(BaseModel):
    collection: str
    deleted: int = Field(description="Objects the collection held.")


class ErrorDetail(BaseModel):
    message: str
    type: str


class ErrorResponse(BaseModel):
    error: ErrorDetail
