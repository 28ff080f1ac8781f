"""Office files at their edges: linked pictures, tracked changes, content controls and text boxes, sheets whose
table starts below a title, wide rows, groups of charts and pictures, charts we cannot read, the picture limit and
tables too long for one item."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from lxml import etree
from PIL import Image

from mmrag.indexer.extract import extract_file
from mmrag.indexer.items import FileResult
from tests.test_office import OPTIONS, _tables

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
NAMESPACES = (
    f'xmlns:w="{W}" '
    'xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing" '
    'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
    'xmlns:pic="http://schemas.openxmlformats.org/drawingml/2006/picture" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" '
    'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
    'xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape" '
    'xmlns:wpg="http://schemas.microsoft.com/office/word/2010/wordprocessingGroup" '
    'xmlns:v="urn:schemas-microsoft-com:vml"'
)
CHARTEX = "http://schemas.microsoft.com/office/drawing/2014/chartex"
SMARTART = "http://schemas.openxmlformats.org/drawingml/2006/diagram"


def _extract(path: Path, **changes: int) -> FileResult:
    result = extract_file(path, "sha", replace(OPTIONS, **changes))
    assert result.error is None, result.error
    return result


def _png(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buffer, format="PNG")
    return buffer.getvalue()


def _edit(path: Path, member: str, edit: Callable[[bytes], bytes]) -> None:
    """Rewrite one part of an Office zip in place."""
    with zipfile.ZipFile(path) as archive:
        parts = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in parts:
            archive.writestr(info, edit(data) if info.filename == member else data)


def _text(result: FileResult) -> str:
    return "\n".join(item.text for item in result.items if item.kind == "text")


# ------------------------------------------------------------------------------------------------------------ pptx


def test_a_linked_picture_costs_only_that_picture(tmp_path):
    from pptx import Presentation
    from pptx.opc.constants import RELATIONSHIP_TYPE as RT
    from pptx.oxml.ns import qn
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = "Warehouse photos"
    slide.shapes.add_textbox(Inches(1), Inches(5), Inches(6), Inches(1)).text_frame.text = "Inventory shrank in May"
    linked = slide.shapes.add_picture(io.BytesIO(_png("red")), Inches(1), Inches(2), Inches(2))
    slide.shapes.add_picture(io.BytesIO(_png("blue")), Inches(4), Inches(2), Inches(2))
    blip = linked._element.blipFill.blip
    del blip.attrib[qn("r:embed")]
    blip.set(qn("r:link"), slide.part.relate_to("file:///C:/photos/shelf.png", RT.IMAGE, is_external=True))
    deck.save(tmp_path / "linked.pptx")

    result = _extract(tmp_path / "linked.pptx")
    assert "Inventory shrank in May" in _text(result)
    assert [i.kind for i in result.items if i.kind == "image"] == ["image"]
    assert any(linked.name in w and "linked" in w for w in result.warnings), result.warnings


def _graphic_frame(uri: str, shape_id: int, name: str) -> str:
    return (
        '<p:graphicFrame xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" '
        'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main">'
        f'<p:nvGraphicFramePr><p:cNvPr id="{shape_id}" name="{name}"/><p:cNvGraphicFramePr/><p:nvPr/>'
        '</p:nvGraphicFramePr><p:xfrm><a:off x="914400" y="1828800"/><a:ext cx="3000000" cy="2000000"/></p:xfrm>'
        f'<a:graphic><a:graphicData uri="{uri}"><x:data xmlns:x="{uri}"/></a:graphicData></a:graphic>'
        "</p:graphicFrame>"
    )


def test_a_smartart_or_office_2016_chart_on_a_slide_is_named_in_a_warning(tmp_path):
    from pptx import Presentation

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = "Process overview"
    tree = slide.shapes._spTree
    tree.append(etree.fromstring(_graphic_frame(SMARTART, 40, "Diagram 4")))
    chartex = (
        '<mc:AlternateContent xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006">'
        f'<mc:Choice xmlns:cx1="http://schemas.microsoft.com/office/drawing/2015/9/8/chartex" Requires="cx1">'
        f"{_graphic_frame(CHARTEX, 41, 'Chart 5')}</mc:Choice><mc:Fallback/></mc:AlternateContent>"
    )
    tree.append(etree.fromstring(chartex))
    deck.save(tmp_path / "smartart.pptx")

    result = _extract(tmp_path / "smartart.pptx")
    assert "Process overview" in _text(result)
    assert any("Diagram 4" in w and "SmartArt" in w for w in result.warnings), result.warnings
    assert any("Chart 5" in w and "chartex" in w for w in result.warnings), result.warnings


# ------------------------------------------------------------------------------------------------------------ docx


def _text_box(words: str) -> str:
    """A text box as Word writes it: the DrawingML shape, and a VML copy of it for older readers."""
    content = f"<w:txbxContent><w:p><w:r><w:t>{words}</w:t></w:r></w:p></w:txbxContent>"
    return (
        '<w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing><wp:inline>'
        '<wp:extent cx="914400" cy="457200"/><wp:docPr id="30" name="Text Box 30"/><a:graphic>'
        '<a:graphicData uri="http://schemas.microsoft.com/office/word/2010/wordprocessingShape">'
        f'<wps:wsp><wps:cNvSpPr txBox="1"/><wps:spPr/><wps:txbx>{content}</wps:txbx><wps:bodyPr/></wps:wsp>'
        "</a:graphicData></a:graphic></wp:inline></w:drawing></mc:Choice>"
        f'<mc:Fallback><w:pict><v:shape id="box"><v:textbox>{content}</v:textbox></v:shape></w:pict></mc:Fallback>'
        "</mc:AlternateContent></w:r>"
    )


def test_docx_text_in_revisions_controls_fields_links_and_text_boxes_is_read_once(tmp_path):
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    document.add_paragraph("Opening paragraph")
    paragraph = parse_xml(
        f"<w:p {NAMESPACES}>"
        '<w:r><w:t xml:space="preserve">plainalpha </w:t></w:r>'
        '<w:ins w:id="1" w:author="A"><w:r><w:t xml:space="preserve">insertedbravo </w:t></w:r></w:ins>'
        '<w:del w:id="2" w:author="A"><w:r><w:delText>deletedzulu </w:delText></w:r></w:del>'
        '<w:sdt><w:sdtPr><w:alias w:val="Client"/></w:sdtPr><w:sdtContent>'
        '<w:r><w:t xml:space="preserve">controlcharlie </w:t></w:r></w:sdtContent></w:sdt>'
        '<w:fldSimple w:instr=" AUTHOR "><w:r><w:t xml:space="preserve">fielddelta </w:t></w:r></w:fldSimple>'
        '<w:hyperlink w:anchor="top"><w:r><w:t xml:space="preserve">linkecho </w:t></w:r></w:hyperlink>'
        '<w:smartTag w:uri="urn:x" w:element="place"><w:r><w:t>smartfoxtrot</w:t></w:r></w:smartTag>'
        f"{_text_box('boxedgolf')}</w:p>"
    )
    document.element.body.insert(1, paragraph)
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text, table.cell(1, 0).text = "Name", "Value", "Row"
    table.cell(1, 1)._tc.p_lst[0].append(
        parse_xml(f'<w:ins {NAMESPACES} w:id="3" w:author="A"><w:r><w:t>cellhotel</w:t></w:r></w:ins>')
    )
    document.save(tmp_path / "revisions.docx")

    result = _extract(tmp_path / "revisions.docx")
    text = _text(result)
    for word in ("plainalpha", "insertedbravo", "controlcharlie", "fielddelta", "linkecho", "smartfoxtrot"):
        assert text.count(word) == 1, (word, text)
    assert text.count("boxedgolf") == 1, text
    assert "deletedzulu" not in text
    assert text.index("Opening paragraph") < text.index("plainalpha") < text.index("smartfoxtrot")
    assert ["Row", "cellhotel"] in _tables(next(i.text for i in result.items if i.kind == "table"))[0]


def _pictures_drawing(name: str, pictures: list[tuple[str, str, str]]) -> str:
    """An inline drawing that groups pictures: (r:embed or r:link, rId, alt text) each."""
    shapes = "".join(
        f'<pic:pic><pic:nvPicPr><pic:cNvPr id="{60 + n}" name="Picture {60 + n}" descr="{alt}"/><pic:cNvPicPr/>'
        f'</pic:nvPicPr><pic:blipFill><a:blip {how}="{rid}"/></pic:blipFill><pic:spPr/></pic:pic>'
        for n, (how, rid, alt) in enumerate(pictures)
    )
    return (
        f'<w:r {NAMESPACES}><w:drawing><wp:inline><wp:extent cx="1828800" cy="914400"/>'
        f'<wp:docPr id="59" name="{name}"/><a:graphic>'
        '<a:graphicData uri="http://schemas.microsoft.com/office/word/2010/wordprocessingGroup">'
        f"<wpg:wgp><wpg:cNvGrpSpPr/><wpg:grpSpPr/>{shapes}</wpg:wgp></a:graphicData></a:graphic></wp:inline>"
        "</w:drawing></w:r>"
    )


def test_docx_every_picture_of_a_group_is_read_and_a_linked_one_is_named(tmp_path):
    import docx
    from docx.opc.constants import RELATIONSHIP_TYPE as RT
    from docx.oxml import parse_xml

    document = docx.Document()
    document.add_paragraph("Site photos")
    dock, yard = [document.part.get_or_add_image(io.BytesIO(_png(color)))[0] for color in ("red", "green")]
    gate = document.part.relate_to("file:///C:/photos/gate.png", RT.IMAGE, is_external=True)
    pictures = [
        ("r:embed", dock, "Photo of the loading dock"),
        ("r:link", gate, "Photo of the gate"),
        ("r:embed", yard, "Photo of the yard"),
    ]
    document.add_paragraph()._p.append(parse_xml(_pictures_drawing("Group 59", pictures)))
    document.save(tmp_path / "group.docx")

    result = _extract(tmp_path / "group.docx")
    figures = [i for i in result.items if i.kind == "image"]
    assert [i.caption for i in figures] == ["Photo of the loading dock", "Photo of the yard"]
    assert [i.locator for i in figures] == ["figure:0", "figure:1"]
    assert result.warnings == ["Picture 61: picture left out: linked to a file, not embedded"]


def test_docx_office_2016_chart_is_named_in_a_warning(tmp_path):
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    document.add_paragraph("Waterfall of the year")
    drawing = (
        f'<w:r {NAMESPACES}><w:drawing><wp:inline><wp:extent cx="1828800" cy="914400"/>'
        f'<wp:docPr id="70" name="Chart 7"/><a:graphic><a:graphicData uri="{CHARTEX}">'
        f'<cx:chart xmlns:cx="{CHARTEX}" r:id="rId99"/></a:graphicData></a:graphic></wp:inline></w:drawing></w:r>'
    )
    document.add_paragraph()._p.append(parse_xml(drawing))
    document.save(tmp_path / "chartex.docx")

    result = _extract(tmp_path / "chartex.docx")
    assert "Waterfall of the year" in _text(result)
    assert any("Chart 7" in w and "chartex" in w for w in result.warnings), result.warnings


def test_docx_past_the_picture_limit_later_tables_and_text_are_still_read(tmp_path):
    import docx

    document = docx.Document()
    for color in ("red", "green", "blue"):
        document.add_picture(io.BytesIO(_png(color)))
    table = document.add_table(rows=2, cols=2)
    for cell, value in zip(table._cells, ("Depot", "Trucks", "Leeds", "14"), strict=True):
        cell.text = value
    document.add_paragraph("Closing remarks on the fleet")
    document.save(tmp_path / "pictures.docx")

    result = _extract(tmp_path / "pictures.docx", max_page_objects=2)
    assert len([i for i in result.items if i.kind == "image"]) == 2
    assert any("MMRAG_MAX_PAGE_OBJECTS" in w for w in result.warnings)
    tables = [i for i in result.items if i.kind == "table"]
    assert len(tables) == 1 and ["Leeds", "14"] in _tables(tables[0].text)[0]
    assert "Closing remarks on the fleet" in _text(result)


def _long_rows(n: int) -> list[list[str]]:
    return [["Order", "Customer", "Note"]] + [
        [f"ORD-{i:04d}", f"Customer number {i}", f"delivered on time to dock {i % 7}"] for i in range(n)
    ]


def _check_split(tables: list, rows: list[list[str]], max_chars: int) -> None:
    """Every row is in exactly one of the table items, each of which repeats the header and fits the limit."""
    assert len(tables) > 1
    found = []
    for item in tables:
        parsed = _tables(item.text)
        assert len(parsed) == 1 and parsed[0][0] == rows[0]
        assert len(item.text) <= max_chars + 200
        found += parsed[0][1:]
    assert found == rows[1:]


def test_long_docx_and_pptx_tables_are_split_with_their_header_repeated(tmp_path):
    import docx
    from pptx import Presentation
    from pptx.util import Inches

    rows = _long_rows(300)
    document = docx.Document()
    document.add_paragraph("Table 4: Orders of the quarter")
    table = document.add_table(rows=len(rows), cols=3)
    for cell, value in zip(table._cells, [v for row in rows for v in row], strict=True):
        cell.text = value
    document.save(tmp_path / "long.docx")
    tables = [i for i in _extract(tmp_path / "long.docx").items if i.kind == "table"]
    _check_split(tables, rows, OPTIONS.chunk_size * 8)
    assert [i.locator for i in tables] == [f"table:{n}" for n in range(len(tables))]
    assert all(i.label == "Table 4" for i in tables)

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = "All orders"
    frame = slide.shapes.add_table(len(rows), 3, Inches(0.5), Inches(1.5), Inches(9), Inches(5))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            frame.table.cell(r, c).text = value
    deck.save(tmp_path / "long.pptx")
    tables = [i for i in _extract(tmp_path / "long.pptx").items if i.kind == "table"]
    _check_split(tables, rows, OPTIONS.chunk_size * 8)
    assert all(i.page == 1 and i.caption == "All orders" for i in tables)


def test_a_macro_enabled_document_under_a_long_path_is_named_as_such(tmp_path):
    """A .docm's content saved under a .docx name is refused as macro-enabled even when python-docx's message
    quotes a path long enough to push the content type past a one-line reason's cut."""
    import docx

    folder = tmp_path / ("a-rather-long-folder-name-" * 7)
    folder.mkdir()
    path = folder / "report.docx"
    docx.Document().save(str(path))
    main = b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
    _edit(
        path,
        "[Content_Types].xml",
        lambda data: data.replace(main, b"application/vnd.ms-word.document.macroEnabled.main+xml"),
    )
    assert len(str(folder)) > 150
    result = extract_file(path, "sha", OPTIONS)
    assert result.error == "macro-enabled Word document (.docm content under a .docx name) is not read"


# ------------------------------------------------------------------------------------------------------------ xlsx


def test_sheet_table_captions_name_the_real_rows_below_a_title(tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Sales"
    sheet["A1"] = "Quarterly sales report"
    sheet.append([])
    sheet.append([])
    sheet.append(["Region", "Q1", "Q2"])
    for n in range(60):
        if n == 30:
            sheet.append([])
        sheet.append([f"Region {n}", n, n * 2])
    book.save(tmp_path / "titled.xlsx")

    tables = [i for i in _extract(tmp_path / "titled.xlsx").items if i.kind == "table"]
    assert [i.caption for i in tables] == ['Sheet "Sales", rows 5-55', 'Sheet "Sales", rows 56-65']
    assert all(_tables(i.text)[0][0] == ["Region", "Q1", "Q2"] for i in tables)
    assert all("Quarterly sales report" in i.text for i in tables)
    assert _tables(tables[1].text)[0][-1] == ["Region 59", "59", "118"]


def test_columns_past_the_cap_are_warned_about_in_any_row(tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["Name", "Value"])
    sheet.append(["wide", 1])
    sheet.cell(row=2, column=201, value="far away")
    book.save(tmp_path / "wide.xlsx")

    result = _extract(tmp_path / "wide.xlsx")
    assert [w for w in result.warnings if "columns after" in w] == ['sheet "Sheet": columns after 200 not indexed'], (
        result.warnings
    )


XDR = "http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing"


def _charts_book(path: Path, titles: list[str]) -> None:
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, Reference

    book = Workbook()
    sheet = book.active
    for row in (["Month", "Units"], ["Jan", 3], ["Feb", 5], ["Mar", 4]):
        sheet.append(row)
    for n, title in enumerate(titles):
        chart = BarChart()
        chart.add_data(Reference(sheet, min_col=2, min_row=1, max_row=4), titles_from_data=True)
        chart.set_categories(Reference(sheet, min_col=1, min_row=2, max_row=4))
        chart.title = title
        sheet.add_chart(chart, f"E{2 + 16 * n}")
    book.save(path)


def _group_anchors(data: bytes) -> bytes:
    """The drawing's first two anchors' graphic frames as one group in one anchor."""
    root = etree.fromstring(data)
    first, second = list(root)[:2]
    frames = [anchor.find(f"{{{XDR}}}graphicFrame") for anchor in (first, second)]
    group = etree.fromstring(
        f'<xdr:grpSp xmlns:xdr="{XDR}"><xdr:nvGrpSpPr><xdr:cNvPr id="9" name="Group 9"/><xdr:cNvGrpSpPr/>'
        "</xdr:nvGrpSpPr><xdr:grpSpPr/></xdr:grpSp>"
    )
    frames[0].addprevious(group)
    group.extend(frames)
    root.remove(second)
    return etree.tostring(root)


def test_a_group_of_charts_in_a_sheet_gives_every_chart(tmp_path):
    path = tmp_path / "grouped.xlsx"
    _charts_book(path, ["Units by month", "Units again"])
    _edit(path, "xl/drawings/drawing1.xml", _group_anchors)

    charts = [i for i in _extract(path).items if i.origin == "chart-data"]
    assert [i.caption for i in charts] == ["Units by month", "Units again"]
    assert [i.shape for i in charts] == ['Sheet "Sheet": Chart 1', 'Sheet "Sheet": Chart 2']


def _add_chartex(data: bytes) -> bytes:
    anchor = (
        f'<xdr:oneCellAnchor xmlns:xdr="{XDR}" xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
        'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        "<xdr:from><xdr:col>1</xdr:col><xdr:colOff>0</xdr:colOff><xdr:row>30</xdr:row><xdr:rowOff>0</xdr:rowOff>"
        '</xdr:from><xdr:ext cx="3000000" cy="2000000"/>'
        f'<mc:AlternateContent><mc:Choice xmlns:cx1="{CHARTEX}" Requires="cx1"><xdr:graphicFrame>'
        '<xdr:nvGraphicFramePr><xdr:cNvPr id="3" name="Chart 3"/><xdr:cNvGraphicFramePr/></xdr:nvGraphicFramePr>'
        f'<xdr:xfrm/><a:graphic><a:graphicData uri="{CHARTEX}"><cx:chart xmlns:cx="{CHARTEX}" r:id="rId7"/>'
        "</a:graphicData></a:graphic></xdr:graphicFrame></mc:Choice><mc:Fallback><xdr:sp><xdr:nvSpPr>"
        '<xdr:cNvPr id="3" name="Chart 3"/><xdr:cNvSpPr/></xdr:nvSpPr><xdr:spPr/></xdr:sp></mc:Fallback>'
        "</mc:AlternateContent><xdr:clientData/></xdr:oneCellAnchor>"
    )
    return re.sub(rb"</(\w+:)?wsDr>$", anchor.encode() + rb"\g<0>", data.strip())


def test_an_office_2016_chart_in_a_sheet_is_named_in_a_warning(tmp_path):
    path = tmp_path / "chartex.xlsx"
    _charts_book(path, ["Units by month"])
    _edit(path, "xl/drawings/drawing1.xml", _add_chartex)

    result = _extract(path)
    assert [i.caption for i in result.items if i.origin == "chart-data"] == ["Units by month"]
    assert [w for w in result.warnings if "Chart 3" in w] == [
        'sheet "Sheet": Chart 3: Office 2016 chart (chartex) not read'
    ]
