"""Imports point down only: a module never imports from a layer above its own.

The layers, top to bottom (a module may import its own layer and any layer below it):

    webui.py -> ui -> clvp -> gpt_sovits (front door) -> gpt_sovits.infer -> gpt_sovits.train
    -> gpt_sovits.data -> gpt_sovits.pretrained -> gpt_sovits.models -> gpt_sovits.text / device
    -> tools (data-preparation stages) -> core (audio I/O, atomic files, jobs, errors)

Every import counts, including the ones inside functions and under ``TYPE_CHECKING``: a deferred import
is still a dependency. CLVP sits above gpt_sovits because its trainer uses the shared training loop;
the synthesiser is handed scorers by its callers, so gpt_sovits never imports clvp.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("webui", "ui", "clvp", "gpt_sovits", "tools", "core")

# Top first. A module belongs to the most specific (longest) prefix that matches it.
LAYERS: list[tuple[str, ...]] = [
    # The synthesis CLI composes the synthesiser with the CLVP reranker, as the web UI does.
    ("webui", "gpt_sovits.infer.__main__"),
    ("ui",),
    ("clvp",),
    ("gpt_sovits",),  # the front door: gpt_sovits/__init__.py
    ("gpt_sovits.infer",),
    ("gpt_sovits.train",),
    ("gpt_sovits.data",),
    ("gpt_sovits.pretrained",),
    ("gpt_sovits.models",),
    ("gpt_sovits.text", "gpt_sovits.device"),
    ("tools",),
    ("core",),
]


def layer_of(module: str) -> int:
    best, best_len = -1, -1
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = rank, len(prefix)
    return best


def project_modules() -> dict[str, Path]:
    found = {"webui": REPO / "webui.py"}
    for pkg in PACKAGES[1:]:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imported_modules(path: Path, module: str, known: set[str]) -> set[str]:
    """Project modules imported anywhere in ``path`` (``from a import b`` counts a.b when it is a module)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            submodules = {f"{base}.{alias.name}" for alias in node.names} & known
            # ``from pkg import mod`` depends on pkg.mod; ``from pkg import name`` on pkg itself.
            out.update(submodules if submodules else {base})
    return {m for m in out if m.split(".")[0] in PACKAGES}


def violations() -> list[str]:
    modules = project_modules()
    bad = []
    for module, path in modules.items():
        own = layer_of(module)
        for target in sorted(imported_modules(path, module, set(modules))):
            if target != module and layer_of(target) < own:
                bad.append(f"{path.relative_to(REPO)}: imports {target} (a layer above {module})")
    return bad


def test_every_project_module_has_a_layer():
    assert [m for m in project_modules() if layer_of(m) < 0] == []


def test_imports_point_down_only():
    assert violations() == []


@pytest.mark.parametrize(
    ("source", "module", "expected_bad"),
    [
        ("from ui.context import AppContext\n", "gpt_sovits.infer.x", True),
        ("def f():\n    import clvp\n", "gpt_sovits.infer.x", True),
        ("from gpt_sovits.models import s1\n", "core.audio", True),
        ("from core.fsutil import atomic_write_text\n", "tools.slice", False),
        ("from gpt_sovits.text import clean_text\n", "gpt_sovits.data.x", False),
    ],
)
def test_checker_sees_an_upward_import(tmp_path, source, module, expected_bad):
    path = tmp_path / "mod.py"
    path.write_text(source)
    targets = imported_modules(path, module, set(project_modules()))
    upward = any(layer_of(t) < layer_of(module) for t in targets)
    assert upward is expected_bad
