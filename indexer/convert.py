"""Page images of Office files: headless LibreOffice converts the file to PDF, whose pages are rendered like a PDF's.

LibreOffice is an optional program: without it (or with MMRAG_OFFICE_PAGES off) an Office file is indexed without
page images, and a note says so. It runs with a private profile that forbids macros and linked content, listens on
no port, has no network where the system lets a process drop it, converts a copy whose external relationships point
nowhere, and is killed (with everything it started) when the file's time is up; a file it cannot convert costs its
page images (a warning), never the rest of the file.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import zipfile
from pathlib import Path

from lxml import etree

from mmrag.core.errors import error_text, one_line
from mmrag.indexer.items import BadFileError, Item
from mmrag.indexer.office_package import ZIP_ERRORS, parse_xml
from mmrag.indexer.reading import PDFIUM_LOCK, Deadline, ExtractOptions, page_image, page_text

NO_LIBREOFFICE_NOTE = "page images need LibreOffice (not installed: see README, Office files)"

PROFILE_SETTINGS = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="MacroSecurityLevel" oor:op="fuse">\
<value>3</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="DisableMacrosExecution" \
oor:op="fuse"><value>true</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="BlockUntrustedRefererLinks" \
oor:op="fuse"><value>true</value></prop></item>
<item oor:path="/org.openoffice.Office.Writer/Content/Update"><prop oor:name="Link" oor:op="fuse">\
<value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Content/Update"><prop oor:name="Link" oor:op="fuse">\
<value>1</value></prop></item>
</oor:items>
"""
"""The profile's registrymodifications.xcu: macro security at its highest level and macro execution disabled, so
nothing in a document ever runs; content a document links to (a picture at http://... or file:///...) never loaded,
since no document is from a trusted location; links in Writer and Calc never updated (Writer's 0 and Calc's 1 both
mean never)."""

BLANK_TARGET = "about:blank"
"""Where the converted copy's external relationships point."""
_URL = re.compile(r"^\s*(?:[A-Za-z][A-Za-z0-9+.-]*:|[/\\]{2})")
_COPIED_AS_IS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
"""Compression methods LibreOffice reads: a package with a part compressed otherwise is rewritten with deflate."""


class _Profile:
    """This process's LibreOffice profile: made on first use (LibreOffice's first start in it is slow), reused, one
    conversion at a time; removed at exit."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pid = -1
        self.path: Path | None = None

    def get(self) -> Path:
        """The profile folder (the caller holds `lock`); a fresh one in a forked child."""
        if self.path is None or self.pid != os.getpid():
            if self.pid == -1:  # once: a forked child inherits it, and `remove` there spares the parent's profile
                atexit.register(self.remove)
            self.path = Path(tempfile.mkdtemp(prefix="mmrag-libreoffice-"))
            self.pid = os.getpid()
            (self.path / "user").mkdir()
            (self.path / "user" / "registrymodifications.xcu").write_text(PROFILE_SETTINGS, encoding="utf-8")
        return self.path

    def discard(self) -> None:
        """Forget a profile a killed LibreOffice may have left half-written: the next conversion makes a new one."""
        self.remove()
        self.path = None

    def remove(self) -> None:
        """Remove the profile folder if this process made it (a forked child's copy of `path` is its parent's)."""
        if self.path is not None and self.pid == os.getpid():
            shutil.rmtree(self.path, ignore_errors=True)


_PROFILE = _Profile()


def office_pages(
    path: Path, options: ExtractOptions, deadline: Deadline, warnings: list[str], notes: list[str]
) -> list[Item]:
    """The pages of an Office file as LibreOffice prints them: kind 'page' items (locator 'page:N', page=N, the
    render, and that page's full text for linking; the caller cuts it). [] with a note when LibreOffice is not
    there, [] with a warning when it cannot convert the file in time; [] when options.office_pages is off."""
    if not options.office_pages:
        return []
    program = shutil.which(options.soffice)
    if program is None:
        notes.append(NO_LIBREOFFICE_NOTE)
        return []
    with tempfile.TemporaryDirectory(prefix="mmrag-convert-") as tmp:
        try:
            pdf = _convert(program, path, Path(tmp), deadline)
        except BadFileError as e:
            warnings.append(f"page images left out: {e}")
            return []
        return _render(pdf, options, deadline, warnings)


def _convert(program: str, path: Path, tmp: Path, deadline: Deadline) -> Path:
    """The file converted to PDF in `tmp`, given at most three quarters of the file's time left (the rest is for
    rendering and the other items); BadFileError when LibreOffice fails or runs out of time."""
    copy = tmp / ("document" + _suffix(path))
    _unlinked_copy(path, copy)
    budget = Deadline(max(deadline.left() * 0.75, 1.0))
    out = tmp / "out"
    if not _PROFILE.lock.acquire(timeout=budget.seconds):
        raise BadFileError(f"LibreOffice was busy for {budget.seconds:.0f} s")
    try:
        profile = _PROFILE.get()
        command = [
            *_offline(),
            program,
            "--headless",
            "--norestore",
            "--nologo",
            "--nodefault",
            "--nolockcheck",
            f"-env:UserInstallation={profile.as_uri()}",
            "--convert-to",
            "pdf",
            "--outdir",
            str(out),
            str(copy),
        ]
        _run(command, budget.left(), tmp)
    finally:
        _PROFILE.lock.release()
    pdf = out / (copy.stem + ".pdf")
    if not pdf.is_file():
        raise BadFileError("LibreOffice could not convert it")
    return pdf


def _unlinked_copy(path: Path, copy: Path) -> None:
    """`path` written to `copy` with every relationship to something outside the package (TargetMode External, or
    a target that is a URL) pointed at about:blank, every other part unchanged: LibreOffice fetches what they link
    to (a picture at http://... or file:///...) while it converts, and would draw it into the page image. Only the
    relationship parts are read first: a package with no such link is copied byte for byte."""
    if not zipfile.is_zipfile(path):
        raise BadFileError("not an Office file (not a zip archive)")
    try:
        with zipfile.ZipFile(path) as source:
            unlinked = _unlinked_parts(source)
            if not unlinked and all(info.compress_type in _COPIED_AS_IS for info in source.infolist()):
                shutil.copyfile(path, copy)
                return
            _rewrite(source, copy, unlinked)
    except ZIP_ERRORS as e:
        raise BadFileError(f"corrupt zip archive ({error_text(e)})") from e


def _unlinked_parts(source: zipfile.ZipFile) -> dict[zipfile.ZipInfo, bytes]:
    """The relationship parts (*.rels) that link outside the package, each with those links pointed nowhere."""
    changed: dict[zipfile.ZipInfo, bytes] = {}
    for info in source.infolist():
        if info.filename.lower().endswith(".rels"):
            data = source.read(info)
            if (unlinked := _unlinked(data, info.filename)) is not data:
                changed[info] = unlinked
    return changed


def _rewrite(source: zipfile.ZipFile, copy: Path, replaced: dict[zipfile.ZipInfo, bytes]) -> None:
    """The package written to `copy` part by part (stored or deflated), with the `replaced` parts' new bytes."""
    with zipfile.ZipFile(copy, "w") as target:
        for info in source.infolist():
            entry = zipfile.ZipInfo(info.filename)
            entry.compress_type = (
                zipfile.ZIP_STORED if info.compress_type == zipfile.ZIP_STORED else zipfile.ZIP_DEFLATED
            )
            if info in replaced:
                target.writestr(entry, replaced[info])
            elif info.is_dir():
                target.writestr(entry, b"")
            else:
                with (
                    source.open(info) as src,
                    target.open(entry, "w", force_zip64=info.file_size >= zipfile.ZIP64_LIMIT) as dst,
                ):
                    shutil.copyfileobj(src, dst, 1 << 20)


def _unlinked(data: bytes, part: str) -> bytes:
    """A relationships part with its external targets pointed at about:blank; unchanged (the same bytes) when it
    has none. Relationship elements are matched by local name, whatever their namespace."""
    root = parse_xml(data, part)
    changed = False
    for relationship in root.iter(etree.Element):
        if etree.QName(relationship).localname != "Relationship":
            continue
        external = relationship.get("TargetMode", "").strip().lower() == "external"
        if external or _URL.match(relationship.get("Target", "")):
            relationship.set("Target", BLANK_TARGET)
            relationship.set("TargetMode", "External")
            changed = True
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True) if changed else data


@functools.cache
def _offline() -> tuple[str, ...]:
    """The command prefix that runs a program without network (`unshare --net` in a user namespace of its own), or
    () where this system does not let an unprivileged process do that (containers often do not): checked once."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    prefix = (unshare, "--net", "--map-root-user")
    try:
        done = subprocess.run([*prefix, "true"], capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return ()
    return prefix if done.returncode == 0 else ()


def _suffix(path: Path) -> str:
    """The file's extension, lowercased (LibreOffice picks its import filter by it), nothing else of its name."""
    return "." + re.sub(r"[^a-z0-9]", "", path.suffix.lower())[:8]


def _run(command: list[str], timeout_s: float, home: Path) -> None:
    """Runs LibreOffice in a session of its own, with HOME and its temp folder (TMPDIR, TMP, TEMP) inside `home`,
    so that what it leaves behind when killed goes with the caller's temp dir; on timeout the whole process group
    is killed."""
    scratch = home / "tmp"
    scratch.mkdir(exist_ok=True)
    env = os.environ | {"HOME": str(home), "TMPDIR": str(scratch), "TMP": str(scratch), "TEMP": str(scratch)}
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=home,
        start_new_session=True,
    )
    timeout_s = max(timeout_s, 1.0)
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        _kill_group(process)
        _PROFILE.discard()  # a killed LibreOffice may leave its profile half-written
        raise BadFileError(f"LibreOffice took longer than {timeout_s:.0f} s to convert it") from e
    finally:
        _kill_group(process)  # anything it left running (a helper process) goes with it
    if process.returncode != 0:
        detail = one_line(output.decode("utf-8", "replace").split("Error:")[-1])
        raise BadFileError(f"LibreOffice failed (exit {process.returncode}){': ' + detail if detail else ''}")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _render(pdf_path: Path, options: ExtractOptions, deadline: Deadline, warnings: list[str]) -> list[Item]:
    """Page items from the converted PDF, as a PDF's page images (options.page_long_side); pages past
    options.max_pdf_pages, or past the file's time, are left out with a warning."""
    import pypdfium2 as pdfium

    items: list[Item] = []
    with PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(pdf_path)
        except pdfium.PdfiumError as e:
            warnings.append(f"page images left out: LibreOffice's PDF is unreadable ({one_line(str(e))})")
            return []
        try:
            total = len(pdf)
            if total > options.max_pdf_pages:
                first = options.max_pdf_pages + 1
                which = f"images {first}-{total}" if total > first else f"image {first}"
                warnings.append(f"page {which} left out (MMRAG_MAX_PDF_PAGES={options.max_pdf_pages})")
            for number in range(1, min(total, options.max_pdf_pages) + 1):
                if deadline.left() < 0:
                    warnings.append(f"page images from page {number} on left out: out of time")
                    break
                try:
                    items.append(_page(pdf, number, options))
                except (BadFileError, pdfium.PdfiumError) as e:
                    warnings.append(f"page image {number} left out: {e}")
        finally:
            pdf.close()
    return items


def _page(pdf: object, number: int, options: ExtractOptions) -> Item:
    page = pdf[number - 1]  # type: ignore[index]
    image = page_image(page, options)
    text = page_text(page.get_textpage())[: options.max_text_bytes]
    return Item(kind="page", locator=f"page:{number}", text=text, image=image, page=number)
