"""Who may do what: roles, the permissions each grants, and how an API key narrows them.

One table (``ROLE_PERMISSIONS``) is the whole policy, so every route checks the same data and a
change of policy is a change here. Each role has every permission of the roles below it. An API
key carries an ACL of Assemblyline's letters; what a request may do through a key is its user's
permissions *and* the key's letters, so a key can narrow its user's rights, never widen them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType


class Role(StrEnum):
    """A user's role, lowest first (the order ``ROLE_PERMISSIONS`` accumulates in)."""

    VIEWER = "viewer"
    SUBMITTER = "submitter"
    INTEL_WRITER = "intel_writer"
    ADMIN = "admin"


class Permission(StrEnum):
    """One thing a route may require."""

    READ = "read"  # see submissions, files, results, intel, search
    DOWNLOAD = "download"  # download files, as CaRT or zip
    SELF_MANAGE = "self_manage"  # one's own password and API keys
    SUBMIT = "submit"  # submit and ingest
    DELETE_OWN = "delete_own"  # delete one's own submissions
    INTEL_WRITE = "intel_write"  # write the intel of the owners one belongs to
    ADMIN = "admin"  # users, everyone's submissions, safelist, signatures, configuration


_ADDED_BY: Mapping[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ, Permission.DOWNLOAD, Permission.SELF_MANAGE}),
    Role.SUBMITTER: frozenset({Permission.SUBMIT, Permission.DELETE_OWN}),
    Role.INTEL_WRITER: frozenset({Permission.INTEL_WRITE}),
    Role.ADMIN: frozenset(Permission),
}


def _accumulated() -> Mapping[Role, frozenset[Permission]]:
    """Each role's own additions plus everything of the roles below it, so inclusion cannot drift."""
    table: dict[Role, frozenset[Permission]] = {}
    below: frozenset[Permission] = frozenset()
    for role in Role:
        below = table[role] = below | _ADDED_BY[role]
    return MappingProxyType(table)


ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = _accumulated()

ACL_PERMISSIONS: Mapping[str, frozenset[Permission]] = MappingProxyType(
    {
        # Assemblyline's R: view and download (submission_view, file_download, bundle_download...).
        "R": frozenset({Permission.READ, Permission.DOWNLOAD}),
        # Its W: change things (submission_create, submission_delete, safelist_manage...).
        "W": frozenset({Permission.SUBMIT, Permission.DELETE_OWN, Permission.INTEL_WRITE}),
        # Its E, "extended": administration, apikey_access, self_manage; so a key without E
        # cannot make other keys or administer, whoever its user is.
        "E": frozenset({Permission.SELF_MANAGE, Permission.ADMIN}),
    }
)
"""API-key ACL letter -> the permissions it lets through (Assemblyline's ``C``, custom, is not offered)."""


def parse_role(text: str) -> Role:
    """The role named ``text`` (any case); a ValueError naming the accepted roles otherwise."""
    try:
        return Role(text.strip().lower())
    except (ValueError, AttributeError):
        raise ValueError(f"unknown role {text!r}: accepted roles are {', '.join(Role)}") from None


def parse_acl(acl: Iterable[str]) -> str:
    """An ACL in canonical form (letters in ``R, W, E`` order, each once): ``"wr"`` and ``["W", "R"]`` are ``"RW"``.

    Unknown letters, or none at all, are a ValueError naming the accepted ones.
    """
    letters = set("".join(acl).upper())
    unknown = letters - set(ACL_PERMISSIONS)
    if unknown or not letters:
        found = f"unknown letters {''.join(sorted(unknown))!r}" if unknown else "no letter"
        raise ValueError(f"API key ACL has {found}: accepted letters are {', '.join(ACL_PERMISSIONS)}")
    return "".join(letter for letter in ACL_PERMISSIONS if letter in letters)


@functools.lru_cache(maxsize=64)
def effective_permissions(role: Role, key_acl: str | None) -> frozenset[Permission]:
    """What a request may do: the role's permissions, narrowed by the key's ACL when it came by key.

    ``key_acl`` is None for a request that came with a password or session, not a key.
    """
    granted = ROLE_PERMISSIONS[Role(role)]
    if key_acl is None:
        return granted
    letters = parse_acl(key_acl)
    return granted & frozenset().union(*(ACL_PERMISSIONS[letter] for letter in letters))
