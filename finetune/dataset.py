"""A synthetic chart-QA dataset on disk: charts, their tables, LLaVA-format splits and a dataset card.

Layout of a data dir::

    images/<chart>.png        the rendered chart
    tables/<chart>.json       its ground-truth table and metadata, and its questions with answers
    {train,val,test}.json     LLaVA samples as a JSON array (what LLaVA's train.py reads) ...
    {train,val,test}.jsonl    ... and the same, one sample a line
    dataset_card.json         how it was made and counts by split, chart type and question type
    README.md                 the same card for people

Splits are by chart: every question about a chart is in the chart's split.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmrag.core.prompts import PROMPT_STYLE
from mmrag.finetune.charts import CHART_KINDS, Chart, random_chart
from mmrag.finetune.domains import Domain
from mmrag.finetune.questions import QA, QASpec, make_questions
from mmrag.finetune.samples import DatasetError, Sample, chart_sample, write_samples

if TYPE_CHECKING:
    from mmrag.finetune.bedrock import BedrockEnricher

SPLITS = ("train", "val", "test")
CARD_NAME = "dataset_card.json"
_SPLIT_STREAM = 2**32 - 1
"""Seeds the split draw apart from the charts (which use [seed, index])."""


@dataclass(frozen=True)
class DataConfig:
    n_charts: int
    seed: int = 0
    questions_per_chart: int = 6
    test_fraction: float = 0.1
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise DatasetError("the seed must be a non-negative integer")
        if self.n_charts < 1 or self.questions_per_chart < 1:
            raise DatasetError("the number of charts and of questions per chart must be at least 1")
        if not 0 <= self.test_fraction + self.val_fraction < 1:
            raise DatasetError("test and val fractions must add up to less than 1")


@dataclass(frozen=True)
class DatasetCard:
    domain: str
    seed: int
    n_charts: int
    prompt_style: str
    generator: str
    """``template``, or ``template+bedrock:<model id>`` when LLM enrichment was on."""
    charts: dict[str, int]
    samples: dict[str, int]
    chart_types: dict[str, dict[str, int]]
    """split -> chart type -> number of charts."""
    question_types: dict[str, dict[str, int]]
    """split -> question type -> number of samples."""
    rejected_llm_answers: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def chart_record(index: int, seed: int, domain: Domain, k: int, data_dir: Path) -> tuple[Chart, list[QA]]:
    """Chart number `index` of the dataset with seed `seed`: drawn, rendered and asked `k` questions."""
    from mmrag.finetune.renderer import render

    rng = np.random.default_rng([seed, index])
    chart = random_chart(f"c{index:06d}", CHART_KINDS[index % len(CHART_KINDS)], domain, rng)
    render(chart, data_dir / "images" / f"{chart.id}.png")
    return chart, make_questions(chart, rng, k)


def build_dataset(
    data_dir: Path,
    domain: Domain,
    config: DataConfig,
    *,
    enricher: BedrockEnricher | None = None,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> DatasetCard:
    """Generate the whole data dir (which must be empty or new); returns its card."""
    if data_dir.exists() and any(data_dir.iterdir()):
        raise DatasetError(f"{data_dir} is not empty: choose a new directory for the dataset")
    for sub in ("images", "tables"):
        (data_dir / sub).mkdir(parents=True, exist_ok=True)
    splits = split_of(config)
    samples: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    kinds: dict[str, Counter[str]] = {s: Counter() for s in SPLITS}
    rejected = 0
    for chart, qas in _records(data_dir, domain, config, workers):
        if enricher is not None:
            enrichment = enricher.enrich(chart)
            qas = [*qas, *enrichment.qas]
            rejected += len(enrichment.rejected)
        split = splits[int(chart.id[1:])]
        samples[split] += [
            chart_sample(f"{chart.id}-q{k}", f"images/{chart.id}.png", qa.question, qa.answer)
            for k, qa in enumerate(qas)
        ]
        kinds[split][chart.kind] += 1
        _write_table(data_dir, chart, qas)
        if progress:
            progress(1)
    for split in SPLITS:
        write_samples(samples[split], data_dir / f"{split}.json")
    card = _card(domain, config, samples, kinds, data_dir, rejected, enricher)
    (data_dir / CARD_NAME).write_text(json.dumps(asdict(card), indent=2, sort_keys=True) + "\n")
    (data_dir / "README.md").write_text(card_markdown(card))
    return card


def _records(data_dir: Path, domain: Domain, config: DataConfig, workers: int) -> Iterator[tuple[Chart, list[QA]]]:
    args = (config.seed, domain, config.questions_per_chart, data_dir)
    if workers <= 1:
        yield from (chart_record(i, *args) for i in range(config.n_charts))
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(chart_record, i, *args) for i in range(config.n_charts)]
        yield from (f.result() for f in futures)


def split_of(config: DataConfig) -> list[str]:
    """The split of each chart index, drawn from the seed."""
    n = config.n_charts
    n_test = max(1, round(n * config.test_fraction)) if n >= 3 and config.test_fraction else 0
    n_val = max(1, round(n * config.val_fraction)) if n >= 3 and config.val_fraction else 0
    order = np.random.default_rng([config.seed, _SPLIT_STREAM]).permutation(n)
    split = ["train"] * n
    for rank, index in enumerate(order):
        split[index] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return split


def _write_table(data_dir: Path, chart: Chart, qas: list[QA]) -> None:
    questions = [
        {"id": f"{chart.id}-q{k}", "question": qa.question, "answer": qa.answer, "source": qa.source, **asdict(qa.spec)}
        for k, qa in enumerate(qas)
    ]
    record = {"chart": chart.to_json(), "questions": questions}
    (data_dir / "tables" / f"{chart.id}.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")


@dataclass(frozen=True)
class ChartQuestion:
    """One question of a data dir with what evaluation needs to know about it."""

    id: str
    chart: Chart
    qa: QA


def load_questions(data_dir: Path) -> dict[str, ChartQuestion]:
    """Every question of a data dir by sample id, with its chart (from tables/)."""
    questions: dict[str, ChartQuestion] = {}
    for path in sorted((data_dir / "tables").glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        chart = Chart.from_json(record["chart"])
        for q in record["questions"]:
            spec = QASpec(q["qtype"], q["series"], tuple(q["categories"]), q["threshold"])
            questions[q["id"]] = ChartQuestion(q["id"], chart, QA(q["question"], q["answer"], spec, q["source"]))
    if not questions:
        raise DatasetError(f"{data_dir} has no tables/: is it a dir made by `mmrag finetune data`?")
    return questions


def load_card(data_dir: Path) -> DatasetCard:
    try:
        return DatasetCard(**json.loads((data_dir / CARD_NAME).read_text()))
    except FileNotFoundError as e:
        raise DatasetError(f"{data_dir} has no {CARD_NAME}: is it a dir made by `mmrag finetune data`?") from e
    except (json.JSONDecodeError, TypeError) as e:
        raise DatasetError(f"{data_dir / CARD_NAME} is not a valid dataset card: {e}") from e


def card_sha256(data_dir: Path) -> str | None:
    path = data_dir / CARD_NAME
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _card(
    domain: Domain,
    config: DataConfig,
    samples: dict[str, list[Sample]],
    kinds: dict[str, Counter[str]],
    data_dir: Path,
    rejected: int,
    enricher: BedrockEnricher | None,
) -> DatasetCard:
    qtypes: dict[str, dict[str, int]] = {}
    for split, split_samples in samples.items():
        tables = {s.id.rsplit("-q", 1)[0] for s in split_samples}
        counter: Counter[str] = Counter()
        for chart_id in tables:
            record = json.loads((data_dir / "tables" / f"{chart_id}.json").read_text())
            counter.update(q["qtype"] for q in record["questions"])
        qtypes[split] = dict(sorted(counter.items()))
    return DatasetCard(
        domain=domain.name,
        seed=config.seed,
        n_charts=config.n_charts,
        prompt_style=PROMPT_STYLE,
        generator="template" if enricher is None else f"template+bedrock:{enricher.model_id}",
        charts={s: sum(kinds[s].values()) for s in SPLITS},
        samples={s: len(samples[s]) for s in SPLITS},
        chart_types={s: dict(sorted(kinds[s].items())) for s in SPLITS},
        question_types=qtypes,
        rejected_llm_answers=rejected,
    )


def card_markdown(card: DatasetCard) -> str:
    lines = [
        f"# Synthetic chart QA: {card.domain}",
        "",
        f"Seed {card.seed}, {card.n_charts} charts, generator `{card.generator}`, prompt style `{card.prompt_style}`.",
        "Answers are computed from each chart's table (`tables/`). Splits are by chart.",
        "",
        "| split | charts | samples |",
        "|---|---|---|",
        *(f"| {s} | {card.charts[s]} | {card.samples[s]} |" for s in SPLITS),
        "",
    ]
    for title, table in (("Chart types", card.chart_types), ("Question types", card.question_types)):
        names = sorted({k for counts in table.values() for k in counts})
        lines += [f"## {title}", "", "| type | " + " | ".join(SPLITS) + " |", "|---|" + "---|" * len(SPLITS)]
        lines += [f"| {n} | " + " | ".join(str(table[s].get(n, 0)) for s in SPLITS) + " |" for n in names]
        lines.append("")
    if card.rejected_llm_answers:
        lines.append(f"LLM answers rejected because the table disagreed: {card.rejected_llm_answers}.")
    return "\n".join(lines)
