"""Trends: how the models differ over time, from every logged run (plotly)."""

from __future__ import annotations

import streamlit as st

from pages._ui.filters import run_filters
from pages._ui.navigation import COMPARE_PAGE, ensure_entrypoint
from pages._ui.resources import model_labels, pool_or_stop, store_or_stop
from pages._ui.text import md
from qwen_dash.views import charts
from qwen_dash.views.display import NA
from qwen_dash.views.models import kv_ratio

ensure_entrypoint()
TABS = ("Over time", "Distributions", "A - B", "Memory vs input")
pool = pool_or_stop()
store = store_or_stop()
labels = model_labels(pool)

st.title("Trends", anchor=False)
st.caption(
    "One line per model, weights source and timing mode: twins and real weights, concurrent "
    "and isolated runs are never mixed in one series. Answers that failed or were stopped are "
    "left out."
)
filters = run_filters(store, labels, "t_", text=False)
bucket = st.segmented_control(
    "Group by",
    ["hour", "day"],
    key="t_bucket",
    default="day",
    required=True,
    persist_state="session",
)

frame = charts.load_generations(store, filters, labels)
ok = frame[frame["status"] == "ok"] if not frame.empty else frame
if ok.empty:
    st.info(
        "Nothing to chart yet: no answer matches these filters. Send a prompt on the Compare "
        "page (or widen the filters) and the charts fill in.",
        icon=":material/monitoring:",
    )
    st.page_link(COMPARE_PAGE, label="Go to Compare", icon=":material/compare_arrows:")
    st.stop()

# Only the open tab is drawn: each tab switch reruns the page (st.tabs tracks its state), so a
# load sends and draws one tab's charts, not all thirteen.
over_time, spread, paired, memory = st.tabs(TABS, key="t_tab", on_change="rerun")

with over_time:
    if over_time.open is not False:
        trend = charts.trend_frame(store.trends(filters, bucket=bucket or "day"), labels)
        st.dataframe(
            charts.summary_table(ok, list(charts.TREND_CHARTS)), hide_index=True, height="content"
        )
        left, right = st.columns(2)
        for i, metric in enumerate(charts.TREND_CHARTS):
            with left if i % 2 == 0 else right:
                st.plotly_chart(
                    charts.trend_figure(trend, metric, bucket or "day"), key=f"trend-{metric}"
                )

with spread:
    if spread.open is not False:
        st.caption(
            md(
                "Boxes from every answer of the newest {n} matching runs; the points drawn are "
                "the outliers (hover for the run).",
                n=f"{charts.MAX_RUNS:,}",
            )
        )
        left, right = st.columns(2)
        for i, metric in enumerate(charts.TREND_CHARTS):
            with left if i % 2 == 0 else right:
                st.plotly_chart(charts.distribution_figure(ok, metric), key=f"dist-{metric}")
        st.plotly_chart(charts.output_length_figure(ok), key="output-length")

with paired:
    if paired.open is not False:
        keys = list(labels)
        if len(keys) < 2:
            st.info("Paired differences need two models.")
        else:
            a_col, b_col, _ = st.columns([1, 1, 2])
            model_a = a_col.selectbox("Model A", keys, index=0, format_func=labels.get, key="t_a")
            model_b = b_col.selectbox("Model B", keys, index=1, format_func=labels.get, key="t_b")
            diffs = charts.paired_frame(
                store.paired_differences(model_a, model_b, filters, limit=charts.MAX_RUNS)
            )
            if model_a == model_b:
                st.info("Pick two different models.")
            elif diffs.empty:
                st.info("No run where both answered yet.", icon=":material/monitoring:")
            else:
                la, lb = labels[model_a], labels[model_b]
                st.caption(
                    md(
                        "Each point is one run where both answered, of the newest {n} such runs: "
                        "{la} minus {lb}. Above zero: {la} was higher (slower to first token, "
                        "faster decoding, more memory). Colour separates the weights sources "
                        "and the timing mode.",
                        n=f"{charts.MAX_RUNS:,}",
                        la=la,
                        lb=lb,
                    )
                )
                left, right = st.columns(2)
                for i, metric in enumerate(charts.TREND_CHARTS):
                    with left if i % 2 == 0 else right:
                        fig = charts.paired_figure(diffs, metric, la, lb)
                        st.plotly_chart(fig, key=f"paired-{metric}")

with memory:
    if memory.open is not False:
        shown = {k: pool.specs[k] for k in pool.workers}
        kv = {k: spec.kv_bytes_per_token() for k, spec in shown.items()}
        facts = " · ".join(f"{labels[k]}: {v:,} B/token (bf16)" if v else NA for k, v in kv.items())
        ratio = kv_ratio(shown)
        growth = f" {ratio} Long prompts cost it that much more memory." if ratio else ""
        st.caption(
            md(
                "KV cache per token, from the architectures: {facts}.{growth} Points: every "
                "answer of the newest {n} matching runs.",
                facts=facts,
                growth=growth,
                n=f"{charts.MAX_RUNS:,}",
            )
        )
        st.plotly_chart(charts.memory_vs_input_figure(ok), key="memory-vs-input")
        slopes = charts.memory_slopes(ok)
        st.dataframe(
            slopes,
            hide_index=True,
            column_config={
                "bytes_per_input_token": st.column_config.NumberColumn(
                    "Measured bytes per input token", format="%,.0f"
                )
            },
        )
