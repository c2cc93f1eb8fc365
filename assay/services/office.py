"""Office documents (OLE, OOXML, RTF, OpenDocument): macros, DDE, embedded objects, remote templates.

Office documents attack through what they make Office do: run VBA or XLM macros when opened,
pull a remote template or object, launch DDE commands, or carry an executable as an OLE
package or an Equation Editor exploit. oletools does the parsing (olevba, mraptor, msodde,
oleobj, rtfobj) and msoffcrypto detects encryption; relationship files are read here with
plain pattern matching, so a hostile XML body cannot expand or fetch anything.
"""

from __future__ import annotations

import io
import itertools
import re
import zipfile
from typing import Any

from assay.services.base import FileRequest, Heuristic, Result, Section, Service, Stage
from assay.services.lib.filekind import file_kind
from assay.services.lib.urls import tag_urls

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_REL_START_RE = re.compile(rb"(?:\w+:)?Relationship\b", re.I)
_ATTR_RE = re.compile(rb"""(\w+)\s*=\s*["']([^"']*)["']""")
_EXTERNAL_OBJECT_TYPES = ("oleObject", "frame", "subDocument", "externalLinkPath", "package", "image")
_EQUATION = re.compile(r"equation\.?3|0002ce02-0000-0000-c000-000000000046", re.I)


def _safe_name(name: str, fallback: str) -> str:
    clean = re.sub(r"[\x00-\x1f]", "", name.replace("\\", "/")).rsplit("/", 1)[-1].strip(". ")
    return clean[:200] or fallback


class Office(Service):
    """Static analysis of Word, Excel, PowerPoint, RTF and OpenDocument files with oletools.

    Parameters:
        ``max_file_size`` (int, 104857600): larger files are read only up to this size.
        ``max_macros`` (int, 200): VBA/XLM modules extracted as children.
        ``max_children`` (int, 100): embedded objects extracted as children.
        ``max_child_size`` (int, 52428800): largest embedded object or ZIP member read.
        ``max_xml_size`` (int, 10485760): largest relationship or content XML read.
        ``max_relationships`` (int, 2000): relationships examined.
        ``max_findings`` (int, 200): olevba findings listed.
        ``dde`` (bool, True): look for DDE fields with msodde.
    """

    name = "Office"
    version = "1"
    stage = Stage.CORE
    category = "Static Analysis"
    accepts = r"document/office/.*|document/odt"
    parameters = {
        "max_file_size": 100 * 1024 * 1024,
        "max_macros": 200,
        "max_children": 100,
        "max_child_size": 50 * 1024 * 1024,
        "max_xml_size": 10 * 1024 * 1024,
        "max_relationships": 2000,
        "max_findings": 200,
        "dde": True,
    }
    heuristics = (
        Heuristic("office.macros", "Macros", "The document carries VBA or XLM macros.", 100, ("T1059.005",)),
        Heuristic(
            "office.autoexec",
            "Auto-executing macro",
            "A macro runs when the document opens or closes.",
            200,
            ("T1204.002",),
        ),
        Heuristic(
            "office.suspicious_vba",
            "Suspicious macro keywords",
            "Macros call shell, file, network or process functions.",
            200,
            ("T1059.005",),
        ),
        Heuristic(
            "office.macro_dropper",
            "Macro that runs and writes or executes",
            "Auto-executing macro that also writes files or runs commands (MacroRaptor).",
            500,
            ("T1204.002", "T1059.005"),
        ),
        Heuristic(
            "office.encoded_strings",
            "Encoded strings in macros",
            "Hex, base64 or Dridex-encoded strings.",
            100,
            ("T1027",),
        ),
        Heuristic(
            "office.vba_stomping",
            "VBA stomping",
            "The compiled p-code differs from the source.",
            500,
            ("T1564.007",),
        ),
        Heuristic(
            "office.xlm",
            "Excel 4 macros",
            "XLM macro sheets, often used to evade VBA scanners.",
            300,
            ("T1059",),
        ),
        Heuristic(
            "office.dde",
            "DDE field",
            "A field asks Office to run a command through DDE.",
            500,
            ("T1559.002",),
        ),
        Heuristic(
            "office.template_injection",
            "Remote template",
            "The document loads its template from afar.",
            500,
            ("T1221",),
        ),
        Heuristic(
            "office.external_object",
            "External object",
            "An object or frame is fetched from outside.",
            300,
            ("T1221",),
        ),
        Heuristic(
            "office.embedded_object",
            "Embedded object",
            "An OLE object or package is embedded.",
            100,
            ("T1027.009",),
        ),
        Heuristic(
            "office.embedded_executable",
            "Embedded executable",
            "An embedded object is an executable.",
            500,
            ("T1027.009",),
        ),
        Heuristic(
            "office.equation_editor",
            "Equation Editor object",
            "Equation Editor objects are the usual carrier of CVE-2017-11882.",
            500,
            ("T1203",),
        ),
        Heuristic(
            "office.encrypted",
            "Encrypted document",
            "Encryption hides the content from scanners.",
            100,
            ("T1027",),
        ),
        Heuristic(
            "office.odf_macros",
            "OpenDocument macros",
            "Basic or script files inside an OpenDocument.",
            200,
            ("T1059",),
        ),
    )

    def execute(self, request: FileRequest) -> Result:
        opts = self.options(request.params)
        result = Result()
        data = request.read_capped(int(opts["max_file_size"]), result)
        container = _container(data)
        result.file_info["office"] = {"container": container}
        state: dict[str, Any] = {"errors": {}}
        encrypted = self._step(self._encryption, data, request, opts, result, state)
        steps = [self._ole_objects] if container == "ole" else []
        if container == "zip":
            steps = [self._zip_members, self._relationships]
        elif container == "rtf":
            steps = [self._rtf_objects]
        if container != "rtf" and not encrypted:
            steps.insert(0, self._macros)
        if opts["dde"] and not encrypted and request.size <= int(opts["max_file_size"]):
            steps.append(self._dde)
        for step in steps:
            self._step(step, data, request, opts, result, state)
        if state["errors"]:
            result.add_section("Parts that could not be read", state["errors"], "kv")
        return result

    @staticmethod
    def _step(
        step: Any,
        data: bytes,
        request: FileRequest,
        opts: dict[str, Any],
        result: Result,
        state: dict[str, Any],
    ) -> Any:
        try:
            return step(data, request, opts, result, state)
        except Exception as exc:  # oletools raises freely on hostile input
            part = step.__name__.strip("_")
            result.anomalies.append(f"office_{part}_failed")
            state["errors"][part] = repr(exc)[:300]
            return None

    # -- encryption and macros -------------------------------------------------------------------

    @staticmethod
    def _encryption(
        data: bytes, request: FileRequest, opts: dict[str, Any], result: Result, state: dict[str, Any]
    ) -> bool:
        if _container(data) not in ("ole", "zip"):
            return False
        import msoffcrypto

        try:
            encrypted = bool(msoffcrypto.OfficeFile(io.BytesIO(data)).is_encrypted())
        except Exception:  # msoffcrypto refuses formats it does not know: not encrypted as far as we know
            return False
        result.file_info["office"]["encrypted"] = encrypted
        if encrypted:
            result.anomalies.append("encrypted")
            result.add_section(
                "Encrypted document", "Content could not be analysed without the password."
            ).heuristic = "office.encrypted"
        return encrypted

    def _macros(
        self, data: bytes, request: FileRequest, opts: dict[str, Any], result: Result, state: dict[str, Any]
    ) -> None:
        from oletools.olevba import VBA_Parser

        parser = VBA_Parser(request.name or "document", data=data, relaxed=True)
        try:
            if not parser.detect_vba_macros() and not parser.detect_xlm_macros():
                return
            section = result.add_section("Macros", None)
            section.heuristic = "office.macros"
            sources = self._macro_sources(parser, opts, result, section)
            self._macro_findings(parser, opts, result, section)
            self._macro_raptor("\n".join(sources), section)
            if parser.xlm_macros:
                section.add_subsection("Excel 4 macros", "\n".join(parser.xlm_macros[:50])).heuristic = "office.xlm"
            if parser.vba_projects and parser.detect_vba_stomping():
                section.add_subsection("VBA stomping").heuristic = "office.vba_stomping"
        finally:
            parser.close()

    @staticmethod
    def _macro_sources(parser: Any, opts: dict[str, Any], result: Result, section: Section) -> list[str]:
        modules: list[dict[str, Any]] = []
        sources: list[str] = []
        for _, stream_path, vba_filename, code in parser.extract_macros():
            if len(modules) >= int(opts["max_macros"]):
                result.anomalies.append("macro_limit_reached")
                break
            text = code if isinstance(code, str) else code.decode("latin-1")
            name = _safe_name(str(vba_filename), f"module_{len(modules)}")
            modules.append({"module": name, "stream": str(stream_path), "lines": text.count("\n") + 1})
            sources.append(text)
            result.add_extracted(
                f"macro_{len(modules)}_{name}",
                f"Macro source from {stream_path}",
                data=text.encode("utf-8", "replace"),
            )
        section.body = modules
        section.body_format = "table"
        result.data["macros"] = modules
        return sources

    @staticmethod
    def _macro_findings(parser: Any, opts: dict[str, Any], result: Result, section: Section) -> None:
        findings = [
            {"type": t, "keyword": str(k)[:200], "description": d}
            for t, k, d in parser.analyze_macros()[: int(opts["max_findings"])]
        ]
        result.data["macro_findings"] = findings
        by_type: dict[str, list[dict[str, Any]]] = {}
        for finding in findings:
            by_type.setdefault(finding["type"], []).append(finding)
        for kind, heur in (("AutoExec", "office.autoexec"), ("Suspicious", "office.suspicious_vba")):
            if by_type.get(kind):
                section.add_subsection(f"{kind} keywords", by_type[kind], "table").heuristic = heur
        encoded = [f for k in ("Hex String", "Base64 String", "Dridex String") for f in by_type.get(k, [])]
        if encoded:
            section.add_subsection("Encoded strings", encoded, "table").heuristic = "office.encoded_strings"
        iocs = by_type.get("IOC", [])
        if iocs:
            sub = section.add_subsection("Indicators", iocs, "table")
            tag_urls(sub, [f["keyword"] for f in iocs if re.match(r"(?i)(https?|ftp)://", f["keyword"])])
            for ioc in iocs:
                if re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", ioc["keyword"]):
                    sub.add_tag("network.static.ip", ioc["keyword"])

    @staticmethod
    def _macro_raptor(code: str, section: Section) -> None:
        from oletools.mraptor import MacroRaptor

        raptor = MacroRaptor(code)
        raptor.scan()
        flags = {"autoexec": raptor.autoexec, "write": raptor.write, "execute": raptor.execute}
        if raptor.suspicious:
            section.add_subsection(
                "MacroRaptor: auto-exec with write or execute", flags, "kv"
            ).heuristic = "office.macro_dropper"

    def _dde(
        self, data: bytes, request: FileRequest, opts: dict[str, Any], result: Result, state: dict[str, Any]
    ) -> None:
        from oletools import msodde

        found = msodde.process_file(str(request.path), msodde.FIELD_FILTER_DDE) or ""
        links = [line.strip() for line in found.splitlines() if line.strip()]
        if links:
            result.data["dde"] = links
            result.add_section("DDE fields", links, "json").heuristic = "office.dde"

    # -- embedded objects ----------------------------------------------------------------------

    def _ole_objects(
        self, data: bytes, request: FileRequest, opts: dict[str, Any], result: Result, state: dict[str, Any]
    ) -> None:
        import olefile
        from oletools.oleobj import OleNativeStream

        found: list[dict[str, Any]] = []
        with olefile.OleFileIO(data) as ole:
            for path in ole.listdir():
                leaf = path[-1]
                if leaf == "Equation Native":
                    found.append({"stream": "/".join(path), "name": None, "type": "Equation Native"})
                    continue
                if leaf not in ("\x01Ole10Native", "Package") or ole.get_size(path) > int(opts["max_child_size"]):
                    continue
                blob = ole.openstream(path).read()
                name = f"package_{len(found)}.zip"
                if leaf == "\x01Ole10Native":
                    native = OleNativeStream(bindata=blob)
                    name, blob = (
                        _safe_name(str(native.filename or ""), f"ole_native_{len(found)}"),
                        native.data,
                    )
                found.append({"stream": "/".join(path).replace("\x01", ""), "name": name, "type": file_kind(blob)})
                result.add_extracted_capped(
                    int(opts["max_children"]), name, blob, f"Embedded object in {found[-1]['stream']}"
                )
        self._report_objects(found, result)

    def _zip_members(
        self, data: bytes, request: FileRequest, opts: dict[str, Any], result: Result, state: dict[str, Any]
    ) -> None:
        found: list[dict[str, Any]] = []
        odf_scripts: list[str] = []
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                name = info.filename
                is_embedding = "/embeddings/" in name or name.startswith("ObjectReplacements/")
                is_odf_script = name.startswith(("Basic/", "Scripts/")) and not name.endswith(
                    ("script-lc.xml", "script-lb.xml", "/")
                )
                if not (is_embedding or is_odf_script) or info.file_size > int(opts["max_child_size"]):
                    continue
                blob = archive.read(info)
                if is_odf_script:
                    odf_scripts.append(name)
                    result.add_extracted_capped(
                        int(opts["max_children"]), _safe_name(name, "script"), blob, f"OpenDocument script {name}"
                    )
                    continue
                found.append({"stream": name, "name": _safe_name(name, "embedded"), "type": file_kind(blob)})
                result.add_extracted_capped(
                    int(opts["max_children"]), found[-1]["name"], blob, f"Embedded object {name}"
                )
        self._report_objects(found, result)
        if odf_scripts:
            result.add_section("OpenDocument macros", odf_scripts, "json").heuristic = "office.odf_macros"

    def _rtf_objects(
        self, data: bytes, request: FileRequest, opts: dict[str, Any], result: Result, state: dict[str, Any]
    ) -> None:
        from oletools.rtfobj import RtfObjParser

        parser = RtfObjParser(data)
        parser.parse()
        found: list[dict[str, Any]] = []
        for index, obj in enumerate(parser.objects[: int(opts["max_children"])]):
            class_name = (obj.class_name or b"").decode("latin-1", "replace") if obj.is_ole else ""
            if obj.is_package:
                name, blob = _safe_name(str(obj.filename or ""), f"rtf_package_{index}"), obj.olepkgdata
            elif obj.is_ole:
                name, blob = f"rtf_object_{index}_{_safe_name(class_name, 'ole')}.bin", obj.oledata
            else:
                name, blob = f"rtf_object_{index}.bin", obj.rawdata
            kind = "Equation Native" if _EQUATION.search(f"{class_name} {obj.clsid or ''}") else file_kind(blob or b"")
            found.append({"stream": f"object {index} at {obj.start}", "name": name, "type": kind, "class": class_name})
            if blob:
                result.add_extracted_capped(
                    int(opts["max_children"]), name, blob, f"RTF object {index} ({class_name or 'raw'})"
                )
        self._report_objects(found, result)

    @staticmethod
    def _report_objects(found: list[dict[str, Any]], result: Result) -> None:
        if not found:
            return
        result.data["embedded_objects"] = found
        section = result.add_section("Embedded objects", found, "table")
        section.heuristic = "office.embedded_object"
        for entry in found:
            if entry["name"]:
                section.add_tag("file.name.extracted", entry["name"])
        if any(e["type"] == "Equation Native" for e in found):
            section.add_subsection("Equation Editor object").heuristic = "office.equation_editor"
        executables = [
            e["name"]
            for e in found
            if e["type"] in ("exe", "elf")
            or re.search(r"\.(exe|dll|scr|js|vbs|hta|bat|cmd|ps1|lnk)$", e["name"] or "", re.I)
        ]
        if executables:
            section.add_subsection("Executable objects", executables, "json").heuristic = "office.embedded_executable"

    # -- relationships -------------------------------------------------------------------------

    def _relationships(
        self, data: bytes, request: FileRequest, opts: dict[str, Any], result: Result, state: dict[str, Any]
    ) -> None:
        external: list[dict[str, str]] = []
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".rels") or info.file_size > int(opts["max_xml_size"]):
                    continue
                for tag in _relationship_tags(archive.read(info), int(opts["max_relationships"])):
                    attrs = {k.decode().lower(): v.decode("utf-8", "replace") for k, v in _ATTR_RE.findall(tag)}
                    if attrs.get("targetmode", "").lower() == "external":
                        external.append(
                            {
                                "part": info.filename,
                                "type": attrs.get("type", "").rsplit("/", 1)[-1],
                                "target": attrs.get("target", ""),
                            }
                        )
        if not external:
            return
        result.data["external_relationships"] = external
        section = result.add_section("External relationships", external, "table")
        targets = [e["target"] for e in external]
        tag_urls(section, [t for t in targets if re.match(r"(?i)(https?|ftp)://", t)])
        for target in targets:
            if target.startswith(("\\\\", "file:")):
                section.add_tag("network.static.uri", target)
        templates = [e["target"] for e in external if e["type"] == "attachedTemplate"]
        if templates:
            section.add_subsection("Remote template", templates, "json").heuristic = "office.template_injection"
        objects = [e["target"] for e in external if e["type"] in _EXTERNAL_OBJECT_TYPES]
        if objects:
            section.add_subsection("External objects", objects, "json").heuristic = "office.external_object"


def _relationship_tags(xml: bytes, limit: int) -> list[bytes]:
    """The text of the first ``limit`` <Relationship ...> tags, found in one linear pass."""
    pieces = (piece for piece in xml.split(b"<") if _REL_START_RE.match(piece))
    return [piece.split(b">", 1)[0] for piece in itertools.islice(pieces, limit)]


def _container(data: bytes) -> str:
    if data.startswith(_OLE_MAGIC):
        return "ole"
    if data.startswith(b"PK\x03\x04"):
        return "zip"
    if data.lstrip()[:5] == b"{\\rtf" or data[:4] == b"{\\rt":
        return "rtf"
    return "other"
