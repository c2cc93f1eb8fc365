"""Safelist: stops analysis of known-good files and marks them safe."""

from __future__ import annotations

from assay.services.base import FileRequest, Heuristic, Result, Service, Stage


class Safelist(Service):
    """Marks a file safe and stops further analysis when its hash is on the safelist.

    The dispatcher looks the file's md5/sha1/sha256 up and hands the matching entry in the
    parameter ``safelisted`` (None when not listed); this service decides what that means.
    ``params.ignore_filtering`` makes the dispatcher skip this stage.
    """

    name = "Safelist"
    version = "1"
    stage = Stage.FILTER
    category = "Filtering"
    rejects = r"$^"
    parameters = {"safelisted": None}
    heuristics = (
        Heuristic("safelist.file", "Safelisted file", "The file's hash is on the safelist: known good.", -1000),
    )

    def execute(self, request: FileRequest) -> Result:
        entry = self.options(request.params)["safelisted"]
        if not entry:
            return Result()
        result = Result(drop_file=True)
        section = result.add_section("Safelisted file", dict(entry), "kv")
        section.heuristic = "safelist.file"
        return result
