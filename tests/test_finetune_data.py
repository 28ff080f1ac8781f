"""Synthetic charts and their questions: deterministic, rendered, answers right by construction, split by chart."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmrag.core.metrics import strip_citations
from mmrag.finetune.charts import CHART_KINDS, Chart
from mmrag.finetune.dataset import SPLITS, DataConfig, build_dataset, load_card
from mmrag.finetune.domains import BUILTIN_DOMAINS, DomainError, load_domain
from mmrag.finetune.samples import read_samples

N_CHARTS = 2 * len(CHART_KINDS)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data") / "ds"
    build_dataset(out, load_domain("finance"), DataConfig(n_charts=N_CHARTS, seed=7), workers=2)
    return out


def _digest(directory: Path) -> dict[str, str]:
    return {
        p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_the_same_dataset_and_another_seed_another(data_dir: Path, tmp_path: Path) -> None:
    build_dataset(tmp_path / "again", load_domain("finance"), DataConfig(n_charts=N_CHARTS, seed=7), workers=1)
    assert _digest(tmp_path / "again") == _digest(data_dir)  # PNGs included, and one process or two alike

    build_dataset(tmp_path / "other", load_domain("finance"), DataConfig(n_charts=3, seed=8))
    first = json.loads((tmp_path / "other/tables/c000000.json").read_text())["chart"]
    assert first != json.loads((data_dir / "tables/c000000.json").read_text())["chart"]


def test_every_chart_type_renders_a_nonblank_png_with_its_table(data_dir: Path) -> None:
    kinds = set()
    for table in sorted((data_dir / "tables").glob("*.json")):
        chart = Chart.from_json(json.loads(table.read_text())["chart"])
        kinds.add(chart.kind)
        with Image.open(data_dir / "images" / f"{chart.id}.png") as image:
            pixels = np.asarray(image.convert("L"), dtype=float)
        assert image.width >= 300 and image.height >= 200
        assert pixels.std() > 10, f"{chart.kind} chart {chart.id} looks blank"
        assert chart.series and all(len(s.values) == len(chart.categories) for s in chart.series)
    assert kinds == set(CHART_KINDS)


def _recompute(chart: dict, q: dict) -> str:
    """The answer from the JSON table alone, by plain arithmetic (independent of finetune.questions)."""
    from mmrag.finetune.domains import Measure

    series = {s["name"]: s["values"] for s in chart["series"]}
    name = q["series"] or chart["series"][-1]["name"]
    values = series[name]
    table = dict(zip(chart["categories"], values, strict=True))
    scatter_x = chart["kind"] == "scatter" and name == chart["series"][0]["name"]
    measure = Measure(**(chart["x_measure"] if scatter_x else chart["measure"]))
    cats = q["categories"]
    qtype = q["qtype"]
    if qtype == "value":
        return measure.format(table[cats[0]])
    if qtype in ("max", "min"):
        return measure.format(max(values) if qtype == "max" else min(values))
    if qtype in ("argmax", "argmin"):
        pick = max(values) if qtype == "argmax" else min(values)
        return next(c for c, v in table.items() if v == pick)
    if qtype == "compare":
        return cats[0] if table[cats[0]] > table[cats[1]] else cats[1]
    if qtype == "difference":
        return measure.format(abs(table[cats[0]] - table[cats[1]]))
    if qtype == "sum":
        if cats:
            i = chart["categories"].index(cats[0])
            return Measure(**chart["measure"]).format(sum(v[i] for v in series.values()))
        return measure.format(sum(values))
    if qtype == "average":
        return measure.format(sum(values) / len(values), decimals=min(measure.decimals + 1, 2))
    if qtype == "ratio":
        return f"{table[cats[0]] / table[cats[1]]:.2f}"
    if qtype == "percentage":
        return f"{100 * table[cats[0]] / sum(values):.1f}%"
    if qtype == "trend":
        return "Increase" if values[-1] > values[0] else "Decrease"
    if qtype == "count":
        return str(len(values) if q["threshold"] is None else sum(v > q["threshold"] for v in values))
    raise AssertionError(f"no recomputation for {qtype}")


def test_every_answer_is_recomputed_from_its_table(data_dir: Path) -> None:
    checked = set()
    for table in sorted((data_dir / "tables").glob("*.json")):
        record = json.loads(table.read_text())
        for q in record["questions"]:
            if q["qtype"] == "describe":
                top = _recompute(record["chart"], {**q, "qtype": "argmax", "series": None})
                assert top in q["answer"] or record["chart"]["kind"] in ("grouped_bar", "stacked_bar", "multi_line")
                continue
            assert q["answer"] == _recompute(record["chart"], q), (table.name, q)
            checked.add(q["qtype"])
    assert checked >= {"value", "max", "min", "argmax", "argmin", "compare", "difference", "sum", "average"}
    assert checked >= {"ratio", "percentage", "trend", "count"}


def test_numbers_are_formatted_as_the_chart_shows_them(data_dir: Path) -> None:
    answers = [
        q["answer"]
        for table in (data_dir / "tables").glob("*.json")
        for q in json.loads(table.read_text())["questions"]
    ]
    assert any("," in a and a.replace(",", "").replace("$", "")[:1].isdigit() for a in answers)  # thousands
    assert any(a.startswith("$") for a in answers) and any(a.endswith("%") for a in answers)


def test_splits_are_by_chart_and_the_card_counts_them(data_dir: Path) -> None:
    card = load_card(data_dir)
    charts_by_split = {}
    for split in SPLITS:
        samples = read_samples(data_dir / f"{split}.json")
        jsonl = read_samples(data_dir / f"{split}.jsonl")
        assert [s.to_json() for s in samples] == [s.to_json() for s in jsonl]  # the array and the JSONL agree
        assert [s.line for s in jsonl] == list(range(1, len(jsonl) + 1))
        assert len(samples) == card.samples[split]
        assert sum(card.question_types[split].values()) == len(samples)
        charts_by_split[split] = {s.image for s in samples}
        assert len(charts_by_split[split]) == card.charts[split] == sum(card.chart_types[split].values())
        for s in samples:
            assert s.conversations[0].value.startswith("<image>\n") and s.conversations[0].value.count("<image>") == 1
            assert strip_citations(s.conversations[1].value) and s.conversations[1].value.endswith("[1]")
    train, val, test = (charts_by_split[s] for s in SPLITS)
    assert not (train & val or train & test or val & test)
    assert card.charts["test"] >= 1 and card.charts["val"] >= 1
    assert "| train |" in (data_dir / "README.md").read_text()


def test_a_users_domain_file_is_accepted_and_a_bad_one_is_explained(tmp_path: Path) -> None:
    domain = {
        "name": "retail",
        "titles": ["{measure} by {dimension}"],
        "dimensions": {"Store": ["Downtown", "Mall", "Airport", "Harbor"]},
        "series": ["2023", "2024", "2025"],
        "measures": [{"name": "Footfall", "low": 100, "high": 5000}],
    }
    path = tmp_path / "retail.json"
    path.write_text(json.dumps(domain))
    build_dataset(tmp_path / "ds", load_domain(str(path)), DataConfig(n_charts=3, seed=1))
    chart = json.loads((tmp_path / "ds/tables/c000000.json").read_text())["chart"]
    assert chart["domain"] == "retail" and set(chart["categories"]) <= set(domain["dimensions"]["Store"])

    path.write_text(json.dumps({**domain, "measures": []}))
    with pytest.raises(DomainError, match="measures"):
        load_domain(str(path))
    with pytest.raises(DomainError, match=", ".join(BUILTIN_DOMAINS)):
        load_domain("astrology")
