"""MQTT 3.1/3.1.1/5 control packets from a reassembled TCP byte stream."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from assay.iot.capture.protocols.coap import payload_text

TYPES = {
    1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL", 7: "PUBCOMP",
    8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK", 12: "PINGREQ", 13: "PINGRESP",
    14: "DISCONNECT", 15: "AUTH",
}


def looks_like_connect(payload: bytes) -> bool:
    head = payload[2:10]
    return len(payload) > 8 and payload[0] == 0x10 and (b"MQTT" in head or b"MQIsdp" in head)


def _string(data: bytes, off: int) -> tuple[str, int]:
    length = struct.unpack_from(">H", data, off)[0]
    if off + 2 + length > len(data):
        raise ValueError("string past the end")
    return bytes(data[off + 2 : off + 2 + length]).decode("utf-8", "replace"), off + 2 + length


def _varint(data: bytes, off: int) -> tuple[int, int]:
    value, shift = 0, 0
    for _ in range(4):
        byte = data[off]
        value |= (byte & 0x7F) << shift
        off += 1
        if not byte & 0x80:
            return value, off
        shift += 7
    raise ValueError("bad variable length")


def _connect(body: bytes) -> dict[str, Any]:
    protocol, off = _string(body, 0)
    level, flags = body[off], body[off + 1]
    off += 4
    if level == 5:
        props, off = _varint(body, off)
        off += props
    client_id, off = _string(body, off)
    out: dict[str, Any] = {"protocol": protocol, "level": level, "client_id": client_id}
    if flags & 0x04:
        if level == 5:
            props, off = _varint(body, off)
            off += props
        out["will_topic"], off = _string(body, off)
        off += 2 + struct.unpack_from(">H", body, off)[0]
    if flags & 0x80:
        out["username"], off = _string(body, off)
    out["password_present"] = bool(flags & 0x40)
    return out


def _publish(flags: int, body: bytes, level: int) -> dict[str, Any]:
    qos = (flags >> 1) & 3
    topic, off = _string(body, 0)
    out: dict[str, Any] = {"topic": topic, "qos": qos, "retain": bool(flags & 1)}
    if qos:
        out["packet_id"] = struct.unpack_from(">H", body, off)[0]
        off += 2
    if level == 5:
        props, off = _varint(body, off)
        off += props
    payload = body[off:]
    out["payload"] = payload_text(payload) if payload else ""
    out["payload_size"] = len(payload)
    return out


def _subscribe(body: bytes, level: int) -> dict[str, Any]:
    out: dict[str, Any] = {"packet_id": struct.unpack_from(">H", body)[0], "topics": []}
    off = 2
    if level == 5:
        props, off = _varint(body, off)
        off += props
    while off + 2 < len(body):
        topic, off = _string(body, off)
        out["topics"].append({"topic": topic, "qos": body[off] & 3 if off < len(body) else 0})
        off += 1
    return out


def iter_mqtt(stream: bytes, max_messages: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """(stream offset, message) for each control packet until the data stops making sense."""
    off, level, count = 0, 4, 0
    while off + 2 <= len(stream) and count < max_messages:
        kind, flags = stream[off] >> 4, stream[off] & 0x0F
        if kind == 0:
            return
        try:
            length, body_off = _varint(stream, off + 1)
        except (ValueError, IndexError):
            return
        body = stream[body_off : body_off + length]
        message: dict[str, Any] = {"type": TYPES[kind]}
        try:
            if kind == 1:
                message.update(_connect(body))
                level = message["level"]
            elif kind == 3:
                message.update(_publish(flags, body, level))
            elif kind in (8, 10):
                message.update(_subscribe(body, level))
        except (ValueError, IndexError, struct.error):
            message["truncated"] = True
        yield off, message
        count += 1
        if body_off + length > len(stream):
            return
        off = body_off + length
