"""Scanned pages whose words are known: seeded text drawn at 300 dpi, clean or with a scanner's defects, saved as an
image-only PDF (no text layer) and as one PNG per page, with the words as drawn in folder/truth.json.

    corpus = make_scan_corpus(folder, seed=HELD_OUT_SEEDS[0], pages=2, noisy=True)
    word_accuracy(corpus.pages[0], ocr_text)      # 1 - word edit distance / words drawn

A page: a heading, then two or three paragraphs of English-like sentences from a word list with numbers in them
("12.5%", "1,250", "2019"), in DejaVu Sans or Serif (matplotlib ships them) at 10-12 pt on A4 or Letter. Noisy pages
add what scanners and copiers do: an uneven paper tone, gaussian noise, speckles, a slight blur, a rotation of
0.5-2 degrees either way, and JPEG artefacts. Dev seeds tune the OCR; held-out seeds measure it (tests and
bench/office.py).
"""

from __future__ import annotations

import io
import json
import random
import string
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

DEV_SEEDS = (1, 2, 3, 1001, 1002, 1003)
"""Looked at while tuning the OCR (1001-1003 showed that uneven paper tone needed evening out)."""
HELD_OUT_SEEDS = (2001, 2002, 2003)
DPI = 300
PAPER = {"A4": (8.27, 11.69), "Letter": (8.5, 11.0)}
"""Paper sizes in inches."""

_WORD_LIST = """
the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were
her she there been one all we their has would when if so no will can more other its about what up out them into
time some could these two may then first any like now my over such our man me even most made after also did many
before must through back years where much your way well down should because each just those people how too little
state good very make world still own see men work long get here between both life being under never day same
another know while last might us great old year off come since against go came right used take three states himself
few house use during without again place around however home small found thought went say part once high general
upon school every does number water room market report growth sales region quarter budget team project plan result
value price cost level data method system model service energy supply demand policy support research change process
design table figure chapter section review study analysis survey share rate total average index
"""
WORDS = _WORD_LIST.split()
FONTS = ("DejaVuSans.ttf", "DejaVuSerif.ttf")


@dataclass
class ScanCorpus:
    folder: Path
    seed: int
    noisy: bool
    pdf: Path
    """The pages as one image-only PDF."""
    pngs: list[Path]
    """Each page as a PNG at 300 dpi."""
    pages: list[str]
    """Each page's text as drawn: lines joined by newlines, paragraphs by blank lines."""


def make_scan_corpus(folder: Path, seed: int, pages: int = 2, noisy: bool = False) -> ScanCorpus:
    """Writes scan-<seed>-<clean|noisy>.pdf, a PNG per page and truth.json (appended to when several corpora share
    the folder)."""
    rng = random.Random(seed * 2 + noisy)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"scan-{seed}-{'noisy' if noisy else 'clean'}"
    paper = rng.choice(sorted(PAPER))
    font_path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / rng.choice(FONTS)
    images, texts, pngs = [], [], []
    for number in range(1, pages + 1):
        image, text = _draw_page(rng, number, PAPER[paper], font_path)
        if noisy:
            image = _degrade(image, rng)
        png = folder / f"{stem}-p{number}.png"
        image.save(png, dpi=(DPI, DPI))
        images.append(image)
        texts.append(text)
        pngs.append(png)
    pdf = folder / f"{stem}.pdf"
    images[0].save(pdf, save_all=True, append_images=images[1:], resolution=DPI, quality=90)
    corpus = ScanCorpus(folder=folder, seed=seed, noisy=noisy, pdf=pdf, pngs=pngs, pages=texts)
    _write_truth(corpus, paper, font_path.name)
    return corpus


def word_accuracy(truth: str, ocr: str) -> float:
    """1 - (word-level edit distance between the text drawn and the text read) / words drawn, ignoring case and
    punctuation at either end of a word; 0 when worse than nothing."""
    expected, found = _words(truth), _words(ocr)
    if not expected:
        return 1.0 if not found else 0.0
    return max(0.0, 1.0 - _edit_distance(expected, found) / len(expected))


def _words(text: str) -> list[str]:
    words = (word.strip(string.punctuation + "\u2018\u2019\u201c\u201d").lower() for word in text.split())
    return [word for word in words if word]


def _edit_distance(a: list[str], b: list[str]) -> int:
    previous = list(range(len(b) + 1))
    for i, word in enumerate(a, 1):
        current = [i]
        for j, other in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != other)))
        previous = current
    return previous[-1]


# --------------------------------------------------------------------------------------------------------- text


def _number(rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        return f"{rng.uniform(0.5, 99):.1f}%"
    if kind == 1:
        return f"{rng.randrange(1000, 99999):,}"
    if kind == 2:
        return str(rng.randrange(1990, 2030))
    return str(rng.randrange(2, 500))


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randrange(7, 16))]
    if rng.random() < 0.6:
        words.insert(rng.randrange(1, len(words)), _number(rng))
    if len(words) > 9 and rng.random() < 0.3:
        words[rng.randrange(3, len(words) - 2)] += ","
    return " ".join(words).capitalize() + "."


def _heading(rng: random.Random, number: int) -> str:
    return f"{number}. " + " ".join(rng.choice(WORDS).capitalize() for _ in range(rng.randrange(2, 5)))


# ------------------------------------------------------------------------------------------------------- drawing


def _draw_page(
    rng: random.Random, number: int, inches: tuple[float, float], font_path: Path
) -> tuple[Image.Image, str]:
    width, height = round(inches[0] * DPI), round(inches[1] * DPI)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    size = round(rng.uniform(10, 12) * DPI / 72)  # points -> pixels
    body = ImageFont.truetype(str(font_path), size)
    heading = ImageFont.truetype(str(font_path), round(size * 1.5))
    margin = DPI  # one inch
    line_height = round(size * 1.45)
    y = margin
    title = _heading(rng, number)
    draw.text((margin, y), title, font=heading, fill=0)
    y += round(size * 1.5 * 2)
    paragraphs = []
    for _ in range(rng.randrange(2, 4)):
        lines = _wrap(" ".join(_sentence(rng) for _ in range(rng.randrange(3, 6))), body, width - 2 * margin)
        if y + line_height * len(lines) > height - margin:
            break
        for line in lines:
            draw.text((margin, y), line, font=body, fill=0)
            y += line_height
        y += line_height
        paragraphs.append("\n".join(lines))
    return image, "\n\n".join([title, *paragraphs])


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if line and font.getlength(candidate) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    return [*lines, line] if line else lines


def _degrade(image: Image.Image, rng: random.Random) -> Image.Image:
    """A scanner's and copier's defects: uneven paper tone, blur, noise, speckles, rotation, JPEG artefacts."""
    np_rng = np.random.default_rng(rng.randrange(2**32))
    width, height = image.size
    angle = rng.uniform(0.5, 2.0) * rng.choice((-1, 1))
    image = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=255)
    scanned = round(DPI * rng.uniform(0.6, 0.8))  # scanned at 180-240 dpi, stored at 300
    small = image.resize((width * scanned // DPI, height * scanned // DPI), Image.Resampling.BILINEAR)
    image = small.resize((width, height), Image.Resampling.BICUBIC)
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.7, 1.2)))
    pixels = np.asarray(image, dtype=np.float32)
    ys, xs = np.mgrid[0:height, 0:width]
    tone = 255 - rng.uniform(20, 45) * (xs / width * rng.random() + ys / height * rng.random())
    ink = rng.uniform(30, 80)
    pixels = ink + pixels / 255 * (tone - ink)  # greyish ink, paper darkening towards one corner
    pixels += np_rng.normal(0, rng.uniform(14, 22), pixels.shape)
    speckles = np_rng.random(pixels.shape) < rng.uniform(0.001, 0.003)
    pixels[speckles] = np_rng.uniform(0, 90, int(speckles.sum()))
    noisy = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")
    buffer = io.BytesIO()
    noisy.save(buffer, format="JPEG", quality=rng.randrange(30, 50))
    buffer.seek(0)
    with Image.open(buffer) as jpeg:
        return jpeg.convert("L")


def _write_truth(corpus: ScanCorpus, paper: str, font: str) -> None:
    path = corpus.folder / "truth.json"
    truth = json.loads(path.read_text()) if path.exists() else {"corpora": []}
    entry = asdict(corpus) | {"paper": paper, "font": font}
    entry["folder"] = str(corpus.folder)
    entry["pdf"] = corpus.pdf.name
    entry["pngs"] = [png.name for png in corpus.pngs]
    truth["corpora"] = [c for c in truth["corpora"] if c["pdf"] != corpus.pdf.name] + [entry]
    path.write_text(json.dumps(truth, indent=1))
