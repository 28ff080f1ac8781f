"""Domain vocabularies: the titles, categories, series names and measures (with units) that charts are made of.

Four domains are built in (``finetune/domains/<name>.json``); a user's own JSON file of the same shape is accepted
wherever a domain name is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrag.core.errors import MmragError

BUILTIN_DIR = Path(__file__).with_name("domains")
BUILTIN_DOMAINS = ("business", "finance", "health", "science")


class DomainError(MmragError):
    """A domain name that is not built in, or a domain file that cannot be used."""


@dataclass(frozen=True)
class Measure:
    """A quantity a chart plots, with the unit its numbers are shown in."""

    name: str
    prefix: str = ""
    """Written before the number: ``$``."""
    suffix: str = ""
    """Written after the number: ``%``, ``M``, `` kg``."""
    low: float = 0.0
    high: float = 100.0
    """Values are drawn from [low, high] (both >= 0 so that totals, shares and pies make sense)."""
    decimals: int = 0
    """Digits after the decimal point, in the data and everywhere the value is shown."""

    def format(self, value: float, decimals: int | None = None) -> str:
        """The value as the chart shows it: unit prefix/suffix, thousands separators, fixed decimals."""
        digits = self.decimals if decimals is None else decimals
        sign = "-" if value < 0 else ""
        return f"{sign}{self.prefix}{abs(value):,.{digits}f}{self.suffix}"


@dataclass(frozen=True)
class Domain:
    name: str
    titles: tuple[str, ...]
    """Title templates with ``{measure}`` and ``{dimension}`` fields."""
    dimensions: dict[str, tuple[str, ...]]
    """Category axis name -> its category labels (in their natural order)."""
    series: tuple[str, ...]
    measures: tuple[Measure, ...]


def load_domain(name_or_path: str) -> Domain:
    """A built-in domain by name, or a user's domain file (JSON)."""
    path = BUILTIN_DIR / f"{name_or_path}.json" if name_or_path in BUILTIN_DOMAINS else Path(name_or_path)
    if not path.is_file():
        raise DomainError(
            f"unknown domain {name_or_path!r}: use one of {', '.join(BUILTIN_DOMAINS)} or a path to a domain JSON file"
        )
    try:
        return _parse(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as e:
        raise DomainError(f"domain file {path} is not valid JSON: {e}") from e
    except (KeyError, TypeError, ValueError) as e:
        raise DomainError(f"domain file {path} is invalid: {e}") from e


def _parse(data: dict[str, Any]) -> Domain:
    measures = tuple(Measure(**m) for m in data["measures"])
    dimensions = {str(k): tuple(str(c) for c in v) for k, v in data["dimensions"].items()}
    domain = Domain(
        name=str(data["name"]),
        titles=tuple(str(t) for t in data["titles"]),
        dimensions=dimensions,
        series=tuple(str(s) for s in data["series"]),
        measures=measures,
    )
    _check(domain)
    return domain


def _check(domain: Domain) -> None:
    if not (domain.titles and domain.measures and domain.dimensions):
        raise ValueError("titles, dimensions and measures must not be empty")
    if len(domain.series) < 3:
        raise ValueError("at least 3 series names are needed (grouped and multi-series charts)")
    for name, labels in domain.dimensions.items():
        if len(set(labels)) < 3 or len(set(labels)) != len(labels):
            raise ValueError(f"dimension {name!r} needs at least 3 distinct labels, without duplicates")
    for m in domain.measures:
        if not 0 <= m.low < m.high or m.decimals not in (0, 1, 2):
            raise ValueError(f"measure {m.name!r}: need 0 <= low < high and decimals 0, 1 or 2")
    for template in domain.titles:
        template.format(measure="m", dimension="d")
