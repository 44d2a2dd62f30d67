"""`mementos show` pages like git on a terminal: one trace can be 2,161 lines.

The command runs in a pseudo-terminal, with $PAGER a script that records what it was given; stdout a
terminal -> the pager gets the whole text (LESS=-FRX when LESS is unset), --no-pager -> the terminal
does, stdout a pipe -> the pipe does, and the pager is never started.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from conftest import memento, row, write_jsonl
from mementos.ingest.pipeline import run_ingest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pager")
    # the block holds an OSC 52 clipboard write: the pager gets it escaped, like the terminal would
    block = "the block \x1b]52;c;cHduZWQ=\x07"
    src = write_jsonl(tmp / "t.jsonl", [row(memento([(block, "the memento")], answer="42"), problem="p?")])
    db = tmp / "w.duckdb"
    run_ingest(str(src), db, name="t", workers=0, progress=False, with_tokens=False)
    pager = tmp / "pager.sh"  # writes LESS, then the text it is given, to pager.sh.out
    pager.write_text('#!/bin/sh\necho "LESS=$LESS" > "$0.out"\ncat >> "$0.out"\n')
    pager.chmod(0o755)
    return db, pager


def run(warehouse, *args, stdout_is_terminal=True):
    """`show t:0` with stdin (and stdout, unless a pipe is asked for) a 100-column terminal: what the
    terminal shows, what the pipe got, and what the pager got (None: never started)."""
    db, pager = warehouse
    out_file = Path(f"{pager}.out")
    out_file.unlink(missing_ok=True)
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    env = {**os.environ, "PAGER": str(pager), "TERM": "xterm", "PYTHONPATH": str(REPO)}
    for name in ("LESS", "COLUMNS", "LINES"):  # the terminal's size is the pty's (pytest-xdist's workers set them)
        env.pop(name, None)
    proc = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "show", "t:0", "--db", str(db), *args],
                            stdin=child, stdout=child if stdout_is_terminal else subprocess.PIPE, stderr=child,
                            env=env, cwd=REPO)
    os.close(child)
    piped = proc.stdout.read().decode() if proc.stdout else ""
    shown = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(main)
    assert proc.wait(timeout=60) == 0, shown
    return shown.decode(), piped, out_file.read_text() if out_file.exists() else None


# What `show t:0` prints 100 columns wide (no colour: click strips it for a pager other than less).
PAGE = """\
trace t:0  dataset t  domain math  source unit  difficulty 3  status ok
1 pairs · – block tokens → – memento tokens
╭─ problem ────────────────────────────────────────────────────────────────────────────────────────╮
│ p?                                                                                               │
╰──────────────────────────────────────────────────────────────────────────────────────────────────╯
                                                                                                    
 #   block                                         memento                        tokens      ratio 
 ────────────────────────────────────────────────────────────────────────────────────────────────── 
 0   the block \\x1b]52;c;cHduZWQ=\\x07              the memento                         –          – 
                                                                                     → –   0.423 ch 
                                                                                                    
╭─ answer ─────────────────────────────────────────────────────────────────────────────────────────╮
│ 42                                                                                               │
╰──────────────────────────────────────────────────────────────────────────────────────────────────╯
"""


def test_on_a_terminal_the_trace_goes_through_the_pager(warehouse):
    shown, _, paged = run(warehouse)
    assert shown == ""
    assert paged == "LESS=-FRX\n" + PAGE + "\n"  # click ends the text with a newline of its own


def test_no_pager_prints_to_the_terminal(warehouse):
    shown, _, paged = run(warehouse, "--no-pager")
    assert paged is None
    # rich colours what it sends to a terminal (SGR: ESC [ ... m); nothing else may be an escape sequence
    plain = re.sub(r"\x1b\[[0-9;]*m", "", shown)
    assert plain.replace("\r\n", "\n") == PAGE  # the terminal turns each newline into CR LF


def test_a_pipe_never_gets_a_pager(warehouse):
    shown, piped, paged = run(warehouse, stdout_is_terminal=False)
    assert (paged, shown) == (None, "")
    assert piped.splitlines()[0] == "trace t:0  dataset t  domain math  source unit  difficulty 3  status ok"
