"""Windows PE files: headers, sections, imports, resources, signatures and overlay, read with pefile.

Nothing here runs the sample. A PE is judged on how it was built (packed or self-modifying
sections, forged timestamps), what it asks Windows for (imports grouped by the behaviour they
enable) and what it carries (PE files in resources, large overlays), each finding a heuristic.
Malformed files are normal input: whatever pefile can still read is reported, plus an anomaly.
"""

from __future__ import annotations

import hashlib
import struct
from datetime import UTC, datetime
from typing import Any

import pefile

from assay.services.base import FileRequest, Heuristic, Result, Section, Service, Stage
from assay.services.lib.entropy import shannon

_DIR = pefile.DIRECTORY_ENTRY
_PARSED_DIRECTORIES = [
    _DIR["IMAGE_DIRECTORY_ENTRY_IMPORT"],
    _DIR["IMAGE_DIRECTORY_ENTRY_EXPORT"],
    _DIR["IMAGE_DIRECTORY_ENTRY_RESOURCE"],
    _DIR["IMAGE_DIRECTORY_ENTRY_DEBUG"],
]
_SCN_EXECUTE = 0x20000000
_SCN_WRITE = 0x80000000
_PACKER_SECTIONS = {
    "UPX0": "UPX",
    "UPX1": "UPX",
    "UPX2": "UPX",
    ".UPX": "UPX",
    "UPX!": "UPX",
    ".aspack": "ASPack",
    ".adata": "ASPack",
    ".ASPack": "ASPack",
    ".themida": "Themida",
    ".winlice": "WinLicense",
    ".vmp0": "VMProtect",
    ".vmp1": "VMProtect",
    ".vmp2": "VMProtect",
    ".MPRESS1": "MPRESS",
    ".MPRESS2": "MPRESS",
    ".petite": "Petite",
    ".packed": "unknown packer",
    ".nsp0": "NsPack",
    ".nsp1": "NsPack",
    "pebundle": "PEBundle",
    ".enigma1": "Enigma",
    ".enigma2": "Enigma",
    "FSG!": "FSG",
    ".yP": "Y0da",
    ".perplex": "Perplex",
    "MEW": "MEW",
    ".spack": "Simple Pack",
    ".ccg": "CCG",
    "PEC2": "PECompact",
    "PECompact2": "PECompact",
}
# Category -> (heuristic id, how many distinct APIs it takes, API names without their A/W suffix).
# Common runtimes import one of several of these (IsDebuggerPresent, GetKeyState), hence the minimum.
_SUSPICIOUS_APIS: dict[str, tuple[str, int, frozenset[str]]] = {
    "process injection": (
        "pe.api_injection",
        2,
        frozenset(
            {
                "VirtualAllocEx",
                "WriteProcessMemory",
                "CreateRemoteThread",
                "CreateRemoteThreadEx",
                "NtWriteVirtualMemory",
                "NtCreateThreadEx",
                "RtlCreateUserThread",
                "QueueUserAPC",
                "NtQueueApcThread",
                "SetThreadContext",
                "NtSetContextThread",
                "NtUnmapViewOfSection",
                "ZwUnmapViewOfSection",
                "NtMapViewOfSection",
                "VirtualProtectEx",
                "OpenProcess",
            }
        ),
    ),
    "anti-debugging": (
        "pe.api_antidebug",
        2,
        frozenset(
            {
                "IsDebuggerPresent",
                "CheckRemoteDebuggerPresent",
                "NtQueryInformationProcess",
                "OutputDebugString",
                "NtSetInformationThread",
                "DebugActiveProcess",
            }
        ),
    ),
    "keylogging": (
        "pe.api_keylogger",
        2,
        frozenset(
            {
                "SetWindowsHookEx",
                "GetAsyncKeyState",
                "GetKeyboardState",
                "GetKeyState",
                "RegisterRawInputDevices",
                "GetRawInputData",
            }
        ),
    ),
    "network": (
        "pe.api_network",
        1,
        frozenset(
            {
                "InternetOpen",
                "InternetOpenUrl",
                "InternetConnect",
                "HttpSendRequest",
                "HttpOpenRequest",
                "URLDownloadToFile",
                "WinHttpOpen",
                "WinHttpConnect",
                "WinHttpSendRequest",
                "WSAStartup",
                "connect",
                "socket",
                "send",
                "recv",
                "gethostbyname",
                "getaddrinfo",
                "InternetReadFile",
            }
        ),
    ),
    "cryptography": (
        "pe.api_crypto",
        1,
        frozenset(
            {
                "CryptEncrypt",
                "CryptDecrypt",
                "CryptGenKey",
                "CryptDeriveKey",
                "CryptImportKey",
                "CryptAcquireContext",
                "BCryptEncrypt",
                "BCryptDecrypt",
                "BCryptGenerateSymmetricKey",
            }
        ),
    ),
}


def _text(raw: bytes) -> str:
    return raw.rstrip(b"\x00").decode("latin-1")


class PE(Service):
    """Static analysis of Windows PE files (EXE, DLL, drivers) with pefile.

    Parameters:
        ``max_file_size`` (int, 104857600): larger files are read only up to this many bytes.
        ``max_sections`` (int, 96): sections listed and measured.
        ``max_imports`` (int, 2000): imported functions listed.
        ``max_exports`` (int, 500): exported functions listed.
        ``max_resources`` (int, 500): resource entries listed and inspected.
        ``max_child_size`` (int, 52428800): largest resource or overlay extracted as a child.
        ``min_overlay_extract`` (int, 4096): smallest overlay extracted as a child.
        ``high_entropy`` (float, 7.2): section entropy at or above which it counts as packed.
        ``entropy_bytes`` (int, 8388608): bytes of a section read to measure entropy.
        ``max_version_strings`` (int, 50): version-info strings listed.
    """

    name = "PE"
    version = "1"
    stage = Stage.CORE
    category = "Static Analysis"
    accepts = r"executable/windows/.*"
    parameters = {
        "max_file_size": 100 * 1024 * 1024,
        "max_sections": 96,
        "max_imports": 2000,
        "max_exports": 500,
        "max_resources": 500,
        "max_child_size": 50 * 1024 * 1024,
        "min_overlay_extract": 4096,
        "high_entropy": 7.2,
        "entropy_bytes": 8 * 1024 * 1024,
        "max_version_strings": 50,
    }
    heuristics = (
        Heuristic("pe.malformed", "Malformed PE", "pefile could not read part of the file.", 100),
        Heuristic(
            "pe.packed",
            "High-entropy section",
            "A section looks compressed or encrypted.",
            100,
            ("T1027.002",),
        ),
        Heuristic(
            "pe.packer_section",
            "Known packer section",
            "A section name used by a known packer.",
            300,
            ("T1027.002",),
        ),
        Heuristic(
            "pe.wx_section",
            "Writable and executable section",
            "Code that can rewrite itself, typical of unpacking stubs.",
            250,
            ("T1027.002",),
        ),
        Heuristic("pe.timestamp", "Odd compile timestamp", "Zero, very old or in the future.", 50, ("T1070.006",)),
        Heuristic("pe.entry_point", "Odd entry point", "Outside every section or in a writable one.", 200),
        Heuristic(
            "pe.api_injection",
            "Process injection APIs",
            "Imports used to write into other processes.",
            300,
            ("T1055",),
        ),
        Heuristic("pe.api_antidebug", "Anti-debugging APIs", "Imports used to detect a debugger.", 100, ("T1622",)),
        Heuristic("pe.api_keylogger", "Keylogging APIs", "Imports used to capture keystrokes.", 300, ("T1056.001",)),
        Heuristic("pe.api_network", "Network APIs", "Imports used to talk to the network.", 20, ("T1071",)),
        Heuristic("pe.api_crypto", "Cryptography APIs", "Imports used to encrypt or decrypt data.", 50, ("T1027",)),
        Heuristic(
            "pe.embedded_pe",
            "PE inside a resource",
            "A resource holds another executable.",
            500,
            ("T1027.009",),
        ),
        Heuristic("pe.overlay", "Large overlay", "Data appended after the last section.", 50),
        Heuristic(
            "pe.no_imports",
            "No imports",
            "An executable that imports nothing resolves APIs itself.",
            100,
            ("T1106",),
        ),
    )

    def execute(self, request: FileRequest) -> Result:
        opts = self.options(request.params)
        result = Result()
        data = request.read_capped(int(opts["max_file_size"]), result)
        try:
            pe = pefile.PE(data=data, fast_load=True)
        except Exception as exc:  # pefile raises many kinds on hostile headers
            section = result.add_section("PE could not be parsed", str(exc)[:500])
            section.heuristic = "pe.malformed"
            result.anomalies.append("pe_unparseable")
            return result
        errors: dict[str, str] = {}
        try:
            pe.parse_data_directories(directories=_PARSED_DIRECTORIES)
        except Exception as exc:
            result.anomalies.append("pe_directories_failed")
            errors["directories"] = repr(exc)[:300]
        for step in (
            self._headers,
            self._sections,
            self._imports,
            self._exports,
            self._resources,
            self._version_info,
            self._signature,
            self._dotnet,
            self._overlay,
        ):
            try:
                step(pe, data, opts, result)
            except Exception as exc:
                part = step.__name__.strip("_")
                result.anomalies.append(f"pe_{part}_failed")
                errors[part] = repr(exc)[:300]
        if errors:
            result.add_section("Parts that could not be read", errors, "kv").heuristic = "pe.malformed"
        warnings = pe.get_warnings()
        if warnings:
            result.anomalies.append("pe_warnings")
            result.data["warnings"] = warnings[:50]
        return result

    # -- headers -------------------------------------------------------------------------------

    def _headers(self, pe: pefile.PE, data: bytes, opts: dict[str, Any], result: Result) -> None:
        fh, oh = pe.FILE_HEADER, pe.OPTIONAL_HEADER
        stamp = fh.TimeDateStamp
        entry = oh.AddressOfEntryPoint
        entry_section = pe.get_section_by_rva(entry) if entry else None
        rich = getattr(pe, "RICH_HEADER", None)
        info = {
            "machine": pefile.MACHINE_TYPE.get(fh.Machine, hex(fh.Machine)),
            "format": "PE32+" if oh.Magic == pefile.OPTIONAL_HEADER_MAGIC_PE_PLUS else "PE32",
            "timestamp": stamp,
            "timestamp_iso": datetime.fromtimestamp(stamp, UTC).isoformat(),
            "subsystem": pefile.SUBSYSTEM_TYPE.get(oh.Subsystem, str(oh.Subsystem)),
            "characteristics": [n for n, v in pefile.image_characteristics if fh.Characteristics & v],
            "dll": pe.is_dll(),
            "image_base": hex(oh.ImageBase),
            "entry_point": hex(entry),
            "entry_section": _text(entry_section.Name) if entry_section else None,
            "rich_header": rich is not None,
        }
        result.file_info["pe"] = {k: info[k] for k in ("machine", "format", "timestamp_iso", "dll")}
        result.data["header"] = info
        section = result.add_section("PE header", info, "kv")
        section.add_tag("file.pe.linker.timestamp", str(stamp))
        section.add_tag("file.pe.oep", hex(entry))
        if rich is not None:
            rich_hash = pe.get_rich_header_hash()
            if rich_hash:
                section.add_tag("file.pe.rich_header.hash", rich_hash)
        self._judge_timestamp(stamp, result)
        self._judge_entry(pe, entry, entry_section, result)

    @staticmethod
    def _judge_timestamp(stamp: int, result: Result) -> None:
        now = datetime.now(UTC).timestamp()
        if stamp == 0:
            why = "is zero"
        elif stamp > now + 86400:
            why = "is in the future"
        elif stamp < 694224000:  # 1992-01-01, before any Win32 PE linker
            why = "predates Win32 linkers"
        else:
            return
        body = f"The compile timestamp {stamp} {why} (reproducible builds also do this)."
        result.add_section("Odd compile timestamp", body).heuristic = "pe.timestamp"

    @staticmethod
    def _judge_entry(pe: pefile.PE, entry: int, entry_section: Any, result: Result) -> None:
        if entry == 0:
            return
        if entry_section is None:
            body = f"Entry point {entry:#x} is outside every section."
        elif entry_section.Characteristics & _SCN_WRITE:
            body = f"Entry point {entry:#x} is in writable section {_text(entry_section.Name)!r}."
        else:
            return
        result.add_section("Odd entry point", body).heuristic = "pe.entry_point"

    # -- sections ------------------------------------------------------------------------------

    def _sections(self, pe: pefile.PE, data: bytes, opts: dict[str, Any], result: Result) -> None:
        limit, threshold = int(opts["max_sections"]), float(opts["high_entropy"])
        rows = []
        table = result.add_section("Sections", rows, "table")
        for sec in pe.sections[:limit]:
            name = _text(sec.Name)
            start = sec.PointerToRawData
            raw = data[start : start + min(sec.SizeOfRawData, int(opts["entropy_bytes"]))]
            row = {
                "name": name,
                "virtual_address": hex(sec.VirtualAddress),
                "virtual_size": sec.Misc_VirtualSize,
                "raw_size": sec.SizeOfRawData,
                "entropy": round(shannon(raw), 3),
                "flags": "".join(
                    f
                    for f, bit in (("R", 0x40000000), ("W", _SCN_WRITE), ("X", _SCN_EXECUTE))
                    if sec.Characteristics & bit
                ),
                "md5": hashlib.md5(raw, usedforsecurity=False).hexdigest(),
            }
            rows.append(row)
            table.add_tag("file.pe.sections.name", name)
            table.add_tag("file.pe.sections.hash", row["md5"])
            self._judge_section(row, threshold, table)
        if len(pe.sections) > limit:
            result.anomalies.append("section_limit_reached")
        result.data["sections"] = rows

    @staticmethod
    def _judge_section(row: dict[str, Any], threshold: float, parent: Section) -> None:
        name = row["name"]
        if row["entropy"] >= threshold and row["raw_size"] >= 512:
            sub = parent.add_subsection(f"High entropy in {name!r}", f"Entropy {row['entropy']}")
            sub.heuristic = "pe.packed"
        packer = _PACKER_SECTIONS.get(name)
        if packer:
            parent.add_subsection(
                f"Packer section {name!r}", f"Section name used by {packer}"
            ).heuristic = "pe.packer_section"
        if "W" in row["flags"] and "X" in row["flags"]:
            parent.add_subsection(f"Writable and executable {name!r}").heuristic = "pe.wx_section"

    # -- imports and exports -------------------------------------------------------------------

    def _imports(self, pe: pefile.PE, data: bytes, opts: dict[str, Any], result: Result) -> None:
        entries = getattr(pe, "DIRECTORY_ENTRY_IMPORT", [])
        limit = int(opts["max_imports"])
        names: list[str] = []
        for entry in entries:
            dll = entry.dll.decode("latin-1", "replace").lower() if entry.dll else "?"
            for imp in entry.imports:
                if len(names) >= limit:
                    result.anomalies.append("import_limit_reached")
                    break
                func = imp.name.decode("latin-1", "replace") if imp.name else f"ord_{imp.ordinal}"
                names.append(f"{dll}!{func}")
        result.data["imports"] = names
        section = result.add_section("Imports", names, "json")
        if not names and not pe.is_dll() and not hasattr(pe, "DIRECTORY_ENTRY_COM_DESCRIPTOR"):
            section.heuristic = "pe.no_imports"
        imphash = pe.get_imphash() if names else ""
        if imphash:
            section.add_tag("file.pe.imports.imphash", imphash)
            result.data["imphash"] = imphash
        self._judge_imports(names, result)

    @staticmethod
    def _judge_imports(names: list[str], result: Result) -> None:
        funcs = {n.split("!", 1)[1] for n in names}
        bases = funcs | {f[:-1] for f in funcs if f[-1:] in ("A", "W")}
        for category, (heur, minimum, apis) in _SUSPICIOUS_APIS.items():
            found = sorted(bases & apis)
            if len(found) >= minimum:
                sub = result.add_section(f"Suspicious imports: {category}", found, "json")
                sub.heuristic = heur

    def _exports(self, pe: pefile.PE, data: bytes, opts: dict[str, Any], result: Result) -> None:
        directory = getattr(pe, "DIRECTORY_ENTRY_EXPORT", None)
        if directory is None:
            return
        limit = int(opts["max_exports"])
        symbols = directory.symbols[:limit]
        names = [s.name.decode("latin-1", "replace") if s.name else f"ord_{s.ordinal}" for s in symbols]
        if len(directory.symbols) > limit:
            result.anomalies.append("export_limit_reached")
        section = result.add_section("Exports", names, "json")
        if directory.name:
            section.add_tag("file.pe.exports.module_name", directory.name.decode("latin-1", "replace"))
        for name in names[:100]:
            section.add_tag("file.pe.exports.function_name", name)
        result.data["exports"] = names

    # -- resources -----------------------------------------------------------------------------

    def _resources(self, pe: pefile.PE, data: bytes, opts: dict[str, Any], result: Result) -> None:
        root = getattr(pe, "DIRECTORY_ENTRY_RESOURCE", None)
        if root is None:
            return
        rows: list[dict[str, Any]] = []
        section = result.add_section("Resources", rows, "table")
        limit = int(opts["max_resources"])
        for kind, ident, lang in _walk_resources(root):
            if len(rows) >= limit:
                result.anomalies.append("resource_limit_reached")
                break
            type_name = str(kind.name) if kind.name else pefile.RESOURCE_TYPE.get(kind.id, str(kind.id))
            language = pefile.LANG.get(lang.data.lang, str(lang.data.lang))
            rows.append(
                {
                    "type": type_name,
                    "name": str(ident.name or ident.id),
                    "language": language,
                    "size": lang.data.struct.Size,
                    "rva": hex(lang.data.struct.OffsetToData),
                }
            )
            section.add_tag("file.pe.resources.language", language)
            if ident.name:
                section.add_tag("file.pe.resources.name", str(ident.name))
            self._embedded_pe(pe, lang.data.struct, rows[-1], opts, result)
        result.data["resources"] = rows

    @staticmethod
    def _embedded_pe(pe: pefile.PE, entry: Any, row: dict[str, Any], opts: dict[str, Any], result: Result) -> None:
        if not 64 <= entry.Size <= int(opts["max_child_size"]):
            return
        blob = pe.get_data(entry.OffsetToData, entry.Size)
        if not _looks_like_pe(blob):
            return
        name = f"resource_{row['type']}_{row['name']}.exe".replace("/", "_")
        result.add_extracted(name, f"PE in resource {row['type']}/{row['name']}", data=blob)
        result.add_section(
            "Executable in resource", f"{row['type']}/{row['name']}: {len(blob)} bytes"
        ).heuristic = "pe.embedded_pe"

    def _version_info(self, pe: pefile.PE, data: bytes, opts: dict[str, Any], result: Result) -> None:
        if not hasattr(pe, "DIRECTORY_ENTRY_RESOURCE"):
            return
        strings: dict[str, str] = {}
        for file_info in getattr(pe, "FileInfo", []) or []:
            for info in file_info if isinstance(file_info, list) else [file_info]:
                for table in getattr(info, "StringTable", []):
                    for key, value in table.entries.items():
                        if len(strings) < int(opts["max_version_strings"]):
                            strings[key.decode("latin-1", "replace")] = value.decode("latin-1", "replace")
        if not strings:
            return
        section = result.add_section("Version information", strings, "kv")
        for key, tag in (
            ("FileDescription", "file.pe.versions.description"),
            ("OriginalFilename", "file.pe.versions.filename"),
        ):
            if strings.get(key):
                section.add_tag(tag, strings[key])
        result.data["version_info"] = strings

    # -- signature, .NET, overlay --------------------------------------------------------------

    def _signature(self, pe: pefile.PE, data: bytes, opts: dict[str, Any], result: Result) -> None:
        entry = pe.OPTIONAL_HEADER.DATA_DIRECTORY[_DIR["IMAGE_DIRECTORY_ENTRY_SECURITY"]]
        present = entry.VirtualAddress > 0 and entry.Size > 0
        inside = present and entry.VirtualAddress + entry.Size <= len(data)
        info = {
            "present": present,
            "offset": entry.VirtualAddress,
            "size": entry.Size,
            "within_file": inside,
            "verified": False,
        }
        result.data["authenticode"] = info
        if present:
            result.add_section("Authenticode signature (not verified)", info, "kv")
            if not inside:
                result.anomalies.append("signature_outside_file")

    def _dotnet(self, pe: pefile.PE, data: bytes, opts: dict[str, Any], result: Result) -> None:
        entry = pe.OPTIONAL_HEADER.DATA_DIRECTORY[_DIR["IMAGE_DIRECTORY_ENTRY_COM_DESCRIPTOR"]]
        if not (entry.VirtualAddress and entry.Size):
            return
        info: dict[str, Any] = {"clr_header": True}
        header = pe.get_data(entry.VirtualAddress, 16)
        if len(header) == 16:
            _, major, minor, meta_rva, _ = struct.unpack("<IHHII", header)
            info["clr_version"] = f"{major}.{minor}"
            root = pe.get_data(meta_rva, 16 + 256)
            if root[:4] == b"BSJB":
                length = min(struct.unpack_from("<I", root, 12)[0], 255)
                info["runtime_version"] = root[16 : 16 + length].split(b"\x00")[0].decode("latin-1")
        result.data["dotnet"] = info
        result.file_info.setdefault("pe", {})["dotnet"] = True
        section = result.add_section(".NET assembly", info, "kv")
        section.add_tag("file.pe.dotnet", info.get("runtime_version", "present"))

    def _overlay(self, pe: pefile.PE, data: bytes, opts: dict[str, Any], result: Result) -> None:
        start = pe.get_overlay_data_start_offset()
        if start is None:
            return
        sig = pe.OPTIONAL_HEADER.DATA_DIRECTORY[_DIR["IMAGE_DIRECTORY_ENTRY_SECURITY"]]
        if sig.VirtualAddress == start and sig.Size:
            start += sig.Size  # the certificate table is expected after the sections
        size = len(data) - start
        if size <= 0:
            return
        result.data["overlay"] = {"offset": start, "size": size}
        section = result.add_section(
            "Overlay",
            {
                "offset": start,
                "size": size,
                "entropy": round(shannon(data[start : start + (1 << 20)]), 3),
            },
            "kv",
        )
        if int(opts["min_overlay_extract"]) <= size <= int(opts["max_child_size"]):
            section.heuristic = "pe.overlay"
            result.add_extracted("overlay.bin", f"Data after the last section at offset {start}", data=data[start:])


def _walk_resources(root: Any) -> Any:
    """Yield (type, name, language) entries of a resource tree, tolerating missing levels."""
    for kind in getattr(root, "entries", []):
        for ident in getattr(getattr(kind, "directory", None), "entries", []):
            for lang in getattr(getattr(ident, "directory", None), "entries", []):
                if hasattr(lang, "data"):
                    yield kind, ident, lang


def _looks_like_pe(blob: bytes) -> bool:
    if blob[:2] != b"MZ" or len(blob) < 64:
        return False
    offset = struct.unpack_from("<I", blob, 0x3C)[0]
    return blob[offset : offset + 4] == b"PE\x00\x00"
