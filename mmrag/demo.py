"""`mmrag demo`: the main job on the embedded default, start to finish."""

from __future__ import annotations

import time

from rich.console import Console

from mmrag.client import connect, local_server
from mmrag.settings import Settings


def run_demo(settings: Settings, out: Console) -> None:
    """Start Weaviate (unless an external one is set), write one object with a vector, read it back, stop."""
    import weaviate.classes as wvc

    server = None if settings.weaviate_url else local_server(settings)
    was_running = server is not None and server.status().running
    started = time.perf_counter()
    client = connect(settings)
    out.print(f"Weaviate ready in {time.perf_counter() - started:.1f} s")
    name = f"{settings.collection}DemoCheck"
    try:
        if client.collections.exists(name):
            client.collections.delete(name)
        collection = client.collections.create(
            name,
            vector_config=wvc.config.Configure.Vectors.self_provided(),
            properties=[wvc.config.Property(name="text", data_type=wvc.config.DataType.TEXT)],
        )
        uuid = collection.data.insert({"text": "hello from mmrag"}, vector=[0.1, 0.2, 0.3, 0.4])
        found = collection.query.near_vector([0.1, 0.2, 0.3, 0.4], limit=1, include_vector=True)
        obj = found.objects[0]
        out.print(f"wrote and read back object {uuid}: text={obj.properties['text']!r}, vector={obj.vector}")
        client.collections.delete(name)
    finally:
        client.close()
        if server is not None and not was_running:
            server.stop()
            out.print("Weaviate stopped")
