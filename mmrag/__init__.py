"""mmrag: multimodal retrieval-augmented question answering over charts and documents.

The one top-level name the wheel installs. `mmrag.core` holds what the packages share, `mmrag.indexer`,
`mmrag.rag_app`, `mmrag.finetune` and `mmrag.ui` are the repository's top-level folders (linked here), and
`mmrag.commands` is the command line. Imports point down: commands -> ui | finetune -> rag_app -> indexer -> core.
"""

__version__ = "0.1.0"
