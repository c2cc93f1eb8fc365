"""ThreatConnect batch error codes, and the exception validation raises for one bad item."""

from __future__ import annotations

from enum import IntEnum


class Code(IntEnum):
    """Error codes of the ThreatConnect V2 batch API, kept so existing consumers can read them."""

    GENERAL = 0x1001
    PERMISSION = 0x1002
    JSON_SYNTAX = 0x1003
    INTERNAL = 0x1004
    INVALID_INDICATOR = 0x1005
    INVALID_GROUP = 0x1006
    ITEM_NOT_FOUND = 0x1007
    INDICATOR_LIMIT = 0x1008
    ASSOCIATION = 0x1009
    DUPLICATE_ITEM = 0x100A
    FILE_IO = 0x100B
    INDICATOR_PARTIAL_LOSS = 0x2001
    GROUP_PARTIAL_LOSS = 0x2002
    FILE_HASH_MERGE = 0x2003


class ItemError(ValueError):
    """One item is unusable; the job records it and goes on with the others."""

    def __init__(self, code: Code, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
