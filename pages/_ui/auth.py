"""Sign-in with Streamlit's own ``st.login`` (OIDC), and who the current person is.

A team server has ``[auth]`` in ``.streamlit/secrets.toml`` (README, "Running for a team"): then
the identity is the provider's ``email`` claim (verified), its role comes from the roles file
(``qwen_dash.core.access``), and nobody reaches a page, a run or a download before signing in:
app.py gives ``st.navigation`` the sign-in page alone until :func:`admitted` returns someone.
Without ``[auth]``, the dashboard is the local single-user tool: "Who am I" is free text, and its
user is a local admin.
"""

from __future__ import annotations

import os
from typing import NoReturn

import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError

from pages._ui.text import literal, md
from qwen_dash.core.access import (
    Identity,
    RoleRules,
    RolesError,
    load_roles,
    local_identity,
    refusal,
    roles_path,
)

USER_KEY = "user"  # the local mode's "Who am I" box


def auth_configured() -> bool:
    """Whether this server signs people in: ``[auth]`` in its secrets."""
    try:
        return "auth" in st.secrets
    except (StreamlitSecretNotFoundError, FileNotFoundError):
        return False


@st.cache_resource(show_spinner=False)
def _rules(path: str, mtime_ns: int) -> RoleRules:
    """The roles file, read again when it changes (its path and mtime are the cache key)."""
    return load_roles(roles_path())


def role_rules() -> RoleRules:
    path = roles_path()
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        mtime = 0
    return _rules(str(path), mtime)


def _claim(name: str) -> object:
    return st.user.get(name)


def admitted() -> Identity | None:
    """Who this session is, if they may see the app at all; None means the sign-in page."""
    if not auth_configured():
        return local_identity(st.session_state.get(USER_KEY))
    if not st.user.is_logged_in:
        return None
    try:
        rules = role_rules()
    except RolesError:
        return None
    email = _claim("email")
    verified = _claim("email_verified")
    email_text = str(email) if email else None
    role = rules.role_for(email_text, verified if isinstance(verified, bool) else None)
    return None if role is None else Identity(email_text, role)


def who() -> Identity:
    """The admitted person (pages run only after app.py admitted them); stops otherwise."""
    identity = admitted()
    if identity is None:
        st.stop()
        raise AssertionError("st.stop() returned")
    return identity


def refuse(action: str, identity: Identity) -> None:
    """Say, where the action would be, that this person may not take it."""
    st.info(literal(refusal(action, identity)), icon=":material/lock:")


def denied(action: str, identity: Identity) -> NoReturn:
    st.error(literal(refusal(action, identity)), icon=":material/lock:")
    st.stop()
    raise AssertionError("st.stop() returned")


def sign_in_page() -> None:
    """The one page anyone not admitted sees, whatever URL they asked for."""
    st.title("qwen-dash", anchor=False)
    if not st.user.is_logged_in:
        st.write("This server is for a team: sign in to compare models and read the runs.")
        if st.button("Sign in", type="primary", icon=":material/login:"):
            st.login()
        return
    try:
        rules = role_rules()
    except RolesError as exc:
        st.error(literal(exc), icon=":material/error:")
    else:
        email = _claim("email")
        verified = _claim("email_verified")
        why = rules.refusal(
            str(email) if email else None, verified if isinstance(verified, bool) else None
        )
        st.error(
            md("No access: {why} Ask an admin of this server to add you.", why=why),
            icon=":material/lock:",
        )
    if st.button("Sign out", icon=":material/logout:"):
        st.logout()


def account_panel(identity: Identity) -> None:
    """The sidebar's top: who is signed in (team server), or the local mode and its name box."""
    if identity.local:
        st.text_input(
            "Who am I",
            key=USER_KEY,
            placeholder="your name (logged with your runs)",
            persist_state="session",
        )
        st.caption(
            "Local single-user mode: no sign-in is configured, so this server should listen "
            "on localhost only. To serve a team, see README, *Running for a team*."
        )
        return
    st.markdown(md("Signed in as **{name}**", name=identity.name or "?"))
    st.caption(md("Role: {role}", role=identity.role))
    if st.button("Sign out", icon=":material/logout:", key="sign_out"):
        st.logout()
