"""Tiny, randomly initialised checkpoints for tests and offline use, saved in the real formats.

They are built once (deterministically, from fixed seeds) into ``<cache_dir>/models`` and then loaded through
exactly the same code as real checkpoints: an open_clip ``local-dir:`` folder, and Hugging Face LLaVA /
LLaVA-OneVision folders with a locally trained byte-level BPE tokenizer and a real processor.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

TINY_VERSION = 1
"""Bump when a builder changes so caches rebuild."""

IMAGE_SIZE = 32
PATCH_SIZE = 8

TINY_CLIP_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>\n{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

_CORPUS = [
    "What is the value of the largest bar in the chart? The answer is 42.",
    "Revenue grew from 1,200 to 3,450 between 2019 and 2024, an increase of 187.5%.",
    "Not found in the indexed documents.",
    "The chart shows sales by quarter: Q1 10, Q2 15, Q3 12, Q4 20. Which quarter was highest?",
    "Sources: [1] report.pdf page 2, [2] chart.png. Answer with a short phrase or number.",
    "user assistant system image text question answer context source page figure table",
    "0 1 2 3 4 5 6 7 8 9 10 100 1000 % $ , . : ; ( ) [ ] - + = / ?",
]


def tiny_root(cache_dir: Path) -> Path:
    return cache_dir / "models" / f"tiny-v{TINY_VERSION}"


def tiny_clip_dir(cache_dir: Path) -> Path:
    return tiny_root(cache_dir) / "clip"


def tiny_vlm_dir(cache_dir: Path, family: str = "llava_onevision") -> Path:
    if family not in _VLM_BUILDERS:
        raise ValueError(f"unknown tiny VLM family {family!r}; known: {', '.join(_VLM_BUILDERS)}")
    return tiny_root(cache_dir) / family


def ensure_tiny_models(cache_dir: Path) -> None:
    """Build every tiny checkpoint that is not in the cache yet."""
    _build_once(tiny_clip_dir(cache_dir), build_tiny_clip)
    for family, builder in _VLM_BUILDERS.items():
        _build_once(tiny_vlm_dir(cache_dir, family), builder)


def _build_once(target: Path, builder: Callable[[Path], None]) -> None:
    """Build into a temporary sibling and rename: a killed build never leaves a half-written model."""
    if (target / ".complete").exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-") as tmp:
        builder(Path(tmp))
        (Path(tmp) / ".complete").write_text("ok\n")
        shutil.rmtree(target, ignore_errors=True)
        Path(tmp).rename(target)


def build_tiny_clip(out: Path) -> None:
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_CLIP_CONFIG)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "open_clip_model.safetensors"))
    mean, std = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD
    config = {"model_cfg": TINY_CLIP_CONFIG, "preprocess_cfg": {"mean": list(mean), "std": list(std)}}
    (out / "open_clip_config.json").write_text(json.dumps(config, indent=2))


def _tokenizer(extra_tokens: dict[str, str]) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<pad>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]
    specials += list(extra_tokens.values())
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<s>",
        eos_token="<|end|>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens=extra_tokens,
        padding_side="left",
        chat_template=CHAT_TEMPLATE,
    )


def _generation_ids(model: Any, tokenizer: Any) -> None:
    gen = model.generation_config
    gen.pad_token_id = tokenizer.pad_token_id
    gen.eos_token_id = tokenizer.eos_token_id
    gen.bos_token_id = tokenizer.bos_token_id
    gen.do_sample = False


def build_tiny_llava(out: Path) -> None:
    """LLaVA-1.5 shape: CLIP vision tower (CLS token dropped), Llama language model, one image per prompt."""
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = _tokenizer({"image_token": "<image>"})
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token="<image>",
        chat_template=CHAT_TEMPLATE,
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            image_size=IMAGE_SIZE,
            patch_size=PATCH_SIZE,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            projection_dim=32,
        ),
        text_config=_llama_config(LlamaConfig, tokenizer),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config)
    _generation_ids(model, tokenizer)
    model.save_pretrained(out)
    processor.save_pretrained(out)


def build_tiny_llava_onevision(out: Path) -> None:
    """LLaVA-OneVision shape: SigLIP vision tower (no CLS), Qwen2 language model, several images per prompt."""
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
        Qwen2Config,
        SiglipVisionConfig,
    )

    tokenizer = _tokenizer({"image_token": "<image>", "video_token": "<video>"})
    pinpoints = [[IMAGE_SIZE, IMAGE_SIZE], [IMAGE_SIZE, 2 * IMAGE_SIZE], [2 * IMAGE_SIZE, IMAGE_SIZE]]
    image_processor = LlavaOnevisionImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, image_grid_pinpoints=pinpoints
    )
    video_processor = LlavaOnevisionVideoProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    num_image_tokens = (IMAGE_SIZE // PATCH_SIZE) ** 2
    processor = LlavaOnevisionProcessor(
        image_processor=image_processor,
        video_processor=video_processor,
        tokenizer=tokenizer,
        num_image_tokens=num_image_tokens,
        vision_feature_select_strategy="full",
        chat_template=CHAT_TEMPLATE,
    )
    config = LlavaOnevisionConfig(
        vision_config=SiglipVisionConfig(
            image_size=IMAGE_SIZE,
            patch_size=PATCH_SIZE,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            vision_use_head=False,
        ),
        text_config=_llama_config(Qwen2Config, tokenizer),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        image_grid_pinpoints=pinpoints,
    )
    torch.manual_seed(0)
    model = LlavaOnevisionForConditionalGeneration(config)
    _generation_ids(model, tokenizer)
    model.save_pretrained(out)
    processor.save_pretrained(out)


def _llama_config(config_class: Any, tokenizer: Any) -> Any:
    return config_class(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )


_VLM_BUILDERS: dict[str, Callable[[Path], None]] = {
    "llava_onevision": build_tiny_llava_onevision,
    "llava": build_tiny_llava,
}
