"""Access control: classification markings and roles, as data and pure functions.

``classification`` reads, normalises and compares markings (Assemblyline's model, TLP 2.0 by
default) and decides whether a clearance may see one; ``roles`` holds the one table of what each
role and API-key ACL may do. Neither touches the database or the web layer: enforcing them on
every route and query is built on top of these.
"""

from assay.access.classification import (
    MAX_MARKING_LENGTH,
    TLP_LEVELS,
    BadClassificationConfig,
    ClassificationConfig,
    ClassificationEngine,
    Clearance,
    GroupDef,
    LevelDef,
    NoCommonGroup,
    UnknownMarking,
)
from assay.access.roles import (
    ACL_PERMISSIONS,
    ROLE_PERMISSIONS,
    Permission,
    Role,
    effective_permissions,
    parse_acl,
    parse_role,
)

__all__ = [
    "ACL_PERMISSIONS",
    "MAX_MARKING_LENGTH",
    "ROLE_PERMISSIONS",
    "TLP_LEVELS",
    "BadClassificationConfig",
    "ClassificationConfig",
    "ClassificationEngine",
    "Clearance",
    "GroupDef",
    "LevelDef",
    "NoCommonGroup",
    "Permission",
    "Role",
    "UnknownMarking",
    "effective_permissions",
    "parse_acl",
    "parse_role",
]
