"""Scripts and web pages: JavaScript, PowerShell, VBScript, batch, shell and HTML, read as text.

Droppers written in script languages hide what they do rather than how they are built, so
this service looks for the hiding: encoded PowerShell commands (decoded and shown), long
base64 blobs and char-code arrays, dynamic code (``eval``/``IEX``), string splitting, and, in
HTML, hidden iframes, credential forms and smuggled payloads. Blobs that decode to files are
extracted as children; URLs become ``network.static.uri`` tags. Nothing is ever run.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
from typing import Any

from assay.services.base import FileRequest, Heuristic, Result, Service, Stage
from assay.services.lib.filekind import file_kind
from assay.services.lib.urls import find_urls, tag_urls

_B64_RE = re.compile(r"[A-Za-z0-9+/]{%d,}={0,2}")
_PS_ENC_RE = re.compile(
    r"(?i)\s-e(?:n(?:c(?:o(?:d(?:e(?:d(?:c(?:o(?:m(?:m(?:a(?:n(?:d)?)?)?)?)?)?)?)?)?)?)?)?)?"
    r"\s+[\"']?([A-Za-z0-9+/]{16,}={0,2})"
)
_CHARCODE_RE = re.compile(
    r"(?i)(?:fromCharCode\s*\(|(?:\d{2,3}\s*,\s*){40,}\d{2,3}|(?:chrw?\s*\(\s*\d+\s*\)\s*[&+]\s*){10,})"
)
_CONCAT_RE = re.compile(r"[\"']\s*[+&]\s*[\"']")
_DATA_URI_RE = re.compile(r"data:[\w/+.-]{1,100};base64,([A-Za-z0-9+/=\s]{64,})", re.I)
_JS_DYNAMIC = (
    "eval(",
    "unescape(",
    "document.write(",
    "atob(",
    "new function(",
    'settimeout("',
    "string.fromcharcode(",
    'window["eval"]',
)
_PS_DYNAMIC = ("iex", "invoke-expression", "[scriptblock]::create")
_DOWNLOADERS = (
    "downloadstring",
    "downloadfile",
    "net.webclient",
    "invoke-webrequest",
    "iwr ",
    "start-bitstransfer",
    "msxml2.xmlhttp",
    "winhttp.winhttprequest",
    "xmlhttp",
    "curl ",
    "wget ",
    "urldownloadtofile",
)
_LOLBINS = (
    "certutil",
    "bitsadmin",
    "mshta",
    "regsvr32",
    "rundll32",
    "wmic ",
    "cscript",
    "wscript.shell",
    "shell.application",
    "schtasks",
    "vssadmin",
    "bcdedit",
)
_IFRAME_RE = re.compile(r"<iframe\b[^>]{0,2048}>", re.I)
_HIDDEN_RE = re.compile(
    r"""(?i)(?:width\s*=\s*["']?[01]\b|height\s*=\s*["']?[01]\b|display\s*:\s*none|"""
    r"""visibility\s*:\s*hidden)"""
)
_FORM_RE = re.compile(r"<form\b([^>]{0,2048})>", re.I)
_FORM_END_RE = re.compile(r"</form\s*>", re.I)
_PASSWORD_RE = re.compile(r"type\s*=\s*[\"']?password", re.I)
_FORM_SPAN = 65536  # how far after <form> its inputs are looked for
_ACTION_RE = re.compile(r"""action\s*=\s*["']?(https?://[^"'\s>]+)""", re.I)
_SCRIPT_RE = re.compile(r"<script\b([^>]{0,2048})>", re.I)


def decode_text(raw: bytes) -> str:
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return raw.decode("utf-16", "replace")
    return raw.decode("utf-8", "replace")


class Script(Service):
    """Static analysis of scripts and HTML for obfuscation, downloaders and smuggled payloads.

    Parameters:
        ``max_file_size`` (int, 20971520): bytes of the file read.
        ``max_urls`` (int, 500): URLs tagged.
        ``min_base64`` (int, 200): shortest base64 run treated as an embedded blob.
        ``max_blobs`` (int, 50): base64 blobs decoded.
        ``max_children`` (int, 20): decoded payloads extracted as children.
        ``max_decoded_size`` (int, 20971520): largest decoded payload kept.
        ``preview_chars`` (int, 2000): characters of a decoded command shown.
        ``concat_density`` (float, 5.0): string concatenations per KiB counted as obfuscation.
        ``min_concat`` (int, 50): fewest concatenations counted as obfuscation.
        ``max_tags`` (int, 1000): HTML forms and hidden iframes examined and listed.
    """

    name = "Script"
    version = "1"
    stage = Stage.CORE
    category = "Static Analysis"
    accepts = r"code/.*"
    parameters = {
        "max_file_size": 20 * 1024 * 1024,
        "max_urls": 500,
        "min_base64": 200,
        "max_blobs": 50,
        "max_children": 20,
        "max_decoded_size": 20 * 1024 * 1024,
        "preview_chars": 2000,
        "concat_density": 5.0,
        "max_tags": 1000,
        "min_concat": 50,
    }
    heuristics = (
        Heuristic(
            "script.ps_encoded",
            "Encoded PowerShell command",
            "PowerShell started with -EncodedCommand.",
            500,
            ("T1059.001", "T1027"),
        ),
        Heuristic(
            "script.dynamic_code",
            "Dynamic code execution",
            "Code built at run time and then evaluated.",
            300,
            ("T1059", "T1027"),
        ),
        Heuristic("script.downloader", "Downloader", "Fetches content from the network.", 200, ("T1105",)),
        Heuristic(
            "script.lolbin",
            "System binary proxy",
            "Calls Windows tools often abused to run payloads.",
            200,
            ("T1218",),
        ),
        Heuristic(
            "script.base64_blob",
            "Long base64 blob",
            "A long base64 run hides data in the script.",
            100,
            ("T1027",),
        ),
        Heuristic("script.embedded_file", "Embedded file", "An encoded blob decodes to a file.", 500, ("T1027.009",)),
        Heuristic(
            "script.charcode",
            "Character-code obfuscation",
            "Text built from numeric character codes.",
            200,
            ("T1027",),
        ),
        Heuristic("script.concat", "String splitting", "Dense string concatenation hides keywords.", 100, ("T1027",)),
        Heuristic(
            "script.hidden_iframe",
            "Hidden iframe",
            "An invisible iframe loads another page.",
            300,
            ("T1189",),
        ),
        Heuristic(
            "script.credential_form",
            "Credential form to another host",
            "A password form posts to an absolute URL.",
            300,
            ("T1056.003", "T1566"),
        ),
        Heuristic(
            "script.html_smuggling",
            "HTML smuggling",
            "A page assembles a file in the browser.",
            500,
            ("T1027.006",),
        ),
    )

    def execute(self, request: FileRequest) -> Result:
        opts = self.options(request.params)
        result = Result()
        raw = request.read_capped(int(opts["max_file_size"]), result)
        text = decode_text(raw)
        lower = text.lower()
        state: dict[str, Any] = {}
        urls = find_urls(text.encode("utf-8", "replace"), int(opts["max_urls"]))
        result.data["urls"] = urls
        if urls:
            tag_urls(result.add_section("URLs", urls, "json"), urls)
        self._powershell(text, lower, opts, result, state)
        self._dynamic(lower, result)
        self._blobs(text, opts, result, state)
        self._obfuscation(text, lower, opts, result)
        if request.file_type == "code/html" or "<html" in lower[:4096] or "<iframe" in lower:
            self._html(text, lower, opts, result)
        return result

    def _powershell(self, text: str, lower: str, opts: dict[str, Any], result: Result, state: dict[str, Any]) -> None:
        commands: list[str] = []
        matches = _PS_ENC_RE.finditer(text) if ("powershell" in lower or "pwsh" in lower) else ()
        for match in matches:
            decoded = _b64(match.group(1), int(opts["max_decoded_size"]))
            if decoded is None:
                continue
            state.setdefault("seen_blobs", set()).add(match.group(1))
            command = decoded.decode("utf-16-le", "replace") if decoded[1:2] == b"\x00" else decoded.decode("latin-1")
            commands.append(command[: int(opts["preview_chars"])])
            result.add_extracted_capped(
                int(opts["max_children"]),
                f"encoded_command_{len(commands)}.ps1",
                command.encode("utf-8"),
                "Decoded -EncodedCommand",
            )
            nested = find_urls(command.encode("utf-8", "replace"), int(opts["max_urls"]))
            if nested:
                tag_urls(result.add_section("URLs in decoded command", nested, "json"), nested)
        if commands:
            result.add_section("Encoded PowerShell", commands, "json").heuristic = "script.ps_encoded"
            result.data["powershell_commands"] = commands
        self._keywords(lower + "\n" + "\n".join(commands).lower(), result)

    @staticmethod
    def _keywords(lower: str, result: Result) -> None:
        downloads = [k.strip() for k in _DOWNLOADERS if k in lower]
        if downloads:
            result.add_section("Download functions", downloads, "json").heuristic = "script.downloader"
        lolbins = [k.strip() for k in _LOLBINS if k in lower]
        if lolbins:
            result.add_section("System binaries called", lolbins, "json").heuristic = "script.lolbin"
        iex = [k for k in _PS_DYNAMIC if re.search(rf"(?<![\w-]){re.escape(k)}(?![\w-])", lower)]
        if iex:
            result.add_section("PowerShell dynamic code", iex, "json").heuristic = "script.dynamic_code"

    @staticmethod
    def _dynamic(lower: str, result: Result) -> None:
        compact = re.sub(r"\s+", "", lower).replace("newfunction(", "new function(")
        found = [k for k in _JS_DYNAMIC if k.replace(" ", "") in compact or k in compact]
        # eval alone is common; eval fed by a decoder is what hides code
        if "eval(" in found and len(found) >= 2:
            result.add_section("JavaScript dynamic code", found, "json").heuristic = "script.dynamic_code"
        elif found:
            result.add_section("JavaScript dynamic code functions", found, "json")

    def _blobs(self, text: str, opts: dict[str, Any], result: Result, state: dict[str, Any]) -> None:
        pattern = re.compile(_B64_RE.pattern % int(opts["min_base64"]))
        blobs: list[dict[str, Any]] = []
        matches = [m.group(1) for m in _DATA_URI_RE.finditer(text)]
        matches += [m.group() for m in pattern.finditer(text)]
        seen = state.get("seen_blobs", set())
        for blob in [m for m in matches if m not in seen][: int(opts["max_blobs"])]:
            decoded = _b64(re.sub(r"\s+", "", blob), int(opts["max_decoded_size"]))
            if decoded is None:
                continue
            kind = file_kind(decoded)
            blobs.append({"length": len(blob), "decoded_size": len(decoded), "file_type": kind})
            if kind:
                result.add_extracted_capped(
                    int(opts["max_children"]), f"decoded_{len(blobs)}.{kind}", decoded, f"base64 payload ({kind})"
                )
        if not blobs:
            return
        result.data["base64_blobs"] = blobs
        section = result.add_section("Base64 blobs", blobs, "table")
        section.heuristic = "script.base64_blob"
        if any(b["file_type"] for b in blobs):
            section.add_subsection("Blob decodes to a file").heuristic = "script.embedded_file"

    def _obfuscation(self, text: str, lower: str, opts: dict[str, Any], result: Result) -> None:
        charcodes = len(_CHARCODE_RE.findall(text))
        if charcodes:
            result.add_section("Character-code construction", f"{charcodes} occurrences").heuristic = "script.charcode"
        concat = len(_CONCAT_RE.findall(text))
        density = concat / max(len(text) / 1024, 1)
        result.data["concatenation"] = {"count": concat, "per_kib": round(density, 2)}
        if concat >= int(opts["min_concat"]) and density >= float(opts["concat_density"]):
            result.add_section("String splitting", result.data["concatenation"], "kv").heuristic = "script.concat"

    @staticmethod
    def _html(text: str, lower: str, opts: dict[str, Any], result: Result) -> None:
        limit = int(opts["max_tags"])
        scripts = _SCRIPT_RE.findall(text)
        iframes = _IFRAME_RE.findall(text)
        hidden = [f for f in iframes if _HIDDEN_RE.search(f)][:limit]
        forms = []
        for match in itertools.islice(_FORM_RE.finditer(text), limit):
            stop = min(match.end() + _FORM_SPAN, len(text))
            closing = _FORM_END_RE.search(text, match.end(), stop)
            action = _ACTION_RE.search(match.group(1))
            password = _PASSWORD_RE.search(text, match.end(), closing.start() if closing else stop)
            forms.append({"action": action.group(1) if action else None, "password": bool(password)})
        summary = {
            "scripts": len(scripts),
            "external_scripts": sum("src" in s.lower() for s in scripts),
            "iframes": len(iframes),
            "hidden_iframes": len(hidden),
            "forms": forms,
        }
        result.data["html"] = summary
        section = result.add_section("HTML", summary, "json")
        if hidden:
            section.add_subsection("Hidden iframes", hidden, "json").heuristic = "script.hidden_iframe"
        posting = [f["action"] for f in forms if f["action"] and f["password"]]
        if posting:
            sub = section.add_subsection("Password form posting to an absolute URL", posting, "json")
            sub.heuristic = "script.credential_form"
            tag_urls(sub, posting)
        if (
            ("new blob(" in lower or "msSaveOrOpenBlob".lower() in lower)
            and ("createobjecturl" in lower or "mssaveoropenblob" in lower)
            and (".download" in lower or "download=" in lower)
        ):
            section.add_subsection("Blob assembled and offered as a download").heuristic = "script.html_smuggling"


def _b64(blob: str, limit: int) -> bytes | None:
    """Decode base64, or None when it is not base64 or would exceed ``limit`` bytes."""
    if len(blob) * 3 // 4 > limit:
        return None
    padded = blob + "=" * (-len(blob) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None
