"""LLM enrichment through Bedrock's Converse API, offline with botocore's Stubber: wrong answers never get in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.stub import ANY, Stubber

from mmrag.finetune.bedrock import BedrockEnricher, BedrockError
from mmrag.finetune.charts import Chart, random_chart
from mmrag.finetune.dataset import DataConfig, build_dataset, load_card
from mmrag.finetune.domains import load_domain
from mmrag.finetune.questions import QASpec, compute_answer

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"


@pytest.fixture
def client() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def chart() -> Chart:
    return random_chart("c000000", "bar", load_domain("business"), np.random.default_rng(5))


def _reply(text: str) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 300, "outputTokens": 200, "totalTokens": 500},
        "metrics": {"latencyMs": 900},
    }


def _expect(stubber: Stubber, text: str) -> None:
    params = {"modelId": MODEL, "system": ANY, "messages": ANY, "inferenceConfig": ANY}
    stubber.add_response("converse", _reply(text), params)


def test_right_answers_are_kept_and_wrong_ones_rejected(client: tuple[Any, Stubber], chart: Chart) -> None:
    bedrock, stubber = client
    top = max(zip(chart.values(), chart.categories, strict=True))[1]
    total = sum(chart.values())
    first = chart.categories[0]
    questions = [
        {"question": "Which is the largest?", "type": "argmax", "series": None, "categories": [], "answer": top},
        {"question": "Total\n  of all?", "type": "sum", "series": None, "categories": [], "answer": f"{total:.0f}"},
        {"question": "And the first?", "type": "value", "categories": [first], "answer": "999999"},
        {"question": "Mood?", "type": "sentiment", "answer": "happy"},
        {"question": "No type"},
    ]
    description = f"Sales by {chart.dimension.lower()}. {top} leads."
    _expect(stubber, "Here you go:\n```json\n" + json.dumps({"description": description, "questions": questions}))
    result = BedrockEnricher(MODEL, client=bedrock).enrich(chart)

    kept = {qa.question: qa for qa in result.qas}
    # a question is one line (the prompt holds it on its own line, as evaluation reads it back)
    assert set(kept) == {"Which is the largest?", "Total of all?", "Describe the chart briefly."}
    assert kept["Total of all?"].answer == compute_answer(chart, QASpec("sum"))  # the table's formatting, not the LLM's
    assert kept["Describe the chart briefly."].answer == description
    assert all(qa.source == MODEL for qa in result.qas)
    assert len(result.rejected) == 3
    assert any("999999" in r and compute_answer(chart, QASpec("value", None, (first,))) in r for r in result.rejected)


def test_a_description_with_numbers_not_on_the_chart_is_rejected(client: tuple[Any, Stubber], chart: Chart) -> None:
    bedrock, stubber = client
    _expect(stubber, json.dumps({"description": "Sales peaked at 123456789 units.", "questions": []}))
    result = BedrockEnricher(MODEL, client=bedrock).enrich(chart)
    assert result.description is None and result.qas == []
    assert "123456789" in result.rejected[0]


def test_a_reply_that_is_not_json_is_rejected_not_fatal(client: tuple[Any, Stubber], chart: Chart) -> None:
    bedrock, stubber = client
    _expect(stubber, "I cannot help with that.")
    result = BedrockEnricher(MODEL, client=bedrock).enrich(chart)
    assert result.qas == [] and "not the JSON" in result.rejected[0]


def test_bedrock_errors_become_one_clear_error(client: tuple[Any, Stubber], chart: Chart) -> None:
    bedrock, stubber = client
    stubber.add_client_error(
        "converse", "AccessDeniedException", "You don't have access to the model with the specified model ID."
    )
    with pytest.raises(BedrockError, match="AccessDeniedException: You don't have access"):
        BedrockEnricher(MODEL, client=bedrock).enrich(chart)


def test_the_dataset_records_enrichment_in_its_card(client: tuple[Any, Stubber], tmp_path: Path) -> None:
    bedrock, stubber = client
    for _ in range(3):
        _expect(stubber, json.dumps({"questions": [{"question": "How many?", "type": "count", "answer": "0"}]}))
    build_dataset(
        tmp_path / "ds", load_domain("science"), DataConfig(n_charts=3), enricher=BedrockEnricher(MODEL, client=bedrock)
    )
    card = load_card(tmp_path / "ds")
    assert card.generator == f"template+bedrock:{MODEL}" and card.rejected_llm_answers == 3
