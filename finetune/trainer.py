"""transformers' Trainer, set up for `mmrag.finetune.train`: the batches, the optimizer, and what each step reports.

The collator encodes samples and stops a run early and clearly (a sample too long, a batch with no supervised token);
the optimizer puts the projector at its own learning rate; each optimizer step becomes a StepLog, appended to
loss.csv and handed to `on_step` on the main process; each checkpoint records the run that made it (RUN_JSON).
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.core.errors import MmragError
from mmrag.finetune.encoding import IGNORE_INDEX, Encoded, collate, encode
from mmrag.finetune.samples import DatasetError, Sample

if TYPE_CHECKING:
    import torch
    from transformers import Trainer, TrainerCallback, TrainerState, TrainingArguments

PROJECTOR = "multi_modal_projector"
RUN_JSON = "mmrag_train.json"
"""In each checkpoint: the TrainConfig and process count it was made with (a resume must match them)."""


class TrainingError(MmragError):
    """Training cannot go on: a sample too long, a batch with nothing to learn, a bad option."""


@dataclass(frozen=True)
class StepLog:
    """One optimizer step, over all processes (loss.csv has one row per step, in these columns)."""

    step: int
    total_steps: int
    epoch: int
    loss: float
    lr: float
    samples_per_s: float
    tokens_per_s: float
    peak_memory_mb: float
    """Of the main process."""
    elapsed_s: float


@dataclass(frozen=True)
class _Collator:
    """Samples -> a padded batch (encoding.collate), with the checks that stop a run early and clearly."""

    processor: Any
    data_dir: Path
    max_length: int
    dtype: torch.dtype

    def __call__(self, samples: list[Sample]) -> dict[str, torch.Tensor]:
        batch = collate([self._encode(s) for s in samples], self.processor.tokenizer.pad_token_id or 0)
        if not bool((batch["labels"] != IGNORE_INDEX).any()):
            raise TrainingError(
                f"batch {', '.join(s.id for s in samples)} has no supervised token (empty answers?): "
                "its loss would be 0 and nothing would be learned"
            )
        return {k: v.to(self.dtype) if v.is_floating_point() else v for k, v in batch.items()}

    def _encode(self, sample: Sample) -> Encoded:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(self.data_dir / sample.image) as image:
                encoded = encode(self.processor, sample, image.convert("RGB"))
        except (OSError, UnidentifiedImageError) as err:
            raise DatasetError(f"sample {sample.id}: cannot read image {sample.image}: {err}") from err
        if len(encoded.input_ids) > self.max_length:
            raise TrainingError(
                f"sample {sample.id} is {len(encoded.input_ids)} tokens long (image tokens included), over the "
                f"maximum {self.max_length}: run `mmrag finetune validate` on the data"
            )
        return encoded


def _param_groups(model: Any, learning_rate: float, projector_lr: float) -> list[dict[str, Any]]:
    """LoRA matrices at the learning rate; the projector (when trained) at its own."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups: list[dict[str, Any]] = [{"params": [p for n, p in trainable if PROJECTOR not in n], "lr": learning_rate}]
    projector = [p for n, p in trainable if PROJECTOR in n]
    if projector:
        groups.append({"params": projector, "lr": projector_lr})
    return groups


def build_trainer(
    model: Any,
    processor: Any,
    samples: list[Sample],
    data_dir: Path,
    args: TrainingArguments,
    logger: StepLogger,
    *,
    max_length: int,
    projector_lr: float,
    run_config: dict[str, Any],
) -> Trainer:
    """A Trainer on `samples` (images under `data_dir`) that reports its steps to `logger` only.

    The optimizer is AdamW at `args.learning_rate` and `args.weight_decay`, the projector at `projector_lr`;
    `run_config` (the TrainConfig as a dict) goes into every checkpoint's RUN_JSON."""
    import torch
    from transformers import Trainer
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class _Trainer(Trainer):
        def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
            if self.optimizer is None:
                groups = _param_groups(model or self.model, self.args.learning_rate, projector_lr)
                self.optimizer = torch.optim.AdamW(groups, weight_decay=self.args.weight_decay)
            return self.optimizer

        def compute_loss(self, model: Any, inputs: dict[str, Any], *a: Any, **kw: Any) -> Any:
            if model.training:
                logger.samples += len(inputs["input_ids"])
            return super().compute_loss(model, inputs, *a, **kw)

    dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    trainer = _Trainer(
        model=model,
        args=args,
        train_dataset=samples,
        data_collator=_Collator(processor, data_dir, max_length, dtype),
        callbacks=[_callback(logger, run_config)],
    )
    for noisy in (PrinterCallback, ProgressCallback):  # our logger reports the steps
        trainer.remove_callback(noisy)
    return trainer


class StepLogger:
    """Turns the Trainer's per-step logs into StepLogs: loss.csv and `on_step` on the main process.

    `losses` are those of the steps already done (`logged_losses` on resume); each new step's loss is appended."""

    def __init__(self, csv_path: Path, on_step: Callable[[StepLog], None] | None, losses: list[float]) -> None:
        self.csv_path, self.on_step, self.losses = csv_path, on_step, losses
        self.samples = 0
        """Samples this process has trained on in the current step (counted by the trainer)."""
        self._began = self._step_began = time.perf_counter()
        self._tokens = 0

    def train_begin(self) -> None:
        self._began = time.perf_counter()

    def step_begin(self, args: TrainingArguments, state: TrainerState) -> None:
        self._step_began, self._tokens, self.samples = time.perf_counter(), state.num_input_tokens_seen, 0
        _reset_peak(args.device.type)

    def log(self, args: TrainingArguments, state: TrainerState, logs: dict[str, float]) -> None:
        seconds = max(time.perf_counter() - self._step_began, 1e-9)
        log = StepLog(
            step=state.global_step,
            total_steps=state.max_steps,
            epoch=max(1, math.ceil(state.epoch or 0)),
            loss=float(logs["loss"]),
            lr=float(logs["learning_rate"]),
            samples_per_s=self.samples * args.world_size / seconds,  # every process runs equal micro-batches
            tokens_per_s=(state.num_input_tokens_seen - self._tokens) / seconds,
            peak_memory_mb=peak_memory_mb(args.device.type),
            elapsed_s=time.perf_counter() - self._began,
        )
        self.losses.append(log.loss)
        if state.is_world_process_zero:
            _append_csv(self.csv_path, log)
            if self.on_step:
                self.on_step(log)


def _callback(logger: StepLogger, run_config: dict[str, Any]) -> TrainerCallback:
    """The Trainer's events to `logger`; RUN_JSON into each checkpoint, so a resume with other settings is refused."""
    from transformers import TrainerCallback

    class _Callback(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            logger.train_begin()

        def on_step_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            logger.step_begin(args, state)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **_: Any) -> None:
            if logs and "loss" in logs:
                logger.log(args, state, logs)

        def on_save(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and path.is_dir():
                run = {"config": run_config, "processes": args.world_size}
                (path / RUN_JSON).write_text(json.dumps(run, indent=2))

    return _Callback()


def logged_losses(csv_path: Path, start: int, *, write: bool) -> list[float]:
    """Losses of the steps before `start` from the CSV (kept on resume); a fresh run starts a new CSV.

    Only the process that `write`s changes the file (atomically, so the others read it whole)."""
    rows: list[dict[str, str]] = []
    if start > 0 and csv_path.is_file():
        with csv_path.open() as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= start]
    if write:
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        if rows:
            partial = csv_path.with_suffix(".csv.partial")
            with partial.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=[x.name for x in fields(StepLog)])
                writer.writeheader()
                writer.writerows(rows)
            partial.replace(csv_path)
        else:
            csv_path.unlink(missing_ok=True)
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
