"""Where the files that ship with mementos are: the SQL of the stored tables and views (sql/),
the saved queries (sql/queries/), the bundled models (models/) and the report's templates.

pyproject.toml maps the repository's top-level folders into the installed `mementos` package
(foundation/ to mementos/foundation, sql/ to mementos/sql, ...), so a resource lies at the same
path relative to foundation/'s parent in a clone (the repository root) and in an installed wheel
(the package's folder).
"""

from __future__ import annotations

from pathlib import Path

from mementos.foundation.errors import WarehouseError

ROOT = Path(__file__).resolve().parent.parent  # the repository root, or the installed `mementos` folder
RESOURCES = {"sql": ("sql",), "queries": ("sql", "queries"), "models": ("models",),
             "templates": ("warehouse", "templates")}


def resource_dir(name: str) -> Path:
    """The directory holding the `name` resource ('sql', 'queries', 'models' or 'templates')."""
    directory = ROOT.joinpath(*RESOURCES[name])
    if not directory.is_dir():
        raise WarehouseError(f"mementos is installed without its {name} files (looked in {directory}); "
                             "reinstall it from a wheel or a clone")
    return directory
