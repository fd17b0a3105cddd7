"""The UI-free logic of each page: how figures read, tables, charts, diffs, the Compare page's
session. Pages (``pages/``) draw what these return; nothing here imports streamlit."""
