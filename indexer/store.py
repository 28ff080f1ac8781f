"""The Weaviate collection: its versioned schema, the models it was built with, writes, queries, deletes and stats.

The only module that talks to Weaviate about a collection: queries return `Hit`s, stats a `CollectionStats`, and a
full object (written or read back) is a `StoredObject`, so no caller handles Weaviate's own types.

One object per item. Named vectors: `clip` (image embedding for images and pages, CLIP text embedding for text
chunks and tables) and `text` (the text embedder, on chunks, captions and tables); BM25 over `text`. A figure or table
also keeps its `label` ("Figure 2"), `caption` and `bbox` on its PDF page, so every answer can say where it came from.
The collection description holds the schema version and the models (id and vector size) that built it, and other
models or schema versions are refused. On a cluster, a `Replication` says how many nodes keep each object (fixed when
the collection is created) and how many replicas confirm each write and answer each read.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import weaviate
import weaviate.classes as wvc
from weaviate.classes.config import (
    Configure,
    ConsistencyLevel,
    DataType,
    Property,
    ReplicationDeletionStrategy,
    Tokenization,
    VectorDistances,
)
from weaviate.classes.query import Filter, MetadataQuery
from weaviate.exceptions import WeaviateBaseError

from mmrag.core.errors import ConfigError, MmragError, WeaviateUnavailableError, first_line
from mmrag.core.settings import Consistency, Settings
from mmrag.indexer.items import Box

SCHEMA_VERSION = 3
"""2: figures and tables with `label`, `caption` and `bbox`. 3: `origin` (text read by OCR, a chart drawn from its
data) and `shape` (where in an Office file); a v2 collection is upgraded in place (the two properties added)."""
_UPGRADABLE = frozenset({2})
"""Schema versions this one upgrades in place (by adding the properties of `_v3_properties`)."""
CLIP_VECTOR = "clip"
TEXT_VECTOR = "text"
T = TypeVar("T")
_DELETE_PAGE = 5000
_HIT_PROPERTIES = [
    "kind",
    "source",
    "source_path",
    "page",
    "chunk",
    "text",
    "image_path",
    "label",
    "caption",
    "bbox",
    "origin",
    "shape",
]
_REBUILD = (
    "Index your files again into another collection (MMRAG_COLLECTION), or delete this one "
    "(mmrag delete --all) and index them again (mmrag index)"
)


class CollectionMismatchError(MmragError):
    """The collection was built with other models or another schema version."""


class UnknownCollectionError(MmragError):
    """The collection does not exist (nothing indexed into it yet)."""


class UnknownObjectError(MmragError):
    """No object has this id in the collection."""


@dataclass(frozen=True)
class CollectionInfo:
    """What built a collection; stored as JSON in its description."""

    clip_model: str
    clip_dim: int
    text_model: str
    text_dim: int
    schema_version: int = SCHEMA_VERSION

    def to_description(self) -> str:
        return json.dumps({"mmrag": asdict(self)}, sort_keys=True)

    @classmethod
    def from_description(cls, description: str | None) -> CollectionInfo | None:
        try:
            return cls(**json.loads(description or "")["mmrag"])
        except (json.JSONDecodeError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class Replication:
    """How a collection is replicated across a cluster's nodes. The factor and async repair apply when the collection
    is created; the consistency levels to every write (objects and deletes) and every read (queries, fetches)."""

    factor: int = 1
    async_enabled: bool = True
    write: Consistency | None = None
    """None: Weaviate's default (QUORUM)."""
    read: Consistency | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Replication:
        return cls(
            settings.replication_factor,
            settings.async_replication,
            settings.write_consistency,
            settings.read_consistency,
        )


@dataclass
class SourceState:
    """Objects stored for one source file, by file content hash."""

    counts: Counter[str] = field(default_factory=Counter)
    expected: dict[str, int] = field(default_factory=dict)
    describers: set[str | None] = field(default_factory=set)
    """The describer of each image object (None: not described)."""

    def complete(self, sha256: str, describer: str | None = None) -> bool:
        """Exactly one version stored, and all of its items (not a crash mid-file), and, when charts are to be
        described, every image described by that describer."""
        stored = set(self.counts) == {sha256} and self.counts[sha256] == self.expected.get(sha256)
        return stored and (describer is None or self.describers <= {describer})


@dataclass(frozen=True)
class Hit:
    """One object a query returned: what it is, where it comes from, and the query's raw score for it."""

    id: str
    kind: str
    source: str
    """The file's name relative to the folder it was indexed from."""
    source_path: str
    text: str = ""
    """A chunk's text, a figure's caption (and description), a table as Markdown."""
    page: int | None = None
    chunk: int | None = None
    image_path: str | None = None
    """The image file, when the object is one."""
    label: str | None = None
    """A figure's or table's label as printed ('Figure 2')."""
    caption: str | None = None
    bbox: Box | None = None
    """(x0, top, x1, bottom) in points on its PDF page as displayed."""
    origin: str | None = None
    """'ocr': its text was read from pixels by Tesseract; 'chart-data': a native Office chart (text = its data)."""
    shape: str | None = None
    """Where in an Office file: the shape or chart name ('Chart 2', 'Sheet "Sales": Chart 1')."""
    score: float | None = None
    """A vector query's cosine similarity, a keyword query's BM25 score; None for a fetch."""


@dataclass(frozen=True)
class Where:
    """Which objects a query may return: all of these conditions (none: every object)."""

    kinds: tuple[str, ...] = ()
    """Objects of one of these kinds; none: any kind."""
    source_prefix: str | None = None
    """An absolute path: the objects of that file or of every file under that folder; an absolute glob (`*`, `?`;
    `*` also matches `/`): the objects of the files whose `source_path` matches; a relative text: the objects whose
    `source` (relative to the folder indexed) starts with it."""
    label: str | None = None
    """Figures and tables with this label ('Figure 2')."""


@dataclass(frozen=True)
class StoredObject:
    """An object as written and as read back whole: its id, every property, and its named vectors."""

    properties: dict[str, Any]
    id: str | None = None
    """None: Weaviate picks one (the indexer always gives one, so a rerun replaces instead of duplicating)."""
    vectors: dict[str, list[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class CollectionStats:
    """What `mmrag stats` shows: objects in all and by kind, and the models (and schema) that built them."""

    collection: str
    objects: int
    by_kind: dict[str, int]
    info: CollectionInfo

    def as_json(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "objects": self.objects,
            "by_kind": dict(self.by_kind),
            "models": {
                "clip": {"id": self.info.clip_model, "dim": self.info.clip_dim},
                "text": {"id": self.info.text_model, "dim": self.info.text_dim},
            },
            "schema_version": self.info.schema_version,
        }


def _properties() -> list[Property]:
    def field_(name: str, data_type: DataType = DataType.TEXT) -> Property:
        return Property(name=name, data_type=data_type, tokenization=Tokenization.FIELD, index_searchable=False)

    def number(name: str, data_type: DataType = DataType.INT) -> Property:
        return Property(name=name, data_type=data_type, index_range_filters=True)

    return [
        field_("kind"),
        field_("source"),
        field_("source_path"),
        number("page"),
        number("chunk"),
        Property(name="text", data_type=DataType.TEXT, tokenization=Tokenization.WORD),
        field_("content_sha256"),
        field_("file_sha256"),
        number("n_items"),
        number("size"),
        Property(name="mtime", data_type=DataType.DATE),
        number("width"),
        number("height"),
        Property(name="created", data_type=DataType.DATE),
        field_("image_path"),
        Property(name="thumbnail", data_type=DataType.BLOB),
        field_("describer"),
        field_("label"),  # filterable: `label == "Figure 2"`
        Property(name="caption", data_type=DataType.TEXT, index_searchable=False, index_filterable=False),
        Property(name="bbox", data_type=DataType.NUMBER_ARRAY, index_filterable=False),
        *_v3_properties(),
    ]


def _v3_properties() -> list[Property]:
    return [
        Property(name="origin", data_type=DataType.TEXT, tokenization=Tokenization.FIELD, index_searchable=False),
        Property(name="shape", data_type=DataType.TEXT, index_searchable=False, index_filterable=False),
    ]


class Store:
    """One collection of indexed items."""

    def __init__(self, client: weaviate.WeaviateClient, name: str, replication: Replication = Replication()) -> None:
        self.client = client
        self.name = name
        self.replication = replication

    @classmethod
    def from_settings(cls, client: weaviate.WeaviateClient, settings: Settings, name: str | None = None) -> Store:
        """The settings' collection (or `name`), replicated and read/written at the settings' levels."""
        return cls(client, name or settings.collection, Replication.from_settings(settings))

    @property
    def _collection(self) -> Any:
        """The collection, reading at the read consistency level."""
        return _at_level(self.client.collections.use(self.name), self.replication.read)

    @property
    def _writable(self) -> Any:
        """The collection, writing at the write consistency level."""
        return _at_level(self.client.collections.use(self.name), self.replication.write)

    def exists(self) -> bool:
        return bool(self._call(lambda: self.client.collections.exists(self.name)))

    def info(self) -> CollectionInfo | None:
        if not self.exists():
            return None
        config = self._call(lambda: self._collection.config.get())
        return CollectionInfo.from_description(config.description)

    def require(self, current_schema: bool = False) -> CollectionInfo:
        """The info of an existing mmrag collection, or a clear error; with `current_schema`, also refused when it
        was built with another schema version (its objects lack properties that searches return)."""
        info = self.info()
        if info is None:
            if self.exists():
                raise CollectionMismatchError(f"collection {self.name} was not created by mmrag")
            raise UnknownCollectionError(f"collection {self.name} does not exist: index some files first (mmrag index)")
        if current_schema and info.schema_version in _UPGRADABLE:
            info = self._upgrade(info)
        if current_schema and info.schema_version != SCHEMA_VERSION:
            raise CollectionMismatchError(
                f"collection {self.name} was built with schema v{info.schema_version}; this version of mmrag reads "
                f"schema v{SCHEMA_VERSION}. {_REBUILD}"
            )
        return info

    def ensure(self, clip_model: str, text_model: str, dims: Callable[[], tuple[int, int]]) -> CollectionInfo:
        """Create the collection, or check it was built with these models and schema (`dims` loads the models,
        so it is called only when the collection is new)."""
        if not self.exists():
            clip_dim, text_dim = dims()
            info = CollectionInfo(clip_model, clip_dim, text_model, text_dim)
            self._create(info)
            return info
        current = self.require()
        if current.schema_version in _UPGRADABLE:
            current = self._upgrade(current)
        if (current.clip_model, current.text_model, current.schema_version) != (clip_model, text_model, SCHEMA_VERSION):
            raise CollectionMismatchError(
                f"collection {self.name} was built with CLIP {current.clip_model} and text model "
                f"{current.text_model} (schema v{current.schema_version}); these settings use CLIP {clip_model} and "
                f"{text_model} (schema v{SCHEMA_VERSION}). {_REBUILD}"
            )
        return current

    def _upgrade(self, info: CollectionInfo) -> CollectionInfo:
        """Bring a collection of an older schema to this one by adding the properties it lacks (nothing stored is
        touched; objects written before simply have no value for them)."""
        have = self._property_names()
        for prop in [prop for prop in _v3_properties() if prop.name not in have]:
            try:
                self._collection.config.add_property(prop)
            except WeaviateBaseError as e:
                if prop.name in self._property_names():  # another process upgraded it meanwhile
                    continue
                raise CollectionMismatchError(
                    f"collection {self.name} (schema v{info.schema_version}) could not be upgraded to schema "
                    f"v{SCHEMA_VERSION} ({first_line(e)}): run mmrag index once with a key that may change it"
                ) from e
        upgraded = CollectionInfo(info.clip_model, info.clip_dim, info.text_model, info.text_dim)
        self._call(lambda: self._collection.config.update(description=upgraded.to_description()))
        return upgraded

    def _property_names(self) -> set[str]:
        return {prop.name for prop in self._call(lambda: self._collection.config.get()).properties}

    def _create(self, info: CollectionInfo) -> None:
        hnsw = Configure.VectorIndex.hnsw(distance_metric=VectorDistances.COSINE)
        factor = self.replication.factor
        if factor > 1:
            live = self._live_nodes()
            if factor > live:
                raise ConfigError(
                    f"MMRAG_REPLICATION_FACTOR={factor} needs {factor} nodes, but the cluster has {live} live: "
                    f"start more nodes (mmrag weaviate start --nodes {factor}) or lower the factor"
                )
        self._call(
            lambda: self.client.collections.create(
                self.name,
                description=info.to_description(),
                properties=_properties(),
                vector_config=[
                    Configure.Vectors.self_provided(name=CLIP_VECTOR, vector_index_config=hnsw),
                    Configure.Vectors.self_provided(name=TEXT_VECTOR, vector_index_config=hnsw),
                ],
                inverted_index_config=Configure.inverted_index(index_property_length=False),
                replication_config=_replication_config(self.replication),
            )
        )

    def _live_nodes(self) -> int:
        nodes = self._call(lambda: self.client.cluster.nodes())
        return sum(1 for node in nodes if node.status == "HEALTHY")

    # Queries

    def near_vector(self, vector: Sequence[float], target: str, limit: int, where: Where = Where()) -> list[Hit]:
        """The `limit` objects nearest to `vector` by the named vector `target` (CLIP_VECTOR, TEXT_VECTOR), with
        their cosine similarity as score."""
        result = self._call(
            lambda: self._collection.query.near_vector(
                list(vector),
                target_vector=target,
                limit=limit,
                filters=_filter(where),
                return_properties=_HIT_PROPERTIES,
                return_metadata=MetadataQuery(distance=True),
            )
        )
        return [_hit(o, 1.0 - float(o.metadata.distance or 0.0)) for o in result.objects]

    def bm25(self, query: str, limit: int, where: Where = Where()) -> list[Hit]:
        """The `limit` objects whose text best matches the words of `query` (BM25), with their BM25 score."""
        result = self._call(
            lambda: self._collection.query.bm25(
                query,
                query_properties=["text"],
                limit=limit,
                filters=_filter(where),
                return_properties=_HIT_PROPERTIES,
                return_metadata=MetadataQuery(score=True),
            )
        )
        return [_hit(o, float(o.metadata.score or 0.0)) for o in result.objects]

    def find(self, where: Where, limit: int = 1000) -> list[Hit]:
        """Objects that match `where`, in no particular order."""
        result = self._call(
            lambda: self._collection.query.fetch_objects(
                filters=_filter(where), limit=limit, return_properties=_HIT_PROPERTIES
            )
        )
        return [_hit(o) for o in result.objects]

    def get(self, object_id: str) -> Hit:
        """One object by id, or UnknownObjectError."""
        obj = self._fetch(object_id, _HIT_PROPERTIES)
        if obj is None:
            raise UnknownObjectError(f"no object {object_id} in collection {self.name}")
        return _hit(obj)

    def thumbnail(self, object_id: str) -> bytes | None:
        """The stored thumbnail (JPEG) of an image or page; None for other objects and unknown ids."""
        obj = self._fetch(object_id, ["thumbnail"])
        encoded = obj.properties.get("thumbnail") if obj is not None else None
        return base64.b64decode(encoded) if encoded else None

    def _fetch(self, object_id: str, properties: list[str]) -> Any:
        try:
            uuid.UUID(object_id)
        except ValueError as e:
            raise UnknownObjectError(f"{object_id!r} is not an object id (ids look like {uuid.UUID(int=0)})") from e
        return self._call(lambda: self._collection.query.fetch_object_by_id(object_id, return_properties=properties))

    def objects(self, include_vectors: bool = False) -> Iterator[StoredObject]:
        """Every object: its properties but the thumbnail (`thumbnail` reads it) and, when asked, its vectors."""
        try:
            for obj in self._collection.iterator(include_vector=include_vectors):
                yield StoredObject(dict(obj.properties), str(obj.uuid), dict(obj.vector) if include_vectors else {})
        except WeaviateBaseError as e:
            raise _unavailable(e) from e

    def inventory(self) -> dict[str, SourceState]:
        """Per absolute source path: how many objects of each file version are stored, and how many expected."""
        states: dict[str, SourceState] = defaultdict(SourceState)
        props = ["source_path", "file_sha256", "n_items", "kind", "describer"]

        def scan() -> None:
            for obj in self._collection.iterator(return_properties=props):
                p = obj.properties
                state = states[str(p["source_path"])]
                sha = str(p["file_sha256"])
                state.counts[sha] += 1
                # a long file's earlier parts are written with 0 (total unknown yet); its last part holds the total
                state.expected[sha] = max(state.expected.get(sha, 0), int(p["n_items"] or 0))
                if p["kind"] == "image":
                    state.describers.add(p.get("describer"))

        self._call(scan)
        return dict(states)

    def stats(self) -> CollectionStats:
        info = self.require()

        def count() -> tuple[int, dict[str, int]]:
            total = self._collection.aggregate.over_all(total_count=True).total_count or 0
            grouped = self._collection.aggregate.over_all(group_by="kind", total_count=True)
            return total, {str(g.grouped_by.value): int(g.total_count or 0) for g in grouped.groups}

        total, by_kind = self._call(count)
        return CollectionStats(self.name, int(total), by_kind, info)

    # Writes and deletes

    @contextmanager
    def writer(self, batch_size: int = 128) -> Iterator[Writer]:
        """A batch writer: objects go out in `insert_many` requests from a background thread (at most two in
        flight), so writing overlaps embedding. Upserts: a repeated id is replaced, not duplicated. Leaving the
        block waits for every request, then raises if any object was not written."""
        writer = Writer(self, batch_size)
        try:
            yield writer
            writer.close()
        finally:
            writer.abandon()

    def _insert_many(self, objects: list[StoredObject]) -> Any:
        """One `insert_many` request (Weaviate's errors are left to the writer, which reports them per batch)."""
        return self._writable.data.insert_many(
            [wvc.data.DataObject(properties=o.properties, uuid=o.id, vector=o.vectors or None) for o in objects]
        )

    def _delete_where(self, where: Any) -> int:
        deleted = 0
        while True:
            result = self._call(lambda: self._writable.data.delete_many(where=where))
            deleted += int(result.successful)
            if result.matches < _DELETE_PAGE or result.successful == 0:
                return deleted

    def delete_old_versions(self, source_path: str, sha256: str) -> int:
        path = Filter.by_property("source_path").equal(source_path)
        return self._delete_where(path & Filter.by_property("file_sha256").not_equal(sha256))

    def delete_version(self, source_path: str, sha256: str) -> int:
        """Delete the objects of one version of a source (parts of a file that then failed)."""
        path = Filter.by_property("source_path").equal(source_path)
        return self._delete_where(path & Filter.by_property("file_sha256").equal(sha256))

    def delete_sources(self, source_paths: Iterable[str]) -> int:
        paths = list(source_paths)
        deleted = 0
        for start in range(0, len(paths), 100):
            deleted += self._delete_where(Filter.by_property("source_path").contains_any(paths[start : start + 100]))
        return deleted

    def delete_under(self, path: str) -> int:
        """Delete the objects of the source file at this absolute path, of every file under this folder, or of
        every file matching this absolute glob (see `Where.source_prefix`)."""
        self.require()
        if not path.startswith("/"):
            raise MmragError(f"not an absolute path: {path}")
        return self._delete_where(_source_filter(path))

    def drop(self) -> int:
        """Delete the whole collection, schema included; how many objects it held."""
        self.require()
        count = self._call(lambda: self._collection.aggregate.over_all(total_count=True).total_count or 0)
        self._call(lambda: self.client.collections.delete(self.name))
        return int(count)

    def _call(self, fn: Callable[[], T]) -> T:
        """Run a Weaviate request; connection problems become one clear WeaviateUnavailableError."""
        try:
            return fn()
        except WeaviateBaseError as e:
            raise _unavailable(e) from e


def _at_level(collection: Any, level: Consistency | None) -> Any:
    return collection if level is None else collection.with_consistency_level(ConsistencyLevel(level))


def _replication_config(replication: Replication) -> Any:
    """Weaviate's replication config for a new collection (None: unreplicated, as before replication existed).
    Deletes win by time: a replica that was down while a file was re-indexed must not bring its old objects back."""
    if replication.factor == 1:
        return None
    return Configure.replication(
        factor=replication.factor,
        async_enabled=replication.async_enabled,
        deletion_strategy=ReplicationDeletionStrategy.TIME_BASED_RESOLUTION,
    )


def _unavailable(error: WeaviateBaseError) -> WeaviateUnavailableError:
    return WeaviateUnavailableError(f"Weaviate request failed ({first_line(error)}); is the server running?")


def _filter(where: Where) -> Any:
    """Weaviate's filter for `where` (None: no condition)."""
    clauses = []
    if where.kinds:
        clauses.append(Filter.by_property("kind").contains_any(list(where.kinds)))
    if where.source_prefix:
        clauses.append(_source_filter(where.source_prefix))
    if where.label is not None:
        clauses.append(Filter.by_property("label").equal(where.label))
    if not clauses:
        return None
    return Filter.all_of(clauses) if len(clauses) > 1 else clauses[0]


def _source_filter(pattern: str) -> Any:
    """See `Where.source_prefix`."""
    if not pattern.startswith("/"):
        return Filter.by_property("source").like(pattern.rstrip("*") + "*")
    if any(c in pattern for c in "*?"):
        return Filter.by_property("source_path").like(pattern.replace("**", "*"))
    path = pattern.rstrip("/") or "/"
    exact = Filter.by_property("source_path").equal(path)
    return exact | Filter.by_property("source_path").like(path.rstrip("/") + "/*")


def list_collections(client: weaviate.WeaviateClient) -> list[CollectionStats]:
    """Every collection mmrag built on this server, by name, with its objects (in all and by kind) and models."""
    try:
        configs = client.collections.list_all(simple=True)
    except WeaviateBaseError as e:
        raise _unavailable(e) from e
    ours = sorted(name for name, c in configs.items() if CollectionInfo.from_description(c.description) is not None)
    return [Store(client, name).stats() for name in ours]


def _hit(obj: Any, score: float | None = None) -> Hit:
    p = obj.properties
    bbox = p.get("bbox")
    return Hit(
        id=str(obj.uuid),
        kind=str(p.get("kind") or ""),
        source=str(p.get("source") or ""),
        source_path=str(p.get("source_path") or ""),
        text=str(p.get("text") or ""),
        page=_int_or_none(p.get("page")),
        chunk=_int_or_none(p.get("chunk")),
        image_path=p.get("image_path") or None,
        label=p.get("label") or None,
        caption=p.get("caption") or None,
        bbox=(float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3])) if bbox and len(bbox) == 4 else None,
        origin=p.get("origin") or None,
        shape=p.get("shape") or None,
        score=score,
    )


def _int_or_none(value: Any) -> int | None:
    return int(value) if value is not None else None


class Writer:
    """See `Store.writer`. Call it with each object; `send()` sends what is buffered without waiting for more."""

    def __init__(self, store: Store, batch_size: int) -> None:
        self._store = store
        self._batch_size = batch_size
        self._buffer: list[StoredObject] = []
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmrag-write")
        self._in_flight: deque[Future[Any]] = deque()

    def __call__(self, obj: StoredObject) -> None:
        self._buffer.append(obj)
        if len(self._buffer) >= self._batch_size:
            self.send()

    def send(self) -> None:
        if not self._buffer:
            return
        objects, self._buffer = self._buffer, []
        while len(self._in_flight) >= 2:  # back-pressure: a slow server slows the producer, memory stays bounded
            self._check(self._in_flight.popleft())
        self._in_flight.append(self._pool.submit(self._store._insert_many, objects))

    def close(self) -> None:
        """Send the rest and wait for every request; then the first failure is raised."""
        self.send()
        failures: list[MmragError] = []
        while self._in_flight:
            try:
                self._check(self._in_flight.popleft())
            except MmragError as e:
                failures.append(e)
        if failures:
            raise failures[0]

    def abandon(self) -> None:
        """After an error: the requests already sent finish (at most two), nothing more is sent."""
        self._pool.shutdown(wait=True)

    @staticmethod
    def _check(future: Future[Any]) -> None:
        try:
            result = future.result()
        except WeaviateBaseError as e:
            raise WeaviateUnavailableError(
                f"writing to Weaviate failed ({first_line(e)}); is the server running?"
            ) from e
        if result.has_errors:
            first = next(iter(result.errors.values()))
            raise WeaviateUnavailableError(f"{len(result.errors)} objects were not written: {first.message}")
