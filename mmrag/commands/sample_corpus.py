"""A small sample corpus for the demo and tests: charts with captions, a PDF report, a Markdown note."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import IO

REVENUE = {"Q1": 1.2, "Q2": 1.5, "Q3": 1.1, "Q4": 2.0}
HEADCOUNT = {"Engineering": 42, "Sales": 17, "Support": 9, "Research": 12}
SHARE = {"Europe": 38, "Americas": 34, "Asia": 22, "Other": 6}
TEMPERATURE = [3.1, 4.0, 7.2, 10.8, 14.9, 18.1, 20.3, 19.8, 16.2, 11.4, 6.9, 3.8]


def write_sample_corpus(root: Path) -> list[Path]:
    """Write the corpus under `root` (deterministic) and return the paths to index."""
    import matplotlib

    matplotlib.use("Agg")
    charts = root / "charts"
    charts.mkdir(parents=True, exist_ok=True)
    _bar(charts / "revenue_by_quarter.png", REVENUE, "Revenue by quarter, 2024", "USD millions")
    (charts / "revenue_by_quarter.txt").write_text(
        "Quarterly revenue in 2024: Q1 1.2, Q2 1.5, Q3 1.1 and Q4 2.0 million USD; Q4 was the strongest quarter."
    )
    _bar(charts / "headcount.png", HEADCOUNT, "Headcount by team", "people", horizontal=True)
    (charts / "headcount.json").write_text(
        json.dumps({"title": "Headcount by team at year end", "data": HEADCOUNT}, indent=2)
    )
    _line(charts / "temperature.jpg", TEMPERATURE)
    _pie(root / "market_share.png", SHARE)
    (root / "notes.md").write_text(
        "# Planning notes\n\nThe team met to review the 2024 results and plan hiring for 2025.\n\n"
        "![Market share by region in 2024: Europe leads with 38 percent](market_share.png)\n\n"
        "Europe remains the largest market. Hiring will focus on support, which is the smallest team.\n"
    )
    _report(root / "report.pdf")
    return [root]


def _bar(path: Path, data: Mapping[str, float], title: str, unit: str, horizontal: bool = False) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=80)
    (ax.barh if horizontal else ax.bar)(list(data), list(data.values()), color="#4C72B0")
    ax.set_title(title)
    (ax.set_xlabel if horizontal else ax.set_ylabel)(unit)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _line(path: Path, values: list[float]) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=80)
    months = ["J", "F", "M", "A", "M", "J", "J", "A", "S", "O", "N", "D"]
    ax.plot(range(12), values, marker="o", color="#DD8452")
    ax.set_xticks(range(12), months)
    ax.set_title("Average temperature by month (°C)")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, pil_kwargs={"quality": 90})
    plt.close(fig)


def _pie(path: Path, data: Mapping[str, float]) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=80)
    ax.pie(list(data.values()), labels=list(data), autopct="%d%%")
    ax.set_title("Market share by region")
    fig.savefig(path)
    plt.close(fig)


def _report(path: Path) -> None:
    """Two pages of real text (TrueType fonts, extractable) and a raster chart embedded as a figure."""
    import io

    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages
    from PIL import Image

    buffer = io.BytesIO()
    _bar_to(buffer, {"2021": 3.1, "2022": 3.9, "2023": 4.6, "2024": 5.8})
    chart = Image.open(buffer)
    metadata = {"CreationDate": None, "ModDate": None}  # byte-identical on every run
    with plt.rc_context({"pdf.fonttype": 42}), PdfPages(path, metadata=metadata) as pdf:
        fig = plt.figure(figsize=(8.27, 11.69))
        fig.text(0.1, 0.92, "Annual Report 2024", fontsize=20)
        body = (
            "Revenue grew 26 percent in 2024 to 5.8 million USD.\n"
            "The strongest quarter was Q4 with 2.0 million USD.\n"
            "Operating costs fell by 4 percent thanks to automation.\n"
            "The company employed 80 people at the end of the year."
        )
        fig.text(0.1, 0.75, body, fontsize=11, linespacing=1.8)
        pdf.savefig(fig)
        plt.close(fig)
        fig = plt.figure(figsize=(8.27, 11.69))
        fig.text(0.1, 0.92, "Revenue history", fontsize=16)
        ax = fig.add_axes((0.1, 0.45, 0.8, 0.4))
        ax.imshow(chart)
        ax.axis("off")
        fig.text(0.1, 0.40, "Figure 1: Annual revenue 2021-2024 in million USD, rising every year.", fontsize=10)
        pdf.savefig(fig)
        plt.close(fig)


def _bar_to(target: IO[bytes], data: Mapping[str, float]) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=80)
    ax.bar(list(data), list(data.values()), color="#55A868")
    ax.set_title("Annual revenue (USD millions)")
    fig.tight_layout()
    fig.savefig(target, format="png")
    plt.close(fig)
