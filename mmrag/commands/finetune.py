"""`mmrag finetune data|validate|train|eval|push|pull|merge`: synthetic chart QA, LoRA adapters, evaluation, S3,
merged models.

Each command parses its options and calls one library function; heavy imports happen inside the commands. The
options of `data` and `train` take their defaults from the library's DataConfig and TrainConfig.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer

from mmrag.core.console import err, out, progress_bar
from mmrag.finetune.dataset import DataConfig
from mmrag.finetune.train import TrainConfig

if TYPE_CHECKING:
    from mmrag.finetune.evaluate import EvalReport
    from mmrag.finetune.train import StepLog
    from mmrag.rag_app.generator import LocalGenerator

DATA = DataConfig(n_charts=1000)
"""The defaults of `finetune data` (the number of charts is the command's own)."""
TRAIN = TrainConfig()
"""The defaults of `finetune train`."""


def _quiet_warnings() -> None:
    """peft calls a transformers method deprecated in v5; users can do nothing about that warning."""
    import warnings

    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


def _base(base: str | None) -> str:
    from mmrag.core.models import resolve_models
    from mmrag.core.settings import load_settings

    return base or resolve_models(load_settings()).vlm_model


def _device(device: str | None) -> str:
    from mmrag.core.models import resolve_device
    from mmrag.core.settings import load_settings

    return resolve_device(device or load_settings().device)


def data(
    out_dir: Path = typer.Option(..., "--out", help="New directory for the dataset."),
    n: int = typer.Option(DATA.n_charts, "--n", min=1, help="Number of charts."),
    seed: int = typer.Option(DATA.seed, "--seed", min=0, help="Same seed, same dataset."),
    domain: str = typer.Option("business", help="business, finance, health, science, or a domain JSON file."),
    questions: int = typer.Option(
        DATA.questions_per_chart, "--questions-per-chart", min=1, help="Template questions per chart."
    ),
    workers: int = typer.Option(min(4, os.cpu_count() or 1), min=1, help="Processes rendering charts."),
    bedrock: bool = typer.Option(False, "--bedrock", help="Add LLM-written questions (checked) with Bedrock."),
    bedrock_model: str | None = typer.Option(None, help="Bedrock model id (default: MMRAG_BEDROCK_MODEL)."),
) -> None:
    """Generate synthetic charts with questions and answers computed from their tables."""
    from mmrag.finetune.dataset import build_dataset
    from mmrag.finetune.domains import load_domain

    enricher = None
    if bedrock:
        from mmrag.core.settings import load_settings
        from mmrag.finetune.bedrock import BedrockEnricher

        enricher = BedrockEnricher(bedrock_model or load_settings().bedrock_model)
    config = DataConfig(n_charts=n, seed=seed, questions_per_chart=questions)
    with progress_bar("charts", n) as bar:
        card = build_dataset(
            out_dir, load_domain(domain), config, enricher=enricher, workers=workers, progress=bar.advance
        )
    counts = ", ".join(f"{s} {card.charts[s]} charts / {card.samples[s]} samples" for s in card.charts)
    out.print(f"dataset in {out_dir}: {counts}")


def validate(
    file: Path = typer.Argument(..., help="A LLaVA dataset file (JSON array or JSONL)."),
    base: str | None = typer.Option(None, help="Model whose processor measures the length (default: MMRAG_VLM_MODEL)."),
    max_length: int = typer.Option(TRAIN.max_length, help="Longest sample in tokens, image tokens included."),
    images: Path | None = typer.Option(None, help="Folder the image paths are relative to (default: the file's)."),
) -> None:
    """Check a dataset file; every defect is printed with its line, and the exit status is 1 if there is any."""
    from mmrag.core.settings import load_settings
    from mmrag.finetune.samples import DatasetError
    from mmrag.finetune.validate import load_processor, validate_file

    if not file.is_file():
        raise DatasetError(f"{file} does not exist")
    processor, model_max = load_processor(_base(base))
    limit = min(max_length, model_max) if model_max else max_length
    max_pixels = int(load_settings().max_image_megapixels * 1_000_000)
    report = validate_file(file, processor=processor, max_length=limit, image_root=images, max_pixels=max_pixels)
    for issue in report.issues:
        out.print(issue.format(file), highlight=False, markup=False)
    summary = (
        f"{report.n_samples} samples, {len(report.issues)} problems, longest {report.longest} tokens (max {limit})"
    )
    if not report.ok:
        err.print(f"[red]invalid:[/] {summary}")
        raise typer.Exit(1)
    out.print(f"[green]ok:[/] {summary}")


def train(
    data_dir: Path = typer.Option(..., "--data", help="Dataset dir made by `mmrag finetune data`."),
    out_dir: Path = typer.Option(..., "--out", help="Adapter dir (resumes from its checkpoints)."),
    base: str | None = typer.Option(None, help="Base model id or dir (default: MMRAG_VLM_MODEL)."),
    max_steps: int | None = typer.Option(TRAIN.max_steps, min=1, help="Stop after this many optimizer steps."),
    epochs: int = typer.Option(TRAIN.epochs, min=1),
    batch_size: int = typer.Option(
        TRAIN.batch_size,
        min=1,
        help="Samples per process and micro-batch; one step's global batch is this x processes x --grad-accum.",
    ),
    grad_accum: int = typer.Option(TRAIN.grad_accum, min=1, help="Gradient accumulation steps."),
    lr: float = typer.Option(
        TRAIN.learning_rate, help=f"LoRA learning rate (cosine schedule, {TRAIN.warmup_ratio:.0%} warmup)."
    ),
    lora_r: int = typer.Option(TRAIN.lora_r, min=1),
    lora_alpha: int = typer.Option(TRAIN.lora_alpha, min=1),
    lora_dropout: float = typer.Option(TRAIN.lora_dropout),
    projector: bool = typer.Option(
        TRAIN.train_projector, "--projector/--no-projector", help="Train the projector in full."
    ),
    max_length: int = typer.Option(TRAIN.max_length, min=1),
    seed: int = typer.Option(TRAIN.seed, min=0),
    save_every: int = typer.Option(TRAIN.save_every, min=1, help="Checkpoint every N steps."),
    qlora: bool = typer.Option(TRAIN.four_bit, "--qlora", help="4-bit base (CUDA and bitsandbytes)."),
    checkpointing: bool | None = typer.Option(
        TRAIN.gradient_checkpointing,
        "--gradient-checkpointing/--no-gradient-checkpointing",
        help="Default: on for CUDA.",
    ),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from the latest checkpoint in --out."),
    device: str | None = typer.Option(None, help="cpu or cuda (default: MMRAG_DEVICE)."),
    report_to: str = typer.Option(
        "none", help="Also log to these Trainer integrations: tensorboard, wandb, mlflow, ... (comma-separated)."
    ),
) -> None:
    """Train a LoRA adapter; the loss of every step goes to the console and to OUT/loss.csv.

    Runs as is under `torchrun --nproc_per_node N` or `accelerate launch` (DDP; FSDP or DeepSpeed with an accelerate
    config file, see configs/accelerate/); only the main process prints and writes OUT."""
    from mmrag.finetune.train import train as run_training

    _quiet_warnings()
    config = TrainConfig(
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        learning_rate=lr,
        train_projector=projector,
        epochs=epochs,
        batch_size=batch_size,
        grad_accum=grad_accum,
        max_steps=max_steps,
        max_length=max_length,
        seed=seed,
        save_every=save_every,
        four_bit=qlora,
        gradient_checkpointing=checkpointing,
    )
    result = run_training(
        data_dir,
        _base(base),
        out_dir,
        config,
        device=_device(device),
        resume=resume,
        on_step=_print_step,
        report_to=report_to,
    )
    if os.environ.get("RANK", "0") != "0":  # another process of a torchrun/accelerate launch: the main one reports
        return
    val = f", val loss {result.val_loss:.4f}" if result.val_loss is not None else ""
    out.print(
        f"adapter in {result.adapter_dir}: {result.steps} steps, loss {result.first_loss:.4f} -> "
        f"{result.final_loss:.4f}{val}"
    )


def _print_step(log: StepLog) -> None:
    out.print(
        f"step {log.step}/{log.total_steps}  epoch {log.epoch}  loss {log.loss:.4f}  lr {log.lr:.2e}  "
        f"{log.samples_per_s:.1f} samples/s  {log.tokens_per_s:.0f} tok/s  peak {log.peak_memory_mb:.0f} MB",
        highlight=False,
    )


def evaluate(
    data_dir: Path = typer.Option(..., "--data", help="Dataset dir; its test split is evaluated."),
    base: str | None = typer.Option(None, help="Base model id or dir (default: MMRAG_VLM_MODEL)."),
    adapter: str | None = typer.Option(None, help="Adapter dir or s3:// URI, scored beside the base."),
    json_output: bool = typer.Option(False, "--json", help="Print the JSON report."),
    limit: int | None = typer.Option(None, min=1, help="Only the first N questions."),
    batch_size: int = typer.Option(8, min=1),
    report_dir: Path | None = typer.Option(None, "--report-dir", help="Default: the adapter dir, else DATA/eval."),
    device: str | None = typer.Option(None, help="cpu or cuda (default: MMRAG_DEVICE)."),
) -> None:
    """ChartQA relaxed accuracy of the base model and the adapter, overall and per question and chart type."""
    import json

    from mmrag.finetune.evaluate import closed_samples, save_report
    from mmrag.finetune.evaluate import evaluate as run_eval

    _quiet_warnings()
    generator = _generator(base, device)
    adapter_dir = generator.resolve_adapter(adapter) if adapter else None  # checked as `mmrag ask` checks it
    n = len(closed_samples(data_dir, "test", limit)) * (2 if adapter_dir else 1)
    with progress_bar("answering", n) as bar:
        report = run_eval(
            data_dir,
            generator,
            adapter=adapter,
            limit=limit,
            batch_size=batch_size,
            progress=bar.advance,
        )
    json_path, png_path = save_report(report, report_dir or adapter_dir or data_dir / "eval")
    if json_output:
        out.print_json(json.dumps(report.to_json()))
    else:
        _print_report(report)
    err.print(f"report: {json_path}, plot: {png_path}")


def _generator(base: str | None, device: str | None) -> LocalGenerator:
    """The in-process generator `mmrag ask` answers with locally, on `base` and `device` when given."""
    from mmrag.core.settings import load_settings
    from mmrag.rag_app.generator import LocalGenerator

    return LocalGenerator.from_settings(load_settings(), model_id=base, device=_device(device))


def _print_report(report: EvalReport) -> None:
    from rich.table import Table

    table = Table(title=f"Relaxed accuracy on the {report.split} split ({report.base_model})")
    table.add_column("group")
    table.add_column("n", justify="right")
    for model in report.models:
        table.add_column(model, justify="right")
    rows: list[tuple[str, dict[str, Any]]] = [("overall", report.overall)]
    rows += [(f"question: {k}", v) for k, v in report.by_question_type.items()]
    rows += [(f"chart: {k}", v) for k, v in report.by_chart_type.items()]
    for name, scores in rows:
        first = next(iter(scores.values()))
        table.add_row(name, str(first.n), *(f"{scores[m].accuracy:.1%}" for m in report.models))
    out.print(table)


def push(
    local_dir: Path = typer.Argument(..., help="Adapter dir (checkpoints/ is left out)."),
    uri: str = typer.Argument(..., help="s3://bucket/prefix"),
) -> None:
    """Upload an adapter dir to S3 (multipart, checksummed); standard AWS settings apply (AWS_PROFILE, ...)."""
    from mmrag.core.s3 import push as upload

    keys = upload(local_dir, uri)
    out.print(f"pushed {len(keys)} files to {uri}")


def pull(
    uri: str = typer.Argument(..., help="s3://bucket/prefix"),
    dest: Path = typer.Argument(..., help="Local dir."),
) -> None:
    """Download an adapter from S3 and verify every file's sha256."""
    from mmrag.core.s3 import pull as download

    out.print(f"pulled {uri} into {download(uri, dest)}")


def merge(
    adapter: str = typer.Argument(..., help="Adapter dir or s3://bucket/prefix."),
    out_dir: Path = typer.Option(..., "--out", help="New directory for the merged model."),
    base: str | None = typer.Option(None, help="Base model id or dir (default: the adapter manifest's)."),
    device: Literal["cpu", "cuda"] = typer.Option("cpu", help="Merge on cpu (in float32) or cuda (in bfloat16)."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier merged model in --out."),
) -> None:
    """Merge an adapter into its base: a full checkpoint for servers without LoRA for the model (vLLM on OneVision).

    Serve OUT as any LLaVA checkpoint: `transformers serve OUT`, `vllm serve OUT`, MMRAG_VLM_MODEL=OUT.

    The weights keep the base's dtype; OUT/mmrag_merged.json says what was merged."""
    from mmrag.core.console import plain
    from mmrag.core.settings import load_settings
    from mmrag.finetune.merge import merge_adapter

    _quiet_warnings()
    result = merge_adapter(
        adapter,
        out_dir,
        cache_dir=load_settings().cache_dir,
        base=base,
        device=device,
        force=force,
        progress=lambda line: err.print(plain(line), markup=False, highlight=False),
    )
    manifest, files = result.manifest, len(result.weight_files)
    what = f"{manifest.base_model} + {manifest.adapter}"  # names from the adapter's manifest: data
    out.print(
        f"merged model in {plain(str(result.out))}: {plain(what)}, {manifest.dtype}, "
        f"{result.size_bytes / 1e6:,.0f} MB in {files} safetensors file{'s' if files > 1 else ''}",
        markup=False,
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add the `finetune` group to the `mmrag` app."""
    group = typer.Typer(help="Synthetic chart QA, LoRA adapters, evaluation and S3 shipping.", no_args_is_help=True)
    for name, command in (
        ("data", data),
        ("validate", validate),
        ("train", train),
        ("eval", evaluate),
        ("push", push),
        ("pull", pull),
        ("merge", merge),
    ):
        group.command(name)(command)
    app.add_typer(group, name="finetune")
