"""Roles from the allowlist and the permission rules (pure functions, no Streamlit)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwen_dash.core.access import (
    Identity,
    RolesError,
    can_audit,
    can_delete,
    can_edit,
    can_restore,
    can_run,
    can_vote,
    load_roles,
    local_identity,
    parse_roles,
    refusal,
)

ROLES = """
default = "viewer"
[emails]
"Root@Team.example" = "admin"
"guest@team.example" = "viewer"
[domains]
"team.example" = "member"
"""


def test_an_email_wins_over_its_domain_and_the_domain_over_the_default() -> None:
    rules = parse_roles(ROLES)
    assert rules.role_for("root@team.example", True) == "admin"
    assert rules.role_for("GUEST@team.example", True) == "viewer"
    assert rules.role_for("ana@team.example", True) == "member"
    assert rules.role_for("someone@elsewhere.example", True) == "viewer"
    assert rules.role_for("ana@team.example", False) is None  # unverified: refused
    assert rules.role_for("ana@team.example", None) is None
    assert rules.role_for(None, True) is None
    strict = parse_roles('[domains]\n"@team.example" = "member"\n')
    assert strict.role_for("x@elsewhere.example", True) is None  # no default: refused
    assert strict.role_for("x@team.example", True) == "member"
    lax = parse_roles('require_verified_email = false\n[emails]\n"a@b.c" = "admin"\n')
    assert lax.role_for("a@b.c", None) == "admin"
    assert "not verified" in parse_roles(ROLES).refusal("ana@team.example", False)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("default = 'owner'", "must be one of viewer, member, admin"),
        ("[emails]\n'a@b.c' = 'root'", "must be one of"),
        ("admins = []", "Unknown key"),
        ("emails = 3", "must be a table"),
        ("default = ", "not valid TOML"),
    ],
)
def test_a_bad_roles_file_says_what_to_fix(text: str, message: str) -> None:
    with pytest.raises(RolesError, match=message):
        parse_roles(text)


def test_a_missing_roles_file_lets_nobody_in(tmp_path: Path) -> None:
    with pytest.raises(RolesError, match="No roles file"):
        load_roles(tmp_path / "roles.toml")


def test_viewers_read_members_own_admins_do_anything() -> None:
    viewer = Identity("vi@team.example", "viewer")
    member = Identity("ana@team.example", "member")
    admin = Identity("root@team.example", "admin")
    mine, theirs = "ana@team.example", "bo@team.example"
    assert not any(f(viewer) for f in (can_run, can_vote, can_restore, can_audit))
    assert not can_edit(viewer, "vi@team.example") and not can_delete(viewer, "vi@team.example")
    assert can_run(member) and can_vote(member)
    assert can_edit(member, mine) and can_delete(member, "ANA@team.example")
    assert not can_edit(member, theirs) and not can_delete(member, theirs)
    assert not can_delete(member, None) and not can_restore(member) and not can_audit(member)
    assert can_delete(admin, theirs) and can_restore(admin) and can_audit(admin)
    local = local_identity("  ")
    assert local.local and local.role == "admin" and local.name is None
    assert can_delete(local, theirs) and can_edit(local, None)
    assert refusal("delete", member) == (
        "You are signed in as ana@team.example (member). To delete this run you need to own "
        "it (or the admin role)."
    )
