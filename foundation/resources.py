"""Where the files that ship with mementos are: the SQL of the stored tables and views (sql/),
the saved queries (sql/queries/), the bundled models (models/) and the report's templates.

In the repository sql/ and models/ are top-level folders (warehouse.md, "Layout"); an installed
wheel carries them inside the foundation package, as foundation/bundled/sql and
foundation/bundled/models (pyproject.toml maps them there, so the wheel installs no top-level
`sql` or `models` package for other projects to collide with). The report's template is
package data of warehouse/ in both. Every reader asks `resource_dir`, which looks in the
installed package first and falls back to the source tree (a clone, or an editable install,
has no foundation/bundled/).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from foundation.errors import WarehouseError

# name -> (the package holding it, its path inside that installed package, its path in the source tree)
RESOURCES = {
    "sql": ("foundation", ("bundled", "sql"), ("sql",)),
    "queries": ("foundation", ("bundled", "sql", "queries"), ("sql", "queries")),
    "models": ("foundation", ("bundled", "models"), ("models",)),
    # asked for by warehouse/report.py only, when `warehouse` is imported already: no import edge
    "templates": ("warehouse", ("templates",), ("warehouse", "templates")),
}


def resource_dir(name: str) -> Path:
    """The directory holding the `name` resource ('sql', 'queries', 'models' or 'templates')."""
    package_name, installed, source = RESOURCES[name]
    package = Path(str(resources.files(package_name)))  # an unpacked wheel or a checkout: a real directory
    candidates = [package.joinpath(*installed), package.parent.joinpath(*source)]
    for directory in candidates:
        if directory.is_dir():
            return directory
    raise WarehouseError(f"mementos is installed without its {name} files (looked in "
                         f"{' and '.join(map(str, candidates))}); reinstall it from a wheel or a clone")
