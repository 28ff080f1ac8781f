"""Office files and scanned pages: how fast each format is read, and how fast and how well scans are OCRed.

    .venv/bin/python bench/office.py [--seeds 1001,1002] [--scan-seeds 2001,2002,2003] [--scan-pages 3]
                                     [--repeats 2] [--out DIR]

Office: tests/office_corpus.py writes a .docx, a .pptx and a .xlsx per seed (text, tables, pictures and native
charts, truth recorded as written); `extract_file` reads each, in this process, twice: without page images (the
Python readers and the charts drawn from their data) and with LibreOffice's page images (when `soffice` is
installed; its first start, which builds its profile, is a warm-up outside the timing). Reported: files/s per type
both ways (the fastest of `--repeats` passes) and the share of chart values found in their chart's text.

OCR: tests/scan_corpus.py writes clean and noisy image-only PDFs (300 dpi, the noisy ones with a scanner's noise,
blur, JPEG artefacts and a slight rotation), truth recorded as drawn; `extract_file` OCRs them with Tesseract.
Reported: pages/s and word accuracy (1 - word edit distance / words drawn) against the targets, >= 0.95 clean and
>= 0.85 noisy. The seeds are held out: the OCR settings were tuned on others.

Prints a table with a PASS/FAIL column for the targets, saves bench/results/office.json and office.png; exits 1 on
any FAIL. Needs Tesseract for the OCR rows (without it they are skipped and said so).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmrag.indexer.extract import ExtractOptions, extract_file, file_digest
from mmrag.indexer.items import FileResult
from tests.office_corpus import HELD_OUT_SEEDS as OFFICE_SEEDS
from tests.office_corpus import OfficeCorpus, make_office_corpus
from tests.scan_corpus import HELD_OUT_SEEDS as SCAN_SEEDS
from tests.scan_corpus import make_scan_corpus, word_accuracy

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {"clean": 0.95, "noisy": 0.85}


@dataclass
class Row:
    what: str
    files: int
    seconds: float
    rate: float
    unit: str
    quality: float | None = None
    target: float | None = None

    @property
    def passed(self) -> bool | None:
        return None if self.target is None or self.quality is None else self.quality >= self.target


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cpus: int = os.cpu_count() or 1


def read(path: Path, options: ExtractOptions) -> FileResult:
    result = extract_file(path, file_digest([path]), options)
    if result.error:
        raise SystemExit(f"{path.name}: {result.error}")
    return result


def timed(files: list[Path], options: ExtractOptions, repeats: int) -> tuple[float, list[FileResult]]:
    best, results = float("inf"), []
    for _ in range(repeats):
        started = time.perf_counter()
        results = [read(path, options) for path in files]
        best = min(best, time.perf_counter() - started)
    return best, results


def office(seeds: list[int], work: Path, repeats: int, report: Report) -> None:
    corpora = [make_office_corpus(work / f"office-{seed}", seed) for seed in seeds]
    by_type: dict[str, list[Path]] = {".docx": [], ".pptx": [], ".xlsx": []}
    for corpus in corpora:
        for path in sorted(corpus.folder.iterdir()):
            if path.suffix in by_type:
                by_type[path.suffix].append(path)
    without = ExtractOptions(office_pages=False)
    with_pages = ExtractOptions(office_pages=True)
    soffice = shutil.which(with_pages.soffice) is not None
    # a warm-up outside the timing: the readers' imports, and LibreOffice's first start, which builds its profile
    read(by_type[".docx"][0], with_pages if soffice else without)
    if not soffice:
        report.notes.append("LibreOffice not installed: no page-image rows")
    read_without: dict[Path, FileResult] = {}
    for suffix, files in by_type.items():
        seconds, results = timed(files, without, repeats)
        read_without.update(zip(files, results, strict=True))
        report.rows.append(Row(f"{suffix} (no page images)", len(files), seconds, len(files) / seconds, "files/s"))
        if soffice:
            seconds, results = timed(files, with_pages, repeats)
            pages = sum(1 for r in results for item in r.items if item.kind == "page")
            rate = len(files) / seconds
            report.rows.append(Row(f"{suffix} + LibreOffice pages", len(files), seconds, rate, "files/s"))
            report.notes.append(f"{suffix}: {pages} page images from {len(files)} files")
    found, total = chart_values_found(corpora, read_without)
    share = found / total if total else 0.0
    report.rows.append(Row("chart values in their chart's text", total, 0.0, 0.0, "", share, 1.0))


def chart_values_found(corpora: list[OfficeCorpus], results: dict[Path, FileResult]) -> tuple[int, int]:
    """(values found, values written) over every chart of the corpora, in the text of the chart items that
    `results` (by path, read without page images) hold."""
    found = total = 0
    for corpus in corpora:
        for chart in corpus.charts:
            items = results[corpus.folder / chart.file].items
            texts = [item.text for item in items if item.origin == "chart-data"]
            for series in chart.series:
                for value in series.values:
                    total += 1
                    found += any(value in text for text in texts)
    return found, total


def ocr(seeds: list[int], pages: int, work: Path, report: Report) -> None:
    options = ExtractOptions(chunk_size=100_000, chunk_overlap=0)  # a page's text in one chunk: scored whole
    if shutil.which(options.tesseract) is None:
        report.notes.append("Tesseract not installed: no OCR rows")
        return
    for noisy in (False, True):
        kind = "noisy" if noisy else "clean"
        accuracies, seconds, n = [], 0.0, 0
        for seed in seeds:
            corpus = make_scan_corpus(work / f"scan-{kind}-{seed}", seed, pages=pages, noisy=noisy)
            started = time.perf_counter()
            result = read(corpus.pdf, options)
            seconds += time.perf_counter() - started
            for number, truth in enumerate(corpus.pages, start=1):
                text = "\n".join(item.text for item in result.items if item.kind == "text" and item.page == number)
                accuracies.append(word_accuracy(truth, text))
                n += 1
        report.rows.append(
            Row(f"OCR, {kind} scans", n, seconds, n / seconds, "pages/s", statistics.mean(accuracies), TARGETS[kind])
        )


def show(report: Report) -> None:
    print(f"\nOffice files and scans on {report.cpus} CPUs (extraction in one process)\n")
    print(f"{'what':38} {'n':>4} {'seconds':>8} {'rate':>14} {'quality':>8} {'target':>7}  result")
    for row in report.rows:
        rate = f"{row.rate:.2f} {row.unit}" if row.unit else ""
        quality = f"{row.quality:.3f}" if row.quality is not None else ""
        target = f">={row.target:.2f}" if row.target is not None else ""
        verdict = {True: "PASS", False: "FAIL", None: ""}[row.passed]
        print(f"{row.what:38} {row.files:>4} {row.seconds:>8.2f} {rate:>14} {quality:>8} {target:>7}  {verdict}")
    for note in report.notes:
        print(f"  {note}")


def save(report: Report, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data = {"cpus": report.cpus, "rows": [asdict(row) | {"passed": row.passed} for row in report.rows]}
    data["notes"] = report.notes
    (out / "office.json").write_text(json.dumps(data, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    speed = [row for row in report.rows if row.unit]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 1]})
    left.barh([row.what for row in speed], [row.rate for row in speed], color="#4c72b0")
    for i, row in enumerate(speed):
        left.text(row.rate, i, f" {row.rate:.2f} {row.unit}", va="center", fontsize=8)
    left.invert_yaxis()
    left.set_xlabel("per second (files or pages)")
    left.set_title(f"Reading speed, {report.cpus} CPUs")
    scored = [row for row in report.rows if row.quality is not None and row.unit == "pages/s"]
    right.bar([row.what.split(", ")[-1] for row in scored], [row.quality or 0 for row in scored], color="#55a868")
    for i, row in enumerate(scored):
        right.plot([i - 0.4, i + 0.4], [row.target, row.target], color="#c44e52")
    right.set_ylim(0, 1)
    right.set_title("OCR word accuracy\n(red line: target)")
    fig.tight_layout()
    fig.savefig(out / "office.png", dpi=120)
    print(f"\nsaved {out / 'office.json'} and {out / 'office.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default=",".join(str(s) for s in OFFICE_SEEDS), help="Office corpus seeds")
    parser.add_argument("--scan-seeds", default=",".join(str(s) for s in SCAN_SEEDS))
    parser.add_argument("--scan-pages", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    scan_seeds = [int(s) for s in args.scan_seeds.split(",")]
    report = Report()
    with tempfile.TemporaryDirectory(prefix="mmrag-office-") as tmp:
        office(seeds, Path(tmp), args.repeats, report)
        ocr(scan_seeds, args.scan_pages, Path(tmp), report)
    show(report)
    save(report, args.out)
    if any(row.passed is False for row in report.rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
