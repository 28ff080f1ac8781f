"""`mmrag index`: paths -> changed files -> items (worker processes) -> vectors (batched) -> Weaviate.

Idempotent and crash-safe: object ids are uuid5(path, file hash, locator), every object records its file's hash and
item count, and a file counts as unchanged only when exactly that version is stored completely. A run killed at any
point is finished by the next one: rewrites are upserts of the same ids, and stale versions are deleted after the
new one is written.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from mmrag.indexer.documents import inside, linked_images
from mmrag.indexer.embedders import ImageEncoder, TextEncoder
from mmrag.indexer.extract import (
    IMAGE_SUFFIXES,
    PDF_SUFFIXES,
    ExtractOptions,
    extract_file,
    failure_reason,
    file_digest,
    pdf_page_count,
    read_text,
    sidecars,
)
from mmrag.indexer.items import FileResult, Item, display_path, object_id
from mmrag.indexer.store import CLIP_VECTOR, TEXT_VECTOR, Store, StoredObject, Writer


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
    warnings: list[tuple[str, str]] = field(default_factory=list)
    """What was left out of indexed files, or not followed: (path, message)."""
    notes: list[tuple[str, str]] = field(default_factory=list)
    """What an optional program would have added to indexed files (page images need LibreOffice, pages with no text
    layer need Tesseract): (path, message). Not warnings: `--strict` does not fail on them."""
    written: int = 0
    deleted: int = 0
    items: int = 0
    found: Counter[str] = field(default_factory=Counter)
    """What the indexed files held, by `FOUND` category (files that failed are not counted)."""
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "files": {
                "seen": self.seen,
                "indexed": self.indexed,
                "unchanged": self.unchanged,
                "failed": len(self.failures),
            },
            "found": {name: self.found[name] for name in FOUND},
            "failures": [{"path": p, "reason": r} for p, r in self.failures],
            "warnings": [{"path": p, "message": m} for p, m in self.warnings],
            "notes": [{"path": p, "message": m} for p, m in self.notes],
            "objects": {"written": self.written, "deleted": self.deleted},
            "seconds": round(self.seconds, 3),
        }

    def found_line(self) -> str:
        """'12 pages, 7 figures, 2 tables, 40 text chunks': pages, figures and tables always, the rest when there."""
        parts = []
        for name in FOUND:
            n = self.found[name]
            if n or name in ("pages", "figures", "tables"):
                noun = FOUND[name] if n != 1 else FOUND[name].removesuffix("s")
                parts.append(f"{n} {noun}")
        return ", ".join(parts)


FOUND = {
    "pages": "pages",
    "figures": "figures",
    "charts": "native charts",
    "tables": "tables",
    "images": "images",
    "chunks": "text chunks",
    "ocr": "OCR text chunks",
}
"""Categories of found items in the index report (name: how the summary line says it)."""


def found_category(item: Item) -> str:
    """`FOUND` category of an item: a figure is an image inside a document (a PDF page's 'page:3:figure:1', an
    HTML or Markdown 'figure:2'), an image is an image file of its own; a native chart is an Office file's chart
    (read from its data), an OCR text chunk one whose words Tesseract read."""
    if item.origin == "chart-data":
        return "charts"
    if item.origin == "ocr" and item.kind == "text":
        return "ocr"
    if item.kind == "image":
        return "images" if item.locator == "image" else "figures"
    return {"page": "pages", "table": "tables"}.get(item.kind, "chunks")


@dataclass(frozen=True)
class Candidate:
    path: Path
    root: Path
    depends_on: tuple[Path, ...] = ()

    @property
    def key(self) -> str:
        """The path as stored in the collection (`source_path`)."""
        return display_path(self.path)

    @property
    def relative(self) -> str:
        relative = self.path.relative_to(self.root) if self.path != self.root else Path(self.path.name)
        return display_path(relative)


@dataclass(frozen=True)
class Job:
    """One extraction: a whole file, or a part (a range of pages) of a long PDF."""

    candidate: Candidate
    sha256: str
    pages: tuple[int, int] | None = None
    final: bool = True

    @property
    def weight(self) -> int:
        """Roughly how many items it yields, to bound what is extracted ahead."""
        return 2 * (self.pages[1] - self.pages[0]) if self.pages else 1


@dataclass
class PartOutcome:
    """What became of one extracted part (a whole file, or some pages of a long PDF): whether and how its items are
    written, and, on a file's last word, whether it was indexed or failed. The driver tallies these, whichever process
    extracted and wrote the part."""

    key: str
    sha256: str
    write_as: int | None = None
    """The `n_items` its objects are written with (a long file's earlier parts 0); None: not written."""
    objects: int = 0
    """Objects it is written as (set where they are written)."""
    failure: str | None = None
    """The file failed here: why (reported once per file)."""
    done: bool = False
    """The file's last part: it is indexed now, or failed."""
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    found: Counter[str] = field(default_factory=Counter)
    """On the last part of an indexed file: what the whole file held."""

    def fail(self, reason: str) -> None:
        """A part that could not be written after all (the image encoder's transform refused it): the file failed."""
        self.write_as, self.objects, self.failure, self.done, self.found = None, 0, reason, True, Counter()


@dataclass
class FileProgress:
    """Parts of one file seen so far, in order: decides what becomes of each (the same locally and on Ray)."""

    items: int = 0
    seconds: float = 0.0
    written: bool = False
    failed: bool = False
    found: Counter[str] = field(default_factory=Counter)

    def take(self, job: Job, result: FileResult, timeout_s: float) -> PartOutcome:
        outcome = PartOutcome(job.candidate.key, job.sha256)
        self.seconds += result.seconds
        if result.error is None and self.seconds > timeout_s:
            result.error = f"took longer than {timeout_s:g} s to read (MMRAG_FILE_TIMEOUT_S)"
        if self.failed:
            return outcome  # an earlier part failed: the file is reported once
        if result.error:
            self.failed = outcome.done = True
            outcome.failure = result.error
            return outcome
        outcome.warnings = list(result.warnings)
        outcome.notes = list(result.notes)
        self.items += len(result.items)
        self.found.update(found_category(item) for item in result.items)
        self.written = self.written or bool(result.items)
        outcome.write_as, outcome.objects = (self.items if result.final else 0), len(result.items)
        if result.final:
            outcome.done = True
            if self.items == 0:
                self.failed = True
                outcome.failure = "nothing to index (no text or images found)"
            else:
                outcome.found = self.found
        return outcome


@dataclass
class Tally:
    """The driver's account of the part outcomes, in any order: the report's file counts, and which file versions to
    delete at the end (a file that failed after some of its parts were written)."""

    report: IndexReport
    indexed: dict[str, tuple[str, Counter[str]]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    """Files that failed, with their version (sha256)."""
    touched: set[tuple[str, str]] = field(default_factory=set)
    """(key, sha256) of every file some of whose objects were written."""
    done: int = 0

    def add(self, outcome: PartOutcome) -> None:
        key = outcome.key
        self.report.warnings += [(key, w) for w in outcome.warnings]
        self.report.notes += [(key, n) for n in outcome.notes]
        if outcome.objects:
            self.touched.add((key, outcome.sha256))
        if outcome.failure is not None and key not in self.failed:
            self.report.failures.append((key, outcome.failure))
            self.failed[key] = outcome.sha256
            self.done += key not in self.indexed
        elif outcome.done and outcome.failure is None:
            self.indexed[key] = (outcome.sha256, outcome.found)
            self.done += key not in self.failed

    def close(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """Count the indexed files; (the written files, the abandoned ones), as (key, sha256)."""
        written = [(key, sha) for key, (sha, _) in self.indexed.items() if key not in self.failed]
        for key, (_, found) in self.indexed.items():
            if key not in self.failed:
                self.report.found.update(found)
        self.report.indexed += len(written)
        abandoned = [(key, sha) for key, sha in self.failed.items() if (key, sha) in self.touched]
        return written, abandoned


@dataclass
class Plan:
    """What a run decided before extracting anything: the report so far, the files to index, the jobs."""

    report: IndexReport
    candidates: list[Candidate]
    inventory: dict[str, Any]
    options: ExtractOptions
    todo: list[tuple[Candidate, str]]
    stale: set[str]
    """Sources with objects of another file version, deleted once the new one is in."""
    jobs: list[Job]
    started: float


Progress = Callable[[int, int, int], None]
"""(files done, files to index, items embedded so far)."""

PART_PAGES = 16
"""Long PDFs are extracted, embedded and written 16 pages at a time, so memory stays bounded."""


@dataclass
class Indexer:
    store: Store
    clip: ImageEncoder
    """Images, pages and text chunks -> the `clip` vector (CLIP by default)."""
    text: TextEncoder
    """Text -> the `text` vector."""
    options: ExtractOptions = field(default_factory=ExtractOptions)
    workers: int = 1
    batch_items: int = 64
    describe: Describer | None = None

    def run(self, paths: Sequence[Path], *, prune: bool = False, progress: Progress | None = None) -> IndexReport:
        plan = self.plan(paths)
        tally = Tally(plan.report)
        pending: list[tuple[Candidate, FileResult, int]] = []
        files: dict[str, FileProgress] = {}
        with self.store.writer(batch_size=self.batch_items) as write:
            for n, (job, result) in enumerate(self._extract(plan.jobs, plan.options), start=1):
                track = files.setdefault(job.candidate.key, FileProgress())
                outcome = track.take(job, result, plan.options.timeout_s)
                tally.add(outcome)
                if outcome.write_as is not None:
                    pending.append((job.candidate, result, outcome.write_as))
                if sum(len(r.items) for _, r, _ in pending) >= self.batch_items or n == len(plan.jobs):
                    plan.report.written += self._flush(pending, write)
                    plan.report.items += sum(len(r.items) for _, r, _ in pending)
                    pending = []
                if progress:
                    progress(tally.done, len(plan.todo), plan.report.items)
        return self.finish(plan, tally, paths, prune)

    def plan(self, paths: Sequence[Path]) -> Plan:
        """Discover the files, hash them, check the collection (created when new) and plan the extraction jobs of
        the files not stored completely in this version."""
        started = time.perf_counter()
        report = IndexReport()
        found = discover(paths, self.options.max_nesting, self.options.roots, self.options.max_text_bytes)
        candidates, report.failures, report.warnings = found.candidates, found.failures, found.warnings
        options = replace(self.options, roots=found.roots)
        report.seen = len(candidates) + len(report.failures)
        self.store.ensure(self.clip.name, self.text.name, lambda: (self.clip.dim, self.text.dim))
        inventory = self.store.inventory()
        todo: list[tuple[Candidate, str]] = []
        stale: set[str] = set()
        describer = self.describe.name if self.describe is not None else None
        for candidate, sha in _hash_all(candidates, report):
            state = inventory.get(candidate.key)
            if state is not None and state.complete(sha, describer):
                report.unchanged += 1
            else:
                todo.append((candidate, sha))
                if state is not None and set(state.counts) - {sha}:
                    stale.add(candidate.key)
        jobs = plan_jobs(todo, options.max_pdf_pages)
        return Plan(report, candidates, inventory, options, todo, stale, jobs, started)

    def finish(self, plan: Plan, tally: Tally, paths: Sequence[Path], prune: bool) -> IndexReport:
        """After every part is written: delete the abandoned versions and the replaced ones (and, with `prune`, the
        objects of files that are gone)."""
        report = plan.report
        written_files, abandoned = tally.close()
        for source_path, sha in abandoned:
            report.deleted += self.store.delete_version(source_path, sha)
        for source_path, sha in written_files:
            if source_path in plan.stale:
                report.deleted += self.store.delete_old_versions(source_path, sha)
        if prune:
            report.deleted += self._prune(paths, plan.candidates, plan.inventory)
        report.seconds = time.perf_counter() - plan.started
        return report

    def _extract(self, jobs: list[Job], options: ExtractOptions) -> Iterator[tuple[Job, FileResult]]:
        """Extraction results in order, computed ahead (bounded) so the encoder never waits on decoding.

        workers=0: in this thread; 1: one background thread (decoding and rendering release the GIL, and the
        encoder does too, so they overlap at no start-up cost); N>1: N spawned processes (for big PDFs and trees).
        """
        if self.workers <= 0 or len(jobs) <= 1:
            for job in jobs:
                yield job, self._extract_here(job, options)
            return
        executor: Executor
        if self.workers == 1:
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmrag-extract")  # pdfium: one thread
            extract: Callable[[Job, ExtractOptions], FileResult] = self._extract_here
        else:
            executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_exit_with_parent,
                initargs=(os.getpid(),),
            )
            extract = extract_job  # preprocessing stays in the main process: workers import no model code
        with executor as pool:
            pending: deque[tuple[Job, Future[FileResult]]] = deque()
            budget = max(self.workers * 4, 2 * self.batch_items)  # items: a whole batch decoded while one embeds
            for job in jobs:
                pending.append((job, pool.submit(extract, job, options)))
                while pending and sum(j.weight for j, _ in pending) > budget:
                    done_job, future = pending.popleft()
                    yield done_job, future.result()
            while pending:
                done_job, future = pending.popleft()
                yield done_job, future.result()

    def _extract_here(self, job: Job, options: ExtractOptions) -> FileResult:
        """Extraction in this process, images also prepared for the image encoder (off the encoder's thread when
        threaded)."""
        result = extract_job(job, options)
        self.prepare(result)
        return result

    def prepare(self, result: FileResult) -> None:
        """Prepare a result's images for the image encoder; then the full images are dropped unless charts are to be
        described (thumbnail and pixels remain). What CLIP's transform cannot take is that file's failure."""
        visual = [item for item in result.items if item.image is not None]
        if not visual:
            return
        try:
            images = [image for item in visual if (image := item.image) is not None]
            for item, pixels in zip(visual, self.clip.prepare(images), strict=True):
                item.pixels = pixels
                if self.describe is None or item.kind != "image":
                    item.image = None
        except Exception as e:  # that file's failure, not the run's
            result.items, result.error = [], failure_reason(e)

    def write_parts(self, parts: Sequence[tuple[Candidate, FileResult, PartOutcome]]) -> list[PartOutcome]:
        """Prepare, embed and write parts extracted elsewhere (a Ray actor's batch), waiting until every object is
        stored; their outcomes, with the parts CLIP's transform refused marked failed."""
        pending = []
        for candidate, result, outcome in parts:
            if outcome.write_as is None:
                continue
            self.prepare(result)
            if result.error is not None:
                outcome.fail(result.error)
            else:
                pending.append((candidate, result, outcome.write_as))
        with self.store.writer(batch_size=self.batch_items) as write:
            self._flush(pending, write)
        return [outcome for _, _, outcome in parts]

    def _flush(self, pending: list[tuple[Candidate, FileResult, int]], write: Writer) -> int:
        """Embed the items of several files in shared batches and hand their objects to the writer, a batch at a
        time (a long file is written as it is embedded)."""
        entries = [(c, r, item, n_items) for c, r, n_items in pending for item in r.items]
        for start in range(0, len(entries), self.batch_items):
            self._flush_batch(entries[start : start + self.batch_items], write)
            write.send()  # out while the next batch is embedded
        return len(entries)

    def _flush_batch(self, entries: list[tuple[Candidate, FileResult, Item, int]], write: Writer) -> None:
        items = [item for _, _, item, _ in entries]
        visual = [i for i, item in enumerate(items) if item.visual]
        if self.describe is not None:
            self._add_descriptions([items[i] for i in visual if items[i].kind == "image"])
        clip_vectors: dict[int, Any] = {}
        if visual:
            vectors = self.clip.encode_images([_pixels_or_image(items[i]) for i in visual])
            clip_vectors.update(zip(visual, vectors, strict=True))
        chunks = [i for i, item in enumerate(items) if not item.visual]
        if chunks:
            vectors = self.clip.encode_texts([items[i].text for i in chunks])
            clip_vectors.update(zip(chunks, vectors, strict=True))
        texted = [i for i, item in enumerate(items) if item.text.strip()]
        text_vectors = dict(zip(texted, self.text.encode_texts([items[i].text for i in texted]), strict=True))
        now = datetime.now(timezone.utc)
        for i, (candidate, result, item, n_items) in enumerate(entries):
            vector = {CLIP_VECTOR: clip_vectors[i].tolist()}
            if i in text_vectors:
                vector[TEXT_VECTOR] = text_vectors[i].tolist()
            write(
                StoredObject(
                    properties=_properties(candidate, result, item, n_items, now, self.describe),
                    id=object_id(candidate.key, result.sha256, item.locator),
                    vectors=vector,
                )
            )
        for item in items:  # written: the pixels are not needed any more
            item.pixels = None

    def _add_descriptions(self, items: list[Item]) -> None:
        items = [item for item in items if item.image is not None]
        if not items or self.describe is None:
            return
        for item, description in zip(items, self.describe([item.image for item in items]), strict=True):
            item.text = f"{item.text}\n{description}".strip() if description else item.text

    def _prune(self, paths: Sequence[Path], candidates: list[Candidate], inventory: dict[str, Any]) -> int:
        present = {c.key for c in candidates}
        roots = [display_path(Path(p).expanduser().resolve()) for p in paths]
        gone = [
            source
            for source in inventory
            if source not in present
            and any(source == r or source.startswith(r.rstrip("/") + "/") for r in roots)
            and not Path(source).exists()
        ]
        return self.store.delete_sources(gone)


def _pixels_or_image(item: Item) -> Any:
    """What the image encoder takes for a visual item: its prepared pixels, else the image."""
    return item.pixels if item.pixels is not None else item.image


def _exit_with_parent(parent: int) -> None:
    """In a worker process: exit as soon as the indexing process is gone (killed), instead of lingering."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="mmrag-parent-watch").start()


def extract_job(job: Job, options: ExtractOptions) -> FileResult:
    return extract_file(job.candidate.path, job.sha256, options, job.pages, job.final)


def plan_jobs(todo: Sequence[tuple[Candidate, str]], max_pages: int) -> list[Job]:
    """One job per file, but long PDFs in parts of PART_PAGES pages."""
    jobs = []
    for candidate, sha in todo:
        pages = pdf_page_count(candidate.path) if candidate.path.suffix.lower() in PDF_SUFFIXES else None
        if pages is None or pages <= PART_PAGES:
            jobs.append(Job(candidate, sha))
            continue
        last = min(pages, max_pages)
        starts = range(1, last + 1, PART_PAGES)
        jobs += [Job(candidate, sha, (s, s + PART_PAGES), final=s + PART_PAGES > last) for s in starts]
    return jobs


@dataclass
class Found:
    """What `discover` found under the given paths."""

    candidates: list[Candidate]
    failures: list[tuple[str, str]]
    warnings: list[tuple[str, str]]
    roots: tuple[Path, ...]
    """The indexed folders (a file's own folder when a file was given), plus the allowed extra ones."""


def discover(
    paths: Sequence[Path], max_nesting: int = 64, extra_roots: Sequence[Path] = (), max_text_bytes: int = 2 * 2**20
) -> Found:
    """Files under the given paths (hidden ones skipped), minus image sidecars and images shown by documents.

    Folders are walked without following symlinked folders, at most `max_nesting` deep; a symlinked file counts
    only when it points inside the indexed folders (or `extra_roots`)."""
    found = Found([], [], [], ())
    files: list[tuple[Path, Path]] = []
    roots: list[Path] = []
    for given in paths:
        try:
            path = Path(given).expanduser().resolve()
        except (OSError, RuntimeError) as e:
            found.failures.append((display_path(given), f"cannot resolve: {e}"))
            continue
        if path.is_dir():
            roots.append(path)
            files += [(p, path) for p in _walk(path, max_nesting, found)]
        elif path.is_file():
            roots.append(path.parent)
            files.append((path, path.parent))
        else:
            found.failures.append((display_path(given), "no such file or directory"))
    found.roots = tuple(roots) + tuple(extra_roots)
    files = [(p, root) for p, root in files if _confined(p, found)]
    linked = {path: _linked(path, found.roots, max_text_bytes, max_nesting) for path, _ in files}
    shown = {image for images in linked.values() for image in images}
    captions = {side for path, _ in files if path.suffix.lower() in IMAGE_SUFFIXES for side in sidecars(path)}
    for path, root in sorted(files):
        if path in shown or path in captions:
            continue
        depends = tuple(sidecars(path)) if path.suffix.lower() in IMAGE_SUFFIXES else linked[path]
        found.candidates.append(Candidate(path, root, depends))
    return found


def _walk(root: Path, max_nesting: int, found: Found) -> Iterator[Path]:
    """Regular files below `root` (iterative, so no depth can exhaust the stack); hidden names skipped."""
    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            with os.scandir(folder) as entries:
                listed = sorted(entries, key=lambda e: e.name)
        except OSError as e:
            found.failures.append((display_path(folder), failure_reason(e)))
            continue
        for entry in listed:
            if entry.name.startswith("."):
                continue
            path = folder / entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if depth + 1 >= max_nesting:
                        found.failures.append(
                            (display_path(path), f"folder nested deeper than {max_nesting} (MMRAG_MAX_NESTING)")
                        )
                    else:
                        stack.append((path, depth + 1))
                elif entry.is_symlink() and entry.is_dir():
                    found.warnings.append((display_path(path), "symlinked folder not followed"))
                elif entry.is_file():
                    yield path
                elif entry.is_symlink():
                    found.failures.append((display_path(path), "broken symlink"))
                else:
                    found.failures.append((display_path(path), "not a regular file"))
            except OSError as e:
                found.failures.append((display_path(path), failure_reason(e)))


def _confined(path: Path, found: Found) -> bool:
    """A symlinked file counts only when it points inside the indexed folders."""
    if not path.is_symlink():
        return True
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        found.failures.append((display_path(path), "broken symlink"))
        return False
    if inside(target, found.roots):
        return True
    found.failures.append(
        (display_path(path), "symlink to a file outside the indexed folders (MMRAG_EXTRA_ROOTS allows more)")
    )
    return False


def _linked(path: Path, roots: Sequence[Path], max_text_bytes: int, max_nesting: int) -> tuple[Path, ...]:
    """The images a document shows, read as extraction reads it (the same text limit and nesting bound)."""
    if path.suffix.lower() not in (".md", ".markdown", ".html", ".htm"):
        return ()
    try:
        return tuple(linked_images(path, read_text(path, max_text_bytes), roots, max_nesting))
    except Exception:
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
                report.failures.append((candidate.key, failure_reason(sha)))
            else:
                yield candidate, sha


def _properties(
    candidate: Candidate, result: FileResult, item: Item, n_items: int, now: datetime, describer: Describer | None
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "kind": item.kind,
        "source": candidate.relative,
        "source_path": candidate.key,
        "page": item.page,
        "chunk": item.chunk,
        "text": item.text,
        "content_sha256": item.content_sha256,
        "file_sha256": result.sha256,
        "n_items": n_items,
        "size": result.size,
        "mtime": datetime.fromtimestamp(result.mtime, timezone.utc),
        "created": now,
        "image_path": item.image_path,
        "label": item.label,
        "caption": item.caption,
        "origin": item.origin,
        "shape": item.shape,
    }
    if item.bbox is not None:
        properties["bbox"] = [round(float(v), 2) for v in item.bbox]
    if describer is not None and item.kind == "image":
        properties["describer"] = describer.name
    if item.size is not None:
        properties |= {"width": item.size[0], "height": item.size[1], "thumbnail": item.thumbnail}
    return properties
