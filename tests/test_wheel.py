"""The wheel built from the repository installs and runs anywhere: in a fresh venv, from an empty
working directory, `mementos sample`, `ingest`, `build`, `report` and `export` work on a small
sample. Before the SQL, the models and the report's template shipped as package data, `ingest`
failed there (sql/schema.sql was looked up in the source tree).

No network: the wheel is built with the running venv's setuptools (--no-build-isolation), and
the fresh venv sees the running venv's site-packages through a .pth file (a .pth file listed in
another .pth file is not run, so the editable install of the repository stays invisible).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


MAPPED = SETUPTOOLS["package-dir"]  # package -> its folder in the repository


def _sources() -> list[str]:
    """The repository paths the wheel is built from: the `mementos` folder (whose cli.py links to
    ../cli.py), cli.py, and every folder pyproject.toml's package-dir maps into the package."""
    return ["pyproject.toml", PYPROJECT["project"]["readme"], "cli.py", "mementos"] + sorted(set(MAPPED.values()))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the repository's sources, so the build leaves nothing in the work tree."""
    src = tmp_path_factory.mktemp("src")
    for name in _sources():
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "--quiet", "-w", str(out), str(src)], check=True)
    [built] = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    env = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    deps = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (Path(purelib) / "mementos-test-deps.pth").write_text("".join(f"{d}\n" for d in deps))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "--ignore-installed",
                    "--quiet", str(wheel)], check=True)
    return env


def _run(venv: Path, cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MEMENTOS_DB", "MEMENTOS_MODELS")}
    result = subprocess.run([str(venv / "bin" / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_the_wheel_ships_the_sql_models_and_template(wheel):
    def shipped(folder: Path) -> list[Path]:  # Python's bytecode cache is never shipped
        return [p for p in folder.iterdir() if p.name != "__pycache__"]

    names = set(zipfile.ZipFile(wheel).namelist())
    expected = ({f"mementos/sql/{p.name}" for p in (REPO / "sql").glob("*.sql")}
                | {f"mementos/sql/queries/{p.name}" for p in (REPO / "sql" / "queries").glob("*.sql")}
                | {f"mementos/models/{p.name}" for p in (REPO / "models").glob("*.sql")}
                | {f"mementos/warehouse/templates/{p.name}" for p in shipped(REPO / "warehouse" / "templates")}
                | {f"mementos/warehouse/explorer/{p.relative_to(REPO / 'warehouse' / 'explorer')}"
                   for folder in ("templates", "static") for p in shipped(REPO / "warehouse" / "explorer" / folder)})
    assert expected - names == set()


def test_the_wheel_installs_one_import_package_and_nothing_beside_it(wheel):
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"mementos"}


def test_the_wheel_ships_every_module_of_the_packages(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {f"{package.replace('.', '/')}/{p.relative_to(REPO / folder)}" for package, folder in MAPPED.items()
               for p in (REPO / folder).rglob("*.py") if "__pycache__" not in p.parts}
    assert (modules | {"mementos/__init__.py", "mementos/cli.py"}) - names == set()  # a subpackage pyproject misses


def test_the_installed_commands_run_from_any_directory(venv, tmp_path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run(venv, work, "python", "-c", "import mementos.cli as cli, mementos.foundation.resources as r; "
                                             "print(cli.__file__); print(r.resource_dir('models'))")
    for path in where.split():
        assert Path(path).is_relative_to(venv) and not Path(path).is_relative_to(REPO), path
    # stderr is not a terminal: no progress bars; each command's closing summary on stdout says it worked
    assert "wrote 60 traces" in _run(venv, work, "mementos", "sample", "--traces", "60", "--out", "s", "--seed", "3")
    assert "(60 default, 60 full)" in _run(venv, work, "mementos", "ingest", "s", "--db", "w.duckdb", "--config",
                                           "all", "--workers", "1")
    models = [p.read_text() for p in (REPO / "models").glob("*.sql")]
    plain = len([m for m in models if "\non_request: true" not in m])  # the search index waits to be asked for
    assert f"build w.duckdb: {plain} built" in _run(venv, work, "mementos", "build", "--db", "w.duckdb")
    assert "wrote report.html" in _run(venv, work, "mementos", "report", "--db", "w.duckdb")
    assert "manifest: ex/manifest.json" in _run(venv, work, "mementos", "export", "memento", "--db", "w.duckdb", "--out",
                                                "ex")
    assert sorted(p.name for p in (work / "ex").iterdir()) == ["README.md", "manifest.json", "test.jsonl",
                                                               "train.jsonl", "validation.jsonl"]
