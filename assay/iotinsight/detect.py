"""Which IoTInsight type a file is, judged by its bytes and never by its name.

IoTInsight itself trusted extensions (``.pcap`` -> packet); a capture renamed ``.txt`` or a
note renamed ``.pcap`` fooled it. Here a packet capture is known by its magic number and an
OnHub diagnostic report by parsing as one; everything else is ``other`` and still analysed by
the generic services.
"""

from __future__ import annotations

import os
from typing import BinaryIO, Literal

FileType = Literal["packet", "onhub", "other"]

# pcap in both byte orders, micro- and nanosecond variants; pcapng's section header block.
PCAP_MAGICS = (b"\xa1\xb2\xc3\xd4", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\x3c\x4d", b"\x4d\x3c\xb2\xa1")
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
# An OnHub report must be parsed whole to be recognised; larger ones are left to "other".
DEFAULT_MAX_ONHUB_BYTES = 64 * 1024 * 1024


def detect_bytes(head: bytes, whole: bytes | None = None) -> FileType:
    """The type from the first bytes, and for an OnHub candidate the whole content when given."""
    if head[:4] in PCAP_MAGICS or head[:4] == PCAPNG_MAGIC:
        return "packet"
    if head[:1] == b"\x0a" and whole is not None:
        from assay.iot.onhub import looks_like_onhub

        try:
            if looks_like_onhub(whole):
                return "onhub"
        except Exception:  # a hostile near-protobuf is simply not a report
            return "other"
    return "other"


def detect_stream(handle: BinaryIO, size: int, max_onhub_bytes: int = DEFAULT_MAX_ONHUB_BYTES) -> FileType:
    """Read what :func:`detect_bytes` needs from an open binary file, then rewind it."""
    head = handle.read(16)
    whole = None
    if head[:1] == b"\x0a" and head[:4] != PCAPNG_MAGIC and size <= max_onhub_bytes:
        whole = head + handle.read(max_onhub_bytes)
    handle.seek(0, os.SEEK_SET)
    return detect_bytes(head, whole)
