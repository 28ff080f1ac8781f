"""LoRA training of a LLaVA-family model on a chart-QA data dir.

LoRA goes on the language model's linear layers only (never the vision tower); the multimodal projector is
optionally trained in full and saved with the adapter. The loss covers the assistant's tokens only. Defaults follow
LLaVA-1.5's LoRA recipe. Checkpoints (adapter, optimizer, scheduler, RNG) make a run resumable; the data order is a
function of the seed and epoch, so a resumed run sees the batches the interrupted one would have.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.core.errors import MmragError
from mmrag.core.manifest import AdapterManifest, model_revision
from mmrag.core.prompts import PROMPT_STYLE
from mmrag.finetune.dataset import card_sha256
from mmrag.finetune.encoding import IGNORE_INDEX, Encoded, collate, encode
from mmrag.finetune.samples import DatasetError, Sample, read_samples

if TYPE_CHECKING:
    import torch

LANGUAGE_MODEL_LINEAR = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
"""peft target: the language model's linear layers (a plain name list would also wrap the vision tower's)."""
PROJECTOR = "multi_modal_projector"
LOSS_CSV = "loss.csv"


class TrainingError(MmragError):
    """Training cannot go on: a sample too long, a batch with nothing to learn, a bad option."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters; the defaults are LLaVA-1.5's LoRA recipe (scripts/v1_5/finetune_lora.sh)."""

    lora_r: int = 128
    lora_alpha: int = 256
    lora_dropout: float = 0.05
    learning_rate: float = 2e-4
    projector_lr: float = 2e-5
    """Learning rate of the projector when it is trained (LLaVA's mm_projector_lr)."""
    train_projector: bool = True
    epochs: int = 1
    batch_size: int = 16
    grad_accum: int = 1
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_steps: int | None = None
    """Stop after this many optimizer steps (default: all epochs)."""
    max_length: int = 2048
    """Longest tokenized sample, image tokens included (LLaVA's model_max_length)."""
    seed: int = 0
    save_every: int = 200
    """Checkpoint every this many optimizer steps (and at the end)."""
    keep_checkpoints: int = 2
    four_bit: bool = False
    """QLoRA: the frozen base in 4-bit NF4 (CUDA and bitsandbytes only)."""
    gradient_checkpointing: bool | None = None
    """None: on for CUDA, off on CPU."""
    val_samples: int = 64

    def __post_init__(self) -> None:
        positive = ("lora_r", "lora_alpha", "epochs", "batch_size", "grad_accum", "max_length", "save_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise TrainingError(f"{name} must be at least 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise TrainingError("max_steps must be at least 1")
        if not 0 <= self.lora_dropout < 1 or not 0 <= self.warmup_ratio < 1 or self.learning_rate <= 0:
            raise TrainingError("lora_dropout and warmup_ratio must be in [0, 1) and the learning rate positive")


@dataclass(frozen=True)
class StepLog:
    step: int
    total_steps: int
    epoch: int
    loss: float
    lr: float
    samples_per_s: float
    tokens_per_s: float
    peak_memory_mb: float
    elapsed_s: float


@dataclass(frozen=True)
class TrainResult:
    adapter_dir: Path
    manifest: AdapterManifest
    steps: int
    first_loss: float
    final_loss: float
    val_loss: float | None


def train(
    data_dir: Path,
    base_model: str,
    out_dir: Path,
    config: TrainConfig,
    *,
    device: str = "cpu",
    resume: bool = True,
    on_step: Callable[[StepLog], None] | None = None,
) -> TrainResult:
    """Train an adapter on data_dir/train.json and save it with its manifest in `out_dir`."""
    import torch

    from mmrag.core.models import load_vlm

    if (config.four_bit or config.gradient_checkpointing) and device != "cuda":
        raise TrainingError("QLoRA (4-bit) and gradient checkpointing need a CUDA device (--device cuda)")
    samples = _samples(data_dir, "train")
    torch.manual_seed(config.seed)
    model, processor = load_vlm(base_model, device, four_bit=config.four_bit)
    model = _with_lora(model, config, device)
    loop = _Loop(model, processor, samples, data_dir, config, device)
    start = loop.restore(out_dir) if resume else 0
    losses = loop.run(start, out_dir, on_step)
    val_loss = loop.evaluate_loss(_samples(data_dir, "val", required=False)[: config.val_samples])
    model.save_pretrained(out_dir, safe_serialization=True)
    first = losses[0] if losses else math.nan
    final = losses[-1] if losses else math.nan
    metrics = {"steps": loop.total_steps, "first_loss": first, "final_loss": final, "val_loss": val_loss}
    manifest = AdapterManifest(
        base_model=base_model,
        prompt_style=PROMPT_STYLE,
        base_revision=model_revision(base_model, model.config),
        dataset_card_sha256=card_sha256(data_dir),
        hyperparameters=asdict(config),
        metrics=metrics,
    )
    manifest.save(out_dir)
    return TrainResult(out_dir, manifest, loop.total_steps, first, final, val_loss)


def _samples(data_dir: Path, split: str, *, required: bool = True) -> list[Sample]:
    path = data_dir / f"{split}.json"
    if not path.is_file():
        if not required:
            return []
        raise DatasetError(f"{path} is missing: make a dataset with `mmrag finetune data --out {data_dir}`")
    samples = read_samples(path)
    if required and not samples:
        raise DatasetError(f"{path} has no samples")
    return samples


def _with_lora(model: Any, config: TrainConfig, device: str) -> Any:
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    use_checkpointing = config.gradient_checkpointing if config.gradient_checkpointing is not None else device == "cuda"
    if config.four_bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=use_checkpointing)
    elif use_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=LANGUAGE_MODEL_LINEAR,
        modules_to_save=[PROJECTOR] if config.train_projector else None,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


class _Loop:
    """The optimisation loop and its state (optimizer, scheduler, data order, checkpoints)."""

    def __init__(
        self, model: Any, processor: Any, samples: list[Sample], data_dir: Path, config: TrainConfig, device: str
    ) -> None:
        import torch
        from transformers import get_cosine_schedule_with_warmup

        self.model, self.processor, self.samples, self.data_dir = model, processor, samples, data_dir
        self.config, self.device = config, device
        per_step = config.batch_size * config.grad_accum
        self.steps_per_epoch = max(1, math.ceil(len(samples) / per_step))
        self.total_steps = config.max_steps or self.steps_per_epoch * config.epochs
        lora = [p for n, p in model.named_parameters() if p.requires_grad and PROJECTOR not in n]
        projector = [p for n, p in model.named_parameters() if p.requires_grad and PROJECTOR in n]
        groups = [{"params": lora, "lr": config.learning_rate}]
        if projector:
            groups.append({"params": projector, "lr": config.projector_lr})
        self.optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
        warmup = math.ceil(config.warmup_ratio * self.total_steps)
        self.scheduler = get_cosine_schedule_with_warmup(self.optimizer, warmup, self.total_steps)
        self.pad_id = processor.tokenizer.pad_token_id or 0

    def batches(self, step: int) -> Iterator[list[Sample]]:
        """The micro-batches of optimizer step `step` (0-based), from the seeded order of its epoch."""
        import numpy as np

        epoch, within = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.config.seed, epoch]).permutation(len(self.samples))
        per_step = self.config.batch_size * self.config.grad_accum
        chunk = order[within * per_step : (within + 1) * per_step]
        for i in range(0, len(chunk), self.config.batch_size):
            yield [self.samples[j] for j in chunk[i : i + self.config.batch_size]]

    def encode(self, samples: list[Sample]) -> dict[str, torch.Tensor]:
        from PIL import Image, UnidentifiedImageError

        encoded: list[Encoded] = []
        for s in samples:
            try:
                with Image.open(self.data_dir / s.image) as image:
                    e = encode(self.processor, s, image.convert("RGB"))
            except (OSError, UnidentifiedImageError) as err:
                raise DatasetError(f"sample {s.id}: cannot read image {s.image}: {err}") from err
            if len(e.input_ids) > self.config.max_length:
                raise TrainingError(
                    f"sample {s.id} is {len(e.input_ids)} tokens long (image tokens included), over the maximum "
                    f"{self.config.max_length}: run `mmrag finetune validate` on the data"
                )
            encoded.append(e)
        batch = collate(encoded, self.pad_id)
        if not bool((batch["labels"] != IGNORE_INDEX).any()):
            raise TrainingError(
                f"batch {', '.join(s.id for s in samples)} has no supervised token (empty answers?): "
                "its loss would be 0 and nothing would be learned"
            )
        dtype = next(p.dtype for p in self.model.parameters() if p.is_floating_point())
        return {k: v.to(self.device, dtype=dtype if v.is_floating_point() else v.dtype) for k, v in batch.items()}

    def run(self, start: int, out_dir: Path, on_step: Callable[[StepLog], None] | None) -> list[float]:
        import torch

        out_dir.mkdir(parents=True, exist_ok=True)
        losses: list[float] = _logged_losses(out_dir / LOSS_CSV, start)
        began = time.perf_counter()
        self.model.train()
        for step in range(start, self.total_steps):
            t0 = time.perf_counter()
            _reset_peak(self.device)
            n_samples = n_tokens = 0
            loss_sum = 0.0
            for micro in self.batches(step):
                batch = self.encode(micro)
                loss = self.model(**batch).loss / self.config.grad_accum
                loss.backward()
                loss_sum += float(loss.detach())
                n_samples += len(micro)
                n_tokens += int(batch["attention_mask"].sum())
            torch.nn.utils.clip_grad_norm_(
                [p for p in self.model.parameters() if p.requires_grad], self.config.max_grad_norm
            )
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            seconds = time.perf_counter() - t0
            log = StepLog(
                step=step + 1,
                total_steps=self.total_steps,
                epoch=step // self.steps_per_epoch + 1,
                loss=loss_sum,
                lr=self.scheduler.get_last_lr()[0],
                samples_per_s=n_samples / seconds,
                tokens_per_s=n_tokens / seconds,
                peak_memory_mb=peak_memory_mb(self.device),
                elapsed_s=time.perf_counter() - began,
            )
            losses.append(loss_sum)
            _append_csv(out_dir / LOSS_CSV, log)
            if on_step:
                on_step(log)
            if (step + 1) % self.config.save_every == 0 or step + 1 == self.total_steps:
                self.checkpoint(out_dir, step + 1)
        return losses

    def evaluate_loss(self, samples: list[Sample]) -> float | None:
        import torch

        if not samples:
            return None
        self.model.eval()
        total = 0.0
        batches = [samples[i : i + self.config.batch_size] for i in range(0, len(samples), self.config.batch_size)]
        with torch.no_grad():
            for micro in batches:
                total += float(self.model(**self.encode(micro)).loss) * len(micro)
        return total / len(samples)

    def checkpoint(self, out_dir: Path, step: int) -> Path:
        import torch

        path = out_dir / "checkpoints" / f"step-{step:06d}"
        self.model.save_pretrained(path, safe_serialization=True)
        torch.save(self.optimizer.state_dict(), path / "optimizer.pt")
        torch.save(self.scheduler.state_dict(), path / "scheduler.pt")
        torch.save({"cpu": torch.get_rng_state()}, path / "rng.pt")
        (path / "trainer_state.json").write_text(json.dumps({"step": step, "config": asdict(self.config)}, indent=2))
        for old in sorted((out_dir / "checkpoints").glob("step-*"))[: -self.config.keep_checkpoints]:
            shutil.rmtree(old)
        return path

    def restore(self, out_dir: Path) -> int:
        """Load the latest checkpoint in `out_dir`, if any; returns the step to go on from."""
        import torch
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        checkpoints = sorted((out_dir / "checkpoints").glob("step-*"))
        if not checkpoints:
            return 0
        path = checkpoints[-1]
        state = json.loads((path / "trainer_state.json").read_text())
        changed = [f.name for f in fields(TrainConfig) if state["config"].get(f.name) != getattr(self.config, f.name)]
        if set(changed) - {"max_steps", "save_every", "keep_checkpoints"}:
            raise TrainingError(
                f"{out_dir} holds a checkpoint made with other settings ({', '.join(changed)}): "
                "use the same options to resume, or another --out"
            )
        set_peft_model_state_dict(self.model, load_file(str(path / "adapter_model.safetensors")))
        self.optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
        self.scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
        torch.set_rng_state(torch.load(path / "rng.pt", weights_only=True)["cpu"])
        return int(state["step"])


def _logged_losses(csv_path: Path, start: int) -> list[float]:
    """Losses of the steps before `start` from the CSV (kept on resume); a fresh run starts a new CSV."""
    if start == 0 or not csv_path.is_file():
        csv_path.unlink(missing_ok=True)
        return []
    with csv_path.open() as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) <= start]
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[x.name for x in fields(StepLog)])
        writer.writeheader()
        writer.writerows(rows)
    return [float(r["loss"]) for r in rows]


def _append_csv(path: Path, log: StepLog) -> None:
    new = not path.is_file()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[x.name for x in fields(StepLog)])
        if new:
            writer.writeheader()
        writer.writerow(asdict(log))


def _reset_peak(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb(device: str) -> float:
    """Peak memory: CUDA memory allocated since the last reset, or the process's peak resident size on CPU."""
    import resource

    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
