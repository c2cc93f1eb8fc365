"""DHCP (BOOTP) messages: who asked, and the options that fingerprint a device."""

from __future__ import annotations

from typing import Any

MESSAGE_TYPES = {
    1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK", 7: "RELEASE", 8: "INFORM",
}
_COOKIE = b"\x63\x82\x53\x63"


def _text(raw: bytes) -> str:
    return bytes(raw).rstrip(b"\x00").decode("utf-8", "replace")


def parse_dhcp(data: bytes) -> dict[str, Any] | None:
    if len(data) < 240 or data[236:240] != _COOKIE or data[2] != 6:
        return None
    options: dict[int, bytes] = {}
    off = 240
    while off < len(data):
        code = data[off]
        if code == 255:
            break
        if code == 0:
            off += 1
            continue
        if off + 1 >= len(data):
            break
        length = data[off + 1]
        options.setdefault(code, bytes(data[off + 2 : off + 2 + length]))
        off += 2 + length
    out: dict[str, Any] = {
        "op": "request" if data[0] == 1 else "reply",
        "xid": f"0x{int.from_bytes(data[4:8], 'big'):08x}",
        "client_mac": bytes(data[28:34]).hex(":"),
        "client_ip": ".".join(str(b) for b in data[12:16]),
        "your_ip": ".".join(str(b) for b in data[16:20]),
        "message_type": MESSAGE_TYPES.get(options[53][0], "unknown") if options.get(53) else None,
    }
    if 12 in options:
        out["hostname"] = _text(options[12])
    if 81 in options and len(options[81]) > 3:
        out["fqdn"] = _text(options[81][3:])
    if 60 in options:
        out["vendor_class_id"] = _text(options[60])
    if 55 in options:
        out["parameter_request_list"] = ",".join(str(b) for b in options[55])
    if 50 in options and len(options[50]) == 4:
        out["requested_ip"] = ".".join(str(b) for b in options[50])
    if 61 in options:
        out["client_id"] = options[61].hex()
    return out
