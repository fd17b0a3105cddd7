"""Streamlit pieces the pages share, one module per kind: navigation (and the entry-point
workaround), resources (the pool and the store), the sidebar, widgets that draw answers and
metrics, filters, and the Compare form's state. Logic lives in qwen_dash; these only draw."""
