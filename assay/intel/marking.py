"""The one marking an intel row is filtered by, derived from its ThreatConnect security labels.

Security labels stay what ThreatConnect makes of them: a list per item, appended to by every job
that writes it. Readers, though, are filtered by a single marking per row, stored in the columns
of `assay.db.models.Classified` and tested by `assay.access.visibility.visible_to` (the condition
every read path of the platform uses). An item's marking is the least restrictive of its labels
(`ClassificationEngine.min_of`): each label says in which context the item was seen, and what was
seen in a TLP:GREEN submission may be shown at GREEN even if a TLP:RED one saw it too. What the RED
context adds stays RED because it is a row of its own: the RED submission's Report group, and the
file occurrences it reported (each occurrence keeps the labels of the item that carried it).
An item without labels takes the configuration's default marking, as a submission without one.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from assay.access import ClassificationEngine, UnknownMarking
from assay.access.visibility import Reader, StoredMarking, stored_marking

TLP = ClassificationEngine.tlp_default()
"""The labels' engine when a job is given none: TLP 2.0 names, no REL TO groups (TcEx's own labels)."""

MARKING_COLUMNS = ("classification", "classification_level", "classification_groups")


@functools.lru_cache(maxsize=4096)
def _marking(classification: ClassificationEngine, labels: tuple[str, ...]) -> StoredMarking:
    readable = [classification.normalise_stored(label) for label in labels]
    lowest = classification.min_of(*readable) if readable else classification.default
    return stored_marking(classification, lowest)


def labels_marking(classification: ClassificationEngine, labels: Iterable[str]) -> dict[str, object]:
    """The `Classified` column values of an item with these security labels (cached: rows repeat them)."""
    return _marking(classification, tuple(labels)).columns()


def visible_labels(reader: Reader, labels: Iterable[str]) -> list[str]:
    """The labels `reader` may see: the others would tell them in which closed context an item was seen."""
    shown = []
    for label in labels:
        try:
            if reader.engine.is_accessible(reader.clearance, label):
                shown.append(label)
        except UnknownMarking:
            continue
    return shown
