"""The TcEx-style Jobs API: queue groups, indicators, associations and file occurrences, then process.

TcEx Jobs data structures are accepted verbatim, so scripts written for ThreatConnect move over by
changing one import. Processing runs in the order groups → indicators → associations → file
occurrences (the reverse for a Delete job) and returns a `JobResult`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from assay.intel.fields import WRITE_TYPES
from assay.intel.result import JobResult

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from assay.access import ClassificationEngine

Json = dict[str, Any]
GROUP_ACTIONS = ("skip", "duplicate", "replace")
ACTIONS = ("Create", "Delete")


@dataclass(frozen=True)
class JobSettings:
    """How a job writes; the names follow the V2 batch settings (`haltOnError`, `tagWriteType`...).

    group_action: for a group without xid whose type and name are already stored, `skip` reuses the
    oldest one unchanged, `replace` overwrites it, `duplicate` creates another.
    attribute_write_type: Append | Replace | Singleton | Static. tag_write_type and
    security_label_write_type: Append | Replace. action: Create | Delete.
    chunk_size: items per bulk statement and per transaction (large jobs keep two in flight, so a
    crash loses at most two chunks; 10,000 measured fastest on PostgreSQL).
    indicator_limit: a job with more distinct indicators than this fails as a whole (0x1008), like
    ThreatConnect's per-batch cap.
    require_group_xid: every group must carry an xid (the V2 batch rule).
    """

    halt_on_error: bool = False
    action: str = "Create"
    group_action: str = "skip"
    attribute_write_type: str = "Append"
    tag_write_type: str = "Append"
    security_label_write_type: str = "Append"
    chunk_size: int = 10_000
    indicator_limit: int | None = None
    require_group_xid: bool = False

    def __post_init__(self) -> None:
        checks = (
            ("action", self.action, ACTIONS),
            ("group_action", self.group_action, GROUP_ACTIONS),
            ("attribute_write_type", self.attribute_write_type, WRITE_TYPES),
            ("tag_write_type", self.tag_write_type, ("Append", "Replace")),
            ("security_label_write_type", self.security_label_write_type, ("Append", "Replace")),
        )
        for name, value, allowed in checks:
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be positive")


class Job:
    """A unit of threat-intel writes for one owner.

    Example:
        >>> job = Job(owner="Example Org", engine=engine)
        >>> job.group({"name": "Robin Sparkles", "type": "Adversary", "tag": ["APT"]})
        >>> job.indicator({"summary": "1.1.1.1", "type": "Address", "rating": "3"})
        >>> job.group_association({"group_name": "Robin Sparkles", "group_type": "Adversary",
        ...                        "indicator": "1.1.1.1", "indicator_type": "Address"})
        >>> result = job.process()
        >>> result.exit_code   # 0 all saved, 3 partial failure, 1 failure
        0

    `engine` defaults to the application's engine (`assay.db.session.get_engine()`). Keyword
    settings are those of `JobSettings`. `classification` is the engine security labels are read
    and rows marked with (`assay.intel.marking`); without it, labels are the TLP 2.0 names.

    References: `associatedGroup`/`associatedGroups`/`associatedGroupXid` and association refs name
    a group by xid, else by numeric id; `group_name`+`group_type` pick the oldest group of that
    name (the result warns when there are several). Indicators are named by summary in any
    spelling (it is normalised first); File indicators by any of their hashes.
    """

    def __init__(
        self,
        owner: str,
        engine: Engine | None = None,
        *,
        owner_kind: str = "Organization",
        classification: ClassificationEngine | None = None,
        **settings: Any,
    ) -> None:
        if not isinstance(owner, str) or not owner.strip():
            raise ValueError("owner must be a non-empty name")
        self.owner = owner.strip()
        self.owner_kind = owner_kind
        self.engine = engine
        self.classification = classification
        self.settings = JobSettings(**settings)
        self.groups: list[Any] = []
        self.indicators: list[Any] = []
        self.group_associations: list[Any] = []
        self.associations: list[Any] = []
        self.file_occurrences: list[Any] = []

    def group(self, data: Json) -> None:
        """Queue a group (`{"name", "type", "xid"?, "attribute", "tag", "securityLabel", ...}`)."""
        self.groups.append(data)

    def indicator(self, data: Json) -> None:
        """Queue an indicator (`{"summary", "type", "rating", "confidence", "associatedGroup", ...}`)."""
        self.indicators.append(data)

    def group_association(self, data: Json) -> None:
        """Queue a group-indicator association by group name/type (or xid) and indicator."""
        self.group_associations.append(data)

    def association(self, data: Json) -> None:
        """Queue any association: `{ref_1, type_1, ref_2, type_2}` or `{id_1, id_2}`."""
        self.associations.append(data)

    def file_occurrence(self, data: Json) -> None:
        """Queue a file occurrence (`{"hash", "fileName", "path", "date"}`) of a File indicator."""
        self.file_occurrences.append(data)

    @property
    def group_len(self) -> int:
        return len(self.groups)

    @property
    def indicator_len(self) -> int:
        return len(self.indicators)

    @property
    def group_association_len(self) -> int:
        return len(self.group_associations)

    @property
    def association_len(self) -> int:
        return len(self.associations)

    @property
    def file_occurrence_len(self) -> int:
        return len(self.file_occurrences)

    def process(self) -> JobResult:
        """Write everything queued and report; the queues are kept, so a re-run is possible."""
        from assay.intel.runner import Runner

        if self.engine is None:
            from assay.db.session import get_engine

            self.engine = get_engine()
        return Runner(self, self.engine).run()
