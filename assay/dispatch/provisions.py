"""What the dispatcher hands a service beyond its own parameters: limits, the safelist, rules.

Services stay pure by receiving these as parameters they declare (``max_extracted``,
``max_depth``, ``safelisted``, ``safelist``, ``rules_dir``). Each provision also has a short
*key view* that enters the result cache key, so a changed safelist or rule set is never
answered from a stale cached result.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from assay import safelist
from assay.config import Settings
from assay.db.session import session_scope
from assay.params import Params
from assay.services.base import Service
from assay.services.lib import rulesets


class _Stamp:
    """A cheap fingerprint of a directory's rule files (names, sizes, mtimes), cached briefly."""

    def __init__(self, directory: Path, ttl: float = 2.0) -> None:
        self.directory = directory
        self.ttl = ttl
        self._value = (0.0, "")
        self._lock = threading.Lock()

    def value(self) -> str:
        with self._lock:
            checked, stamp = self._value
        if time.monotonic() - checked < self.ttl:
            return stamp
        digest = hashlib.md5()
        for path in sorted(self.directory.glob("*.yar*")):
            try:
                stat = path.stat()
            except OSError:
                continue
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
        stamp = digest.hexdigest()[:16]
        with self._lock:
            self._value = (time.monotonic(), stamp)
        return stamp


class Provisions:
    """Per-worker source of provisions (the safelist and rule stamps are cached briefly)."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.max_depth = settings.limits.max_depth
        self.network = safelist.NetworkSafelist(engine)
        self.rules_dir = rulesets.seed_directory(settings.yara_dir)
        self.rules_stamp = _Stamp(self.rules_dir)

    def for_service(
        self, service: Service, params: Params, hashes: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(values to merge into the service's parameters, what of them enters the cache key)."""
        declared = service.parameters
        values: dict[str, Any] = {}
        key_view: dict[str, Any] = {}
        if "max_extracted" in declared:
            values["max_extracted"] = key_view["max_extracted"] = params.max_extracted
        if "max_depth" in declared:
            values["max_depth"] = key_view["max_depth"] = self.max_depth
        if "safelisted" in declared:
            with session_scope(self.engine, readonly=True) as session:
                values["safelisted"] = key_view["safelisted"] = safelist.match_file(session, hashes)
        if "safelist" in declared:
            values["safelist"] = self.network.values()
            key_view["safelist"] = self.network.digest()
        if "rules_dir" in declared:
            values["rules_dir"] = str(self.rules_dir)
            key_view["rules_dir"] = self.rules_stamp.value()
        return values, key_view

    def tag_allowed(self, tag_type: str, value: str) -> bool:
        return not self.network.covers(tag_type, value)
