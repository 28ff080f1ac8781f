"""`mmrag index`: paths -> changed files -> items (worker processes) -> vectors (batched) -> Weaviate.

Idempotent and crash-safe: object ids are uuid5(path, file hash, locator), every object records its file's hash and
item count, and a file counts as unchanged only when exactly that version is stored completely. A run killed at any
point is finished by the next one: rewrites are upserts of the same ids, and stale versions are deleted after the
new one is written.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import weaviate.classes as wvc

from indexer.documents import linked_images
from indexer.embedders import ClipEmbedder, TextEmbedder
from indexer.extract import (
    IMAGE_SUFFIXES,
    SIDECAR_SUFFIXES,
    ExtractOptions,
    extract_file,
    file_digest,
    sidecars,
)
from indexer.items import FileResult, Item, object_id
from indexer.store import CLIP_VECTOR, TEXT_VECTOR, Store, Writer


class Describer(Protocol):
    """Images -> descriptions (the VLM's reading of each chart), stored in captions when indexing with --describe."""

    @property
    def name(self) -> str: ...

    def __call__(self, images: Sequence[Any], /) -> list[str]: ...


@dataclass
class IndexReport:
    seen: int = 0
    indexed: int = 0
    unchanged: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    written: int = 0
    deleted: int = 0
    items: int = 0
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "files": {
                "seen": self.seen,
                "indexed": self.indexed,
                "unchanged": self.unchanged,
                "failed": len(self.failures),
            },
            "failures": [{"path": p, "reason": r} for p, r in self.failures],
            "objects": {"written": self.written, "deleted": self.deleted},
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class Candidate:
    path: Path
    root: Path
    depends_on: tuple[Path, ...] = ()

    @property
    def relative(self) -> str:
        return str(self.path.relative_to(self.root)) if self.path != self.root else self.path.name


Progress = Callable[[int, int, int], None]
"""(files done, files to index, items embedded so far)."""


@dataclass
class Indexer:
    store: Store
    clip: ClipEmbedder
    text: TextEmbedder
    options: ExtractOptions = field(default_factory=ExtractOptions)
    workers: int = 1
    batch_items: int = 64
    describe: Describer | None = None

    def run(self, paths: Sequence[Path], *, prune: bool = False, progress: Progress | None = None) -> IndexReport:
        started = time.perf_counter()
        report = IndexReport()
        candidates, report.failures = discover(paths)
        report.seen = len(candidates) + len(report.failures)
        self.store.ensure(self.clip.name, self.text.name, lambda: (self.clip.dim, self.text.dim))
        inventory = self.store.inventory()
        todo: list[tuple[Candidate, str]] = []
        stale: set[str] = set()  # sources with objects of another file version, deleted once the new one is in
        for candidate, sha in _hash_all(candidates, report):
            state = inventory.get(str(candidate.path))
            describer = self.describe.name if self.describe is not None else None
            if state is not None and state.complete(sha, describer):
                report.unchanged += 1
            else:
                todo.append((candidate, sha))
                if state is not None and set(state.counts) - {sha}:
                    stale.add(str(candidate.path))
        written_files: list[tuple[str, str]] = []
        pending: list[tuple[Candidate, FileResult]] = []
        with self.store.writer(batch_size=self.batch_items) as write:
            for done, (candidate, result) in enumerate(self._extract(todo), start=1):
                if result.error:
                    report.failures.append((str(candidate.path), result.error))
                else:
                    pending.append((candidate, result))
                    written_files.append((str(candidate.path), result.sha256))
                    report.indexed += 1
                if sum(len(r.items) for _, r in pending) >= self.batch_items or done == len(todo):
                    report.written += self._flush(pending, write)
                    write.send()  # out while the next batch is embedded
                    report.items += sum(len(r.items) for _, r in pending)
                    pending = []
                if progress:
                    progress(done, len(todo), report.items)
        for source_path, sha in written_files:
            if source_path in stale:
                report.deleted += self.store.delete_old_versions(source_path, sha)
        if prune:
            report.deleted += self._prune(paths, candidates, inventory)
        report.seconds = time.perf_counter() - started
        return report

    def _extract(self, todo: list[tuple[Candidate, str]]) -> Iterator[tuple[Candidate, FileResult]]:
        """Extraction results in order, computed ahead (bounded) so the encoder never waits on decoding.

        workers=0: in this thread; 1: one background thread (decoding and rendering release the GIL, and the
        encoder does too, so they overlap at no start-up cost); N>1: N spawned processes (for big PDFs and trees).
        """
        if self.workers <= 0 or len(todo) <= 1:
            for candidate, sha in todo:
                yield candidate, self._extract_here(candidate.path, sha, self.options)
            return
        executor: Executor
        extract: Callable[[Path, str, ExtractOptions], FileResult]
        if self.workers == 1:
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmrag-extract")  # pdfium: one thread
            extract = self._extract_here
        else:
            executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"))
            extract = extract_file  # preprocessing stays in the main process: workers import no model code
        with executor as pool:
            pending: deque[tuple[Candidate, Future[FileResult]]] = deque()
            ahead = max(self.workers * 4, self.batch_items)  # files: a whole batch is decoded while one embeds
            for candidate, sha in todo:
                pending.append((candidate, pool.submit(extract, candidate.path, sha, self.options)))
                if len(pending) > ahead:
                    done_candidate, future = pending.popleft()
                    yield done_candidate, future.result()
            while pending:
                done_candidate, future = pending.popleft()
                yield done_candidate, future.result()

    def _extract_here(self, path: Path, sha256: str, options: ExtractOptions) -> FileResult:
        """Extraction in this process, images also preprocessed for CLIP (off the encoder's thread when threaded)."""
        result = extract_file(path, sha256, options)
        visual = [item for item in result.items if item.image is not None]
        if visual:
            images = [image for item in visual if (image := item.image) is not None]
            for item, pixels in zip(visual, self.clip.preprocess(images), strict=True):
                item.pixels = pixels
        return result

    def _flush(self, pending: list[tuple[Candidate, FileResult]], write: Writer) -> int:
        """Embed the items of several files in shared batches and hand their objects to the writer."""
        entries = [(candidate, result, item) for candidate, result in pending for item in result.items]
        items = [item for _, _, item in entries]
        visual = [i for i, item in enumerate(items) if item.image is not None]
        if self.describe is not None:
            self._add_descriptions([items[i] for i in visual if items[i].kind == "image"])
        clip_vectors: dict[int, Any] = {}
        if visual:
            images = [image for i in visual if (image := items[i].image) is not None]
            vectors = self.clip.embed_images(images, [items[i].pixels for i in visual])
            clip_vectors.update(zip(visual, vectors, strict=True))
        chunks = [i for i, item in enumerate(items) if item.image is None]
        if chunks:
            vectors = self.clip.embed_texts([items[i].text for i in chunks])
            clip_vectors.update(zip(chunks, vectors, strict=True))
        texted = [i for i, item in enumerate(items) if item.text.strip()]
        text_vectors = dict(zip(texted, self.text.embed([items[i].text for i in texted]), strict=True))
        now = datetime.now(timezone.utc)
        for i, (candidate, result, item) in enumerate(entries):
            vector = {CLIP_VECTOR: clip_vectors[i].tolist()}
            if i in text_vectors:
                vector[TEXT_VECTOR] = text_vectors[i].tolist()
            write(
                wvc.data.DataObject(
                    properties=_properties(candidate, result, item, now, self.describe),
                    uuid=object_id(str(candidate.path), result.sha256, item.locator),
                    vector=vector,
                )
            )
        return len(entries)

    def _add_descriptions(self, items: list[Item]) -> None:
        if not items or self.describe is None:
            return
        for item, description in zip(items, self.describe([item.image for item in items]), strict=True):
            item.text = f"{item.text}\n{description}".strip() if description else item.text

    def _prune(self, paths: Sequence[Path], candidates: list[Candidate], inventory: dict[str, Any]) -> int:
        present = {str(c.path) for c in candidates}
        roots = [str(Path(p).resolve()) for p in paths]
        gone = [
            source
            for source in inventory
            if source not in present
            and any(source == r or source.startswith(r.rstrip("/") + "/") for r in roots)
            and not Path(source).exists()
        ]
        return self.store.delete_sources(gone)


def discover(paths: Sequence[Path]) -> tuple[list[Candidate], list[tuple[str, str]]]:
    """Files under the given paths (hidden ones skipped), minus image sidecars and images shown by documents."""
    failures: list[tuple[str, str]] = []
    files: list[tuple[Path, Path]] = []
    for given in paths:
        path = Path(given).expanduser().resolve()
        if path.is_dir():
            root = path
            files += [(p, root) for p in sorted(path.rglob("*")) if p.is_file() and not _hidden(p, root)]
        elif path.is_file():
            files.append((path, path.parent))
        else:
            failures.append((str(given), "no such file or directory"))
    linked: dict[Path, tuple[Path, ...]] = {}
    for path, _ in files:
        linked[path] = _linked(path)
    shown = {image for images in linked.values() for image in images}
    captions = {side for path, _ in files if path.suffix.lower() in IMAGE_SUFFIXES for side in sidecars(path)}
    candidates = []
    for path, root in files:
        if path in shown or path in captions:
            continue
        depends = tuple(sidecars(path)) if path.suffix.lower() in IMAGE_SUFFIXES else linked[path]
        candidates.append(Candidate(path, root, depends))
    return candidates, failures


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _linked(path: Path) -> tuple[Path, ...]:
    if path.suffix.lower() not in (".md", ".markdown", ".html", ".htm") or path.suffix.lower() in SIDECAR_SUFFIXES:
        return ()
    try:
        return tuple(linked_images(path, path.read_bytes().decode("utf-8-sig")))
    except (OSError, UnicodeDecodeError):
        return ()  # extraction reports the problem


def _hash_all(candidates: list[Candidate], report: IndexReport) -> Iterator[tuple[Candidate, str]]:
    def digest(candidate: Candidate) -> str | Exception:
        try:
            return file_digest((candidate.path, *candidate.depends_on))
        except OSError as e:
            return e

    with ThreadPoolExecutor(max_workers=4) as pool:
        for candidate, sha in zip(candidates, pool.map(digest, candidates), strict=True):
            if isinstance(sha, Exception):
                reason = "permission denied" if isinstance(sha, PermissionError) else f"cannot read: {sha}"
                report.failures.append((str(candidate.path), reason))
            else:
                yield candidate, sha


def _properties(
    candidate: Candidate, result: FileResult, item: Item, now: datetime, describer: Describer | None
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "kind": item.kind,
        "source": candidate.relative,
        "source_path": str(candidate.path),
        "page": item.page,
        "chunk": item.chunk,
        "text": item.text,
        "content_sha256": item.content_sha256,
        "file_sha256": result.sha256,
        "n_items": len(result.items),
        "size": result.size,
        "mtime": datetime.fromtimestamp(result.mtime, timezone.utc),
        "created": now,
        "image_path": item.image_path,
    }
    if describer is not None and item.kind == "image":
        properties["describer"] = describer.name
    if item.image is not None:
        properties |= {"width": item.image.width, "height": item.image.height, "thumbnail": item.thumbnail}
    return properties
