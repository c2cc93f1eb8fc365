"""TCP reassembly for one direction of a connection, bounded in bytes.

Segments are kept as they arrive and put in sequence order at the end: retransmissions and
overlaps are trimmed, and the bytes after the first gap are dropped (recorded as ``gap``).
The arrival time of each kept segment is remembered so a message can be dated by the byte
offset where it starts.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field


@dataclass
class Direction:
    """One side of a TCP connection whose payload the analyser keeps."""

    kind: str
    src: str
    sport: int
    dst: str
    dport: int
    limit: int
    stream: int = -1
    segments: list[tuple[int, float, bytes]] = field(default_factory=list)
    size: int = 0
    clipped: bool = False
    gap: bool = False

    def add(self, seq: int, ts: float, payload: bytes) -> int:
        """Keep the segment if room is left; returns the bytes kept."""
        if self.size >= self.limit:
            self.clipped = True
            return 0
        kept = payload[: self.limit - self.size]
        self.segments.append((seq, ts, bytes(kept)))
        self.size += len(kept)
        return len(kept)

    def assemble(self) -> tuple[bytes, list[int], list[float]]:
        """The contiguous stream, the offsets where kept segments start, and their times."""
        out = bytearray()
        offsets: list[int] = []
        times: list[float] = []
        if not self.segments:
            return b"", offsets, times
        # Sequence numbers relative to the earliest one, allowing for wrap-around and segments
        # seen out of order: shifted by half the space, the earliest is the smallest.
        seqs, stamps, payloads = zip(*self.segments, strict=True)
        first = seqs[0] - (1 << 31)
        shifted = [(seq - first) & 0xFFFFFFFF for seq in seqs]
        base = end = min(shifted)  # ``end``: where the next byte wanted sits, in the same units
        for at, ts, data in sorted(zip(shifted, stamps, payloads, strict=True)):
            if at > end:
                self.gap = True
                break
            if at + len(data) > end:  # not wholly a retransmission
                offsets.append(end - base)
                times.append(ts)
                out += data[end - at :]
                end = at + len(data)
        return bytes(out), offsets, times


def time_at(offsets: list[int], times: list[float], offset: int) -> float | None:
    """The arrival time of the segment holding ``offset``."""
    if not times:
        return None
    return times[max(0, bisect_right(offsets, offset) - 1)]
