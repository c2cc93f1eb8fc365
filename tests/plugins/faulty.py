"""Services that misbehave on purpose, selected by name, to prove the sandbox and dispatcher hold.

Each acts only on files whose first line names it (``RAISE``, ``HANG``, ``CRASH``, ``HOG``,
``SLOW <marker path>``) and is harmless otherwise.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from assay.services.base import FileRequest, Heuristic, Result, Service, Stage


class _Faulty(Service):
    stage = Stage.CORE
    category = "Testing"
    default_enabled = False
    word = b""

    def triggered(self, request: FileRequest) -> bytes | None:
        head = request.read(4096)
        first = head.split(b"\n", 1)[0]
        return first if first.startswith(self.word) else None


class Raiser(_Faulty):
    name = "Raiser"
    word = b"RAISE"

    def execute(self, request: FileRequest) -> Result:
        if self.triggered(request):
            raise RuntimeError("this service always fails on RAISE files")
        return Result()


class Hanger(_Faulty):
    name = "Hanger"
    word = b"HANG"
    timeout = 1.0

    def execute(self, request: FileRequest) -> Result:
        if self.triggered(request):
            time.sleep(3600)
        return Result()


class Crasher(_Faulty):
    name = "Crasher"
    word = b"CRASH"

    def execute(self, request: FileRequest) -> Result:
        if self.triggered(request):
            os._exit(139)
        return Result()


class Hog(_Faulty):
    name = "Hog"
    word = b"HOG"

    def execute(self, request: FileRequest) -> Result:
        if self.triggered(request):
            hoard = [bytearray(64 << 20) for _ in range(1024)]
            return Result(anomalies=[str(len(hoard))])
        return Result()


class Slow(_Faulty):
    """Touches the marker path named on the first line, then takes its time, then scores."""

    name = "Slow"
    word = b"SLOW"
    heuristics = (Heuristic("slow.done", "Slow finished", "The slow test service finished.", 42),)

    def execute(self, request: FileRequest) -> Result:
        first = self.triggered(request)
        result = Result()
        if first:
            marker = Path(first.split(b" ", 1)[1].decode())
            with marker.open("a") as handle:
                handle.write(f"{os.getpid()}\n")
            time.sleep(float(os.environ.get("ASSAY_TEST_SLOW_SECONDS", "3")))
            result.add_section("Slow").heuristic = "slow.done"
        return result


class NulQuoter(_Faulty):
    """Quotes NUL characters the way a service quoting a hostile file's strings would."""

    name = "NulQuoter"
    word = b"NUL"

    def execute(self, request: FileRequest) -> Result:
        result = Result()
        if self.triggered(request):
            section = result.add_section("quoted\x00title", {"key\x00": ["value\x00", 1]}, body_format="json")
            section.add_tag("file.string.extracted", "tag\x00value")
            result.data = {"nested": {"deep\x00": "x\x00y"}}
        return result


class LongTagger(_Faulty):
    """Emits a tag type longer than its column: a service bug PostgreSQL refuses and SQLite stores."""

    name = "LongTagger"
    word = b"LONGTAG"

    def execute(self, request: FileRequest) -> Result:
        result = Result()
        if self.triggered(request):
            result.add_section("long").add_tag("x" * 200, "value")
        return result
