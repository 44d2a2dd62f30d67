"""Where the files that ship with mementos are: the SQL of the stored tables and views (sql/),
the saved queries (sql/queries/), the bundled models (models/) and the report's templates.

pyproject.toml maps the repository's top-level sql/ and models/ into the installed package as
mementos.sql and mementos.models, so importlib.resources finds them in a wheel and in a clone
(an editable install) alike.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from mementos.foundation.errors import WarehouseError

PACKAGES = {"sql": "mementos.sql", "queries": "mementos.sql.queries", "models": "mementos.models",
            "templates": "mementos.warehouse.templates"}


def resource_dir(name: str) -> Path:
    """The directory holding the `name` resource ('sql', 'queries', 'models' or 'templates')."""
    try:
        directory = Path(str(resources.files(PACKAGES[name])))  # a wheel unpacks to real directories
    except ModuleNotFoundError as error:
        raise WarehouseError(f"mementos is installed without its {name} files ({error}); "
                             "reinstall it from a wheel or a clone") from None
    return directory
