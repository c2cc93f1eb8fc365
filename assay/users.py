"""Users, API keys and web sessions.

API keys are ``KEYNAME:SECRET`` as in Assemblyline. The secret is 32 random bytes, so a plain
sha256 of it is enough to store (nothing to brute-force); passwords, which people choose, are
stored with scrypt.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from assay.access import Clearance, Permission, Role, effective_permissions
from assay.db.base import utcnow
from assay.db.models import ApiKey, User, WebSession

ROLES = tuple(role.value for role in Role)
_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


class UserError(ValueError):
    """A request about users or keys that cannot be done; the message says why."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: their role, their clearance, and the ACL of the API key they came with."""

    name: str
    role: Role
    clearance: Clearance
    key_acl: str | None = None  # None: a password login or a key with the user's whole role

    @property
    def permissions(self) -> frozenset[Permission]:
        return effective_permissions(self.role, self.key_acl)

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def can_submit(self) -> bool:
        return self.can(Permission.SUBMIT)

    def is_admin(self) -> bool:
        return self.can(Permission.ADMIN)


def principal_of(user: User, key_acl: str | None = None) -> Principal:
    """The caller a users row (and the key it came with) stands for."""
    clearance = Clearance(user.classification, frozenset(user.groups or ()))
    return Principal(user.name, Role(user.role), clearance, key_acl)


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
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
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


def find_user(session: Session, name: str) -> User | None:
    return session.scalar(select(User).where(User.name == name))


def create_apikey(session: Session, user_name: str, key_name: str) -> str:
    """Make a key and return ``KEYNAME:SECRET``: the only time the secret is seen."""
    user = find_user(session, user_name)
    if user is None:
        raise UserError(f"no user named {user_name}")
    if not _NAME.fullmatch(key_name) or ":" in key_name:
        raise UserError("key names are 1-64 characters of letters, digits, '_', '.', '@' and '-'")
    if session.scalar(select(ApiKey).where(ApiKey.user_id == user.id, ApiKey.name == key_name)):
        raise UserError(f"user {user_name} already has a key named {key_name}")
    secret = secrets.token_urlsafe(32)
    session.add(ApiKey(user_id=user.id, name=key_name, secret_hash=_sha256(secret)))
    return f"{key_name}:{secret}"


def check_apikey(session: Session, user_name: str, apikey: str) -> Principal | None:
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
    return principal_of(row.User, row.ApiKey.acl)


def check_login(session: Session, user_name: str, apikey: str | None, password: str | None) -> Principal | None:
    if apikey:
        return check_apikey(session, user_name, apikey)
    user = find_user(session, user_name)
    if user is not None and password and check_password(password, user.password_hash):
        return principal_of(user)
    return None


def open_session(session: Session, user_name: str, duration: int) -> str:
    user = find_user(session, user_name)
    if user is None:
        raise UserError(f"no user named {user_name}")
    token = secrets.token_urlsafe(32)
    session.execute(delete(WebSession).where(WebSession.expires < utcnow()))
    session.add(WebSession(token_hash=_sha256(token), user_id=user.id, expires=utcnow() + timedelta(seconds=duration)))
    return token


def session_principal(session: Session, token: str) -> tuple[Principal | None, bool]:
    """The session's user, and whether the token was known but expired."""
    row = session.execute(
        select(User, WebSession)
        .join(WebSession, WebSession.user_id == User.id)
        .where(WebSession.token_hash == _sha256(token))
    ).first()
    if row is None:
        return None, False
    if row.WebSession.expires < utcnow():
        return None, True
    return principal_of(row.User), False


def count_users(session: Session) -> int:
    return len(session.scalars(select(User.id).limit(1)).all())
