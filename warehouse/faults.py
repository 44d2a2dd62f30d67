"""Named crash points for the reliability tests.

`checkpoint("ingest.before_commit")` kills the process with SIGKILL when the
environment variable MEMENTOS_KILL_AT names that point (comma-separated list
allowed). It costs one dict lookup otherwise; real runs never set it.

MEMENTOS_STOP_AT works the same way but stops the process with SIGSTOP, so that a
test can look at the warehouse while a command is held at that point, then let
it finish with SIGCONT.
"""

from __future__ import annotations

import os
import signal

ENV = "MEMENTOS_KILL_AT"
STOP_ENV = "MEMENTOS_STOP_AT"


def checkpoint(name: str) -> None:
    wanted = os.environ.get(ENV)
    if wanted and name in wanted.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
    stop = os.environ.get(STOP_ENV)
    if stop and name in stop.split(","):
        os.kill(os.getpid(), signal.SIGSTOP)
