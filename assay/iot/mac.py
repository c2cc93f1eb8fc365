"""MAC addresses: one normal form for every spelling, and the vendor behind the OUI."""

from __future__ import annotations

import re
from functools import lru_cache

import netaddr

_HEX = re.compile(r"[0-9a-fA-F]")


def normalise_mac(raw: str | bytes) -> str | None:
    """``AA-BB-CC-DD-EE-FF``, ``aabb.ccdd.eeff``, ``aabbccddeeff`` or space-padded -> ``aa:bb:cc:dd:ee:ff``.

    Six raw bytes are accepted too. Anything that is not 12 hex digits gives ``None``.
    """
    if isinstance(raw, bytes):
        if len(raw) == 6:
            return ":".join(f"{b:02x}" for b in raw)
        raw = raw.decode("ascii", "replace")
    digits = "".join(_HEX.findall(raw))
    stripped = re.sub(r"[\s:.\-]", "", raw)
    if len(digits) != 12 or len(stripped) != 12:
        return None
    digits = digits.lower()
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


@lru_cache(maxsize=4096)
def vendor_of(mac: str) -> str | None:
    """The IEEE registrant of the MAC's OUI from netaddr's bundled registry (offline), or ``None``."""
    normal = normalise_mac(mac)
    if normal is None or int(normal[1], 16) & 0x2:  # locally administered: no registrant
        return None
    try:
        return str(netaddr.EUI(normal).oui.registration().org)
    except (netaddr.NotRegisteredError, netaddr.AddrFormatError, IndexError):
        return None
