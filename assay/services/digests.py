"""Digests: the hashes analysts search by, exact (md5, sha1, sha256) and fuzzy (ssdeep, TLSH)."""

from __future__ import annotations

import hashlib

import ssdeep
import tlsh

from assay.services.base import FileRequest, Result, Service, Stage

CHUNK = 1 << 20


class Digests(Service):
    """md5, sha1, sha256, ssdeep and TLSH of the whole file, streamed in 1 MiB chunks.

    Parameters: none. TLSH needs at least 50 bytes with some variety; below that it is omitted.
    """

    name = "Digests"
    version = "1"
    stage = Stage.IDENTIFY
    category = "Static Analysis"
    rejects = r"$^"

    def execute(self, request: FileRequest) -> Result:
        exact = {"md5": hashlib.md5(), "sha1": hashlib.sha1(), "sha256": hashlib.sha256()}
        fuzzy = ssdeep.Hash()
        locality = tlsh.Tlsh()
        with request.path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                for digest in exact.values():
                    digest.update(chunk)
                fuzzy.update(chunk)
                locality.update(chunk)
        info: dict[str, str] = {name: digest.hexdigest() for name, digest in exact.items()}
        info["ssdeep"] = fuzzy.digest()
        try:
            locality.final()
            tlsh_digest = locality.hexdigest()
        except ValueError:
            tlsh_digest = ""
        if tlsh_digest and tlsh_digest != "TNULL":
            info["tlsh"] = tlsh_digest
        result = Result(file_info=info)
        section = result.add_section("Digests", dict(info), "kv")
        for name, value in info.items():
            section.add_tag(f"file.{name}", value)
        return result
