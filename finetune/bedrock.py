"""Optional LLM enrichment with Amazon Bedrock: more varied questions and a description for a chart.

The model sees the chart's table and returns JSON. Each question must name one of our question types with its
arguments, so its answer is recomputed from the table: a question whose answer disagrees (ChartQA relaxed match) is
rejected, and the dataset keeps the recomputed answer, formatted as the chart shows it. A description is kept only
when every number in it is on the chart. The template generator (`finetune.questions`) stays the default.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from mmrag.core.errors import MmragError
from mmrag.core.metrics import relaxed_match
from mmrag.finetune.charts import Chart
from mmrag.finetune.questions import QA, QUESTION_TYPES, QASpec, UnanswerableError, compute_answer

DEFAULT_MODEL_ID = "anthropic.claude-3-5-haiku-20241022-v1:0"
DESCRIBE_QUESTION = "Describe the chart briefly."
_SYSTEM = (
    "You write question/answer pairs for training a chart question-answering model. Use only the data given. "
    "Reply with one JSON object and nothing else."
)
_TYPES_HELP = (
    "value (categories=[c]: the value of c), max, min, argmax, argmin, compare (categories=[a,b]: the one with the "
    "higher value), difference (categories=[a,b]: |a-b|), sum (the series' total), average, ratio (categories=[a,b]: "
    "a/b), percentage (categories=[c]: c's share of the series' total), trend (first vs last: Increase or Decrease; "
    "line and area charts only), count (threshold=null: number of categories; else number above threshold)"
)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


class BedrockError(MmragError):
    """Bedrock could not be called (credentials, model access, region, throttling)."""


@dataclass(frozen=True)
class Enrichment:
    description: str | None
    qas: list[QA]
    """Accepted questions (and the description as a `describe` question), answers recomputed from the table."""
    rejected: list[str] = field(default_factory=list)
    """Why each rejected item was rejected."""


class BedrockEnricher:
    """Asks a Bedrock model (Converse API) for questions about a chart; the client is created on first use."""

    def __init__(self, model_id: str = DEFAULT_MODEL_ID, *, n_questions: int = 4, client: Any = None) -> None:
        self.model_id = model_id
        self.n_questions = n_questions
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.Session().client("bedrock-runtime")
        return self._client

    def enrich(self, chart: Chart) -> Enrichment:
        reply = self._ask(prompt(chart, self.n_questions))
        try:
            data = json.loads(_json_block(reply))
            items = data.get("questions", []) if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise TypeError("no questions list")
        except (json.JSONDecodeError, TypeError) as e:
            return Enrichment(None, [], [f"{chart.id}: the reply is not the JSON asked for ({e})"])
        qas, rejected = [], []
        for item in items:
            qa, reason = self._check(chart, item)
            if qa:
                qas.append(qa)
            else:
                rejected.append(f"{chart.id}: {reason}")
        description = data.get("description")
        if isinstance(description, str) and description.strip():
            wrong = _numbers_not_on_chart(chart, description)
            if wrong:
                rejected.append(f"{chart.id}: description has numbers not on the chart: {', '.join(wrong)}")
                description = None
            else:
                qas.append(QA(DESCRIBE_QUESTION, description.strip(), QASpec("describe"), self.model_id))
        return Enrichment(description if isinstance(description, str) else None, qas, rejected)

    def _ask(self, text: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.converse(
                modelId=self.model_id,
                system=[{"text": _SYSTEM}],
                messages=[{"role": "user", "content": [{"text": text}]}],
                inferenceConfig={"maxTokens": 1500, "temperature": 0.3},
            )
        except ClientError as e:
            error = e.response.get("Error", {})
            raise BedrockError(f"Bedrock {self.model_id}: {error.get('Code')}: {error.get('Message')}") from e
        except BotoCoreError as e:
            raise BedrockError(f"Bedrock {self.model_id}: {e}") from e
        parts = response["output"]["message"]["content"]
        return "".join(p.get("text", "") for p in parts)

    def _check(self, chart: Chart, item: Any) -> tuple[QA | None, str]:
        try:
            spec = QASpec(
                qtype=str(item["type"]),
                series=item.get("series"),
                categories=tuple(str(c) for c in item.get("categories") or ()),
                threshold=float(item["threshold"]) if item.get("threshold") is not None else None,
            )
            # one line, as every question of the dataset: the prompt holds it on its own line
            question, claimed = " ".join(str(item["question"]).split()), str(item["answer"])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            return None, f"malformed question {item!r}: {e}"
        if spec.qtype not in QUESTION_TYPES or spec.qtype == "describe":
            return None, f"unknown question type {spec.qtype!r}"
        try:
            truth = compute_answer(chart, spec)
        except UnanswerableError as e:
            return None, f"{question!r}: {e}"
        if not relaxed_match(claimed, truth):
            return None, f"{question!r}: answered {claimed!r} but the table gives {truth!r}"
        return QA(question, truth, spec, self.model_id), ""


def prompt(chart: Chart, n_questions: int) -> str:
    table = {
        "chart_type": chart.kind,
        "title": chart.title,
        "category_axis": chart.dimension,
        "categories": list(chart.categories),
        "series": {s.name: list(s.values) for s in chart.series},
        "unit": {"prefix": chart.measure.prefix, "suffix": chart.measure.suffix},
    }
    return (
        f"Chart data:\n{json.dumps(table, ensure_ascii=False)}\n\n"
        f"Write {n_questions} varied questions a reader of this chart might ask, and a two-sentence description of "
        "what the chart shows. Each question has a type, from: "
        f"{_TYPES_HELP}. Give `series` (a series name, or null for a single-series chart), `categories` and "
        "`threshold` as the type needs, and the exact answer. Reply as JSON: "
        '{"description": "...", "questions": [{"question": "...", "type": "...", "series": null, '
        '"categories": [], "threshold": null, "answer": "..."}]}'
    )


def _json_block(reply: str) -> str:
    """The JSON object in a reply, without Markdown fences or chatter around it."""
    start, end = reply.find("{"), reply.rfind("}")
    return reply[start : end + 1] if 0 <= start < end else reply


def _numbers_not_on_chart(chart: Chart, text: str) -> list[str]:
    shown = [v for s in chart.series for v in s.values] + [float(sum(s.values)) for s in chart.series]
    labels = " ".join(chart.categories) + " " + chart.title
    wrong = []
    for token in _NUMBER.findall(text):
        if token in labels:
            continue
        if not any(relaxed_match(token, f"{v}") for v in shown):
            wrong.append(token)
    return wrong
