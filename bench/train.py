"""Finetuning benchmark: chart generation and tiny-profile LoRA training on CPU; a 7B-shaped LLaVA on a GPU.

    .venv/bin/python bench/train.py                 # CPU: charts/s, samples/s, peak memory per step
    .venv/bin/python bench/train.py --steps 40      # longer run

On a CUDA machine it also trains LoRA (r 128, bf16, gradient checkpointing) on a LLaVA-1.5-7B-shaped model built
from its config with random weights (no download), and reports steps/s, tokens/s, peak memory and the model FLOPs
utilisation against the bf16 matmul rate measured on the same GPU. Results: a rich table and bench/results/*.png.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()


@dataclass(frozen=True)
class Row:
    what: str
    value: float
    unit: str
    note: str = ""


def bench_charts(n: int, workers: int, root: Path) -> list[Row]:
    from mmrag.finetune.dataset import DataConfig, build_dataset
    from mmrag.finetune.domains import load_domain

    rows = []
    for w in sorted({1, workers}):
        started = time.perf_counter()
        build_dataset(root / f"charts-{w}", load_domain("business"), DataConfig(n_charts=n, seed=0), workers=w)
        rate = n / (time.perf_counter() - started)
        rows.append(Row(f"chart generation ({w} process{'es' if w > 1 else ''})", rate, "charts/s", f"{n} charts"))
    return rows


def bench_tiny_training(data_dir: Path, steps: int, batch: int, out: Path) -> tuple[list[Row], list[Any]]:
    from mmrag.core.settings import load_settings
    from mmrag.core.tiny import ensure_tiny_models, tiny_vlm_dir
    from mmrag.finetune.train import StepLog, TrainConfig, train

    cache = load_settings().cache_dir
    ensure_tiny_models(cache)
    logs: list[StepLog] = []
    config = TrainConfig(lora_r=8, lora_alpha=16, batch_size=batch, max_steps=steps, learning_rate=5e-3)
    train(data_dir, str(tiny_vlm_dir(cache)), out, config, on_step=logs.append)
    steady = logs[2:] or logs  # the first steps include warm-up
    rate = sum(x.samples_per_s for x in steady) / len(steady)
    tokens = sum(x.tokens_per_s for x in steady) / len(steady)
    peak = max(x.peak_memory_mb for x in logs)
    note = f"tiny LLaVA-OneVision, batch {batch}, {steps} steps"
    return [
        Row("tiny LoRA training", rate, "samples/s", note),
        Row("tiny LoRA training", tokens, "tokens/s", note),
        Row("tiny LoRA training peak RSS", peak, "MB", "process peak (CPU)"),
        Row("tiny LoRA loss", logs[-1].loss, "", f"from {logs[0].loss:.3f}"),
    ], logs


def llava_7b_config() -> Any:
    """LLaVA-1.5-7B's shape: CLIP ViT-L/14 at 336 px, Llama-2-7B (vocab 32064 with <image>)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    vision = CLIPVisionConfig(
        hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
        image_size=336, patch_size=14, projection_dim=768,
    )  # fmt: skip
    text = LlamaConfig(
        vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
    )  # fmt: skip
    return LlavaConfig(vision_config=vision, text_config=text, image_token_index=32000, vision_feature_layer=-2)


def matmul_tflops(device: str, n: int = 8192, iters: int = 20) -> float:
    import torch

    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(iters):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * iters / (time.perf_counter() - started) / 1e12


def bench_gpu_lora(config: Any, batch: int, text_tokens: int, steps: int, device: str = "cuda") -> list[Row]:
    """LoRA steps on a model built from `config` with random bf16 weights; model FLOPs exclude recomputation."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlavaForConditionalGeneration

    from mmrag.finetune.train import LANGUAGE_MODEL_LINEAR, PROJECTOR

    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(device):
        model = LlavaForConditionalGeneration(config)
    torch.set_default_dtype(previous)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    lora = LoraConfig(r=128, lora_alpha=256, target_modules=LANGUAGE_MODEL_LINEAR, modules_to_save=[PROJECTOR])
    model = get_peft_model(model, lora)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    vision = config.vision_config
    image_tokens = (vision.image_size // vision.patch_size) ** 2
    seq = image_tokens + text_tokens
    ids = torch.randint(3, 32000, (batch, seq), device=device)
    ids[:, 1 : 1 + image_tokens] = config.image_token_index
    labels = ids.clone()
    labels[:, : 1 + image_tokens] = -100
    pixels = torch.randn(batch, 3, vision.image_size, vision.image_size, device=device, dtype=torch.bfloat16)

    def step() -> None:
        loss = model(input_ids=ids, pixel_values=pixels, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up (allocator, kernels)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / steps
    flops = _model_flops(model, config, batch, seq, image_tokens)
    peak = matmul_tflops(device)
    mfu = flops / seconds / 1e12 / peak
    note = f"batch {batch} x {seq} tokens ({image_tokens} image), LoRA r128, bf16, grad ckpt"
    return [
        Row("7B LLaVA LoRA", 1 / seconds, "steps/s", note),
        Row("7B LLaVA LoRA", batch * seq / seconds, "tokens/s", note),
        Row("7B LLaVA LoRA peak memory", torch.cuda.max_memory_allocated() / 2**30, "GiB", "allocated"),
        Row("bf16 matmul rate", peak, "TFLOP/s", "8192^3, measured"),
        Row("model FLOPs utilisation", 100 * mfu, "%", f"{flops / 1e12:.1f} TFLOP per step"),
    ]


def _model_flops(model: Any, config: Any, batch: int, seq: int, image_tokens: int) -> float:
    """Per step: vision tower forward only; language model forward + activation backward on frozen weights (4N),
    forward + full backward on trainable weights (6N), and attention (12 L d T per token, PaLM appendix B)."""
    frozen_lm = sum(p.numel() for n, p in model.named_parameters() if "language_model" in n and not p.requires_grad)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    vision = sum(p.numel() for n, p in model.named_parameters() if "vision_tower" in n)
    text = config.text_config
    attention = 12 * text.num_hidden_layers * text.hidden_size * seq
    per_token = 4 * frozen_lm + 6 * trainable + attention
    return batch * (seq * per_token + 2 * vision * (image_tokens + 1))


def plot(logs: list[Any], path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.5), dpi=100)
    FigureCanvasAgg(fig)
    steps = [x.step for x in logs]
    for i, (field, label) in enumerate(
        (("loss", "loss"), ("samples_per_s", "samples/s"), ("peak_memory_mb", "peak memory (MB)"))
    ):
        ax = fig.add_subplot(1, 3, i + 1)
        ax.plot(steps, [getattr(x, field) for x in logs], marker="o", markersize=3)
        ax.set_xlabel("step")
        ax.set_title(f"tiny LoRA: {label}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def main() -> None:
    import warnings

    import torch

    warnings.filterwarnings("ignore", category=FutureWarning)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--charts", type=int, default=44, help="charts to generate")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="tiny training steps")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        rows += bench_charts(args.charts, args.workers, Path(tmp))
        train_rows, logs = bench_tiny_training(Path(tmp) / "charts-1", args.steps, args.batch, Path(tmp) / "adapter")
        rows += train_rows
        shutil.rmtree(Path(tmp) / "adapter", ignore_errors=True)
    if torch.cuda.is_available():
        rows += bench_gpu_lora(llava_7b_config(), batch=4, text_tokens=448, steps=5)
    else:
        console.print("GPU part skipped: no CUDA device (LoRA steps/s, tokens/s, memory and MFU of a 7B LLaVA)")
    table = Table(title=f"finetune bench (torch {torch.__version__}, {torch.get_num_threads()} CPU threads)")
    for column in ("what", "value", "unit", "note"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for row in rows:
        table.add_row(row.what, f"{row.value:,.2f}", row.unit, row.note)
    console.print(table)
    console.print(f"plot: {plot(logs, args.out / 'train.png')}")


if __name__ == "__main__":
    main()
