"""ChartQA relaxed accuracy, the metric `mmrag finetune eval` and the rag_app batch command report."""

from __future__ import annotations

import pytest

from finetune.evaluate import relaxed_match

CASES = [
    ("42", "42", True),
    ("42 [1]", "42", True),  # citations are not part of the answer
    ("43", "42", True),  # within 5%
    ("45", "42", False),  # 7% off
    ("1,234", "1234", True),  # thousands separators
    ("$1,234.5M", "$1,234.5M", True),
    ("1234.5", "$1,234.5M", True),  # currency and unit are not required
    ("12.1%", "12.0%", True),
    ("0.12", "12%", True),  # a share as a fraction
    ("12", "12%", True),  # ... or without the sign
    ("0", "0", True),
    ("0.01", "0", False),  # the gold 0 needs an exact answer
    ("-5", "5", False),
    ("Q3", "q3", True),  # other answers: case-insensitive exact match
    ("Q3.", "Q3", True),
    ("Q3 and Q4", "Q3", False),
    ("Increase", "Decrease", False),
    ("North", "", False),
]


@pytest.mark.parametrize(("prediction", "gold", "expected"), CASES)
def test_relaxed_match(prediction: str, gold: str, expected: bool) -> None:
    assert relaxed_match(prediction, gold) is expected
