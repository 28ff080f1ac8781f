"""Reading text from pixels with Tesseract (pytesseract): scanned PDF pages, and images of documents when asked.

Tesseract is an optional program: `tesseract_ready` says whether it is there, and extraction turns its absence into
a note rather than an error. A language that is not installed is a setting to fix: `OcrLanguageError`, one line.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import threading

from PIL import Image, ImageFilter, ImageOps

from mmrag.core.errors import ConfigError, one_line
from mmrag.indexer.items import BadFileError

OCR_DPI = 300
"""Tesseract reads body text best at about 300 dpi: pages are rendered at it, small images upscaled towards it."""

_CONFIG = "--oem 1 --psm 3"
"""The LSTM engine, automatic page layout."""
_PYTESSERACT_LOCK = threading.Lock()
"""pytesseract takes its program and environment from module globals: one call at a time sets and uses them."""


class OcrLanguageError(BadFileError, ConfigError):
    """MMRAG_OCR_LANGUAGE names a language Tesseract does not have: the file's reason, and a setting to fix."""


class OcrError(BadFileError):
    """Tesseract failed or ran out of time on one image (that image's text is lost, not the file)."""


@functools.cache
def tesseract_ready(cmd: str) -> bool:
    """Whether the Tesseract program `cmd` (a name on PATH or a path) is there and runs (checked once)."""
    program = shutil.which(cmd)
    if program is None:
        return False
    try:
        done = subprocess.run([program, "--version"], capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and b"tesseract" in (done.stdout + done.stderr).lower()


@functools.cache
def installed_languages(cmd: str) -> frozenset[str]:
    """The languages `tesseract --list-langs` names (checked once per program)."""
    program = shutil.which(cmd) or cmd
    try:
        done = subprocess.run([program, "--list-langs"], capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    lines = (done.stdout or done.stderr).decode("utf-8", "replace").splitlines()
    return frozenset(line.strip() for line in lines[1:] if line.strip())


def check_language(cmd: str, language: str) -> None:
    """Raises OcrLanguageError unless Tesseract has every language of `language` ('eng', 'eng+deu')."""
    installed = installed_languages(cmd)
    missing = [name for name in language.split("+") if name not in installed]
    if missing:
        have = ", ".join(sorted(installed - {"osd"})) or "none"
        raise OcrLanguageError(
            f"OCR language {'+'.join(missing)} is not installed for Tesseract (installed: {have}; "
            f"see `tesseract --list-langs`, install tesseract-ocr-<lang>, or set MMRAG_OCR_LANGUAGE)"
        )


def check_setup(enabled: bool, cmd: str, language: str) -> None:
    """Before a run: when OCR is on (of scanned pages or of images) and Tesseract is there, refuse a language it
    lacks (OcrLanguageError, a ConfigError: one line, exit 1) rather than fail every scanned file with it."""
    if enabled and tesseract_ready(cmd):
        check_language(cmd, language)


def prepare(image: Image.Image, dpi: float | None = None) -> Image.Image:
    """What Tesseract reads best: grayscale, the paper's uneven tone evened out, speckles and grain taken out by a
    3x3 median filter, and the text of a small image (`dpi` unknown and under ~1700 px on its long side, or `dpi`
    under 200) enlarged towards 300 dpi. At 300 dpi body text strokes are 3-5 px wide, which the filter keeps."""
    gray = ImageOps.grayscale(image) if image.mode != "L" else image
    long_side = max(gray.size)
    if dpi is not None and dpi < 200:
        factor = min(OCR_DPI / dpi, 3.0)
    elif dpi is None and long_side < 1700:
        factor = min(2.0, 2400 / max(long_side, 1))
    else:
        factor = 1.0
    if factor > 1.05:
        size = (round(gray.width * factor), round(gray.height * factor))
        gray = gray.resize(size, Image.Resampling.LANCZOS)
    return _flatten_background(gray).filter(ImageFilter.MedianFilter(3))


def _flatten_background(gray: Image.Image) -> Image.Image:
    """The page divided by its paper tone (the lightest values around each point, smoothed), so that a page
    darker at one corner (a scan's uneven lighting, a copy's toner) binarizes evenly across it."""
    import numpy as np

    small = gray.reduce(8)
    paper = small.filter(ImageFilter.MaxFilter(5)).filter(ImageFilter.GaussianBlur(3))
    tone = np.asarray(paper.resize(gray.size, Image.Resampling.BILINEAR), dtype=np.float32)
    flat = np.asarray(gray, dtype=np.float32) * 255 / np.maximum(tone, 1)
    return Image.fromarray(np.clip(flat, 0, 255).astype(np.uint8), "L")


def ocr_image(image: Image.Image, cmd: str, language: str, timeout_s: float) -> str:
    """The text Tesseract reads in `image` (already `prepare`d) as a page of text: lines as it found them (words
    joined by spaces), paragraphs separated by a blank line. Raises OcrError when Tesseract fails or takes longer
    than `timeout_s`, OcrLanguageError for a language it does not have."""
    import pytesseract
    from pytesseract import pytesseract as runner

    check_language(cmd, language)
    timeout = max(int(timeout_s), 1)
    with _PYTESSERACT_LOCK:
        saved = runner.tesseract_cmd, runner.environ
        runner.tesseract_cmd = shutil.which(cmd) or cmd
        # one thread per Tesseract: its OpenMP threads spin, and pages already run in parallel processes
        runner.environ = os.environ | {"OMP_THREAD_LIMIT": os.environ.get("OMP_THREAD_LIMIT", "1")}
        try:
            data = pytesseract.image_to_data(
                image, lang=language, config=_CONFIG, timeout=timeout, output_type=pytesseract.Output.DICT
            )
        except pytesseract.TesseractError as e:  # a RuntimeError: caught before pytesseract's timeout below
            detail = one_line(str(e.message))
            raise OcrError(f"Tesseract failed (exit {e.status}){': ' + detail if detail else ''}") from e
        except RuntimeError as e:  # pytesseract's "Tesseract process timeout"
            raise OcrError(f"OCR took longer than {timeout} s") from e
        except OSError as e:
            raise OcrError(f"Tesseract failed: {one_line(str(e))}") from e
        finally:
            runner.tesseract_cmd, runner.environ = saved
    return _text_of(data)


def _text_of(data: dict[str, list[object]]) -> str:
    """Words back into lines and paragraphs (Tesseract's TSV numbers blocks, paragraphs and lines); a word with a
    negative confidence is not a word (Tesseract's empty boxes)."""
    paragraphs: dict[tuple[int, int], dict[int, list[str]]] = {}
    for i, word in enumerate(data["text"]):
        word = str(word).strip()
        if not word or float(str(data["conf"][i])) < 0:
            continue
        key = (int(str(data["block_num"][i])), int(str(data["par_num"][i])))
        paragraphs.setdefault(key, {}).setdefault(int(str(data["line_num"][i])), []).append(word)
    return "\n\n".join(
        "\n".join(" ".join(words) for _, words in sorted(lines.items())) for _, lines in sorted(paragraphs.items())
    )


def render_page(page: object, max_pixels: int) -> tuple[Image.Image, float]:
    """A pypdfium2 page drawn in grayscale at 300 dpi (less when that would pass `max_pixels`), and the dpi used.
    The caller holds the PDFium lock."""
    width, height = page.get_size()  # type: ignore[attr-defined]
    scale = min(OCR_DPI / 72, (max_pixels / max(width * height, 1.0)) ** 0.5)
    bitmap = page.render(scale=scale, grayscale=True)  # type: ignore[attr-defined]
    return bitmap.to_pil().convert("L"), scale * 72


def no_text_layer(text: str) -> bool:
    """A page whose text layer is empty or a few stray characters (a page number, a scanner's stamp): a scan."""
    return sum(not c.isspace() for c in text) < 16


def is_blank(image: Image.Image) -> bool:
    """Almost all white (under 0.1% of its pixels dark): nothing for OCR to read."""
    histogram = ImageOps.grayscale(image).histogram()
    return sum(histogram[:128]) < 0.001 * image.width * image.height


def unread_note(pages: list[int], ocr_on: bool) -> str:
    """The note for pages with no text layer that were not OCRed: 'no text layer on pages 1-3, 7 (...)'."""
    why = "install Tesseract to OCR them: see README" if ocr_on else "OCR is off: MMRAG_OCR"
    return f"no text layer on {'page' if len(pages) == 1 else 'pages'} {page_ranges(pages)} ({why})"


def page_ranges(pages: list[int]) -> str:
    """1, 2, 3, 7 -> '1-3, 7'."""
    runs: list[list[int]] = []
    for number in sorted(set(pages)):
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def ocr_page(page: object, max_pixels: int, cmd: str, language: str, timeout_s: float) -> str:
    """The text of a pypdfium2 page read from its pixels (rendered at 300 dpi, then `prepare`d). The caller holds
    the PDFium lock."""
    image, dpi = render_page(page, max_pixels)
    return ocr_image(prepare(image, dpi), cmd, language, timeout_s)
