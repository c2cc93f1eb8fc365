"""A service that marks its result, to prove a submission rises to the markings of its results.

It acts only on files whose first line is ``MARK <marking>`` (``MARK TLP:RED``) and finds one
tag there; any other file gets an empty, unmarked result. Selected by name (``Marker``).
"""

from __future__ import annotations

from assay.services.base import FileRequest, Result, Service, Stage


class Marker(Service):
    name = "Marker"
    stage = Stage.CORE
    category = "Testing"
    default_enabled = False

    def execute(self, request: FileRequest) -> Result:
        result = Result()
        first = request.read(4096).split(b"\n", 1)[0].decode("utf-8", "replace")
        if first.startswith("MARK "):
            result.classification = first[len("MARK ") :].strip()
            section = result.add_section("Marked", f"the file asks for {result.classification}")
            section.add_tag("file.string.extracted", "marked-finding")
        return result
