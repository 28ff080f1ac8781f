"""Mutated seed files through `extract_file`: whatever the bytes, it returns items or a one-line reason, never raises.

Seeds are the small valid files in tests/fuzz_corpus/ (one per reader: PNG, JPEG, GIF, WebP, TIFF, PDF with text
and a figure, HTML with a figure, Markdown with an image, a JSON caption sidecar). Each example flips bits,
truncates, inserts, deletes, repeats or overwrites bytes (with values that often sit in length and size fields).

`make test` runs a few examples per seed (derandomized, a few seconds); `make fuzz` runs many
(HYPOTHESIS_PROFILE=fuzz, random, minutes) and prints a reproducer for any failure.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmrag.indexer.extract import ExtractOptions, extract_file
from mmrag.indexer.items import FileResult

pytestmark = pytest.mark.slow  # mutated files through extraction

CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"
SEEDS = sorted(p.name for p in CORPUS.iterdir() if p.suffix != ".py" and not p.name.startswith("."))
CHART = "chart.png"
"""The image the documents show and the sidecar describes (kept intact when they are the mutated seed)."""

settings.register_profile(
    "fuzz-quick",
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz", max_examples=1000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
PROFILE = settings.get_profile("fuzz" if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz" else "fuzz-quick")

INTERESTING = [
    b"\x00",
    b"\xff",
    b"\x7f",
    b"\x80",
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\xff",
    b"\x7f\xff\xff\xff",
    b"\x80\x00\x00\x00",
    b"\x00\x01\x00\x00",
    b"\xff\xfe",
    b"99999999999",
    b"-1",
    b"NaN",
    b"[[[[[[[[",
    b"<div><div><div>",
    b"obj <<",
    b"\r\n",
]
"""Bytes that often break parsers: extreme lengths and sizes, signs, nesting openers, PDF syntax."""

position = st.integers(min_value=0, max_value=1 << 20)
mutation = st.one_of(
    st.tuples(st.just("flip"), position, st.integers(0, 7)),
    st.tuples(st.just("truncate"), position),
    st.tuples(st.just("insert"), position, st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("delete"), position, st.integers(1, 256)),
    st.tuples(st.just("repeat"), position, st.integers(1, 64), st.integers(2, 64)),
    st.tuples(st.just("overwrite"), position, st.sampled_from(INTERESTING)),
)


def mutate(data: bytes, steps: list[tuple]) -> bytes:
    buffer = bytearray(data)
    for kind, at, *args in steps:
        at = at % (len(buffer) + 1)
        if kind == "flip" and at < len(buffer):
            buffer[at] ^= 1 << args[0]
        elif kind == "truncate":
            del buffer[at:]
        elif kind == "insert":
            buffer[at:at] = args[0]
        elif kind == "delete":
            del buffer[at : at + args[0]]
        elif kind == "repeat":
            buffer[at:at] = bytes(buffer[at : at + args[0]]) * args[1]
        elif kind == "overwrite":
            buffer[at : at + len(args[0])] = args[0]
    return bytes(buffer)


def extract_mutated(seed: str, data: bytes, folder: Path) -> FileResult:
    """Write the seed's mutated bytes under its own name (beside an intact chart for the documents and the
    sidecar) and extract the file a user would index: the chart itself for the sidecar."""
    if seed != CHART:
        shutil.copyfile(CORPUS / CHART, folder / CHART)
    (folder / seed).write_bytes(data)
    target = folder / (CHART if seed.endswith(".json") else seed)
    return extract_file(target, "0" * 64, ExtractOptions())


def assert_items_or_reason(result: FileResult) -> None:
    if result.error is not None:
        assert isinstance(result.error, str) and result.error.strip(), repr(result.error)
        assert "\n" not in result.error, f"not a one-line reason: {result.error!r}"
        assert not result.items, "a failed file must not give items"
        return
    assert result.items, "neither items nor a reason"
    for warning in getattr(result, "warnings", []):
        assert isinstance(warning, str) and warning.strip() and "\n" not in warning, repr(warning)
    for item in result.items:
        assert item.content_sha256
        if item.image is not None:
            assert item.image.mode == "RGB" and min(item.image.size) >= 1


@pytest.mark.parametrize("seed", SEEDS)
def test_seeds_give_items(seed: str, tmp_path: Path) -> None:
    result = extract_mutated(seed, (CORPUS / seed).read_bytes(), tmp_path)
    assert result.error is None and result.items
    kinds = {item.kind for item in result.items}
    if seed.endswith(".pdf"):
        assert kinds == {"page", "text", "image"}  # the fuzzer starts from every path of the PDF reader
    if seed.endswith((".html", ".md")):
        assert kinds == {"text", "image"}


@pytest.mark.parametrize("seed", SEEDS)
@PROFILE
@given(steps=st.lists(mutation, min_size=1, max_size=6))
def test_mutated_file_gives_items_or_a_reason(seed: str, steps: list[tuple]) -> None:
    data = mutate((CORPUS / seed).read_bytes(), steps)
    with tempfile.TemporaryDirectory() as folder:
        assert_items_or_reason(extract_mutated(seed, data, Path(folder)))
