"""Users, API keys and web sessions.

API keys are ``KEYNAME:SECRET`` as in Assemblyline. The secret is 32 random bytes, so a plain
sha256 of it is enough to store (nothing to brute-force); passwords, which people choose, are
stored with scrypt.

Nothing here caches: every request reads its user, key or session row (one indexed query), so a
revocation, logout, disabling or change of role or clearance holds from the next request on.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from assay.access import Clearance, Permission, Role, effective_permissions, parse_acl
from assay.db.base import utcnow
from assay.db.models import ApiKey, User, WebSession

ROLES = tuple(role.value for role in Role)
_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


class UserError(ValueError):
    """A request about users or keys that cannot be done; the message says why."""


class NoSuchUser(UserError):
    """The user (or key) named does not exist (an API answers 404)."""


class Refused(Exception):
    """Credentials that are right but may not be used now: an expired key or session, a disabled user.

    ``disabled`` tells the two apart: whoever presents a disabled user's credentials is known,
    so they are forbidden rather than asked to sign in again.
    """

    def __init__(self, message: str, *, disabled: bool = False) -> None:
        super().__init__(message)
        self.disabled = disabled


@dataclass(frozen=True)
class Principal:
    """Who is calling: their role, their clearance, and the ACL of the API key they came with."""

    name: str
    role: Role
    clearance: Clearance
    key_acl: str | None = None  # None: a password login or a key with the user's whole role
    key_id: int | None = None  # the API key the caller came with (directly or through a session)

    @property
    def permissions(self) -> frozenset[Permission]:
        return effective_permissions(self.role, self.key_acl)

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def can_submit(self) -> bool:
        return self.can(Permission.SUBMIT)

    def is_admin(self) -> bool:
        return self.can(Permission.ADMIN)


def principal_of(user: User, key: ApiKey | None = None) -> Principal:
    """The caller a users row (and the key it came with) stands for."""
    clearance = Clearance(user.classification, frozenset(user.groups or ()))
    if key is None:
        return Principal(user.name, Role(user.role), clearance)
    return Principal(user.name, Role(user.role), clearance, key.acl, key.id)


def _usable(user: User, key: ApiKey | None) -> None:
    """Refuse a disabled user, or a key past its expiry."""
    if user.disabled:
        raise Refused(f"user {user.name} is disabled; an administrator can enable it", disabled=True)
    if key is not None and key.expires is not None and key.expires <= utcnow():
        raise Refused(f"API key {key.name} of user {user.name} has expired")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str | None) -> bool:
    if not stored or not stored.startswith("scrypt$"):
        return False
    _, salt, digest = stored.split("$")
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=2**14, r=8, p=1)
    return hmac.compare_digest(candidate.hex(), digest)


def add_user(session: Session, name: str, role: str, clearance: Clearance, password: str | None = None) -> User:
    """Add a user; ``clearance`` must already be canonical (see ``ClassificationEngine.clearance``)."""
    if not _NAME.fullmatch(name):
        raise UserError("user names are 1-64 characters of letters, digits, '_', '.', '@' and '-'")
    role = _role(role)
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise UserError(f"user {name} already exists")
    user = User(
        name=name,
        role=role,
        password_hash=hash_password(password) if password else None,
        classification=clearance.level,
        groups=sorted(clearance.groups),
    )
    session.add(user)
    session.flush()
    return user


def _role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    return role


def find_user(session: Session, name: str) -> User | None:
    return session.scalar(select(User).where(User.name == name))


def user_named(session: Session, name: str) -> User:
    """The user called ``name``; NoSuchUser if there is none."""
    user = find_user(session, name)
    if user is None:
        raise NoSuchUser(f"no user named {name}")
    return user


def list_users(session: Session, offset: int = 0, rows: int = 100) -> tuple[int, Sequence[User]]:
    """The total number of users and one page of them, by name."""
    total = session.scalar(select(func.count()).select_from(User)) or 0
    return total, session.scalars(select(User).order_by(User.name).offset(offset).limit(rows)).all()


@dataclass(frozen=True)
class UserChange:
    """What to change of a user; None leaves a field as it is."""

    role: str | None = None
    clearance: Clearance | None = None  # canonical (see ``ClassificationEngine.clearance``)
    disabled: bool | None = None
    password: str | None = None


def change_user(session: Session, name: str, change: UserChange) -> User:
    """Apply ``change``; disabling a user also ends their sessions (enabling them again revives none)."""
    user = user_named(session, name)
    if change.role is not None:
        user.role = _role(change.role)
    if change.clearance is not None:
        user.classification, user.groups = change.clearance.level, sorted(change.clearance.groups)
    if change.password is not None:
        user.password_hash = hash_password(change.password)
    if change.disabled is not None:
        user.disabled = change.disabled
        if change.disabled:
            session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    session.flush()
    return user


def delete_user(session: Session, name: str) -> None:
    """Delete a user; their keys and sessions go with them (``ON DELETE CASCADE``)."""
    session.execute(delete(User).where(User.id == user_named(session, name).id))


def create_apikey(
    session: Session, user_name: str, key_name: str, acl: str | None = None, expires: datetime | None = None
) -> str:
    """Make a key and return ``KEYNAME:SECRET``: the only time the secret is seen.

    ``acl`` (Assemblyline's letters) narrows what the user may do through this key; None leaves
    the user's whole role. ``expires``, if given, must lie ahead.
    """
    user = user_named(session, user_name)
    if not _NAME.fullmatch(key_name) or ":" in key_name:
        raise UserError("key names are 1-64 characters of letters, digits, '_', '.', '@' and '-'")
    if session.scalar(select(ApiKey).where(ApiKey.user_id == user.id, ApiKey.name == key_name)):
        raise UserError(f"user {user_name} already has a key named {key_name}")
    if expires is not None and expires <= utcnow():
        raise UserError("the expiry of a new key must lie in the future")
    try:
        acl = None if acl is None else parse_acl(acl)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    secret = secrets.token_urlsafe(32)
    session.add(ApiKey(user_id=user.id, name=key_name, secret_hash=_sha256(secret), acl=acl, expires=expires))
    return f"{key_name}:{secret}"


def user_keys(session: Session, user_name: str | None = None) -> Sequence[tuple[ApiKey, User]]:
    """Keys and their users: one user's (NoSuchUser if there is none), or everyone's."""
    query = select(ApiKey, User).join(User, ApiKey.user_id == User.id).order_by(User.name, ApiKey.name)
    if user_name is not None:
        query = query.where(User.id == user_named(session, user_name).id)
    return [(key, user) for key, user in session.execute(query)]


def revoke_apikey(session: Session, user_name: str, key_name: str) -> None:
    """Delete a key; the sessions it opened go with it (``ON DELETE CASCADE``)."""
    user = user_named(session, user_name)
    done = session.execute(delete(ApiKey).where(ApiKey.user_id == user.id, ApiKey.name == key_name))
    if not done.rowcount:  # type: ignore[attr-defined]
        raise NoSuchUser(f"user {user_name} has no API key named {key_name}")


def check_apikey(session: Session, user_name: str, apikey: str) -> Principal | None:
    """The caller a key stands for, None for a wrong name or secret; Refused if expired or disabled."""
    key_name, sep, secret = apikey.partition(":")
    if not sep:
        return None
    row = session.execute(
        select(User, ApiKey)
        .join(ApiKey, ApiKey.user_id == User.id)
        .where(User.name == user_name, ApiKey.name == key_name)
    ).first()
    if row is None or not hmac.compare_digest(row.ApiKey.secret_hash, _sha256(secret)):
        return None
    _usable(row.User, row.ApiKey)
    return principal_of(row.User, row.ApiKey)


def check_login(session: Session, user_name: str, apikey: str | None, password: str | None) -> Principal | None:
    """The caller, for a login with a key or a password; Refused only once the credentials are right."""
    if apikey:
        return check_apikey(session, user_name, apikey)
    user = find_user(session, user_name)
    if user is None or not password or not check_password(password, user.password_hash):
        return None
    _usable(user, None)
    return principal_of(user)


def open_session(session: Session, principal: Principal, duration: int) -> str:
    """A new session token for ``principal``, bound to the key it logged in with, if any."""
    user = user_named(session, principal.name)
    token = secrets.token_urlsafe(32)
    session.execute(delete(WebSession).where(WebSession.expires < utcnow()))
    expires = utcnow() + timedelta(seconds=duration)
    session.add(WebSession(token_hash=_sha256(token), user_id=user.id, expires=expires, apikey_id=principal.key_id))
    return token


def session_principal(session: Session, token: str) -> Principal | None:
    """The session's caller (with its key's ACL), None for an unknown token; Refused when it cannot be used.

    The 401 messages ``assemblyline-client`` answers by logging in again are these Refused ones.
    """
    row = session.execute(
        select(User, WebSession, ApiKey)
        .join(WebSession, WebSession.user_id == User.id)
        .outerjoin(ApiKey, ApiKey.id == WebSession.apikey_id)
        .where(WebSession.token_hash == _sha256(token))
    ).first()
    if row is None:
        return None
    if row.WebSession.expires < utcnow():
        raise Refused("Session expired")
    try:
        _usable(row.User, row.ApiKey)
    except Refused as exc:
        if exc.disabled:
            raise
        raise Refused("Session expired") from None  # its key expired: logging in again says so
    return principal_of(row.User, row.ApiKey)


def close_session(session: Session, token: str) -> None:
    """Logout: the row goes, so the cookie is refused from the next request on."""
    session.execute(delete(WebSession).where(WebSession.token_hash == _sha256(token)))


def xsrf_token(token: str) -> str:
    """The XSRF token of a session: derived from its secret token, so nothing more is stored.

    Another site can neither read the cookie it comes in nor compute it without the HttpOnly
    session token.
    """
    return hmac.new(token.encode(), b"assay xsrf token", hashlib.sha256).hexdigest()


def count_users(session: Session) -> int:
    return len(session.scalars(select(User.id).limit(1)).all())
