"""`mementos serve`: a local, read-only web explorer over the warehouse (app.py has the routes).

    serve(db)        runs it with uvicorn on 127.0.0.1:8000 until Ctrl-C
    create_app(db)   the ASGI app, for a server of your own or a test
"""

from __future__ import annotations

import socket
from pathlib import Path

from mementos.foundation.errors import WarehouseError
from mementos.warehouse.explorer import search
from mementos.warehouse.explorer.app import create_app

__all__ = ["create_app", "serve"]


def serve(db: str | Path, host: str = "127.0.0.1", port: int = 8000, sql_time_limit: float = 5.0,
          max_rows: int = 1000, echo=print) -> None:
    """Serve the explorer over the warehouse `db` until Ctrl-C (or SIGTERM), saying where."""
    import uvicorn

    from mementos.warehouse import guard

    guard.require_warehouse(db)  # a missing or damaged warehouse is one line, before the server starts
    if sql_time_limit <= 0:
        raise WarehouseError(f"--sql-time-limit must be more than 0 seconds, not {sql_time_limit:g}")
    if max_rows < 1:
        raise WarehouseError(f"--max-rows must be 1 or more, not {max_rows}")
    app = create_app(db, sql_time_limit, max_rows)
    sock = listening_socket(host, port)
    shown = f"[{host}]" if ":" in host else host
    echo(f"mementos serve: http://{shown}:{sock.getsockname()[1]}/ (the warehouse {db}, read-only; "
         f"Ctrl-C stops it)")
    if not search.indexed(db):
        echo(f"mementos serve: text search reads every text; `mementos build --db {db} --select {search.MODEL}+` "
             f"builds its index")
    if host not in ("127.0.0.1", "localhost", "::1"):
        echo(f"mementos serve: listening on {host}: anyone who can reach this machine can read the warehouse")
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    try:
        uvicorn.Server(config).run(sockets=[sock])  # shuts down gracefully on SIGINT or SIGTERM, then re-raises it
    except KeyboardInterrupt:
        pass
    echo("mementos serve: stopped")


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (port 0: any free one), or one line saying why it cannot be."""

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as exc:
        sock.close()
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise WarehouseError(f"cannot listen on {host}:{port}: {why}; choose another --port "
                             f"(or --host)") from None
    sock.listen(128)
    return sock
