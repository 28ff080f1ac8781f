"""mmrag core: settings, the local Weaviate server, the one client and model-loading path, the command line."""

__version__ = "0.1.0"
