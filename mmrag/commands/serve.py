"""`mmrag serve`: the REST API (search, ask, index uploads, collections, OpenAI-compatible chat) over HTTP."""

from __future__ import annotations

import typer

from mmrag.commands import options


def serve(
    host: str | None = typer.Option(None, help="Address to listen on (default: MMRAG_API_HOST, 127.0.0.1)."),
    port: int | None = typer.Option(None, min=1, max=65535, help="Port to listen on (default: MMRAG_API_PORT)."),
    collection: options.Collection = None,
    retrieval_only: bool = typer.Option(
        False, "--retrieval-only", help="Never load the VLM: answers are the sources found."
    ),
) -> None:
    """Serve the REST API; beyond loopback it needs MMRAG_API_KEY. Docs at /docs."""
    import uvicorn

    from mmrag.api.app import api_key, check_binding, check_port, create_app
    from mmrag.core.console import err
    from mmrag.core.settings import load_settings

    settings = load_settings(**options.overrides(api_host=host, api_port=port, collection=collection))
    check_binding(settings.api_host, api_key(settings))
    check_port(settings.api_host, settings.api_port)
    app = create_app(settings, retrieval_only=retrieval_only)
    shown = f"[{settings.api_host}]" if ":" in settings.api_host else settings.api_host
    err.print(
        f"mmrag API on http://{shown}:{settings.api_port} (collection {settings.collection}; docs at /docs)",
        highlight=False,
        markup=False,
    )
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level=settings.log_level.lower())


def register(app: typer.Typer) -> None:
    """Add this package's commands to the `mmrag` app."""
    app.command("serve")(serve)
