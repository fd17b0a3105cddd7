"""qwen-dash: the entry point. Sign-in, navigation and the shared sidebar; the pages do the rest.

``st.navigation`` runs on every run, signed in or not: until someone is admitted it lists the
sign-in page alone, so no page, run URL or download is reachable before sign-in (a gate that
stopped before ``st.navigation`` would leave Streamlit serving the pages/ files directly).
"""

from __future__ import annotations

import streamlit as st

from pages._ui.auth import admitted, sign_in_page
from pages._ui.boundary import run_guarded
from pages._ui.navigation import (
    AUDIT_PAGE,
    COMPARE_PAGE,
    HISTORY_PAGE,
    LEADERBOARD_PAGE,
    MODELS_PAGE,
    SUITES_PAGE,
    TRENDS_PAGE,
)
from pages._ui.resources import pool_or_stop
from pages._ui.sidebar import sidebar
from qwen_dash.core.access import can_audit

st.set_page_config(page_title="qwen-dash", page_icon=":material/compare_arrows:", layout="wide")

identity = admitted()
if identity is None:
    sign_in = st.Page(sign_in_page, title="Sign in", icon=":material/login:", default=True)
    st.navigation([sign_in], position="hidden").run()
    st.stop()

pages = [
    st.Page(
        COMPARE_PAGE,
        title="Compare",
        icon=":material/compare_arrows:",
        url_path="compare",
        default=True,
    ),
    st.Page(HISTORY_PAGE, title="History", icon=":material/history:", url_path="history"),
    st.Page(TRENDS_PAGE, title="Trends", icon=":material/monitoring:", url_path="trends"),
    st.Page(MODELS_PAGE, title="Models", icon=":material/memory:", url_path="models"),
    st.Page(
        LEADERBOARD_PAGE,
        title="Leaderboard",
        icon=":material/leaderboard:",
        url_path="leaderboard",
    ),
    st.Page(SUITES_PAGE, title="Suites", icon=":material/checklist:", url_path="suites"),
]
if can_audit(identity):
    pages.append(st.Page(AUDIT_PAGE, title="Audit", icon=":material/policy:", url_path="audit"))
navigation = st.navigation(pages)
run_guarded(lambda: sidebar(pool_or_stop(), identity))
run_guarded(navigation.run)
