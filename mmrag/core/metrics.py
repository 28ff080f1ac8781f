"""ChartQA's relaxed accuracy, shared by training-time evaluation, Bedrock's answer checks and batch scoring."""

from __future__ import annotations

import re

RELATIVE_TOLERANCE = 0.05
_CITATIONS = re.compile(r"(\s*\[\d+\])+\s*\.?\s*$")
_NUMBER = re.compile(
    r"^[-+−]?\s*[$€£¥]?\s*(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)\s*"
    r"(?:k|m|b|bn|thousand|million|billion)?\s*(?P<pct>%|percent)?\s*(?P<unit>[a-z°/ ]{0,12})$"
)


def relaxed_match(prediction: str, gold: str) -> bool:
    """ChartQA relaxed accuracy of one answer: numbers within 5% relative error, other answers exactly (any case)."""
    pred, ref = _normalise(prediction), _normalise(gold)
    pred_number, gold_number = _number(pred), _number(ref)
    if pred_number is None or gold_number is None:
        return pred == ref
    (p, p_pct), (g, g_pct) = pred_number, gold_number
    candidates = [p] if p_pct == g_pct else [p, p * 100 if g_pct else p / 100]
    return any(_close(c, g) for c in candidates)


def strip_citations(answer: str) -> str:
    """The answer without trailing source markers: ``"42 [1]."`` -> ``"42"``."""
    return _CITATIONS.sub("", answer).strip()


def _close(prediction: float, gold: float) -> bool:
    if gold == 0:
        return prediction == 0
    return abs(prediction - gold) / abs(gold) <= RELATIVE_TOLERANCE


def _normalise(text: str) -> str:
    return " ".join(strip_citations(text).strip().rstrip(".").split()).lower()


def _number(text: str) -> tuple[float, bool] | None:
    """(value, is_percentage) of an answer that is one number (with unit and currency), else None."""
    match = _NUMBER.match(text)
    if not match:
        return None
    value = float(match["num"].replace(",", ""))
    return (-value if text.startswith(("-", "−")) else value), bool(match["pct"])
