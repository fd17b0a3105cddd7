"""qwen-dash: the entry point. Navigation and the shared sidebar; the pages do the rest."""

from __future__ import annotations

import streamlit as st

from pages._ui.boundary import run_guarded
from pages._ui.resources import pool_or_stop
from pages._ui.sidebar import sidebar

st.set_page_config(page_title="qwen-dash", page_icon=":material/compare_arrows:", layout="wide")

navigation = st.navigation(
    [
        st.Page(
            "pages/compare.py",
            title="Compare",
            icon=":material/compare_arrows:",
            url_path="compare",
            default=True,
        ),
        st.Page("pages/history.py", title="History", icon=":material/history:", url_path="history"),
        st.Page("pages/trends.py", title="Trends", icon=":material/monitoring:", url_path="trends"),
        st.Page("pages/models.py", title="Models", icon=":material/memory:", url_path="models"),
        st.Page(
            "pages/leaderboard.py",
            title="Leaderboard",
            icon=":material/leaderboard:",
            url_path="leaderboard",
        ),
        st.Page("pages/suites.py", title="Suites", icon=":material/checklist:", url_path="suites"),
    ]
)
run_guarded(lambda: sidebar(pool_or_stop()))
run_guarded(navigation.run)
