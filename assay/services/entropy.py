"""Entropy: how random the bytes are overall and block by block (packed or encrypted data)."""

from __future__ import annotations

import numpy as np

from assay.services.base import FileRequest, Heuristic, Result, Service, Stage
from assay.services.lib.entropy import byte_counts, shannon_of_counts


class Entropy(Service):
    """Whole-file entropy and a per-block profile.

    Parameters: ``block_size`` (bytes per profile block, default 65536), ``max_blocks``
    (profile length cap, default 256), ``high_entropy`` (bits per byte above which a file of
    at least ``min_size`` bytes is flagged, default 7.5), ``min_size`` (default 4096).
    """

    name = "Entropy"
    version = "1"
    stage = Stage.CORE
    category = "Static Analysis"
    rejects = r"empty|archive/.*|image/.*|audio/.*|video/.*"
    parameters = {"block_size": 65536, "max_blocks": 256, "high_entropy": 7.5, "min_size": 4096}
    heuristics = (
        Heuristic(
            "entropy.high",
            "High entropy content",
            "Most of the file looks random: compressed, packed or encrypted data outside a known container.",
            100,
            ("T1027",),
        ),
    )

    def execute(self, request: FileRequest) -> Result:
        options = self.options(request.params)
        block_size = max(256, int(options["block_size"]))
        counts = np.zeros(256, dtype=np.int64)
        profile: list[float] = []
        with request.path.open("rb") as handle:
            while block := handle.read(block_size):
                block_counts = byte_counts(block)
                counts += block_counts
                if len(profile) < int(options["max_blocks"]):
                    profile.append(round(shannon_of_counts(block_counts), 3))
        total = int(counts.sum())
        overall = round(shannon_of_counts(counts), 4)
        result = Result(file_info={"entropy": overall})
        section = result.add_section(
            "Entropy", {"entropy": overall, "block_size": block_size, "profile": profile}, "json"
        )
        if total >= int(options["min_size"]) and overall >= float(options["high_entropy"]):
            section.heuristic = "entropy.high"
        return result
