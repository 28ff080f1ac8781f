"""mmrag core: settings, the local Weaviate server, model loading and the command line."""

__version__ = "0.1.0"
