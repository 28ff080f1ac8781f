"""An Office package (a zip of XML parts) checked before any parser reads it, and its XML parsed safely: the
checks that refuse a hostile file (OLE, zip bomb, DTD) serve the files and the workbooks their charts embed."""

from __future__ import annotations

import posixpath
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any

from lxml import etree

from mmrag.core.errors import error_text, one_line
from mmrag.indexer.items import BadFileError
from mmrag.indexer.reading import Deadline

OLE_MAGIC = b"\xd0\xcf\x11\xe0"
MAX_MEMBERS = 20_000
"""Parts an Office zip may hold."""
_CONTENT_TYPES = "[content_types].xml"
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, RuntimeError, zlib.error)
"""What reading a damaged zip raises: a bad header, a truncated or corrupt deflate stream, an encrypted member."""


def _parser(target: Any = None) -> etree.XMLParser:
    """An lxml parser that resolves no entities, loads no DTD and never touches the network."""
    return etree.XMLParser(target=target, resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def parse_xml(data: bytes, part: str) -> Any:
    """The root element of an XML part; a broken or DTD-bearing part is a BadFileError naming it."""
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as e:
        raise _broken(part, e) from e
    if root.getroottree().docinfo.doctype:
        raise _declares_dtd(part)
    return root


def _broken(part: str, error: etree.XMLSyntaxError) -> BadFileError:
    """The refusal of a part that is not well-formed XML (parsed whole or checked as a stream)."""
    return BadFileError(f"broken XML in {part}: {one_line(error.msg or str(error))}")


def _declares_dtd(part: str) -> BadFileError:
    """The refusal of a part that declares a DTD, whose entities could expand without bound."""
    return BadFileError(f"{part} declares a DTD (refused: entity expansion)")


def reason(error: BaseException) -> str:
    """Why something could not be read, in one line: a BadFileError's own reason, else the error's type and
    message."""
    return str(error) if isinstance(error, BadFileError) else error_text(error)


class _DtdFoundError(Exception):
    """The parser met a DTD: the part is refused."""


class _NoTree:
    """An lxml parser target that builds nothing, so that a part of any size is checked at the parser's own speed
    in constant memory; it stops at a DTD as soon as the parser meets one (before any declaration in it)."""

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise _DtdFoundError

    def close(self) -> None:
        return None


class _ContentTypes(_NoTree):
    """[Content_Types].xml checked like any part while it says which of the zip's parts are XML: by name
    (Override) or else by extension (Default), a content type ending in 'xml'. Only names and extensions the zip
    holds are kept."""

    def __init__(self, names: set[str]) -> None:
        self.names, self.extensions = names, {_extension(name) for name in names}
        self.defaults: dict[str, bool] = {}
        self.overrides: dict[str, bool] = {}

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        xml = attrib.get("ContentType", "").strip().lower().endswith("xml")
        kind = tag.rpartition("}")[2]
        if kind == "Default" and (extension := attrib.get("Extension", "").lower()) in self.extensions:
            self.defaults[extension] = xml
        elif kind == "Override" and (name := attrib.get("PartName", "").lstrip("/").lower()) in self.names:
            self.overrides[name] = xml

    def is_xml(self, name: str) -> bool:
        """Named .xml or .rels, or given an XML content type."""
        name = name.lower()
        return name.endswith((".xml", ".rels")) or self.overrides.get(name, self.defaults.get(_extension(name), False))


def _extension(name: str) -> str:
    return posixpath.splitext(name)[1].lstrip(".")


def _check_xml(archive: zipfile.ZipFile, member: zipfile.ZipInfo, target: _NoTree, deadline: Deadline | None) -> None:
    """Reads one part through `target` as a stream (64 KiB at a time, the deadline checked between them); a part
    that declares a DTD or is broken is a BadFileError naming it."""
    parser = _parser(target)
    try:
        with archive.open(member) as stream:
            while chunk := stream.read(1 << 16):
                if deadline is not None:
                    deadline.check()
                parser.feed(chunk)
        parser.close()
    except _DtdFoundError as e:
        raise _declares_dtd(member.filename) from e
    except etree.XMLSyntaxError as e:
        raise _broken(member.filename, e) from e


def check_package(path: Path, max_unzipped_bytes: int, deadline: Deadline, warnings: list[str]) -> None:
    """Refuse what is not a safe Office zip: OLE (legacy or encrypted), not a zip, a zip bomb (past
    `max_unzipped_bytes`), XML with a DTD or broken XML (naming the part); warn when it carries macros (never run)."""
    with path.open("rb") as f:
        head = f.read(8)
        ole = head.startswith(OLE_MAGIC)
        encrypted = ole and "EncryptionInfo".encode("utf-16-le") in f.read(8 << 20)
    if ole:
        if encrypted:
            raise BadFileError("encrypted Office file (password required)")
        raise BadFileError("legacy binary Office format (.doc/.ppt/.xls) is not read: save it as .docx/.pptx/.xlsx")
    if not zipfile.is_zipfile(path):
        if head.startswith(b"PK"):
            raise BadFileError("corrupt or truncated zip archive (its table of contents is missing)")
        raise BadFileError("not an Office file (not a zip archive)")
    for name in check_zip(path, max_unzipped_bytes, deadline):
        if name.lower().endswith("vbaproject.bin"):
            warnings.append("contains macros (never run)")


def check_zip(source: Path | IO[bytes], max_unzipped_bytes: int, deadline: Deadline | None = None) -> list[str]:
    """The names of a zip's parts, once it holds at most MAX_MEMBERS of them, declares at most `max_unzipped_bytes`
    unpacked, and each XML part (by name or content type) parses without a DTD; else a BadFileError saying which
    (an Office file's package, or the workbook a chart embeds, before any library reads it)."""
    try:
        with zipfile.ZipFile(source) as archive:
            members = archive.infolist()
            if len(members) > MAX_MEMBERS:
                raise BadFileError(f"zip holds {len(members)} parts (more than {MAX_MEMBERS}): refused")
            total = sum(m.file_size for m in members)
            if total > max_unzipped_bytes:
                raise BadFileError(
                    f"unpacks to {total / 2**20:.1f} MB, more than {max_unzipped_bytes / 2**20:g} MB "
                    "(MMRAG_MAX_UNZIPPED_MB): possible zip bomb"
                )
            types = _ContentTypes({member.filename.lower() for member in members})
            for member in members:
                if member.filename.lower() == _CONTENT_TYPES:
                    _check_xml(archive, member, types, deadline)
            for member in members:
                name = member.filename
                if name.lower() != _CONTENT_TYPES and not member.is_dir() and types.is_xml(name):
                    _check_xml(archive, member, _NoTree(), deadline)
            return [member.filename for member in members]
    except ZIP_ERRORS as e:
        detail = one_line(str(e)) if isinstance(e, zipfile.BadZipFile) else error_text(e)
        raise BadFileError(f"corrupt or truncated zip archive: {detail}") from e
