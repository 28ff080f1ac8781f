"""Write the seed files that tests/test_fuzz_extract.py mutates (small valid files, one per reader).

    .venv/bin/python tests/fuzz_corpus/make_seeds.py

Deterministic: running it again rewrites the same bytes. The seeds are committed; rerun this after changing it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from tests.badfiles import chart_image, image_bytes, report_pdf  # noqa: E402


def main() -> None:
    chart = chart_image(96, 72, 1)
    seeds = {
        "chart.png": image_bytes("PNG", chart, optimize=True),
        "photo.jpg": image_bytes("JPEG", chart, quality=60),
        "anim.gif": _gif(),
        "chart.webp": image_bytes("WEBP", chart, lossless=True),
        "chart.tiff": image_bytes("TIFF", chart, compression="tiff_deflate"),
        "report.pdf": report_pdf(),
        "figure.html": (
            b"<html><head><title>Review</title><style>p {color: red}</style></head><body><h1>Quarterly review</h1>"
            b"<p>Sales rose in the spring &amp; summer.</p><figure><img src='chart.png' alt='sales'>"
            b"<figcaption>Sales by quarter</figcaption></figure><script>var x = 1;</script></body></html>"
        ),
        "note.md": (
            b"# Planning notes\n\nThe team met to review the results.\n\n"
            b"![Sales by quarter: Q4 was the strongest](chart.png)\n\n"
            b"- hiring\n  - support\n> quoted *text* with `code`\n\n<img src='chart.png' alt='raw'>\n"
        ),
        "chart.json": json.dumps(
            {"title": "Sales by quarter", "data": {"Q1": 1.2, "Q2": 1.5}, "notes": ["a", {"b": [1, 2]}]}
        ).encode(),
    }
    for name, data in seeds.items():
        (HERE / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")


def _gif() -> bytes:
    import io

    frames = [chart_image(48, 36, i) for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buffer.getvalue()


if __name__ == "__main__":
    main()
