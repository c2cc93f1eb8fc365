"""PDF documents: a bounded, tolerant object scanner for active content and embedded files.

Malicious PDFs are often broken on purpose (no xref, wrong lengths, names written as
``/J#61vaScript``), so this scanner never trusts the cross-reference table: it finds
``N G obj`` markers, cuts each object at ``endobj``, takes stream bytes up to ``endstream``,
decodes Flate/ASCIIHex/ASCII85 under a size limit, and opens object streams (``/ObjStm``).
It reports what a reader would act on: JavaScript, automatic actions, launch actions, URIs,
embedded files (extracted under their ``/UF`` or ``/F`` names) and encryption.
"""

from __future__ import annotations

import base64
import itertools
import re
import zlib
from dataclasses import dataclass
from typing import Any

from assay.services.base import FileRequest, Heuristic, Result, Service, Stage
from assay.services.lib.filekind import file_kind
from assay.services.lib.urls import find_urls, tag_urls

_OBJ_RE = re.compile(rb"(\d{1,10})\s+(\d{1,5})\s+obj\b")
_STREAM_RE = re.compile(rb"stream\r?\n")
_NAME_RE = re.compile(rb"/[^\s/<>\[\]()%{}]*#[0-9A-Fa-f]{2}[^\s/<>\[\]()%{}]*")
_HEX_ESCAPE_RE = re.compile(rb"#([0-9A-Fa-f]{2})")
_FILTER_RE = re.compile(rb"/Filter\s*(\[[^\]]{0,512}\]|/[A-Za-z0-9]+)")
_REF_RE = re.compile(rb"(\d{1,10})\s+\d{1,5}\s+R\b")
_KEYWORDS = (
    "/JS",
    "/JavaScript",
    "/OpenAction",
    "/AA",
    "/Launch",
    "/EmbeddedFile",
    "/URI",
    "/SubmitForm",
    "/GoToR",
    "/RichMedia",
    "/XFA",
    "/AcroForm",
    "/ObjStm",
    "/JBIG2Decode",
    "/Encrypt",
)
_KEYWORD_RES = {k: re.compile(re.escape(k.encode()) + rb"(?![A-Za-z0-9])") for k in _KEYWORDS}
_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("f"): 12}


@dataclass
class PdfObject:
    """One object as found in the file or inside an object stream."""

    number: int
    dictionary: bytes
    stream: bytes | None = None
    in_objstm: bool = False


class PDF(Service):
    """Static analysis of PDF documents without a PDF library.

    Parameters:
        ``max_file_size`` (int, 104857600): bytes of the file read.
        ``max_objects`` (int, 100000): objects scanned, object-stream contents included.
        ``max_dictionary`` (int, 1048576): bytes of an object outside its stream that are scanned.
        ``max_stream_size`` (int, 33554432): largest decoded stream.
        ``max_objstm`` (int, 1000): object streams opened.
        ``max_children`` (int, 50): embedded files and scripts extracted.
        ``max_uris`` (int, 500): URI actions read.
        ``max_scripts`` (int, 50): /JS entries read.
        ``max_js_literal`` (int, 262144): bytes of a JavaScript literal string read.
        ``preview_chars`` (int, 2000): characters of each script shown.
    """

    name = "PDF"
    version = "1"
    stage = Stage.CORE
    category = "Static Analysis"
    accepts = r"document/pdf"
    parameters = {
        "max_file_size": 100 * 1024 * 1024,
        "max_objects": 100_000,
        "max_dictionary": 1 << 20,
        "max_stream_size": 32 * 1024 * 1024,
        "max_objstm": 1000,
        "max_children": 50,
        "max_uris": 500,
        "max_scripts": 50,
        "max_js_literal": 256 * 1024,
        "preview_chars": 2000,
    }
    heuristics = (
        Heuristic("pdf.javascript", "JavaScript", "The document carries JavaScript.", 300, ("T1059.007",)),
        Heuristic(
            "pdf.auto_action",
            "Automatic action",
            "An action runs when the document or a page opens.",
            100,
            ("T1204.002",),
        ),
        Heuristic(
            "pdf.launch",
            "Launch action",
            "The document asks the reader to start a program.",
            500,
            ("T1204.002",),
        ),
        Heuristic("pdf.embedded_file", "Embedded file", "The document carries attached files.", 100, ("T1027.009",)),
        Heuristic(
            "pdf.embedded_executable",
            "Embedded executable or archive",
            "An attached file is an executable, archive or Office document.",
            400,
            ("T1027.009",),
        ),
        Heuristic("pdf.name_obfuscation", "Obfuscated names", "Names written with #xx escapes.", 200, ("T1027",)),
        Heuristic("pdf.encrypted", "Encrypted", "The document is encrypted; its strings were not read.", 10),
        Heuristic("pdf.malformed", "Malformed PDF", "Header, trailer or streams are broken.", 50),
    )

    def execute(self, request: FileRequest) -> Result:
        opts = self.options(request.params)
        result = Result()
        data = request.read_capped(int(opts["max_file_size"]), result)
        problems = self._structure(data)
        objects, obfuscated = self._objects(data, opts, result, problems)
        state: dict[str, Any] = {"objects": {o.number: o for o in objects}}
        self._summary(data, objects, result)
        if obfuscated:
            result.add_section(
                "Names with #xx escapes", sorted(obfuscated)[:50], "json"
            ).heuristic = "pdf.name_obfuscation"
        for step in (self._javascript, self._actions, self._uris, self._embedded):
            step(objects, opts, result, state)
        if problems:
            result.add_section("Structure problems", problems, "json").heuristic = "pdf.malformed"
            result.anomalies.extend(f"pdf_{p.split(':')[0].replace(' ', '_')}" for p in problems[:10])
        return result

    # -- parsing -------------------------------------------------------------------------------

    @staticmethod
    def _structure(data: bytes) -> list[str]:
        problems = []
        if b"%PDF-" not in data[:1024]:
            problems.append("no header: %PDF- not in the first 1024 bytes")
        if b"%%EOF" not in data[-2048:]:
            problems.append("no trailer: %%EOF not near the end")
        return problems

    def _objects(
        self, data: bytes, opts: dict[str, Any], result: Result, problems: list[str]
    ) -> tuple[list[PdfObject], set[str]]:
        limit = int(opts["max_objects"])
        starts = []
        for match in _OBJ_RE.finditer(data):
            if len(starts) >= limit:
                result.anomalies.append("object_limit_reached")
                break
            starts.append(match)
        objects: list[PdfObject] = []
        obfuscated: set[str] = set()
        opened = 0
        for index, match in enumerate(starts):
            end = starts[index + 1].start() if index + 1 < len(starts) else len(data)
            obj = _cut_object(int(match.group(1)), data[match.end() : end], obfuscated, int(opts["max_dictionary"]))
            objects.append(obj)
            if b"/ObjStm" in obj.dictionary and obj.stream is not None and opened < int(opts["max_objstm"]):
                opened += 1
                inner = self._object_stream(obj, opts, problems, obfuscated)
                objects.extend(inner[: max(limit - len(objects), 0)])
        return objects, obfuscated

    @staticmethod
    def _object_stream(
        obj: PdfObject, opts: dict[str, Any], problems: list[str], obfuscated: set[str]
    ) -> list[PdfObject]:
        decoded = decode_stream(obj, int(opts["max_stream_size"]), problems)
        first = re.search(rb"/First\s+(\d+)", obj.dictionary)
        if decoded is None or first is None:
            return []
        offset = int(first.group(1))
        numbers = [int(n) for n in re.findall(rb"\d+", decoded[:offset])]
        pairs = list(zip(numbers[::2], numbers[1::2], strict=False))
        found = []
        for i, (number, start) in enumerate(pairs):
            stop = pairs[i + 1][1] if i + 1 < len(pairs) else len(decoded) - offset
            body = decoded[offset + start : offset + stop]
            found.append(PdfObject(number, _normalise(body, obfuscated), None, True))
        return found

    # -- reporting -----------------------------------------------------------------------------

    @staticmethod
    def _summary(data: bytes, objects: list[PdfObject], result: Result) -> None:
        counts = dict.fromkeys(_KEYWORDS, 0)
        for obj in objects:
            for keyword, pattern in _KEYWORD_RES.items():
                counts[keyword] += len(pattern.findall(obj.dictionary))
        encrypted = bool(_KEYWORD_RES["/Encrypt"].search(data[-65536:])) or counts["/Encrypt"] > 0
        version = re.search(rb"%PDF-(\d\.\d)", data[:1024])
        summary = {
            "version": version.group(1).decode() if version else None,
            "objects": len(objects),
            "streams": sum(o.stream is not None for o in objects),
            "objects_in_object_streams": sum(o.in_objstm for o in objects),
            "encrypted": encrypted,
        }
        result.data["summary"] = summary
        result.data["keywords"] = counts
        result.file_info["pdf"] = {"version": summary["version"], "encrypted": encrypted}
        result.add_section("PDF structure", summary, "kv")
        result.add_section("Keyword counts", {k: v for k, v in counts.items() if v}, "kv")
        if encrypted:
            result.anomalies.append("encrypted")
            result.add_section(
                "Encrypted document", "Strings and streams are encrypted and were not decoded."
            ).heuristic = "pdf.encrypted"

    def _javascript(
        self, objects: list[PdfObject], opts: dict[str, Any], result: Result, state: dict[str, Any]
    ) -> None:
        scripts: list[dict[str, Any]] = []
        matches = ((o, m) for o in objects for m in re.finditer(rb"/JS(?![A-Za-z0-9])\s*", o.dictionary))
        for obj, match in itertools.islice(matches, int(opts["max_scripts"])):
            code = self._value(obj.dictionary, match.end(), opts, state)
            if code is None:
                continue
            scripts.append(
                {
                    "object": obj.number,
                    "size": len(code),
                    "preview": code[: int(opts["preview_chars"])].decode("latin-1"),
                }
            )
            result.add_extracted_capped(
                int(opts["max_children"]),
                f"javascript_obj{obj.number}_{len(scripts)}.js",
                code,
                f"JavaScript of object {obj.number}",
            )
        has_js = scripts or any(b"/JavaScript" in o.dictionary for o in objects)
        if not has_js:
            return
        result.data["javascript"] = scripts
        section = result.add_section("JavaScript", scripts, "json")
        section.heuristic = "pdf.javascript"
        urls = find_urls(b"\n".join(s["preview"].encode("latin-1") for s in scripts), int(opts["max_uris"]))
        tag_urls(section, urls)

    def _value(self, dictionary: bytes, pos: int, opts: dict[str, Any], state: dict[str, Any]) -> bytes | None:
        """A string value at ``pos``: literal, hex, or the stream or string of a referenced object."""
        head = dictionary[pos : pos + 1]
        if head == b"(":
            return pdf_string(literal_string(dictionary, pos, int(opts["max_js_literal"]))[0])
        if head == b"<" and dictionary[pos : pos + 2] != b"<<":
            return pdf_string(hex_string(dictionary, pos))
        ref = _REF_RE.match(dictionary, pos)
        target = state["objects"].get(int(ref.group(1))) if ref else None
        if target is None:
            return None
        if target.stream is not None:
            return decode_stream(target, int(opts["max_stream_size"]), [])
        body = target.dictionary.strip()
        return self._value(body, 0, opts, state) if body[:1] in (b"(", b"<") else None

    @staticmethod
    def _actions(objects: list[PdfObject], opts: dict[str, Any], result: Result, state: dict[str, Any]) -> None:
        auto = [o.number for o in objects if re.search(rb"/(OpenAction|AA)(?![A-Za-z0-9])", o.dictionary)]
        if auto:
            result.add_section("Automatic actions", {"objects": auto[:100]}, "json").heuristic = "pdf.auto_action"
        launches = []
        for obj in objects:
            if _KEYWORD_RES["/Launch"].search(obj.dictionary):
                strings = [
                    pdf_string(literal_string(obj.dictionary, m.start())[0]).decode("latin-1")
                    for m in itertools.islice(re.finditer(rb"\(", obj.dictionary), 10)
                ]
                launches.append({"object": obj.number, "strings": strings})
        if launches:
            result.data["launch"] = launches
            section = result.add_section("Launch actions", launches, "json")
            section.heuristic = "pdf.launch"
            for obj in objects:
                if _KEYWORD_RES["/Launch"].search(obj.dictionary):
                    for match in re.finditer(rb"/F\s*(?=\()", obj.dictionary):
                        target = pdf_string(literal_string(obj.dictionary, match.end())[0]).decode("latin-1")
                        section.add_tag("file.path", target)

    @staticmethod
    def _uris(objects: list[PdfObject], opts: dict[str, Any], result: Result, state: dict[str, Any]) -> None:
        uris: dict[str, None] = {}
        matches = ((o, m) for o in objects for m in re.finditer(rb"/URI\s*(?=[(<])", o.dictionary))
        for obj, match in itertools.islice(matches, int(opts["max_uris"])):
            pos = match.end()
            raw = (
                literal_string(obj.dictionary, pos)[0]
                if obj.dictionary[pos : pos + 1] == b"("
                else hex_string(obj.dictionary, pos)
            )
            uris.setdefault(pdf_string(raw).decode("latin-1").strip())
        if uris:
            listed = [u for u in uris if u]
            result.data["uris"] = listed
            section = result.add_section("URI actions", listed, "json")
            tag_urls(section, listed)

    def _embedded(self, objects: list[PdfObject], opts: dict[str, Any], result: Result, state: dict[str, Any]) -> None:
        names: dict[int, str] = {}
        for obj in objects:
            ef = re.search(rb"/EF\s*<<", obj.dictionary)
            if not ef:
                continue
            close = obj.dictionary.find(b">>", ef.end(), ef.end() + 4096)
            name = self._filespec_name(obj.dictionary)
            for ref in _REF_RE.finditer(obj.dictionary, ef.end(), close if close >= 0 else ef.end() + 4096):
                names[int(ref.group(1))] = name or f"embedded_{ref.group(1).decode()}"
        files: list[dict[str, Any]] = []
        for obj in objects:
            is_file = obj.number in names or re.search(rb"/Type\s*/EmbeddedFile\b", obj.dictionary)
            if not is_file or obj.stream is None:
                continue
            problems: list[str] = []
            content = decode_stream(obj, int(opts["max_stream_size"]), problems)
            if content is None:
                continue
            name = names.get(obj.number) or f"embedded_{obj.number}"
            files.append(
                {
                    "object": obj.number,
                    "name": name,
                    "size": len(content),
                    "type": file_kind(content),
                    "problems": problems,
                }
            )
            result.add_extracted_capped(
                int(opts["max_children"]), name, content, f"Embedded file of object {obj.number}"
            )
        if not files:
            return
        result.data["embedded_files"] = files
        section = result.add_section("Embedded files", files, "table")
        section.heuristic = "pdf.embedded_file"
        for entry in files:
            section.add_tag("file.name.extracted", entry["name"])
        risky = [f["name"] for f in files if f["type"] or _risky_name(f["name"])]
        if risky:
            section.add_subsection(
                "Executable, archive or document attached", risky, "json"
            ).heuristic = "pdf.embedded_executable"

    @staticmethod
    def _filespec_name(dictionary: bytes) -> str | None:
        for key in (rb"/UF", rb"/F"):
            match = re.search(key + rb"\s*(?=[(<])(?!<<)", dictionary)
            if match:
                pos = match.end()
                raw = (
                    literal_string(dictionary, pos)[0]
                    if dictionary[pos : pos + 1] == b"("
                    else hex_string(dictionary, pos)
                )
                text = pdf_string(raw).decode("utf-8", "replace")
                clean = re.sub(r"[\x00-\x1f]", "", text.replace("\\", "/")).rsplit("/", 1)[-1].strip(". ")
                if clean:
                    return clean[:200]
        return None


# -- helpers ------------------------------------------------------------------------------------


def _cut_object(number: int, body: bytes, obfuscated: set[str], dict_limit: int) -> PdfObject:
    endobj = body.find(b"endobj")
    if endobj >= 0:
        body = body[:endobj]
    stream_at = _STREAM_RE.search(body)
    if stream_at is None:
        return PdfObject(number, _normalise(body[:dict_limit], obfuscated))
    end = body.rfind(b"endstream")
    raw = body[stream_at.end() : end if end > stream_at.end() else len(body)]
    if raw.endswith(b"\r\n"):
        raw = raw[:-2]
    elif raw.endswith((b"\n", b"\r")):
        raw = raw[:-1]
    return PdfObject(number, _normalise(body[: min(stream_at.start(), dict_limit)], obfuscated), raw)


def _normalise(dictionary: bytes, obfuscated: set[str]) -> bytes:
    """Decode ``#xx`` escapes in names, remembering which names used them."""

    def fix(match: re.Match[bytes]) -> bytes:
        decoded = _HEX_ESCAPE_RE.sub(lambda m: bytes([int(m.group(1), 16)]), match.group())
        obfuscated.add(decoded.decode("latin-1"))
        return decoded

    return _NAME_RE.sub(fix, dictionary) if b"#" in dictionary else dictionary


def decode_stream(obj: PdfObject, limit: int, problems: list[str]) -> bytes | None:
    """Apply the object's filters; None when a filter is unsupported."""
    data = obj.stream or b""
    found = _FILTER_RE.search(obj.dictionary)
    filters = re.findall(rb"/([A-Za-z0-9]+)", found.group(1)) if found else []
    for name in filters:
        if name in (b"FlateDecode", b"Fl"):
            data = _inflate(data, limit, problems, obj.number)
        elif name in (b"ASCIIHexDecode", b"AHx"):
            data = hex_string(b"<" + data.split(b">")[0] + b">", 0)[:limit]
        elif name in (b"ASCII85Decode", b"A85"):
            try:
                data = base64.a85decode(data.strip().removeprefix(b"<~"), adobe=False, ignorechars=b" \t\r\n~>")
            except ValueError:
                problems.append(f"bad ASCII85: object {obj.number}")
                return None
        else:
            return None
    return data[:limit]


def _inflate(data: bytes, limit: int, problems: list[str], number: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit)
    except zlib.error:
        problems.append(f"bad Flate stream: object {number}")
        return _inflate_raw(data, limit)
    if inflater.unconsumed_tail:
        problems.append(f"stream over size limit: object {number}")
    return out


def _inflate_raw(data: bytes, limit: int) -> bytes:
    """A stream whose zlib header is damaged may still be raw deflate; try that once."""
    try:
        return zlib.decompressobj(-15).decompress(data[2:], limit)
    except zlib.error:
        return b""


def literal_string(data: bytes, pos: int, limit: int = 1 << 16) -> tuple[bytes, int]:
    """The literal string opening at ``data[pos] == '('`` (at most ``limit`` bytes read) and where it ends."""
    out = bytearray()
    depth = 0
    i = pos
    size = min(len(data), pos + limit)
    while i < size:
        c = data[i]
        if c == 0x5C and i + 1 < size:
            i += 1
            e = data[i]
            if e in _ESCAPES:
                out.append(_ESCAPES[e])
            elif 0x30 <= e <= 0x37:
                digits = re.match(rb"[0-7]{1,3}", data[i : i + 3]).group()  # type: ignore[union-attr]
                out.append(int(digits, 8) & 0xFF)
                i += len(digits) - 1
            elif e == 0x0D and data[i + 1 : i + 2] == b"\n":
                i += 1
            elif e != 0x0A:
                out.append(e)
        elif c == 0x28:
            depth += 1
            if depth > 1:
                out.append(c)
        elif c == 0x29:
            depth -= 1
            if depth == 0:
                return bytes(out), i + 1
            out.append(c)
        else:
            out.append(c)
        i += 1
    return bytes(out), i


def hex_string(data: bytes, pos: int, limit: int = 1 << 17) -> bytes:
    """The hex string opening at ``data[pos] == '<'``, at most ``limit`` bytes read."""
    end = data.find(b">", pos, pos + limit)
    digits = re.sub(rb"[^0-9A-Fa-f]", b"", data[pos + 1 : end if end >= 0 else pos + limit])
    if len(digits) % 2:
        digits += b"0"
    return bytes.fromhex(digits.decode())


def pdf_string(raw: bytes) -> bytes:
    """Text strings with a UTF-16 byte-order mark become UTF-8; others stay as they are."""
    if raw[:2] == b"\xfe\xff":
        return raw[2:].decode("utf-16-be", "replace").encode("utf-8")
    return raw


def _risky_name(name: str) -> bool:
    return bool(re.search(r"\.(exe|dll|scr|js|jse|vbs|vbe|hta|ps1|bat|cmd|lnk|docm|xlsm|zip|rar|7z|iso)$", name, re.I))
