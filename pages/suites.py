"""Suites: run a prompt suite on the models, watch it run, read its results, compare two runs.

A suite runs on a thread of the server (pages/_ui/resources.get_suite_runner), so leaving or
reloading this page neither stops nor loses it. Logic in qwen_dash/views/suites.py.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from pages._ui.auth import who
from pages._ui.navigation import HISTORY_PAGE, ensure_entrypoint
from pages._ui.resources import get_suite_runner, model_labels, pool_or_stop, store_or_stop
from pages._ui.sidebar import current_user
from pages._ui.text import literal, md
from pages._ui.widgets import show_text
from qwen_dash.core.access import can_run, refusal
from qwen_dash.quality.suites import Suite, SuiteError
from qwen_dash.services.suite_runner import LiveSuiteRun, SuitePlan, SuiteRunError
from qwen_dash.store import StoreError, SuiteResultRow, SuiteRunInfo
from qwen_dash.views import suites as view

ensure_entrypoint()
identity = who()
pool = pool_or_stop()
store = store_or_stop()
runner = get_suite_runner()
labels = model_labels(pool)
available = list(pool.workers)
state = st.session_state


def _models_text(models: list[str] | tuple[str, ...]) -> str:
    return ", ".join(labels.get(m, m) for m in models)


# ---- choosing and starting a suite ---------------------------------------------------------------


def _load_choice() -> tuple[Suite, str] | None:
    """The suite picked (shipped) or uploaded, loaded; its errors shown when it cannot run."""
    origin = st.segmented_control(
        "Suite from",
        ["Shipped", "Upload"],
        key="s_origin",
        default="Shipped",
        required=True,
        help="Shipped suites come from the server's suites/ folder; uploaded ones from you "
        "(an uploaded suite may not use python assertions: they would run code on the server).",
    )
    try:
        if origin == "Upload":
            upload = st.file_uploader("Suite file (YAML)", type=["yaml", "yml"], key="s_upload")
            if upload is None:
                return None
            return view.load_uploaded(upload.name, upload.getvalue(), available)
        files = view.shipped_suites()
        if not files:
            st.info("The server's suites/ folder holds no suite.", icon=":material/folder_off:")
            return None
        name = st.selectbox("Suite", list(files), key="s_file")
        return view.load_shipped(files[name or next(iter(files))], available)
    except SuiteError as exc:
        st.error("This suite cannot run; nothing was started.", icon=":material/error:")
        show_text(str(exc))
        return None


def _start(suite: Suite, text: str, models: list[str]) -> None:
    if not can_run(identity):  # the button was disabled; check again
        state["s_start_error"] = refusal("run", identity)
        return
    try:
        live = runner.start(SuitePlan(suite, text, tuple(models), current_user()))
    except (SuiteRunError, StoreError) as exc:
        state["s_start_error"] = str(exc)
        return
    state["s_start_error"] = None
    st.query_params["suite_run"] = str(live.id)


def start_panel() -> None:
    with st.container(border=True, key="suite-start"):
        left, right = st.columns([1, 1], gap="large")
        with left:
            loaded = _load_choice()
        if loaded is None:
            return
        suite, text = loaded
        cases = len(suite.prompts) * len(suite.tests) * suite.repeat
        with left:
            if suite.description:
                st.text(suite.description)
            st.caption(literal(view.size_text(suite, cases)))
            with st.expander("Suite file"):
                st.code(text, language="yaml")
        with right:
            models = st.multiselect(
                "Models",
                available,
                default=view.default_models(suite, available),
                format_func=lambda m: labels.get(m, m),
                key=f"s_models_{suite.name}",
            )
            st.button(
                "Run suite",
                type="primary",
                icon=":material/play_arrow:",
                disabled=not models or not can_run(identity),
                help=None if can_run(identity) else literal(refusal("run", identity)),
                key="s_run_button",
                on_click=_start,
                args=(suite, text, models),
            )
            if state.get("s_start_error"):
                st.error("The suite cannot run:", icon=":material/error:")
                show_text(state["s_start_error"])


# ---- running suites ------------------------------------------------------------------------------


def _live_card(live: LiveSuiteRun) -> None:
    p = live.progress()
    with st.container(border=True, key=f"live-{live.id}"):
        st.markdown(
            md(
                "**Running suite run #{n}: {suite}** on {models}",
                n=live.id,
                suite=p.suite,
                models=_models_text(p.models),
            )
        )
        st.progress(p.fraction, text=literal(view.progress_text(p)))
        if live.stopping:
            st.caption("Stopping after the case in flight…")
        else:
            st.button(
                "Stop",
                icon=":material/stop_circle:",
                key=f"stop-{live.id}",
                on_click=live.stop,
                disabled=not can_run(identity),
            )


def live_panel() -> None:
    """Every suite running in this server; when one ends, the whole page reruns."""
    active = runner.active()
    ids = [r.id for r in active]
    watched = state.get("s_watch", [])
    state["s_watch"] = ids
    if any(i not in ids for i in watched):
        st.rerun(scope="app")
    for live in active:
        _live_card(live)


# ---- results -------------------------------------------------------------------------------------


def _selected_run(runs: list[SuiteRunInfo]) -> SuiteRunInfo:
    ids = [r.id for r in runs]
    wanted = st.query_params.get("suite_run")
    if wanted and wanted.isdigit() and int(wanted) in ids and state.get("s_run_qp") != wanted:
        state["s_run"] = int(wanted)
    if state.get("s_run") not in ids:
        state["s_run"] = ids[0]
    by_id = {r.id: r for r in runs}
    chosen = st.selectbox(
        "Suite run", ids, key="s_run", format_func=lambda i: view.run_label(by_id[i])
    )
    st.query_params["suite_run"] = str(chosen)
    state["s_run_qp"] = str(chosen)
    return by_id[chosen]


def _case_details(rows: list[SuiteResultRow], case_id: str, run_id: int | None) -> None:
    with st.container(border=True, key="suite-case"):
        st.markdown(md("**Case {case}**: why each model passed or failed", case=case_id))
        st.dataframe(view.assertion_details(rows, case_id, labels), hide_index=True)
        if run_id is not None:
            st.page_link(
                HISTORY_PAGE,
                label=md("Open run #{n}: both answers, metrics, diff", n=run_id),
                icon=":material/open_in_new:",
                query_params={"run": str(run_id)},
            )


def results_view(runs: list[SuiteRunInfo]) -> None:
    info = _selected_run(runs)
    rows = store.suite_results(info.id)
    live = runner.live(info.id)
    running_here = live is not None and live.status == "running"
    st.caption(literal(view.run_state(info, running_here)))
    if running_here:
        st.caption("Still running: the results fill in as cases finish.")
    elif info.status == "running":
        st.warning(
            "This run is not running in this server: the server stopped while it ran, or the "
            "CLI is running it. What finished is shown.",
            icon=":material/warning:",
        )
    elif info.error:
        st.error("The run failed:", icon=":material/error:")
        show_text(info.error)
    if not rows:
        st.info("No case has finished yet.", icon=":material/hourglass_top:")
        return
    st.dataframe(view.summary(rows, info.models, labels), hide_index=True, key="suite-summary")
    counts = view.filter_counts(rows, info.models)
    which = st.segmented_control(
        "Show",
        view.FILTERS,
        format_func=lambda f: f"{view.FILTER_LABELS[f]} ({counts[f]})",
        key="s_filter",
        default="all",
        required=True,
    )
    m = view.matrix(rows, info.models, labels, which or "all")
    hint = "Select a cell to see its assertions and to open its run."
    if len(m.frame) > view.MAX_STYLED_ROWS:  # pandas' Styler doubles the page's time
        hint += f" (Cells are coloured up to {view.MAX_STYLED_ROWS} rows: filter to see them.)"
        data: Any = m.frame
    else:
        data = m.frame.style.map(view.cell_color, subset=m.model_columns)
    st.caption(literal(hint))
    event = st.dataframe(
        data,
        hide_index=True,
        on_select="rerun",
        selection_mode="single-cell",
        key=f"s_matrix_{info.id}_{which}",
        column_config={
            "case": st.column_config.TextColumn("case", width="small"),
            "name": st.column_config.TextColumn("name", width="large"),
            "run": st.column_config.LinkColumn("run", display_text=r"run=(\d+)$", width="small"),
        },
    )
    cells = event.selection.cells if event else []
    if cells:
        row = cells[0][0]
        _case_details(rows, str(m.frame.iloc[row]["case"]), m.run_for(row))
    text = store.suite_text(info.id)
    if text:
        with st.expander("Suite file, as it ran"):
            st.code(text, language="yaml")


# ---- regressions ---------------------------------------------------------------------------------


def regressions_view(current: str | None) -> None:
    names = store.suite_names()
    default = names.index(current) if current in names else 0
    suite = st.selectbox("Suite", names, index=default, key="s_reg_suite")
    if suite is None:
        return
    runs = [r for r in store.list_suite_runs(suite) if r.status != "running"]
    if len(runs) < 2:
        st.info("Run this suite twice to compare two runs.", icon=":material/compare:")
    else:
        by_id = {r.id: r for r in runs}
        ids = list(by_id)

        def name(i: int) -> str:
            return view.run_label(by_id[i])

        left, right = st.columns(2)
        before = left.selectbox("Before", ids, index=1, key=f"s_before_{suite}", format_func=name)
        after = right.selectbox("After", ids, index=0, key=f"s_after_{suite}", format_func=name)
        only = st.toggle("Only what changed", value=True, key="s_only_changes")
        frame, counts = view.regressions(
            store.suite_results(before), store.suite_results(after), labels, changed_only=only
        )
        cols = st.columns(4)
        for col, change in zip(cols, view.SHOWN_CHANGES, strict=True):
            col.metric(literal(change), counts[change])
        if frame.empty:
            st.info("Nothing changed between these two runs.", icon=":material/check_circle:")
        else:
            st.dataframe(frame, hide_index=True, key="suite-regressions")
    points = store.suite_pass_history(suite)
    if points:
        figure = view.pass_rate_figure(view.pass_rate_frame(points, labels), suite)
        st.plotly_chart(figure, key="suite-pass-rate")


# ---- the page ------------------------------------------------------------------------------------

st.title("Suites", anchor=False)
st.caption(
    "Many prompts on every model, each answer judged by assertions (promptfoo's YAML: prompts, "
    "tests, assert). Every case is logged as a run. A suite runs on the server: leave or reload "
    "this page and it keeps running."
)
start_panel()
if runner.active():
    st.fragment(live_panel, run_every=1)()
runs = store.list_suite_runs()
if not runs:
    st.info("No suite has run yet: pick one above and run it.", icon=":material/checklist:")
    st.stop()
results_tab, regressions_tab = st.tabs(["Results", "Regressions"])
with results_tab:
    results_view(runs)
with regressions_tab:
    selected = next((r.suite for r in runs if r.id == state.get("s_run")), None)
    regressions_view(selected)
