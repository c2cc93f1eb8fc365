"""The classification engine a configuration describes (``[classification]`` of config.ini)."""

from __future__ import annotations

import functools

from assay.access.classification import (
    TLP_LEVELS,
    BadClassificationConfig,
    ClassificationConfig,
    ClassificationEngine,
    GroupDef,
    LevelDef,
)
from assay.config import ClassificationSettings, ConfigError


def _spellings(entry: str) -> tuple[str, str, tuple[str, ...]]:
    """``NAME=SHORT|ALIAS|...`` as (name, short name, aliases); a bare ``NAME`` is its own short name."""
    name, _, rest = entry.partition("=")
    spellings = [part.strip() for part in rest.split("|") if part.strip()]
    short = spellings[0] if spellings else name.strip()
    return name.strip(), short, tuple(spellings[1:])


@functools.cache
def engine_for(section: ClassificationSettings) -> ClassificationEngine:
    """One engine per distinct configuration, built once (a bad definition is a ConfigError)."""
    levels = tuple(LevelDef(*_spellings(entry)) for entry in section.levels) or TLP_LEVELS
    groups = tuple(GroupDef(*_spellings(entry)) for entry in section.groups)
    try:
        return ClassificationEngine(ClassificationConfig(levels=levels, groups=groups, default=section.default or None))
    except (BadClassificationConfig, ValueError) as exc:
        raise ConfigError(f"[classification]: {exc}") from exc
