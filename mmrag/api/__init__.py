"""The REST API (`mmrag serve`): search, ask, index uploads and manage collections over HTTP, plus an
OpenAI-compatible chat endpoint."""
