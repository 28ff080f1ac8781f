"""Answer-generation benchmark: latency and throughput of rag_app.generator's model path.

Tiny profile on CPU (both tiny LLaVA families): time to first token, time to the first streamed piece (what the UI
shows first), decode tokens/s and `Generator.generate_batch` questions/s at batch 1/4/8.
On a CUDA machine also a 7B-shaped LLaVA-1.5 (Llama-2-7B text model, CLIP ViT-L/14-336 vision tower) built from
its config with random bf16 weights (no download): decode tokens/s at batch 1 against the memory-bandwidth bound
(language-model weight bytes / measured device-to-device copy bandwidth) and time to first token with 576 image
tokens.

    .venv/bin/python bench/answer.py [--new-tokens 32] [--repeats 5]

Token rates are measured on the model with exactly `new_tokens` new tokens (min = max), so early end-of-sequence
cannot inflate them: decode tokens/s = (n - 1) / (t(n) - t(1)); time to first token = t(1) (prefill + one token).
Prints rich tables and saves a plot and the figures as JSON under bench/results/ (gitignored).
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from rich.console import Console
from rich.table import Table

from mmrag.core import prompts, tiny
from mmrag.core.models import load_vlm
from mmrag.core.settings import load_settings
from mmrag.rag_app.generator import GenerationRequest, Generator, LocalGenerator

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BATCH_SIZES = (1, 4, 8)
TINY_FAMILIES = ("llava_onevision", "llava")  # the tiny profile's VLM first
QUESTIONS = [
    "What is the largest bar?",
    "Which quarter had the highest sales?",
    "How much did revenue grow between 2019 and 2024?",
    "What does the chart show?",
]


@dataclass(frozen=True)
class TinyResult:
    family: str
    prompt_tokens: int
    image_tokens: int
    ttft_s: float
    first_piece_s: float
    decode_tok_s: float
    batch_qps: dict[int, float]


@dataclass(frozen=True)
class LlavaShape:
    """A LLaVA-1.5 shape; the defaults are the 7B one (Llama-2-7B + CLIP ViT-L/14 at 336 px)."""

    hidden: int = 4096
    layers: int = 32
    heads: int = 32
    intermediate: int = 11008
    vocab: int = 32064
    vision_hidden: int = 1024
    vision_layers: int = 24
    vision_heads: int = 16
    vision_intermediate: int = 4096
    image_size: int = 336
    patch_size: int = 14

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2


@dataclass(frozen=True)
class GpuResult:
    device_name: str
    prompt_tokens: int
    image_tokens: int
    lm_weight_gb: float
    bandwidth_gb_s: float
    bound_tok_s: float
    decode_tok_s: float
    ttft_s: float


def median_seconds(fn: Callable[[], object], repeats: int, device: str) -> float:
    """Median wall time of `fn` over `repeats` runs after one warm-up (synchronising CUDA)."""
    times = []
    for i in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def token_timings(
    model: Any, inputs: dict[str, Any], new_tokens: int, repeats: int, device: str
) -> tuple[float, float]:
    """(time to first token, decode tokens/s) of greedy generation with exactly `new_tokens` new tokens."""

    def run(n: int) -> Callable[[], object]:
        return lambda: model.generate(**inputs, do_sample=False, min_new_tokens=n, max_new_tokens=n)

    with torch.inference_mode():
        first = median_seconds(run(1), repeats, device)
        full = median_seconds(run(new_tokens), repeats, device)
    return first, (new_tokens - 1) / max(full - first, 1e-9)


def bench_tiny(family: str, cache_dir: Path, new_tokens: int, repeats: int) -> TinyResult:
    """The tiny `family` on CPU: model-level token timings, then the Generator's stream and batches."""
    model_id = str(tiny.tiny_vlm_dir(cache_dir, family))
    model, processor = load_vlm(model_id, "cpu")
    request = _request(0)
    text = processor.apply_chat_template(
        prompts.messages(1, request.prompt_text), add_generation_prompt=True, tokenize=False
    )
    inputs = processor(text=[text], images=[list(request.images)], return_tensors="pt")
    image_tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
    ttft, decode = token_timings(model, dict(inputs), new_tokens, repeats, "cpu")

    generator = LocalGenerator(model_id, "cpu", cache_dir=cache_dir, max_new_tokens=new_tokens)
    first_piece = median_seconds(lambda: _first_piece(generator, request), repeats, "cpu")
    batch_qps = {}
    for size in BATCH_SIZES:
        batch = [_request(i) for i in range(size)]
        batch_qps[size] = size / median_seconds(functools.partial(generator.generate_batch, batch), repeats, "cpu")
    return TinyResult(family, inputs["input_ids"].shape[1], image_tokens, ttft, first_piece, decode, batch_qps)


def build_random_llava(shape: LlavaShape, device: str, dtype: torch.dtype) -> Any:
    """A LLaVA-1.5-shaped model with random weights, built directly on `device` (nothing downloaded)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=shape.vision_hidden,
            intermediate_size=shape.vision_intermediate,
            num_hidden_layers=shape.vision_layers,
            num_attention_heads=shape.vision_heads,
            image_size=shape.image_size,
            patch_size=shape.patch_size,
            projection_dim=768,
        ),
        text_config=LlamaConfig(
            vocab_size=shape.vocab,
            hidden_size=shape.hidden,
            intermediate_size=shape.intermediate,
            num_hidden_layers=shape.layers,
            num_attention_heads=shape.heads,
            num_key_value_heads=shape.heads,
            max_position_embeddings=4096,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
        ),
        image_token_index=32000 if shape.vocab > 32000 else shape.vocab - 1,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = LlavaForConditionalGeneration._from_config(config, dtype=dtype)
    model.generation_config.pad_token_id = 0
    return model.eval()


def language_model_bytes(model: Any) -> int:
    """Bytes read per decoded token: the decoder layers, final norm and LM head (not the vision tower)."""
    text_model = model.model.language_model
    modules = [text_model.layers, text_model.norm, model.lm_head]
    return sum(p.numel() * p.element_size() for m in modules for p in m.parameters())


def copy_bandwidth(device: str, gib: float = 2.0, repeats: int = 10) -> float:
    """Device memory bandwidth in bytes/s from a large device-to-device copy (each byte read once, written once)."""
    n = int(gib * 2**30)
    source = torch.empty(n, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    seconds = median_seconds(functools.partial(target.copy_, source), repeats, device)
    return 2 * n / seconds


def bench_random_llava(
    shape: LlavaShape, device: str, new_tokens: int, repeats: int, dtype: torch.dtype = torch.bfloat16
) -> GpuResult:
    """Decode tokens/s at batch 1 against the bandwidth bound, and time to first token with a full image."""
    bandwidth = copy_bandwidth(device)
    model = build_random_llava(shape, device, dtype)
    image_token = model.config.image_token_id
    text = torch.randint(100, min(image_token, shape.vocab), (64,), generator=torch.Generator().manual_seed(0))
    input_ids = torch.cat([torch.tensor([1]), torch.full((shape.image_tokens,), image_token), text])[None]
    inputs = {
        "input_ids": input_ids.to(device),
        "attention_mask": torch.ones_like(input_ids, device=device),
        "pixel_values": torch.randn(1, 3, shape.image_size, shape.image_size, dtype=dtype, device=device),
    }
    ttft, decode = token_timings(model, inputs, new_tokens, repeats, device)
    weight_bytes = language_model_bytes(model)
    name = torch.cuda.get_device_name() if device == "cuda" else device
    return GpuResult(
        name, input_ids.shape[1], shape.image_tokens, weight_bytes / 1e9, bandwidth / 1e9, bandwidth / weight_bytes,
        decode, ttft,
    )  # fmt: skip


def tiny_table(results: list[TinyResult], new_tokens: int) -> Table:
    table = Table(title=f"Tiny profile on CPU ({torch.get_num_threads()} threads, {new_tokens} new tokens)")
    for column in ("model", "prompt tok", "image tok", "TTFT ms", "1st piece ms", "decode tok/s"):
        table.add_column(column, justify="right")
    for size in BATCH_SIZES:
        table.add_column(f"batch {size} q/s", justify="right")
    for r in results:
        batches = [f"{r.batch_qps[size]:.1f}" for size in BATCH_SIZES]
        table.add_row(
            f"tiny {r.family}", str(r.prompt_tokens), str(r.image_tokens), f"{r.ttft_s * 1e3:.1f}",
            f"{r.first_piece_s * 1e3:.1f}", f"{r.decode_tok_s:.0f}", *batches,
        )  # fmt: skip
    return table


def gpu_table(result: GpuResult) -> Table:
    table = Table(title=f"7B-shaped LLaVA-1.5, random bf16 weights, batch 1 on {result.device_name}")
    for column in ("prompt tok", "image tok", "LM weights GB", "copy GB/s", "bound tok/s", "decode tok/s", "% bound"):
        table.add_column(column, justify="right")
    table.add_column("TTFT ms", justify="right")
    table.add_row(
        str(result.prompt_tokens), str(result.image_tokens), f"{result.lm_weight_gb:.2f}",
        f"{result.bandwidth_gb_s:.0f}", f"{result.bound_tok_s:.0f}", f"{result.decode_tok_s:.1f}",
        f"{100 * result.decode_tok_s / result.bound_tok_s:.0f}%", f"{result.ttft_s * 1e3:.1f}",
    )  # fmt: skip
    return table


def plot(tiny_results: list[TinyResult], gpu: GpuResult | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for r in tiny_results:
        left.plot(BATCH_SIZES, [r.batch_qps[s] for s in BATCH_SIZES], marker="o", label=f"tiny {r.family}")
    left.set(title="Tiny profile, CPU: generate_batch", xlabel="batch size", ylabel="questions/s", xticks=BATCH_SIZES)
    left.legend()
    if gpu is None:
        right.text(0.5, 0.5, "no CUDA device: 7B section skipped", ha="center", va="center")
        right.set_axis_off()
    else:
        bars = right.bar(["measured", "bandwidth bound"], [gpu.decode_tok_s, gpu.bound_tok_s], color=["C0", "C7"])
        right.bar_label(bars, fmt="%.0f")
        right.set(title=f"7B LLaVA decode, batch 1, {gpu.device_name}", ylabel="tokens/s")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens generated per answer (CPU)")
    parser.add_argument("--gpu-new-tokens", type=int, default=128, help="tokens generated per answer (GPU)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure (median; after a warm-up)")
    args = parser.parse_args()

    console = Console(width=140)
    cache_dir = load_settings().cache_dir
    tiny.ensure_tiny_models(cache_dir)
    tiny_results = [bench_tiny(f, cache_dir, args.new_tokens, args.repeats) for f in TINY_FAMILIES]
    console.print(tiny_table(tiny_results, args.new_tokens))

    gpu = None
    if torch.cuda.is_available():
        gpu = bench_random_llava(LlavaShape(), "cuda", args.gpu_new_tokens, args.repeats)
        console.print(gpu_table(gpu))
    else:
        console.print("GPU section skipped: no CUDA device (torch.cuda.is_available() is False).")

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    plot(tiny_results, gpu, RESULTS_DIR / "answer.png")
    figures = {"tiny_cpu": [asdict(r) for r in tiny_results], "gpu": asdict(gpu) if gpu else None}
    (RESULTS_DIR / "answer.json").write_text(json.dumps(figures, indent=2) + "\n")
    console.print(f"Saved {RESULTS_DIR / 'answer.png'} and {RESULTS_DIR / 'answer.json'}")


def _request(seed: int) -> GenerationRequest:
    """A question about one chart plus a text source, as the retriever would hand them over."""
    pixels = torch.randint(0, 256, (240, 320, 3), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    sources = [
        prompts.ContextItem(1, "image", f"chart{seed}.png"),
        prompts.ContextItem(2, "text", "report.pdf p.3", "Revenue grew from 1,200 to 3,450 between 2019 and 2024."),
    ]
    return GenerationRequest(QUESTIONS[seed % len(QUESTIONS)], [Image.fromarray(pixels.numpy())], sources)


def _first_piece(generator: Generator, request: GenerationRequest) -> str:
    stream = generator.stream(request)
    try:
        return next(iter(stream), "")
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
