"""The roles table and API-key ACLs: inclusion between roles, narrowing by key, refused letters."""

from __future__ import annotations

import itertools

import pytest

from assay.access import ACL_PERMISSIONS, ROLE_PERMISSIONS, Permission, Role, effective_permissions, parse_acl
from assay.access.roles import parse_role

P = Permission


def test_each_role_has_everything_of_the_roles_below() -> None:
    for lower, higher in itertools.combinations(Role, 2):
        assert ROLE_PERMISSIONS[lower] < ROLE_PERMISSIONS[higher], (lower, higher)


def test_the_roles_table() -> None:
    assert ROLE_PERMISSIONS[Role.VIEWER] == {P.READ, P.DOWNLOAD, P.SELF_MANAGE}
    assert ROLE_PERMISSIONS[Role.SUBMITTER] == ROLE_PERMISSIONS[Role.VIEWER] | {P.SUBMIT, P.DELETE_OWN}
    assert ROLE_PERMISSIONS[Role.INTEL_WRITER] == ROLE_PERMISSIONS[Role.SUBMITTER] | {P.INTEL_WRITE}
    assert ROLE_PERMISSIONS[Role.ADMIN] == set(Permission)
    assert P.ADMIN not in ROLE_PERMISSIONS[Role.INTEL_WRITER]


def test_the_table_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        ROLE_PERMISSIONS[Role.VIEWER] = frozenset(Permission)  # type: ignore[index]


def test_acl_letters_cover_every_permission_once() -> None:
    assert frozenset().union(*ACL_PERMISSIONS.values()) == set(Permission)
    for a, b in itertools.combinations(ACL_PERMISSIONS.values(), 2):
        assert not a & b


def test_without_a_key_a_user_has_their_role() -> None:
    for role in Role:
        assert effective_permissions(role, None) == ROLE_PERMISSIONS[role]


def test_a_key_narrows_its_user_and_never_widens() -> None:
    assert effective_permissions(Role.ADMIN, "R") == {P.READ, P.DOWNLOAD}
    assert effective_permissions(Role.SUBMITTER, "RW") == {P.READ, P.DOWNLOAD, P.SUBMIT, P.DELETE_OWN}
    assert effective_permissions(Role.VIEWER, "RWE") == ROLE_PERMISSIONS[Role.VIEWER]
    assert effective_permissions(Role.VIEWER, "W") == frozenset()
    assert P.ADMIN not in effective_permissions(Role.ADMIN, "RW")
    for role, acl in itertools.product(Role, ["R", "W", "E", "RW", "RE", "WE", "RWE"]):
        assert effective_permissions(role, acl) <= ROLE_PERMISSIONS[role]


def test_only_an_e_key_may_manage_keys() -> None:
    """As in Assemblyline, apikey_access and self_manage are E's: a leaked R or RW key cannot mint keys."""
    assert P.SELF_MANAGE not in effective_permissions(Role.ADMIN, "RW")
    assert P.SELF_MANAGE in effective_permissions(Role.VIEWER, "E")


@pytest.mark.parametrize(("acl", "canonical"), [("R", "R"), ("wr", "RW"), (["W", "R"], "RW"), ("EWRR", "RWE")])
def test_acls_are_read_in_any_order_and_case(acl: str | list[str], canonical: str) -> None:
    assert parse_acl(acl) == canonical


@pytest.mark.parametrize(
    ("acl", "why"), [("RX", "unknown letters 'X'"), ("C", "'C'"), ("", "no letter"), ("R,W", "','")]
)
def test_bad_acls_name_the_accepted_letters(acl: str, why: str) -> None:
    with pytest.raises(ValueError, match="accepted letters are R, W, E") as raised:
        parse_acl(acl)
    assert why in str(raised.value)
    with pytest.raises(ValueError, match="accepted letters"):
        effective_permissions(Role.ADMIN, acl)


def test_roles_are_parsed_by_name() -> None:
    assert parse_role(" Intel_Writer ") is Role.INTEL_WRITER
    assert [parse_role(role.value) for role in Role] == list(Role)
    with pytest.raises(ValueError, match="accepted roles are viewer, submitter, intel_writer, admin"):
        parse_role("root")
