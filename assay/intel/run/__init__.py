"""The parts of one job run, each phase in its own module; `assay.intel.runner.Runner` drives them.

- `state`: what the phases share (result, saved ids, reference caches).
- `chunks`: writing a phase in chunks (transactions, parallel writers, halving, replay).
- `refs`: resolving references to stored groups and indicators.
- `groups`, `indicators`, `associations`, `occurrences`: how each phase plans and applies a chunk.
"""
