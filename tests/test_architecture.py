"""The architecture, enforced (docs/architecture.md): which layer may import which, the two hard
boundaries (no streamlit inside qwen_dash/; torch and transformers only on the worker side), and
no import cycles inside the package."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "qwen_dash"

# Each layer and the layers it may import (besides itself). Listed once, read by the tests.
LAYERS: dict[str, set[str]] = {
    "core": set(),
    "store": {"core"},
    "engine": {"core"},
    "worker": {"core"},
    "quality": {"core"},
    "services": {"core", "store", "engine", "quality"},
    "views": {"core", "store", "engine", "quality", "services"},
    "bench": {"core", "store", "engine", "worker", "views", "quality", "services"},
    "cli": {"core", "store", "engine", "views", "quality", "services", "bench"},
    "__main__": {"cli"},
}
HEAVY = ("torch", "transformers")
# Every layer but the worker (and what drives it from this process: the bench).
LIGHT_LAYERS = ("core", "store", "engine", "views", "quality", "services", "cli")


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


MODULES = dict(modules())


def imported(path: Path, name: str) -> set[str]:
    """Every module this file imports, anywhere in it (top level, functions, TYPE_CHECKING)."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                out.add(candidate if candidate in MODULES else base)
    return out


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "qwen_dash" and len(parts) > 1 else None


def test_every_module_belongs_to_a_known_layer() -> None:
    unknown = {m for m in MODULES if m != "qwen_dash" and layer(m) not in LAYERS}
    assert not unknown, f"modules outside the layers of docs/architecture.md: {sorted(unknown)}"


def test_nothing_in_qwen_dash_imports_streamlit() -> None:
    offenders = {
        m
        for m, path in MODULES.items()
        if any(i.split(".")[0] == "streamlit" for i in imported(path, m))
    }
    assert not offenders, f"qwen_dash/ must not import streamlit: {sorted(offenders)}"


def test_torch_and_transformers_are_imported_on_the_worker_side_only() -> None:
    offenders = {
        m
        for m, path in MODULES.items()
        if layer(m) in LIGHT_LAYERS and any(i.split(".")[0] in HEAVY for i in imported(path, m))
    }
    assert not offenders, f"torch/transformers outside qwen_dash.worker: {sorted(offenders)}"


def test_each_layer_imports_only_the_layers_below_it() -> None:
    wrong = []
    for m, path in MODULES.items():
        own = layer(m)
        if own is None:
            continue
        for target in imported(path, m):
            other = layer(target)
            if other is not None and other != own and other not in LAYERS[own]:
                wrong.append(f"{m} imports {target}")
    assert not wrong, "imports against the layering:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles_inside_the_package() -> None:
    graph = {m: {t for t in imported(p, m) if t in MODULES} for m, p in MODULES.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    "module",
    [
        "qwen_dash.core.specs",
        "qwen_dash.core.metrics",
        "qwen_dash.engine",
        "qwen_dash.store",
        "qwen_dash.views.charts",
        "qwen_dash.views.compare",
        "qwen_dash.views.history",
        "qwen_dash.views.models",
        "qwen_dash.services.suite_runner",
        "qwen_dash.cli",
    ],
)
def test_importing_a_light_layer_does_not_load_torch(module: str) -> None:
    """In a fresh interpreter, as the Streamlit server and the CLI import them."""
    code = f"import sys, {module}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", f"importing {module} loaded {out.stdout.strip()}"


def test_the_scanner_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The rules above can fail: a store module that imports the engine, or torch, is seen."""
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\nfrom qwen_dash.engine import ModelPool\n")
    found = imported(bad, "qwen_dash.store.bad")
    assert "torch" in found and "qwen_dash.engine" in found
    assert "engine" not in LAYERS["store"]


def test_pages_are_thin_they_reach_no_model_and_no_sql() -> None:
    """A page never talks to a model or to SQL directly: it goes through qwen_dash."""
    forbidden = ("sqlalchemy", "torch", "transformers", "qwen_dash.worker")
    wrong = []
    for path in [ROOT / "app.py", *sorted((ROOT / "pages").rglob("*.py"))]:
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for target in imported(path, name):
            if target.startswith(forbidden):
                wrong.append(f"{path.relative_to(ROOT)} imports {target}")
    assert not wrong, "\n".join(wrong)
