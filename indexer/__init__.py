"""Indexing: charts, images, PDFs and text documents into Weaviate with CLIP and text vectors."""
