"""Named crash points for the reliability tests.

`checkpoint("ingest.before_commit")` kills the process with SIGKILL when the
environment variable MEMENTOS_KILL_AT names that point (comma-separated list
allowed). `name@N` fires on the N-th pass only (e.g. `build.before_swap@3`,
the third model's swap). It costs one dict lookup otherwise; real runs never set it.

MEMENTOS_STOP_AT works the same way but stops the process with SIGSTOP, so that a
test can look at the warehouse while a command is held at that point, then let
it finish with SIGCONT.
"""

from __future__ import annotations

import os
import signal

ENV = "MEMENTOS_KILL_AT"
STOP_ENV = "MEMENTOS_STOP_AT"

_passes: dict[tuple[str, str], int] = {}  # (variable, point) -> passes so far


def _hit(name: str, variable: str) -> bool:
    wanted = os.environ.get(variable)
    if not wanted:
        return False
    points = wanted.split(",")
    if name in points:
        return True
    if not any(p.startswith(name + "@") for p in points):
        return False
    n = _passes[variable, name] = _passes.get((variable, name), 0) + 1
    return f"{name}@{n}" in points


def checkpoint(name: str) -> None:
    if _hit(name, ENV):
        os.kill(os.getpid(), signal.SIGKILL)
    if _hit(name, STOP_ENV):
        os.kill(os.getpid(), signal.SIGSTOP)
