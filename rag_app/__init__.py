"""Retrieval and grounded answers: a LangChain retriever over Weaviate and a LLaVA-family answerer."""
