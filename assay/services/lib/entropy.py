"""Shannon entropy in bits per byte: the one measure the Entropy, PE and ELF services report."""

from __future__ import annotations

import numpy as np


def byte_counts(data: bytes) -> np.ndarray:
    return np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256)


def shannon_of_counts(counts: np.ndarray) -> float:
    """Shannon entropy in bits per byte (0 to 8) of a 256-bin histogram."""
    total = int(counts.sum())
    if not total:
        return 0.0
    p = counts[counts > 0] / total
    return abs(float((p * np.log2(p)).sum()))


def shannon(data: bytes) -> float:
    return shannon_of_counts(byte_counts(data))
