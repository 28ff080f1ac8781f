"""Test corpora: the sample corpus plus every kind of bad file, and many small charts."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from mmrag.commands.sample_corpus import write_sample_corpus
from tests.badfiles import bomb_png

BAD_FILES = {
    "bad/corrupt.png": "corrupt",
    "bad/empty.txt": "empty file",
    "bad/truncated.png": "truncated",
    "bad/encrypted.pdf": "encrypted PDF",
    "bad/bomb.png": "decompression bomb",
    "bad/data.xyz": "unsupported file type .xyz",
    "bad/latin1.txt": "not UTF-8",
    "bad/broken.pdf": "corrupt or unreadable PDF",
}


def write_mixed_corpus(root: Path) -> Path:
    """Sample charts, PDF, Markdown and HTML with figures, and one bad file of each kind under bad/."""
    write_sample_corpus(root)
    (root / "page.html").write_text(
        "<html><body><h1>Quarterly review</h1><p>Sales rose in the spring.</p>"
        "<figure><img src='charts/temperature.jpg' alt='temps'><figcaption>Monthly temperatures peaked in July"
        "</figcaption></figure><script>var ignored = 1;</script></body></html>"
    )
    bad = root / "bad"
    bad.mkdir()
    (bad / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"definitely not png data" * 10)
    (bad / "empty.txt").write_bytes(b"")
    png = (root / "charts" / "headcount.png").read_bytes()
    (bad / "truncated.png").write_bytes(png[: len(png) // 2])
    _encrypted_pdf(root / "report.pdf", bad / "encrypted.pdf")
    (bad / "bomb.png").write_bytes(bomb_png(60_000, 60_000))
    (bad / "data.xyz").write_text("1,2,3")
    (bad / "latin1.txt").write_bytes("Caf\xe9 cr\xe8me".encode("latin-1"))
    (bad / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj garbage\n%%EOF")
    return root


def write_many_charts(root: Path, n: int, size: int = 96) -> Path:
    """n small distinct bar charts drawn with PIL (fast), each with a caption sidecar."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image = Image.new("RGB", (size, size), "white")
        draw = ImageDraw.Draw(image)
        for bar in range(4):
            height = (i * 7 + bar * 13) % (size - 10) + 5
            colour = ((i * 40) % 255, (bar * 60) % 255, (i * bar * 17) % 255)
            draw.rectangle((10 + bar * 20, size - height, 24 + bar * 20, size - 1), fill=colour)
        image.save(root / f"chart_{i:04d}.png")
        (root / f"chart_{i:04d}.txt").write_text(f"Chart number {i} of the test set.")
    return root


def _encrypted_pdf(source: Path, target: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(source).pages:
        writer.add_page(page)
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-256")
    with target.open("wb") as f:
        writer.write(f)


TEXTS = {
    "science/biology.txt": "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar and oxygen.",
    "finance/revenue.txt": "The company's quarterly revenue rose to 2.4 million dollars, driven by subscription sales.",
    "sports/football.txt": "The football world cup final went to penalties after a goalless match in extra time.",
}
CAPTIONS = {
    "charts/rainfall.png": "Monthly rainfall in Seattle: wettest in November with 160 millimetres.",
    "charts/population.png": "Population of European capital cities in millions: Berlin, Madrid, Rome.",
}


def write_known_corpus(root: Path) -> Path:
    """Three texts on unrelated topics and two captioned charts, each question's answer in exactly one file."""
    for name, text in TEXTS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    for i, (name, caption) in enumerate(CAPTIONS.items()):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        image = Image.new("RGB", (160, 120), "white")
        ImageDraw.Draw(image).rectangle((20 + i * 30, 40, 60 + i * 30, 110), fill=(40 * i, 90, 200))
        image.save(path)
        path.with_suffix(".txt").write_text(caption)
    return root
