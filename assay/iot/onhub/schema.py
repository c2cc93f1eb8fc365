"""The OnHub diagnostic report as a protobuf schema, built in Python at import time.

Google never published the ``.proto``; the field numbers below were checked against the
raw wire format of a real report (DFRWS 2017). Every text field is declared ``bytes`` so
that hostile, non-UTF-8 content decodes instead of failing, and the file is proto2 so
unknown fields and mismatched wire types land in the unknown-field set rather than
aborting the parse. A truncated report is decoded up to its last complete top-level field.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "assay.onhub"

# (message name, [(field name, number, type, repeated, message type name)])
_MESSAGES: tuple[tuple[str, tuple[tuple[str, int, int, bool, str], ...]], ...] = (
    (
        "FileEntry",
        (
            ("path", 1, _F.TYPE_BYTES, False, ""),
            ("content", 2, _F.TYPE_BYTES, False, ""),
            ("content_type", 3, _F.TYPE_BYTES, False, ""),
        ),
    ),
    (
        "FileLength",
        (
            ("path", 1, _F.TYPE_BYTES, False, ""),
            ("length", 2, _F.TYPE_INT64, False, ""),
        ),
    ),
    (
        "CommandOutput",
        (
            ("command", 1, _F.TYPE_BYTES, False, ""),
            ("output", 2, _F.TYPE_BYTES, False, ""),
            ("status", 3, _F.TYPE_INT64, False, ""),
        ),
    ),
    (
        "StationMac",
        (
            ("station_id", 1, _F.TYPE_BYTES, False, ""),
            ("mac_address", 2, _F.TYPE_BYTES, False, ""),
        ),
    ),
    (
        "DiagnosticReport",
        (
            ("version", 1, _F.TYPE_BYTES, False, ""),
            ("files", 2, _F.TYPE_MESSAGE, True, "FileEntry"),
            ("storm_version", 3, _F.TYPE_BYTES, False, ""),
            ("whirlwind_version", 4, _F.TYPE_BYTES, False, ""),
            ("network_config", 5, _F.TYPE_BYTES, False, ""),
            ("file_lengths", 7, _F.TYPE_MESSAGE, True, "FileLength"),
            ("wan_info", 8, _F.TYPE_BYTES, False, ""),
            ("command_outputs", 9, _F.TYPE_MESSAGE, True, "CommandOutput"),
            ("info_json", 10, _F.TYPE_BYTES, False, ""),
            ("unknown_int_11", 11, _F.TYPE_INT64, False, ""),
            ("station_macs", 12, _F.TYPE_MESSAGE, True, "StationMac"),
            ("report_time", 13, _F.TYPE_INT64, False, ""),
        ),
    ),
)


def _build_report_class() -> type[Message]:
    proto = descriptor_pb2.FileDescriptorProto(
        name="assay_onhub_report.proto", package=_PACKAGE, syntax="proto2"
    )
    for message_name, fields in _MESSAGES:
        message = proto.message_type.add(name=message_name)
        for name, number, kind, repeated, type_name in fields:
            entry = message.field.add(name=name, number=number, type=kind)
            entry.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
            if type_name:
                entry.type_name = f".{_PACKAGE}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.DiagnosticReport"))


DiagnosticReport = _build_report_class()


@dataclass
class Decoded:
    """A decoded report (possibly from a valid prefix only) and what went wrong on the way."""

    report: Message
    complete: bool = True
    anomalies: list[str] = field(default_factory=list)
    consumed: int = 0


def _varint(data: bytes, pos: int) -> tuple[int, int] | None:
    value = shift = 0
    while pos < len(data) and shift < 70:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
    return None


def _field_end(data: bytes, pos: int) -> int:
    """End offset of the complete top-level field starting at ``pos``, or -1."""
    key = _varint(data, pos)
    if key is None or key[0] >> 3 == 0:
        return -1
    wire, end = key[0] & 7, key[1]
    if wire == 0:
        step = _varint(data, end)
        end = step[1] if step else -1
    elif wire in (1, 5):
        end += 8 if wire == 1 else 4
    elif wire == 2:
        size = _varint(data, end)
        end = size[1] + size[0] if size else -1
    else:  # groups are never top-level fields of this report
        return -1
    return end if end <= len(data) else -1


def field_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every complete top-level field before the first damaged one."""
    spans: list[tuple[int, int]] = []
    pos = 0
    while pos < len(data):
        end = _field_end(data, pos)
        if end < 0:
            break
        spans.append((pos, end))
        pos = end
    return spans


def decode(data: bytes) -> Decoded:
    """Parse ``data``; on failure keep every top-level field that decodes on its own."""
    report = DiagnosticReport()
    try:
        report.ParseFromString(data)
        return Decoded(report, True, [], len(data))
    except (DecodeError, RecursionError, ValueError):
        report = DiagnosticReport()
    anomalies = ["report_truncated_or_corrupt"]
    spans = field_spans(data)
    consumed = spans[-1][1] if spans else 0
    skipped = 0
    for start, end in spans:
        try:
            report.MergeFromString(data[start:end])
        except (DecodeError, RecursionError, ValueError):
            skipped += 1
    if skipped:
        anomalies.append(f"undecodable_fields:{skipped}")
    return Decoded(report, False, anomalies, consumed)


def text(value: bytes, limit: int | None = None) -> str:
    """Bytes from the report as text, never failing on bad encodings."""
    chunk = value if limit is None else value[:limit]
    return chunk.decode("utf-8", "replace")
