"""The SQL execution worker of the ``sql`` scorer: a separate process, standard library only.

Started as ``python -I _sql_worker.py <parent pid>`` (by file path, so it imports nothing from the project;
on Linux it is killed when its parent dies). It prints
``{"ready": true}``, then reads one JSON request per line on stdin, ``{"db": path, "sql": str, "maxRows": n}``,
and answers one JSON line on stdout:

- ``{"ok": true, "rows": n, "distinct": n, "columns": n, "digest": hex, "preview": [row, ...]}``, where
  ``digest`` is the SHA-256 of the *set* of result rows (order and duplicates ignored, BIRD's set equality):
  each row canonicalised (an integral float equals the integer, as ``1 == 1.0`` in Python), JSON-encoded,
  sorted and joined;
- ``{"ok": false, "error": "<message>"}`` for an SQLite error, a statement the authorizer refused, or more
  than ``maxRows`` rows.

Each database is opened read-only (``file:...?mode=ro&immutable=1``, ``PRAGMA query_only``) and guarded by an
authorizer that allows reading only: SELECT, reading columns, functions (not ``load_extension``), recursive
CTEs and the read-only introspection pragmas used as table-valued functions. ATTACH is refused (on a read-only
connection it could still create files). SQLite's heap is capped at 1 GiB (``PRAGMA hard_heap_limit``). The
parent kills this process when a query runs past its timeout.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import sqlite3
import sys
from urllib.parse import quote

READ_ONLY_PRAGMAS = {"table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list"}
DENIED_FUNCTIONS = {"load_extension"}
PREVIEW_ROWS = 3
PREVIEW_CHARS = 200
HEAP_LIMIT_BYTES = 1 << 30  # SQLite's own allocations: a query needing more fails with "out of memory"


def authorizer(action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None) -> int:
    if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE):
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION:
        return sqlite3.SQLITE_DENY if (arg2 or "").lower() in DENIED_FUNCTIONS else sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in READ_ONLY_PRAGMAS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_UPDATE and arg1 in ("sqlite_master", "sqlite_schema"):
        return sqlite3.SQLITE_OK  # reported while the pragma_* table-valued functions read the schema
    return sqlite3.SQLITE_DENY


def open_db(path: str) -> sqlite3.Connection:
    con = sqlite3.connect(f"file:{quote(path)}?mode=ro&immutable=1", uri=True, isolation_level=None)
    con.execute("PRAGMA query_only = ON")
    con.execute(f"PRAGMA hard_heap_limit = {HEAP_LIMIT_BYTES}")
    con.set_authorizer(authorizer)
    return con


def canonical(value: object) -> list:
    if value is None:
        return ["n"]
    if isinstance(value, int):
        return ["i", value]
    if isinstance(value, float):
        return ["i", int(value)] if value.is_integer() else ["f", repr(value)]
    if isinstance(value, bytes):
        return ["b", value.hex()]
    return ["s", str(value)]


def plain(value: object) -> object:
    """A preview cell: JSON-safe and short."""
    if isinstance(value, bytes):
        value = value.hex()
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value[:PREVIEW_CHARS] if isinstance(value, str) else value


def execute(con: sqlite3.Connection, sql: str, max_rows: int) -> dict:
    cur = con.execute(sql)
    columns = len(cur.description or ())
    rows: set[str] = set()
    preview: list[list] = []
    n = 0
    while batch := cur.fetchmany(1000):
        for row in batch:
            n += 1
            if n > max_rows:
                return {"ok": False, "error": f"more than {max_rows} result rows"}
            rows.add(json.dumps([canonical(v) for v in row]))
            if len(preview) < PREVIEW_ROWS:
                preview.append([plain(v) for v in row])
    digest = hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest()
    return {"ok": True, "rows": n, "distinct": len(rows), "columns": columns, "digest": digest, "preview": preview}


def die_with_parent(parent: int) -> None:
    """On Linux, get SIGKILLed when the scoring process dies (even while stuck in a runaway query)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if parent and os.getppid() != parent:  # the parent died before prctl took effect
        sys.exit(1)


def main() -> None:
    die_with_parent(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    connections: dict[str, sqlite3.Connection] = {}
    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        req = json.loads(line)
        try:
            con = connections.get(req["db"])
            if con is None:
                con = connections[req["db"]] = open_db(req["db"])
            reply = execute(con, req["sql"], req["maxRows"])
        except (sqlite3.Error, sqlite3.Warning, ValueError, OverflowError, MemoryError) as e:
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(reply, default=str) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
