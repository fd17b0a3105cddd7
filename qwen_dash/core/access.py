"""Who may do what: roles from a small TOML allowlist, and the permission rules, as pure functions.

Roles, from least to most:

- ``viewer`` reads: every page, every run, exports;
- ``member`` also runs prompts, votes, and edits (tags, notes) and deletes the runs they own;
- ``admin`` may do anything: edit and delete anyone's run, restore deleted runs, read the audit log.

On a team server the identity comes from the sign-in provider's claims (``st.user``: ``email``,
``email_verified``), never from a text box; the allowlist maps emails and domains to roles::

    # .streamlit/roles.toml (or the file named by $QWEN_DASH_ROLES)
    default = "viewer"            # anyone else with a verified email; leave out to refuse them
    require_verified_email = true # refuse an email the provider did not verify (the default)

    [emails]
    "ana@example.com" = "admin"

    [domains]
    "example.com" = "member"

An email's own entry wins over its domain's, and the domain's over ``default``. Without sign-in
configured, the dashboard is a local single-user tool: its one user is a local admin
(:func:`local_identity`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

Role = Literal["viewer", "member", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "member", "admin")
ENV_ROLES = "QWEN_DASH_ROLES"
DEFAULT_ROLES_PATH = Path(__file__).resolve().parents[2] / ".streamlit" / "roles.toml"
LOCAL_NAME = "local user"


class RolesError(ValueError):
    """The roles file cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class Identity:
    """Who is acting. ``name`` is what runs, votes and the audit log record (the email on a team
    server, the typed name or None on a local dashboard); ``local`` is the single-user mode."""

    name: str | None
    role: Role
    local: bool = False

    @property
    def label(self) -> str:
        who = self.name or LOCAL_NAME
        return f"{who} ({'local admin' if self.local else self.role})"


def local_identity(name: str | None = None) -> Identity:
    """The one user of a dashboard without sign-in (or the CLI): a local admin."""
    cleaned = (name or "").strip()
    return Identity(cleaned or None, "admin", local=True)


@dataclass(frozen=True)
class RoleRules:
    """The allowlist: roles per email and per domain, and for everyone else."""

    emails: Mapping[str, Role] = field(default_factory=dict)
    domains: Mapping[str, Role] = field(default_factory=dict)
    default: Role | None = None
    require_verified_email: bool = True

    def role_for(self, email: str | None, verified: bool | None) -> Role | None:
        """The role of a signed-in person, or None when they have no access."""
        if not email or "@" not in email:
            return None
        if self.require_verified_email and verified is not True:
            return None
        address = email.strip().lower()
        if address in self.emails:
            return self.emails[address]
        domain = address.rsplit("@", 1)[1]
        return self.domains.get(domain, self.default)

    def refusal(self, email: str | None, verified: bool | None) -> str:
        """Why a signed-in person has no access, for them to read."""
        if not email:
            return "Your sign-in provider did not share an email address, so no role applies."
        if self.require_verified_email and verified is not True:
            return f"Your email {email} is not verified by your sign-in provider."
        return f"{email} is not on this server's list of people (roles file)."


def roles_path() -> Path:
    """``$QWEN_DASH_ROLES``, else .streamlit/roles.toml beside app.py."""
    env = os.environ.get(ENV_ROLES, "").strip()
    return Path(env).expanduser() if env else DEFAULT_ROLES_PATH


def _role(value: Any, where: str) -> Role:
    if value not in ROLES:
        raise RolesError(f"{where}: the role must be one of {', '.join(ROLES)}, got {value!r}.")
    return cast(Role, value)


def _table(data: dict[str, Any], name: str) -> dict[str, Role]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise RolesError(f'[{name}] must be a table of "name" = "role".')
    return {str(k).strip().lower(): _role(v, f"[{name}] {k}") for k, v in table.items()}


def parse_roles(text: str) -> RoleRules:
    """The rules in a roles file's text; RolesError when they cannot be used."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RolesError(f"The roles file is not valid TOML: {exc}") from None
    unknown = set(data) - {"default", "require_verified_email", "emails", "domains"}
    if unknown:
        raise RolesError(f"Unknown key(s) in the roles file: {', '.join(sorted(unknown))}.")
    default = data.get("default")
    verified = data.get("require_verified_email", True)
    if not isinstance(verified, bool):
        raise RolesError("require_verified_email must be true or false.")
    return RoleRules(
        emails=_table(data, "emails"),
        domains={k.lstrip("@"): v for k, v in _table(data, "domains").items()},
        default=None if default is None else _role(default, "default"),
        require_verified_email=verified,
    )


def load_roles(path: Path | None = None) -> RoleRules:
    """The rules of the roles file; a server without one lets nobody in (RolesError says so)."""
    path = path or roles_path()
    try:
        return parse_roles(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RolesError(
            f"No roles file at {path}: sign-in is configured, so the server needs one to know "
            f"who may do what (see README, 'Running for a team'; or set ${ENV_ROLES})."
        ) from None


# ---- the rules ---------------------------------------------------------------------------------


def _rank(role: Role) -> int:
    return ROLES.index(role)


def can_run(who: Identity) -> bool:
    """Send prompts (Compare, History's rerun)."""
    return _rank(who.role) >= _rank("member")


def can_vote(who: Identity) -> bool:
    return _rank(who.role) >= _rank("member")


def owns(who: Identity, owner: str | None) -> bool:
    """Whether a run logged by ``owner`` is this person's. On a team server a run without an
    owner belongs to nobody (an admin handles it)."""
    if who.local:
        return True
    return owner is not None and who.name is not None and owner.lower() == who.name.lower()


def can_edit(who: Identity, owner: str | None) -> bool:
    """Change a run's tags and notes."""
    return who.role == "admin" or (who.role == "member" and owns(who, owner))


def can_delete(who: Identity, owner: str | None) -> bool:
    return can_edit(who, owner)


def can_restore(who: Identity) -> bool:
    return who.role == "admin"


def can_audit(who: Identity) -> bool:
    """Read the audit log and the deleted runs."""
    return who.role == "admin"


ACTIONS = {
    "run": ("send prompts", "the member role"),
    "vote": ("vote", "the member role"),
    "edit": ("change this run's tags and notes", "to own it (or the admin role)"),
    "delete": ("delete this run", "to own it (or the admin role)"),
    "restore": ("restore a deleted run", "the admin role"),
    "audit": ("read the audit log", "the admin role"),
}


def refusal(action: str, who: Identity) -> str:
    """The message for an action this person may not take."""
    verb, needs = ACTIONS[action]
    return f"You are signed in as {who.label}. To {verb} you need {needs}."
