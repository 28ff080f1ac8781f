"""Small helpers shared by test modules (test modules never import each other)."""

from __future__ import annotations

from typing import Any

import weaviate
import weaviate.classes as wvc


def one_object_collection(client: weaviate.WeaviateClient, name: str, text: str = "kept") -> tuple[Any, str]:
    """A new collection holding one object (self-provided vector [1, 0, 0.5]): the collection and the object's id."""
    collection = client.collections.create(
        name,
        vector_config=wvc.config.Configure.Vectors.self_provided(),
        properties=[wvc.config.Property(name="text", data_type=wvc.config.DataType.TEXT)],
    )
    return collection, str(collection.data.insert({"text": text}, vector=[1.0, 0.0, 0.5]))


SOURCE_KEYS = {
    "n",
    "id",
    "kind",
    "source",
    "source_path",
    "page",
    "label",
    "figure_label",
    "caption",
    "text",
    "image",
    "bbox",
    "score",
    "text_similarity",
    "clip_similarity",
    "bm25",
}
"""What `search --json`, `ask --json` and `batch` say of each source."""
