"""ChartQA-style evaluation of the base model and an adapter, side by side, on a data dir's test split.

The metric is ChartQA's relaxed accuracy: a numeric answer is right within 5% relative error of the gold number
(exactly when the gold is 0), any other answer by case-insensitive exact match. Citations (``[1]``), currency
signs, thousands separators and units are ignored; ``45%`` is matched by ``45%``, ``45`` and ``0.45``.
Open-ended questions (``describe``) have no single right string and are left out.

The answers come from the generator `mmrag ask` uses (`rag_app.generator`), each chart shown as source [1] with
its question (`GenerationRequest.chart`): the prompt the adapter was trained on, checked against each sample.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from mmrag.core.metrics import relaxed_match
from mmrag.core.prompts import llava_human_turn
from mmrag.finetune.dataset import load_questions
from mmrag.finetune.samples import DatasetError, Sample, question_of, read_samples
from mmrag.rag_app.generator import GenerationRequest

if TYPE_CHECKING:
    from PIL import Image

    from mmrag.rag_app.generator import Generator

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
    generator: Generator,
    *,
    adapter: str | None = None,
    split: str = "test",
    limit: int | None = None,
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
) -> EvalReport:
    """Answer the split's questions with the generator's base model, then with `adapter` (a dir or s3:// URI) on
    it, and score both.

    An unusable adapter (another base, no safetensors weights) is refused (AdapterError) before any model loads.
    """
    if adapter is not None:
        generator.resolve_adapter(adapter)
    samples = closed_samples(data_dir, split, limit)
    answers = {"base": _answer_all(generator, None, data_dir, samples, batch_size, progress)}
    if adapter is not None:
        answers["adapter"] = _answer_all(generator, adapter, data_dir, samples, batch_size, progress)
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
    return _report(generator.model_id, adapter, split, tuple(answers), predictions)


def closed_samples(data_dir: Path, split: str, limit: int | None) -> list[Sample]:
    path = data_dir / f"{split}.json"
    if not path.is_file():
        raise DatasetError(f"{path} is missing: make a dataset with `mmrag finetune data --out {data_dir}`")
    questions = load_questions(data_dir)
    samples = [s for s in read_samples(path) if s.id in questions and questions[s.id].qa.spec.qtype not in OPEN_ENDED]
    if not samples:
        raise DatasetError(f"{path} has no closed questions to evaluate")
    return samples[:limit] if limit else samples


def chart_request(sample: Sample, image: Image.Image, adapter: str | None = None) -> GenerationRequest:
    """The request that asks a sample's question about its chart exactly as the sample's human turn (the training
    prompt) does; DatasetError for a sample written with another prompt."""
    request = GenerationRequest.chart(question_of(sample.conversations[0]), image, Path(sample.image).name)
    if llava_human_turn(1, request.prompt_text) != sample.conversations[0].value:
        raise DatasetError(
            f"sample {sample.id} was written with another prompt than this version asks with: "
            "make the dataset again with `mmrag finetune data`"
        )
    return replace(request, adapter=adapter)


def _answer_all(
    generator: Generator,
    adapter: str | None,
    data_dir: Path,
    samples: list[Sample],
    batch_size: int,
    progress: Callable[[int], None] | None,
) -> list[str]:
    from PIL import Image

    answers: list[str] = []
    for start in range(0, len(samples), batch_size):
        batch = samples[start : start + batch_size]
        requests = []
        for s in batch:
            with Image.open(data_dir / s.image) as image:
                requests.append(chart_request(s, image.convert("RGB"), adapter))
        answers += generator.generate_batch(requests)
        if progress:
            progress(len(batch))
    return answers


def _report(
    base_model: str, adapter: str | None, split: str, models: tuple[str, ...], predictions: list[Prediction]
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
        adapter=adapter,
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
