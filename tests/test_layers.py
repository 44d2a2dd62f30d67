"""Dependencies run one way (warehouse.md, "Data flow"): every import of the project's code is checked.

    cli.py  ->  ingest/ | warehouse/ (analytics) | sample/  ->  foundation/

All of them install as parts of the one `mementos` package (`mementos.ingest`, ...).
`foundation` imports none of the others; `ingest`, `warehouse` and `sample` import
`foundation` and never each other; nothing imports `cli.py`. Every import statement counts,
including `from x import y` inside a function (a lazy import is still a dependency). Within a
package, modules import each other without cycles.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("foundation", "ingest", "warehouse", "sample")  # repository folders, installed as mementos.<name>
# What each part may import besides itself (third-party and standard modules aside).
ALLOWED = {
    "cli": {"foundation", "ingest", "warehouse", "sample"},
    "ingest": {"foundation"},
    "warehouse": {"foundation"},
    "sample": {"foundation"},
    "mementos": {"foundation"},  # mementos/__init__.py, the Python API: `mementos.connect`
    "foundation": set(),
}
PARTS = set(ALLOWED)


def project_files() -> dict[str, Path]:
    """Module name -> file, for cli.py and every module of the packages."""
    files = {"mementos.cli": REPO / "cli.py", "mementos": REPO / "mementos" / "__init__.py"}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = ("mementos",) + path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            files[name] = path
    return files


def imports(module: str, source: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, imported module) for every import statement in `source`, at any depth.

    `from a.b import c` names a.b.c when that is a module of the project, else a.b;
    relative imports are resolved against `module`.
    """
    known = set(project_files())
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.append((node.lineno, full if full in known else base))
    return out


def top(name: str) -> str:
    """The part a module belongs to: 'ingest' for mementos.ingest.parser, 'mementos' for the package's
    own __init__, the first name for anything else (duckdb, os)."""
    parts = name.split(".")
    return parts[1] if parts[0] == "mementos" and len(parts) > 1 else parts[0]


def violations(module: str, path: Path, source: str) -> list[str]:
    here = top(module)
    found = []
    for line, target in imports(module, source, path.name == "__init__.py"):
        there = top(target)
        if there in PARTS and there != here and there not in ALLOWED[here]:
            found.append(f"{path.relative_to(REPO)}:{line}: {here} -> {there} (imports {target})")
    return list(dict.fromkeys(found))


def test_every_import_follows_the_layers():
    found = []
    for module, path in project_files().items():
        found += violations(module, path, path.read_text(encoding="utf-8"))
    assert found == []


def test_a_lazy_import_against_the_layers_is_caught_with_its_file_and_line():
    source = "import os\n\ndef f():\n    from mementos.ingest.loader import load_run\n    return load_run\n"
    path = REPO / "warehouse" / "engine.py"
    assert violations("mementos.warehouse.engine", path, source) == [
        "warehouse/engine.py:4: warehouse -> ingest (imports mementos.ingest.loader)"]


def test_no_import_cycles_between_modules_of_a_package():
    files = project_files()
    graph = {m: sorted({t for _, t in imports(m, p.read_text(encoding="utf-8"), p.name == "__init__.py")
                        if t in files and t != m and top(t) == top(m)})
             for m, p in files.items()}
    cycles, state = [], {}

    def visit(m, stack):
        state[m] = "open"
        for n in graph[m]:
            if state.get(n) == "open":
                cycles.append(" -> ".join(stack[stack.index(n):] + [n]))
            elif n not in state:
                visit(n, stack + [n])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == []
