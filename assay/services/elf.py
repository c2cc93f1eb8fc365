"""Linux ELF files: headers, sections, segments, dynamic linking and symbols, read with pyelftools.

IoT malware is mostly small static, stripped and often UPX-packed ELF binaries; each of those
traits is a heuristic here, as are an executable stack and writable+executable segments.
pyelftools parses lazily, so every part is read on its own and a truncated or mutated file
still yields whatever parts were readable, plus an anomaly naming what failed.
"""

from __future__ import annotations

from typing import IO, Any

from elftools.elf.constants import P_FLAGS
from elftools.elf.elffile import ELFFile

from assay.services.base import FileRequest, Heuristic, Result, Service, Stage
from assay.services.lib.entropy import shannon

_UPX_MARKERS = (b"UPX!", b"$Info: This file is packed with the UPX")


def _flags(value: int) -> str:
    return "".join(c for c, bit in (("R", P_FLAGS.PF_R), ("W", P_FLAGS.PF_W), ("X", P_FLAGS.PF_X)) if value & bit)


class ELF(Service):
    """Static analysis of Linux ELF executables, libraries and objects with pyelftools.

    Parameters:
        ``max_sections`` (int, 256): sections listed and measured.
        ``max_segments`` (int, 128): program headers listed.
        ``max_symbols`` (int, 500): imported functions listed.
        ``max_needed`` (int, 100): needed libraries listed.
        ``high_entropy`` (float, 7.2): section or segment entropy counted as packed.
        ``entropy_bytes`` (int, 8388608): bytes of a section read to measure entropy.
        ``upx_scan_bytes`` (int, 4096): bytes at the start of the file searched for UPX markers.
    """

    name = "ELF"
    version = "1"
    stage = Stage.CORE
    category = "Static Analysis"
    accepts = r"executable/linux/.*"
    parameters = {
        "max_sections": 256,
        "max_segments": 128,
        "max_symbols": 500,
        "max_needed": 100,
        "high_entropy": 7.2,
        "entropy_bytes": 8 * 1024 * 1024,
        "upx_scan_bytes": 4096,
    }
    heuristics = (
        Heuristic("elf.malformed", "Malformed ELF", "pyelftools could not read part of the file.", 100),
        Heuristic(
            "elf.stripped_static",
            "Stripped static binary",
            "Static and without symbols: common for IoT malware, rare for distribution binaries.",
            100,
            ("T1027",),
        ),
        Heuristic(
            "elf.packed",
            "High-entropy contents",
            "A section or loaded segment looks compressed.",
            100,
            ("T1027.002",),
        ),
        Heuristic("elf.upx", "UPX packed", "UPX markers in the file.", 300, ("T1027.002",)),
        Heuristic("elf.exec_stack", "Executable stack", "PT_GNU_STACK asks for an executable stack.", 100),
        Heuristic(
            "elf.wx_segment",
            "Writable and executable segment",
            "A loaded segment that is both writable and executable.",
            100,
            ("T1027.002",),
        ),
        Heuristic(
            "elf.no_sections",
            "No section headers",
            "An executable without section headers, typical of packers and hand-made loaders.",
            100,
            ("T1027",),
        ),
    )

    def execute(self, request: FileRequest) -> Result:
        opts = self.options(request.params)
        result = Result()
        with request.path.open("rb") as stream:
            try:
                elf = ELFFile(stream)
            except Exception as exc:  # ELFError, struct.error and friends on hostile headers
                result.add_section("ELF could not be parsed", repr(exc)[:500]).heuristic = "elf.malformed"
                result.anomalies.append("elf_unparseable")
                return result
            facts: dict[str, Any] = {}
            errors: dict[str, str] = {}
            for step in (self._header, self._sections, self._segments, self._dynamic, self._symbols):
                try:
                    step(elf, stream, opts, result, facts)
                except Exception as exc:
                    part = step.__name__.strip("_")
                    result.anomalies.append(f"elf_{part}_failed")
                    errors[part] = repr(exc)[:300]
            if errors:
                result.add_section("Parts that could not be read", errors, "kv").heuristic = "elf.malformed"
            self._judge(stream, opts, result, facts)
        return result

    def _header(
        self, elf: ELFFile, stream: IO[bytes], opts: dict[str, Any], result: Result, facts: dict[str, Any]
    ) -> None:
        header = elf.header
        info = {
            "class": f"ELF{elf.elfclass}",
            "endianness": "little" if elf.little_endian else "big",
            "machine": header["e_machine"],
            "type": header["e_type"],
            "os_abi": header["e_ident"]["EI_OSABI"],
            "entry_point": hex(header["e_entry"]),
            "section_count": header["e_shnum"],
            "segment_count": header["e_phnum"],
        }
        facts["type"] = header["e_type"]
        facts["section_count"] = header["e_shnum"]
        result.file_info["elf"] = {k: info[k] for k in ("class", "machine", "type")}
        result.data["header"] = info
        result.add_section("ELF header", info, "kv")

    def _sections(
        self, elf: ELFFile, stream: IO[bytes], opts: dict[str, Any], result: Result, facts: dict[str, Any]
    ) -> None:
        rows: list[dict[str, Any]] = []
        facts["section_names"] = names = set()
        section = result.add_section("Sections", rows, "table")
        result.data["sections"] = rows
        limit, threshold = int(opts["max_sections"]), float(opts["high_entropy"])
        for index, sec in enumerate(elf.iter_sections()):
            if index >= limit:
                result.anomalies.append("section_limit_reached")
                break
            row = {
                "name": sec.name,
                "type": sec["sh_type"],
                "offset": sec["sh_offset"],
                "size": sec["sh_size"],
                "entropy": None,
            }
            if sec["sh_type"] != "SHT_NOBITS" and sec["sh_size"]:
                stream.seek(sec["sh_offset"])
                row["entropy"] = round(shannon(stream.read(min(sec["sh_size"], int(opts["entropy_bytes"])))), 3)
            rows.append(row)
            names.add(sec.name)
            if sec.name:
                section.add_tag("file.elf.sections.name", sec.name)
            if (row["entropy"] or 0) >= threshold and row["size"] >= 512:
                section.add_subsection(
                    f"High entropy in {sec.name!r}", f"Entropy {row['entropy']}"
                ).heuristic = "elf.packed"

    def _segments(
        self, elf: ELFFile, stream: IO[bytes], opts: dict[str, Any], result: Result, facts: dict[str, Any]
    ) -> None:
        rows: list[dict[str, Any]] = []
        section = result.add_section("Segments", rows, "table")
        result.data["segments"] = rows
        facts["segment_types"] = kinds = set()
        for index, seg in enumerate(elf.iter_segments()):
            if index >= int(opts["max_segments"]):
                result.anomalies.append("segment_limit_reached")
                break
            flags = _flags(seg["p_flags"])
            rows.append(
                {
                    "type": seg["p_type"],
                    "flags": flags,
                    "offset": seg["p_offset"],
                    "vaddr": hex(seg["p_vaddr"]),
                    "filesz": seg["p_filesz"],
                    "memsz": seg["p_memsz"],
                }
            )
            kinds.add(seg["p_type"])
            section.add_tag("file.elf.segments.type", seg["p_type"])
            if seg["p_type"] == "PT_INTERP":
                facts["interpreter"] = seg.get_interp_name()
                section.add_tag("file.elf.interpreter", facts["interpreter"])
            elif seg["p_type"] == "PT_GNU_STACK" and "X" in flags:
                section.add_subsection("Executable stack", "PT_GNU_STACK has PF_X").heuristic = "elf.exec_stack"
            elif seg["p_type"] == "PT_LOAD" and "W" in flags and "X" in flags:
                section.add_subsection(
                    f"Writable and executable segment at {hex(seg['p_vaddr'])}"
                ).heuristic = "elf.wx_segment"
        result.data["interpreter"] = facts.get("interpreter")

    def _dynamic(
        self, elf: ELFFile, stream: IO[bytes], opts: dict[str, Any], result: Result, facts: dict[str, Any]
    ) -> None:
        needed: list[str] = []
        dynamic = elf.get_section_by_name(".dynamic")
        if dynamic is not None and hasattr(dynamic, "iter_tags"):
            for tag in dynamic.iter_tags():
                if tag.entry.d_tag == "DT_NEEDED" and len(needed) < int(opts["max_needed"]):
                    needed.append(tag.needed)
        facts["needed"] = needed
        result.data["needed"] = needed
        if needed:
            section = result.add_section("Needed libraries", needed, "json")
            for lib in needed:
                section.add_tag("file.elf.libraries", lib)

    def _symbols(
        self, elf: ELFFile, stream: IO[bytes], opts: dict[str, Any], result: Result, facts: dict[str, Any]
    ) -> None:
        symtab, dynsym = elf.get_section_by_name(".symtab"), elf.get_section_by_name(".dynsym")
        facts["stripped"] = symtab is None
        counts = {
            "symtab": symtab.num_symbols() if symtab is not None and hasattr(symtab, "num_symbols") else 0,
            "dynsym": dynsym.num_symbols() if dynsym is not None and hasattr(dynsym, "num_symbols") else 0,
        }
        imported: list[str] = []
        if dynsym is not None and hasattr(dynsym, "iter_symbols"):
            for sym in dynsym.iter_symbols():
                if len(imported) >= int(opts["max_symbols"]):
                    result.anomalies.append("symbol_limit_reached")
                    break
                if sym["st_shndx"] == "SHN_UNDEF" and sym["st_info"]["type"] == "STT_FUNC" and sym.name:
                    imported.append(sym.name)
        result.data["symbols"] = {
            "counts": counts,
            "imported_functions": imported,
            "stripped": facts["stripped"],
        }
        result.add_section(
            "Symbols",
            {"counts": counts, "stripped": facts["stripped"], "imported_functions": imported},
            "json",
        )

    def _judge(self, stream: IO[bytes], opts: dict[str, Any], result: Result, facts: dict[str, Any]) -> None:
        kinds = facts.get("segment_types", set())
        static = "PT_INTERP" not in kinds and "PT_DYNAMIC" not in kinds
        linking = {
            "static": static,
            "stripped": facts.get("stripped"),
            "interpreter": facts.get("interpreter"),
        }
        result.data["linking"] = linking
        result.add_section("Linking", linking, "kv")
        executable = facts.get("type") in ("ET_EXEC", "ET_DYN")
        if static and facts.get("stripped") and executable and kinds:
            result.add_section(
                "Stripped static executable", "No interpreter, no dynamic section, no symbol table."
            ).heuristic = "elf.stripped_static"
        if facts.get("section_count") == 0 and executable:
            result.add_section("No section headers", "e_shnum is 0").heuristic = "elf.no_sections"
        stream.seek(0)
        head = stream.read(int(opts["upx_scan_bytes"]))
        names = facts.get("section_names", set())
        if any(m in head for m in _UPX_MARKERS) or any(n.upper().startswith("UPX") for n in names if n):
            result.add_section("UPX packed", "UPX marker or section name found").heuristic = "elf.upx"
            result.file_info.setdefault("elf", {})["packer"] = "UPX"
