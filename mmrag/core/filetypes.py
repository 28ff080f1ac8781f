"""The file types mmrag reads, by lower-case suffix: the indexer, UI uploads and source rendering agree on them."""

RASTER_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
SVG_SUFFIXES = frozenset({".svg"})
IMAGE_SUFFIXES = RASTER_SUFFIXES | SVG_SUFFIXES
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
TEXT_SUFFIXES = frozenset({".txt"}) | MARKDOWN_SUFFIXES | HTML_SUFFIXES
PDF_SUFFIXES = frozenset({".pdf"})
OFFICE_SUFFIXES = frozenset({".docx", ".pptx", ".xlsx"})
"""Office Open XML: Word, PowerPoint, Excel (macro-enabled and legacy binary formats are not read)."""
SUPPORTED_SUFFIXES = IMAGE_SUFFIXES | TEXT_SUFFIXES | PDF_SUFFIXES | OFFICE_SUFFIXES
SIDECAR_SUFFIXES = (".txt", ".json")
"""A chart's caption beside it: ``chart.txt`` or ``chart.png.txt`` (text), ``chart.json`` or ``chart.png.json``."""
