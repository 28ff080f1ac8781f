"""A new encoder is one class: two small deterministic encoders (no model) index a folder and search it for real."""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mmrag.commands.sample_corpus import write_sample_corpus
from mmrag.core.client import connect
from mmrag.core.models import resolve_models
from mmrag.core.server import LocalWeaviate
from mmrag.core.settings import Settings
from mmrag.indexer.embedders import ClipEmbedder, ImageEncoder, TextEmbedder, TextEncoder, embedders_for
from mmrag.indexer.pipeline import Indexer
from mmrag.indexer.store import CollectionInfo, Store
from mmrag.rag_app.search import Mode, Searcher, SearchOptions
from tests.corpus import write_known_corpus
from tests.helpers import module_settings

COLOURS = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0), "yellow": (1.0, 1.0, 0.0)}


class ColourEncoder(ImageEncoder):
    """An image's mean colour as an RGB direction (its grey part, white and black, counts for nothing); a text's
    colour words in the same space, so "the red chart" finds the red one. A fourth axis, "no colour", keeps every
    vector non-zero. Preparing shrinks the image ahead of encoding."""

    name = "colour-rgb"
    dim = 4

    def prepare(self, images: Sequence[Image.Image]) -> list[Any]:
        return [np.asarray(image.convert("RGB").resize((32, 32)), np.float32) / 255.0 for image in images]

    def encode_images(self, images: Sequence[Any]) -> np.ndarray:
        pixels = [self.prepare([i])[0] if isinstance(i, Image.Image) else i for i in images]
        hues = [(p - p.min(axis=2, keepdims=True)).reshape(-1, 3).mean(axis=0) for p in pixels]
        return _normalised([[*hue, 0.05] for hue in hues], self.dim)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            named = [COLOURS[word] for word in _words(text) if word in COLOURS]
            rows.append([*np.sum(named, axis=0), 0.0] if named else [0.0, 0.0, 0.0, 1.0])
        return _normalised(rows, self.dim)


class HashedWords(TextEncoder):
    """Bag of words hashed into 64 buckets (feature hashing): texts sharing words are near."""

    name = "hashed-words-64"
    dim = 64

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            row = np.zeros(self.dim)
            for word in _words(text) or [""]:
                row[zlib.crc32(word.encode()) % self.dim] += 1.0
            rows.append(row)
        return _normalised(rows, self.dim)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _normalised(rows: Sequence[np.ndarray], dim: int) -> np.ndarray:
    array = np.asarray(rows, np.float32).reshape(-1, dim)
    return array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)


def bar_chart(path: Path, colour: str) -> None:
    image = Image.new("RGB", (160, 120), "white")
    draw = ImageDraw.Draw(image)
    for i, height in enumerate((40, 90, 60)):
        draw.rectangle((20 + 45 * i, 110 - height, 50 + 45 * i, 110), fill=tuple(int(255 * c) for c in COLOURS[colour]))
    image.save(path)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    for colour in ("red", "blue"):
        bar_chart(tmp_path / f"{colour}.png", colour)
    (tmp_path / "bread.txt").write_text("Knead the flour with yeast and water, then bake the loaf in a hot oven.")
    (tmp_path / "tides.txt").write_text("The moon pulls the ocean: high tide comes twice a day on most coasts.")
    return tmp_path


@pytest.mark.parametrize("workers", [0, 1])  # 1: images are prepared in the extraction thread
def test_a_new_encoder_pair_indexes_and_finds(settings: Settings, corpus: Path, workers: int) -> None:
    image_encoder, text_encoder = ColourEncoder(), HashedWords()
    with connect(settings) as client:
        store = Store(client, settings.collection)
        report = Indexer(store, image_encoder, text_encoder, workers=workers).run([corpus])
        assert (report.indexed, report.failures) == (4, [])
        assert store.info() == CollectionInfo("colour-rgb", 4, "hashed-words-64", 64)  # what built the vectors

        searcher = Searcher(store, image_encoder, text_encoder)

        def best(query: str, mode: Mode) -> str:
            return searcher.search(query, SearchOptions(k=1, mode=mode))[0].hit.source

        assert (best("the red chart", "image"), best("a blue one", "image")) == ("red.png", "blue.png")
        assert best("yeast and flour", "text") == "bread.txt"
        assert best("when is high tide", "hybrid") == "tides.txt"


def test_an_encoder_missing_its_batch_method_fails_when_built() -> None:
    class NoBatch(TextEncoder):
        name = "incomplete"
        dim = 4

    with pytest.raises(TypeError, match="encode_texts"):
        NoBatch()  # type: ignore[abstract]


def test_colour_encoder_puts_images_and_words_in_one_space(tmp_path: Path) -> None:
    for colour in COLOURS:
        bar_chart(tmp_path / f"{colour}.png", colour)
    encoder = ColourEncoder()
    images = [Image.open(tmp_path / f"{colour}.png") for colour in COLOURS]
    similarity = encoder.encode_texts(list(COLOURS)) @ encoder.encode_images(encoder.prepare(images)).T
    assert list(similarity.argmax(axis=1)) == list(range(len(COLOURS)))


# The CLIP text tower cut short at the last token (indexer.embedders.encode_clip_text) gives the full-length vectors.

QUESTIONS = [
    "",
    "revenue",
    "What was the revenue in the second quarter of 2023, compared with the year before?",
    "a very long question " * 30,  # past the 77-token context: truncated, the end-of-text token at the last position
]


def _text_only_clip(text_cfg: dict[str, Any], custom: bool = False) -> Any:
    """An open_clip model with random weights: this text tower and a token vision tower (unused)."""
    import open_clip
    import torch

    torch.manual_seed(0)
    vision = {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 32}
    kind = open_clip.CustomTextCLIP if custom else open_clip.CLIP
    return kind(embed_dim=64, vision_cfg=vision, text_cfg=text_cfg).eval()


def _vit_b_32_text() -> dict[str, Any]:
    import open_clip

    return dict(open_clip.get_model_config("ViT-B-32")["text_cfg"])


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: _text_only_clip(_vit_b_32_text()), id="ViT-B-32 text tower"),
        pytest.param(
            lambda: _text_only_clip({"width": 64, "heads": 2, "layers": 2, "pool_type": "eos", "eos_id": 49407}, True),
            id="custom text tower, eos pooling",
        ),
    ],
)
def test_clip_text_cut_short_equals_full_length(make: Any) -> None:
    import open_clip
    import torch

    from mmrag.indexer.embedders import _causal_text_tower, encode_clip_text

    model = make()
    assert _causal_text_tower(model) is not None  # the short path is taken
    tokens = open_clip.get_tokenizer("ViT-B-32")(QUESTIONS)
    with torch.inference_mode():
        full, short = model.encode_text(tokens), encode_clip_text(model, tokens)
        one = torch.cat([encode_clip_text(model, tokens[i : i + 1]) for i in range(len(QUESTIONS))])
    assert torch.allclose(short, full, atol=1e-5, rtol=1e-4)
    assert torch.allclose(one, full, atol=1e-5, rtol=1e-4)  # alone, a question runs only its own tokens


def test_a_text_tower_that_is_not_causal_runs_in_full() -> None:
    import open_clip
    import torch

    from mmrag.indexer.embedders import _causal_text_tower, encode_clip_text

    model = _text_only_clip({"width": 64, "heads": 2, "layers": 2, "no_causal_mask": True}, custom=True)
    assert _causal_text_tower(model) is None
    tokens = open_clip.get_tokenizer("ViT-B-32")(QUESTIONS[:3])
    with torch.inference_mode():
        assert torch.equal(encode_clip_text(model, tokens), model.encode_text(tokens))


def test_tiny_clip_vectors_are_the_same_cut_short(settings: Settings) -> None:
    ids = resolve_models(settings)
    fast = ClipEmbedder(ids.clip_model, ids.clip_pretrained, "cpu")
    full = ClipEmbedder(ids.clip_model, ids.clip_pretrained, "cpu", truncate_text=False)
    assert np.allclose(fast.encode_texts(QUESTIONS), full.encode_texts(QUESTIONS), atol=1e-5)


@pytest.fixture(scope="module")
def searched(
    weaviate_server: LocalWeaviate, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Store]]:
    """A collection indexed with the tiny profile's real encoders: a known corpus and the sample corpus."""
    settings = module_settings(weaviate_server, "Enc")
    root = tmp_path_factory.mktemp("ranked")
    write_known_corpus(root / "known")
    write_sample_corpus(root / "sample")
    with connect(settings) as client:
        store = Store(client, settings.collection)
        Indexer(store, *embedders_for(settings), workers=0).run([root])
        yield settings, store


@pytest.mark.parametrize("mode", ["hybrid", "image", "text"])
def test_fast_search_ranks_as_the_plain_path(searched: tuple[Settings, Store], mode: Mode) -> None:
    # Plain: CLIP's text tower over all 77 positions, the encoders one after the other (the path before this change).
    settings, store = searched
    ids = resolve_models(settings)
    text = TextEmbedder(ids.text_model, "cpu")
    fast = Searcher(store, ClipEmbedder(ids.clip_model, ids.clip_pretrained, "cpu"), text)
    full_clip = ClipEmbedder(ids.clip_model, ids.clip_pretrained, "cpu", truncate_text=False)
    plain = Searcher(store, full_clip, text, concurrent=False)
    queries = ["revenue by quarter", "a chart of temperatures", "how do tides work", "headcount", "baking bread"]
    for query in queries:
        options = SearchOptions(k=10, mode=mode)
        ranked = fast.search(query, options)
        assert len(ranked) >= 3
        assert [r.hit.id for r in ranked] == [r.hit.id for r in plain.search(query, options)], query
