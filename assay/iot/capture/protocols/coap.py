"""CoAP (RFC 7252) messages, with LwM2M/IPSO object names for paths such as ``/3/0/1``."""

from __future__ import annotations

from typing import Any

TYPES = ("CON", "NON", "ACK", "RST")
METHODS = {1: "GET", 2: "POST", 3: "PUT", 4: "DELETE", 5: "FETCH", 6: "PATCH", 7: "iPATCH"}
FORMATS = {
    0: "text/plain", 40: "application/link-format", 41: "application/xml", 42: "application/octet-stream",
    50: "application/json", 60: "application/cbor", 11542: "application/vnd.oma.lwm2m+tlv",
    11543: "application/vnd.oma.lwm2m+json", 11544: "application/vnd.oma.lwm2m+cbor",
}
# OMA LwM2M core objects and common IPSO smart objects, by object id.
LWM2M_OBJECTS = {
    0: "Security", 1: "Server", 2: "Access Control", 3: "Device", 4: "Connectivity Monitoring",
    5: "Firmware Update", 6: "Location", 7: "Connectivity Statistics", 3200: "Digital Input",
    3201: "Digital Output", 3202: "Analog Input", 3203: "Analog Output", 3300: "Generic Sensor",
    3301: "Illuminance", 3302: "Presence", 3303: "Temperature", 3304: "Humidity", 3305: "Power Measurement",
    3306: "Actuation", 3308: "Set Point", 3310: "Load Control", 3311: "Light Control",
    3312: "Power Control", 3313: "Accelerometer", 3315: "Barometer", 3336: "Location",
    3340: "Timer", 3341: "Addressable Text Display", 3342: "On/Off Switch", 3347: "Push Button",
}
_PATH, _QUERY, _OBSERVE, _FORMAT, _HOST, _LOCATION = 11, 15, 6, 12, 3, 8
MAX_PAYLOAD_TEXT = 512


def code_text(code: int) -> str:
    if code == 0:
        return "EMPTY"
    if code < 32:
        return METHODS.get(code, f"0.{code:02d}")
    return f"{code >> 5}.{code & 0x1F:02d}"


def _ext(value: int, data: bytes, off: int) -> tuple[int, int]:
    if value == 13:
        return data[off] + 13, off + 1
    if value == 14:
        return ((data[off] << 8) | data[off + 1]) + 269, off + 2
    if value == 15:
        raise ValueError("reserved option nibble")
    return value, off


def _options(data: bytes, off: int) -> tuple[list[tuple[int, bytes]], int]:
    options: list[tuple[int, bytes]] = []
    number = 0
    while off < len(data) and data[off] != 0xFF:
        head = data[off]
        delta, off = _ext(head >> 4, data, off + 1)
        length, off = _ext(head & 0x0F, data, off)
        number += delta
        if off + length > len(data):
            raise ValueError("option past the end")
        options.append((number, data[off : off + length]))
        off += length
    return options, off + 1 if off < len(data) else off


def lwm2m_object(path: list[str]) -> str | None:
    if path and path[0].isdigit():
        return LWM2M_OBJECTS.get(int(path[0]))
    return None


def payload_text(payload: bytes) -> str:
    text = bytes(payload[:MAX_PAYLOAD_TEXT])
    try:
        decoded = text.decode("utf-8")
        if decoded.isprintable() or all(c.isprintable() or c in "\r\n\t" for c in decoded):
            return decoded
    except UnicodeDecodeError:
        pass
    return text.hex()


def parse_coap(data: bytes) -> dict[str, Any] | None:
    if len(data) < 4 or data[0] >> 6 != 1:
        return None
    tkl = data[0] & 0x0F
    if tkl > 8 or len(data) < 4 + tkl:
        return None
    try:
        options, off = _options(data, 4 + tkl)
    except (ValueError, IndexError):
        return None
    path = [bytes(v).decode("utf-8", "replace") for n, v in options if n == _PATH]
    query = [bytes(v).decode("utf-8", "replace") for n, v in options if n == _QUERY]
    observe = [int.from_bytes(v, "big") for n, v in options if n == _OBSERVE]
    fmt = [int.from_bytes(v, "big") for n, v in options if n == _FORMAT]
    location = [bytes(v).decode("utf-8", "replace") for n, v in options if n == _LOCATION]
    payload = data[off:]
    return {
        "type": TYPES[(data[0] >> 4) & 3],
        "code": code_text(data[1]),
        "message_id": (data[2] << 8) | data[3],
        "token": bytes(data[4 : 4 + tkl]).hex(),
        "uri_path": "/" + "/".join(path) if path else "",
        "uri_query": "&".join(query),
        "observe": observe[0] if observe else None,
        "content_format": FORMATS.get(fmt[0], str(fmt[0])) if fmt else None,
        "location_path": "/" + "/".join(location) if location else "",
        "lwm2m_object": lwm2m_object(path),
        "payload": payload_text(payload) if payload else "",
        "payload_size": len(payload),
    }
