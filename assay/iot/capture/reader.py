"""Record walking for pcap and pcapng, without decoding anything above the record.

Both formats are walked with precompiled :mod:`struct` formats over one memory map, so a
capture of millions of packets costs one slice per record. A truncated or corrupt file ends
the walk with a note in :attr:`CaptureReader.errors`; it never raises.

A caller that walks pcap records in place (see :mod:`assay.iot.capture.analyser`) uses the
same pieces: :meth:`CaptureReader.mapped`, :meth:`~CaptureReader.pcap_layout`, then
:meth:`~CaptureReader.pcap_corrupt` or :meth:`~CaptureReader.pcap_done`, so what the reader
notes about the file is the same either way.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

PCAP_MAGICS: dict[bytes, tuple[str, float]] = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_BLOCK_IDB, _BLOCK_OPB, _BLOCK_SPB, _BLOCK_EPB, _BLOCK_SHB = 1, 2, 3, 6, 0x0A0D0D0A
_OPT_COMMENT, _OPT_TSRESOL, _OPT_TSOFFSET = 1, 9, 14
MAX_COMMENTS = 100
MAX_RECORD = 0x4000000  # a pcap record claiming more than 64 MiB is taken as corruption

# (timestamp seconds, link type, frame bytes, original length)
Record = tuple[float, int, bytes, int]
_PCAPNG_HEAD = {order: struct.Struct(order + "II").unpack_from for order in "<>"}
_PCAPNG_EPB = {order: struct.Struct(order + "IIIII").unpack_from for order in "<>"}


class PcapLayout(NamedTuple):
    """What a pcap global header says, plus where the walk must stop."""

    order: str  # struct byte order of the record headers
    scale: float  # seconds per unit of the fractional timestamp
    linktype: int
    size: int  # file size
    end: int  # a record header must end by this offset (``max_bytes``) to be read


def sniff_format(head: bytes) -> str | None:
    """``"pcap"``, ``"pcapng"`` or ``None`` from the first four bytes."""
    if head[:4] in PCAP_MAGICS:
        return "pcap"
    if head[:4] == PCAPNG_SHB:
        return "pcapng"
    return None


class CaptureReader:
    """Iterates the records of one capture; fills ``errors``, ``comments`` and ``interfaces``.

    Usage::

        reader = CaptureReader(Path("dump.pcap"), max_bytes=1 << 30)
        for ts, linktype, frame, orig_len in reader:
            ...
    """

    def __init__(self, path: Path, max_bytes: int = 0) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.format: str | None = None
        self.errors: list[str] = []
        self.comments: list[str] = []
        self.interfaces: list[dict[str, Any]] = []
        self.bytes_read = 0
        self.byte_limit_hit = False

    @contextmanager
    def mapped(self) -> Iterator[mmap.mmap | None]:
        """The whole file mapped read-only, or ``None`` (with an error noted) if it is no capture.

        Only opening and mapping are guarded: an exception raised by the caller's own work
        while the map is open is the caller's to handle.
        """
        buf = self._map()
        try:
            yield buf
        finally:
            if buf is not None:
                buf.close()

    def _map(self) -> mmap.mmap | None:
        try:
            with self.path.open("rb") as handle:
                if self.path.stat().st_size == 0:
                    self.errors.append("empty file")
                    return None
                buf = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            self.errors.append(f"cannot read capture: {exc}")
            return None
        self.format = sniff_format(buf[:4])
        if self.format is None:
            self.errors.append("not a pcap or pcapng file")
            buf.close()
            return None
        return buf

    def __iter__(self) -> Iterator[Record]:
        with self.mapped() as buf:
            if buf is not None:
                yield from self.records(buf)

    def records(self, buf: mmap.mmap, layout: PcapLayout | None = None) -> Iterator[Record]:
        """Every record of a mapped capture; a pcap header already read may be passed as ``layout``."""
        try:
            if self.format == "pcapng":
                yield from self._pcapng(buf)
                return
            layout = layout or self.pcap_layout(buf)
            if layout is not None:
                yield from self._pcap(buf, layout)
        except (OSError, ValueError) as exc:
            self.errors.append(f"cannot read capture: {exc}")

    def _limit(self, end: int) -> int:
        if self.max_bytes and end > self.max_bytes:
            return self.max_bytes
        return end

    def pcap_layout(self, buf: mmap.mmap) -> PcapLayout | None:
        """The global header of a pcap file, or ``None`` (noted) when it is cut short."""
        if len(buf) < 24:
            self.errors.append("truncated pcap header")
            return None
        order, scale = PCAP_MAGICS[buf[:4]]
        snaplen, network = struct.unpack_from(order + "II", buf, 16)
        linktype = network & 0x03FFFFFF
        self.interfaces.append({"linktype": linktype, "snaplen": snaplen, "resolution": scale})
        return PcapLayout(order, scale, linktype, len(buf), self._limit(len(buf)))

    def pcap_corrupt(self, off: int) -> None:
        """The record header at ``off`` claims more bytes than the file (or sanity) allows."""
        self.errors.append(f"truncated or corrupt record at offset {off}")
        self.bytes_read = off

    def pcap_done(self, layout: PcapLayout, off: int) -> None:
        """The walk ran out of records at ``off``: note how far it got and why it stopped."""
        self.bytes_read = off
        if off < layout.size:
            if layout.end < layout.size:
                self.byte_limit_hit = True
            else:
                self.errors.append(f"{layout.size - off} trailing bytes after the last record")

    def _pcap(self, buf: mmap.mmap, layout: PcapLayout) -> Iterator[Record]:
        header = struct.Struct(layout.order + "IIII").unpack_from
        scale, linktype, size, end = layout.scale, layout.linktype, layout.size, layout.end
        off = 24
        while off + 16 <= end:
            sec, frac, incl, orig = header(buf, off)
            start = off + 16
            off = start + incl
            if off > size or incl > MAX_RECORD:
                self.pcap_corrupt(start - 16)
                return
            yield sec + frac * scale, linktype, buf[start:off], orig
        self.pcap_done(layout, off)

    def _pcapng(self, buf: mmap.mmap) -> Iterator[Record]:
        size = len(buf)
        end = self._limit(size)
        off = 0
        order = "<"
        ifaces: list[tuple[int, float, float]] = []
        while off + 12 <= end:
            btype = _PCAPNG_HEAD[order](buf, off)[0]
            if btype == _BLOCK_SHB:  # its type reads the same in either byte order
                magic = buf[off + 8 : off + 12]
                if magic == b"\x4d\x3c\x2b\x1a":
                    order = "<"
                elif magic == b"\x1a\x2b\x3c\x4d":
                    order = ">"
                else:
                    self.errors.append(f"bad byte-order magic at offset {off}")
                    return
                ifaces = []
            blen = _PCAPNG_HEAD[order](buf, off)[1]
            if blen < 12 or blen % 4 or off + blen > size:
                self.errors.append(f"truncated or corrupt block at offset {off}")
                break
            record = self._plain_epb(buf, off, blen, order, ifaces) if btype == _BLOCK_EPB else None
            if record is None:
                record = self._block(btype, buf[off + 8 : off + blen - 4], order, ifaces)
            if record is not None:
                yield record
            off += blen
        self.bytes_read = off
        if off < size and end < size:
            self.byte_limit_hit = True
        elif 0 < size - off < 12:
            self.errors.append(f"{size - off} trailing bytes after the last block")

    @staticmethod
    def _plain_epb(buf: mmap.mmap, off: int, blen: int, order: str,
                   ifaces: list[tuple[int, float, float]]) -> Record | None:
        """The record of an enhanced packet block with no options and nothing odd, read in place.

        Anything else (``None``) goes through :meth:`_block`, which copes with every case.
        """
        if blen < 32:
            return None
        iface, hi, lo, caplen, orig = _PCAPNG_EPB[order](buf, off + 8)
        # body = blen - 12 bytes: 20 of fields, the padded frame, then options only if 4 more fit
        if iface >= len(ifaces) or 20 + caplen > blen - 12 or 20 + ((caplen + 3) & ~3) + 4 <= blen - 12:
            return None
        linktype, scale, offset = ifaces[iface]
        return offset + ((hi << 32) | lo) * scale, linktype, buf[off + 28 : off + 28 + caplen], orig

    def _block(
        self, btype: int, body: bytes, order: str, ifaces: list[tuple[int, float, float]]
    ) -> Record | None:
        if btype == _BLOCK_EPB and len(body) >= 20:
            iface, hi, lo, caplen, orig = struct.unpack_from(order + "IIIII", body)
            return self._packet(body, 20, iface, hi, lo, caplen, orig, order, ifaces)
        if btype == _BLOCK_SPB and len(body) >= 4 and ifaces:
            (orig,) = struct.unpack_from(order + "I", body)
            caplen = min(orig, len(body) - 4)
            return 0.0, ifaces[0][0], body[4 : 4 + caplen], orig
        if btype == _BLOCK_OPB and len(body) >= 20:
            iface, _drops, hi, lo, caplen, orig = struct.unpack_from(order + "HHIIII", body)
            return self._packet(body, 20, iface, hi, lo, caplen, orig, order, ifaces)
        if btype == _BLOCK_IDB and len(body) >= 8:
            ifaces.append(self._interface(body, order))
        elif btype == _BLOCK_SHB:
            self._options(body, 16, order)
        return None

    def _packet(
        self, body: bytes, start: int, iface: int, hi: int, lo: int, caplen: int, orig: int,
        order: str, ifaces: list[tuple[int, float, float]],
    ) -> Record | None:
        if iface >= len(ifaces):
            if len(self.errors) < MAX_COMMENTS:
                self.errors.append(f"packet for undeclared interface {iface}")
            return None
        if start + caplen > len(body):
            if len(self.errors) < MAX_COMMENTS:
                self.errors.append("packet block shorter than its captured length")
            caplen = max(0, len(body) - start)
        linktype, scale, offset = ifaces[iface]
        self._options(body, start + ((caplen + 3) & ~3), order)
        return offset + ((hi << 32) | lo) * scale, linktype, body[start : start + caplen], orig

    def _interface(self, body: bytes, order: str) -> tuple[int, float, float]:
        linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", body)
        opts = self._options(body, 8, order)
        scale = 1e-6
        if opts.get(_OPT_TSRESOL):
            value = opts[_OPT_TSRESOL][0]
            scale = 2.0 ** -(value & 0x7F) if value & 0x80 else 10.0 ** -value
        offset = 0.0
        if len(opts.get(_OPT_TSOFFSET, b"")) == 8:
            offset = float(struct.unpack(order + "q", opts[_OPT_TSOFFSET])[0])
        self.interfaces.append({"linktype": linktype, "snaplen": snaplen, "resolution": scale})
        return linktype, scale, offset

    def _options(self, body: bytes, off: int, order: str) -> dict[int, bytes]:
        """Option TLVs from ``off``; comments are collected, the rest returned by code."""
        found: dict[int, bytes] = {}
        while off + 4 <= len(body):
            code, length = struct.unpack_from(order + "HH", body, off)
            if code == 0:
                break
            value = body[off + 4 : off + 4 + length]
            if code == _OPT_COMMENT and len(self.comments) < MAX_COMMENTS:
                self.comments.append(bytes(value).decode("utf-8", "replace"))
            found[code] = bytes(value)
            off += 4 + ((length + 3) & ~3)
        return found
