"""Every third-party package the code imports is declared in pyproject.toml, in the right place:
what the installed package imports (cli.py and the packages pyproject.toml's setuptools config lists)
is a runtime dependency or in a runtime extra (`spark`), never only in `dev`; every runtime dependency
is imported by the installed package (else it belongs in `dev`, or nowhere); what the tests and
bench/ import besides is in an extra. Imports are read with `ast`, function-level ones included;
import names map to distributions through importlib.metadata.packages_distributions()."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
DEV_EXTRAS = {"dev"}  # extras for working on mementos; the others (spark) are for running it


def _distribution(requirement: str) -> str:
    return _normal(re.match(r"[A-Za-z0-9._-]+", requirement).group(0))


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project_sources() -> tuple[set[str], list[Path]]:
    """The project's top-level import names and its .py files, from pyproject.toml's setuptools config
    (each package's folder is its package-dir entry, else its dotted name as a path)."""
    mapped = SETUPTOOLS.get("package-dir", {})
    packages = SETUPTOOLS["packages"]
    folders = {REPO / mapped.get(p, p.replace(".", "/")) for p in packages}
    files = {path.resolve() for folder in folders for path in folder.rglob("*.py")}  # mementos/cli.py is cli.py
    return {p.split(".")[0] for p in packages}, sorted(files)


def imported(files: list[Path]) -> dict[str, str]:
    """Top-level name of every absolute import -> the first file importing it."""
    out = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                out.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return out


def third_party(imports: dict[str, str], own: set[str]) -> dict[str, str]:
    """distribution -> a file importing it, for every import that is neither stdlib nor the project's."""
    by_module = packages_distributions()
    out = {}
    for name, where in sorted(imports.items()):
        if name in sys.stdlib_module_names or name == "__future__" or name in own:
            continue
        assert name in by_module, f"{where} imports {name}, which no installed distribution provides"
        for distribution in by_module[name]:
            out.setdefault(_normal(distribution), where)
    return out


DEPENDENCIES = {_distribution(r) for r in PYPROJECT["project"]["dependencies"]}
EXTRAS = {extra: {_distribution(r) for r in reqs} for extra, reqs in PYPROJECT["project"]["optional-dependencies"].items()}
RUNTIME_EXTRAS = set().union(*(reqs for extra, reqs in EXTRAS.items() if extra not in DEV_EXTRAS))
OWN, FILES = project_sources()
RUNTIME = third_party(imported(FILES), OWN)


def test_the_project_sources_are_found():
    assert OWN == {"mementos"} and REPO / "cli.py" in FILES and REPO / "warehouse" / "engine.py" in FILES


def test_every_package_the_installed_code_imports_is_a_runtime_dependency():
    undeclared = {d: where for d, where in RUNTIME.items() if d not in DEPENDENCIES | RUNTIME_EXTRAS}
    assert undeclared == {}


def test_every_runtime_dependency_is_imported_by_the_installed_code():
    assert DEPENDENCIES - set(RUNTIME) == set()


def test_what_the_tests_and_benchmarks_import_is_declared():
    helpers = {p.stem for p in (REPO / "tests").glob("*.py")} | {p.stem for p in (REPO / "bench").glob("*.py")}
    files = sorted((REPO / "tests").rglob("*.py")) + sorted((REPO / "bench").rglob("*.py"))
    used = third_party(imported(files), OWN | helpers)
    declared = DEPENDENCIES.union(*EXTRAS.values())
    assert {d: where for d, where in used.items() if d not in declared} == {}
