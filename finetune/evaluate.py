"""ChartQA-style evaluation of the base model and an adapter, side by side, on a data dir's test split.

The metric is ChartQA's relaxed accuracy: a numeric answer is right within 5% relative error of the gold number
(exactly when the gold is 0), any other answer by case-insensitive exact match. Citations (``[1]``), currency
signs, thousands separators and units are ignored; ``45%`` is matched by ``45%``, ``45`` and ``0.45``.
Open-ended questions (``describe``) have no single right string and are left out.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mmrag.core.metrics import relaxed_match
from mmrag.finetune.dataset import load_questions
from mmrag.finetune.samples import DatasetError, Sample, read_samples

if TYPE_CHECKING:
    from mmrag.finetune.answerer import ChartAnswerer

OPEN_ENDED = ("describe",)


@dataclass(frozen=True)
class Prediction:
    id: str
    chart_type: str
    question_type: str
    question: str
    gold: str
    answers: dict[str, str]
    """Model label (``base``, ``adapter``) -> its answer."""
    correct: dict[str, bool]


@dataclass(frozen=True)
class Score:
    n: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0


@dataclass(frozen=True)
class EvalReport:
    base_model: str
    adapter: str | None
    split: str
    models: tuple[str, ...]
    overall: dict[str, Score]
    by_question_type: dict[str, dict[str, Score]]
    by_chart_type: dict[str, dict[str, Score]]
    predictions: list[Prediction] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        def scores(table: dict[str, Score]) -> dict[str, object]:
            return {m: {"n": s.n, "correct": s.correct, "accuracy": round(s.accuracy, 4)} for m, s in table.items()}

        return {
            "metric": "ChartQA relaxed accuracy (5% relative tolerance on numbers)",
            "base_model": self.base_model,
            "adapter": self.adapter,
            "split": self.split,
            "models": list(self.models),
            "overall": scores(self.overall),
            "by_question_type": {k: scores(v) for k, v in self.by_question_type.items()},
            "by_chart_type": {k: scores(v) for k, v in self.by_chart_type.items()},
            "predictions": [asdict(p) for p in self.predictions],
        }


def evaluate(
    data_dir: Path,
    base_model: str,
    device: str,
    *,
    adapter_dir: Path | None = None,
    split: str = "test",
    limit: int | None = None,
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
) -> EvalReport:
    """Answer the split's questions with the base model, then with the adapter on it, and score both.

    An unusable adapter (another base, no safetensors weights) is refused (AdapterError) before any model loads.
    """
    from mmrag.core.adapters import check_adapter
    from mmrag.finetune.answerer import load_answerer

    if adapter_dir is not None:
        check_adapter(adapter_dir, base_model)
    samples = closed_samples(data_dir, split, limit)
    answerer = load_answerer(base_model, device)
    answers = {"base": _answer_all(answerer, data_dir, samples, batch_size, progress)}
    if adapter_dir is not None:
        answerer.add_adapter(adapter_dir, base_model)
        answers["adapter"] = _answer_all(answerer, data_dir, samples, batch_size, progress)
    questions = load_questions(data_dir)
    predictions = []
    for i, sample in enumerate(samples):
        cq = questions[sample.id]
        gold = cq.qa.answer
        model_answers = {m: a[i] for m, a in answers.items()}
        correct = {m: relaxed_match(a, gold) for m, a in model_answers.items()}
        predictions.append(
            Prediction(sample.id, cq.chart.kind, cq.qa.spec.qtype, cq.qa.question, gold, model_answers, correct)
        )
    return _report(base_model, adapter_dir, split, tuple(answers), predictions)


def closed_samples(data_dir: Path, split: str, limit: int | None) -> list[Sample]:
    path = data_dir / f"{split}.json"
    if not path.is_file():
        raise DatasetError(f"{path} is missing: make a dataset with `mmrag finetune data --out {data_dir}`")
    questions = load_questions(data_dir)
    samples = [s for s in read_samples(path) if s.id in questions and questions[s.id].qa.spec.qtype not in OPEN_ENDED]
    if not samples:
        raise DatasetError(f"{path} has no closed questions to evaluate")
    return samples[:limit] if limit else samples


def _answer_all(
    answerer: ChartAnswerer,
    data_dir: Path,
    samples: list[Sample],
    batch_size: int,
    progress: Callable[[int], None] | None,
) -> list[str]:
    from PIL import Image

    answers: list[str] = []
    for start in range(0, len(samples), batch_size):
        batch = samples[start : start + batch_size]
        images = []
        for s in batch:
            with Image.open(data_dir / s.image) as image:
                images.append(image.convert("RGB"))
        answers += answerer.answer([s.conversations[0].value for s in batch], images)
        if progress:
            progress(len(batch))
    return answers


def _report(
    base_model: str, adapter_dir: Path | None, split: str, models: tuple[str, ...], predictions: list[Prediction]
) -> EvalReport:
    def scores(group: Iterable[Prediction]) -> dict[str, Score]:
        group = list(group)
        return {m: Score(len(group), sum(p.correct[m] for p in group)) for m in models}

    by_q: dict[str, list[Prediction]] = defaultdict(list)
    by_c: dict[str, list[Prediction]] = defaultdict(list)
    for p in predictions:
        by_q[p.question_type].append(p)
        by_c[p.chart_type].append(p)
    return EvalReport(
        base_model=base_model,
        adapter=str(adapter_dir) if adapter_dir else None,
        split=split,
        models=models,
        overall=scores(predictions),
        by_question_type={k: scores(v) for k, v in sorted(by_q.items())},
        by_chart_type={k: scores(v) for k, v in sorted(by_c.items())},
        predictions=predictions,
    )


def save_report(report: EvalReport, out_dir: Path) -> tuple[Path, Path]:
    """eval_report.json and eval_report.png (accuracy per question type and chart type, one bar per model)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "eval_report.json"
    json_path.write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")
    return json_path, _plot(report, out_dir / "eval_report.png")


def _plot(report: EvalReport, path: Path) -> Path:
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    panels = [("overall", {"overall": report.overall}), ("question type", report.by_question_type)]
    panels.append(("chart type", report.by_chart_type))
    for i, (title, table) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        x = np.arange(len(table))
        width = 0.8 / len(report.models)
        for j, model in enumerate(report.models):
            values = [table[k][model].accuracy for k in table]
            ax.bar(x + (j - (len(report.models) - 1) / 2) * width, values, width, label=model)
        ax.set_xticks(x, list(table), rotation=45, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"Relaxed accuracy by {title}" if title != "overall" else "Relaxed accuracy")
    fig.axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path
