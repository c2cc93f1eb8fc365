"""Who may write an owner's intel: owners' members, and the rule every user's intel write passes.

The rule (`refusal`), for a write by a user through the API or a batch:

- it needs the intel_write permission (the intel_writer role, or admin), through the key used too;
- nobody writes the platform owner (``[intel] owner``, "Assay" by default), admins included: its
  intel is what the platform itself concluded, published by the publisher (a process, not a user),
  and anything a user could write there would be shown to everyone as the platform's finding.
  Names differing from it only in case are refused too, so no look-alike can be made;
- an admin writes any other owner;
- an intel writer writes only the owners they are a member of (`add_member`), and so creates no
  owner: only an admin's write, or adding a member, makes a new one.

The command line (``assay intel process``, ``assay intel owner ...``) and in-process `Job`s are
not checked: they run with the database's own credentials, as the platform's operator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Connection, Engine, delete, select
from sqlalchemy.exc import IntegrityError

from assay.access import Permission, Role, effective_permissions
from assay.db.models import User
from assay.intel.models import Owner, OwnerMember
from assay.intel.store import dialect_insert, ensure_owner

OwnerCheck = Callable[[str], str | None]
"""owner name -> why the write is refused, None when it may go ahead."""


class OwnerError(ValueError):
    """A membership change that cannot be made; the message says why."""


class UnknownName(OwnerError, LookupError):
    """The owner or user named does not exist (an API answers 404)."""


class Writer(Protocol):
    """Who writes: `assay.users.Principal` in the API, `StoredWriter` in the batch worker."""

    @property
    def name(self) -> str: ...

    def can(self, permission: Permission) -> bool: ...


@dataclass(frozen=True)
class StoredWriter:
    """A batch's user as the worker finds them: their role now, narrowed by the uploading key's ACL."""

    name: str
    permissions: frozenset[Permission]

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions


def stored_writer(conn: Connection, name: str, key_acl: str | None) -> StoredWriter | None:
    """The user a queued batch runs for, None if they were deleted or disabled since its upload."""
    row = conn.execute(select(User.role, User.disabled).where(User.name == name)).first()
    if row is None or row.disabled:
        return None
    return StoredWriter(name, effective_permissions(Role(row.role), key_acl))


def is_platform_owner(owner: str, platform_owner: str) -> bool:
    """Whether `owner` is the platform's own (compared without case or surrounding spaces)."""
    return owner.strip().casefold() == platform_owner.strip().casefold()


def refusal(conn: Connection, writer: Writer | None, owner: str, platform_owner: str) -> str | None:
    """Why `writer` may not write `owner`'s intel (see the module's rule), None when they may."""
    name = owner.strip()
    if writer is None:
        return "the batch's user was deleted or disabled after the upload"
    if not writer.can(Permission.INTEL_WRITE):
        return f"user {writer.name} may not write intel (it takes the intel_writer or admin role, and a W key)"
    if is_platform_owner(name, platform_owner):
        return (
            f"owner {name!r} is the platform's own intel: only its publisher writes it, "
            "no user does (administrators included)"
        )
    if writer.can(Permission.ADMIN) or is_member(conn, name, writer.name):
        return None
    return (
        f"user {writer.name} is not a member of owner {name!r}: an intel writer writes only the owners "
        "they are a member of (an administrator adds members)"
    )


def owner_check(engine: Engine, writer: Writer | None, platform_owner: str) -> OwnerCheck:
    """`refusal` for one writer, each owner asked once, on a connection of its own (a job runs long)."""
    answers: dict[str, str | None] = {}

    def check(owner: str) -> str | None:
        if owner not in answers:
            with engine.connect() as conn:
                answers[owner] = refusal(conn, writer, owner, platform_owner)
        return answers[owner]

    return check


def is_member(conn: Connection, owner: str, user: str) -> bool:
    found = conn.execute(
        select(OwnerMember.user)
        .join(Owner, Owner.id == OwnerMember.owner_id)
        .where(Owner.name == owner.strip(), OwnerMember.user == user)
    ).first()
    return found is not None


def add_member(conn: Connection, owner: str, user: str, platform_owner: str) -> bool:
    """Make `user` a member of `owner` (created if new); False if they already were one.

    The platform owner takes no members: no user writes it, so a member would be a promise broken.
    """
    name, user = _owner_name(owner), _user_name(user)
    if is_platform_owner(name, platform_owner):
        raise OwnerError(f"owner {name!r} is the platform's own intel: it has no members, its publisher writes it")
    if conn.execute(select(User.id).where(User.name == user)).first() is None:
        raise UnknownName(f"no user named {user}")
    owner_id = ensure_owner(conn, name)
    table = OwnerMember.__table__
    try:
        done = conn.execute(dialect_insert(conn, table).values(owner_id=owner_id, user=user).on_conflict_do_nothing())
    except IntegrityError as exc:  # the owner went away under us: owners are never deleted, so only by hand
        raise OwnerError(f"owner {name!r} could not be joined: {exc.orig}") from None
    return bool(done.rowcount)


def remove_member(conn: Connection, owner: str, user: str) -> bool:
    """Take `user` off `owner`'s members; False if they were not one."""
    owner_id = conn.execute(select(Owner.id).where(Owner.name == _owner_name(owner))).scalar()
    if owner_id is None:
        return False
    member = OwnerMember.user == _user_name(user)
    done = conn.execute(delete(OwnerMember).where(OwnerMember.owner_id == owner_id, member))
    return bool(done.rowcount)


def members(conn: Connection, owner: str) -> list[str]:
    """The members of `owner`, by name; OwnerError if there is no such owner."""
    owner_id = conn.execute(select(Owner.id).where(Owner.name == _owner_name(owner))).scalar()
    if owner_id is None:
        raise UnknownName(f"no intel owner named {owner.strip()!r}")
    stmt = select(OwnerMember.user).where(OwnerMember.owner_id == owner_id).order_by(OwnerMember.user)
    return list(conn.execute(stmt).scalars())


def owners_of(conn: Connection, user: str) -> list[str]:
    """The owners `user` is a member of, by name."""
    stmt = select(Owner.name).join(OwnerMember, OwnerMember.owner_id == Owner.id).where(OwnerMember.user == user)
    return list(conn.execute(stmt.order_by(Owner.name)).scalars())


def _user_name(user: str) -> str:
    if not isinstance(user, str) or not 0 < len(user) <= 64 or "\x00" in user:
        raise OwnerError("a user is named by 1-64 characters, none of them NUL")
    return user


def _owner_name(owner: str) -> str:
    name = owner.strip() if isinstance(owner, str) else ""
    if not name or len(name) > 255 or "\x00" in name:
        raise OwnerError("an owner is named by 1-255 characters, none of them NUL")
    return name
