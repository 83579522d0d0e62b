"""``sql``: text-to-SQL verification without gold answers: execute each sample's query, then vote.

Params:
- ``database``: URI of the SQLite database every prompt is about (``file:///path/db.sqlite``,
  ``file:relative/db.sqlite`` resolved against the job's working directory like ``prompts.uri``, or
  ``s3://bucket/key``), or
- ``databaseField``: the key in each prompt's ``meta`` holding that prompt's database URI (BIRD/Spider style,
  one database per question). Exactly one of the two is required; a prompt without the field, or a database
  that is missing or not SQLite, is a BadInput naming it (exit 65): the data is wrong, not the sample.
- ``timeoutS`` (default 5): wall-clock limit per query; the worker process running it is killed past it.
- ``dialect`` (default ``"sqlite"``): the SQL dialect of the queries. SQLite is the only execution engine, so
  ``"sqlite"`` is the only value accepted for now.
- ``vote`` (default true): score by self-consistency across the prompt's samples (below); false: 1.0 for any
  query that executes.
- ``maxRows`` (default 100000): a result with more rows is an error (score 0), which bounds the work a
  runaway cross join can cause.

Per sample:
1. The SQL is the last fenced block tagged ``sql``/``sqlite`` (```` ```sql ... ``` ````; an unclosed last fence
   runs to the end of the text), else the last fenced block of any language, else the whole text; stripped.
2. It is parsed with sqlglot (SQLite dialect). Only a single SELECT query is allowed: a SELECT, a set
   operation (UNION/INTERSECT/EXCEPT) or a parenthesised one, optionally with a WITH clause. Anything else
   is refused before execution: other statements (INSERT, DELETE, UPDATE, CREATE, DROP, PRAGMA, ATTACH,
   VACUUM...), a WITH over a DML statement, SELECT ... INTO, and several statements.
3. It runs on a private read-only copy of the database (made once per database with SQLite's backup API in
   a temporary directory, file mode 0444) in a separate worker process (``_sql_worker.py``), opened as
   ``file:...?mode=ro&immutable=1`` with ``PRAGMA query_only`` and an authorizer that allows reading only
   (ATTACH, writes, ``load_extension`` and non-introspection pragmas are denied). The original database is
   never opened for writing. A query past ``timeoutS`` has its worker killed (a new one starts for the
   next query). Identical queries within a prompt's samples run once.
4. The result is reduced to the *set* of its rows (order and duplicates ignored: BIRD's set-equality
   metric; an integral float equals the integer) and hashed.

Values:
- ``vote: true``: the *majority result* is the most common result set among the samples that executed and
  returned at least one row (ties: the result of the earliest such sample in the group wins). 1.0 for the
  samples whose result set equals it; 0.0 for the others, for empty results, and for every failure. If no
  sample returned rows, every sample scores 0.0.
- ``vote: false``: 1.0 for a query that executed (an empty result included), 0.0 for a failure.

Details: ``{"status": s, ...}`` with ``s`` one of ``"ok"``, ``"parse_error"``, ``"disallowed"``, ``"error"``
(SQLite error, authorizer refusal, too many rows, worker crash) or ``"timeout"``; ``"error"`` (the reason)
for the failures; ``"rows"`` (count), ``"distinct"``, ``"result"`` (12 hex digits of the result hash) and
``"preview"`` (first 3 rows) for ``ok``; with voting also ``"majority"`` (the majority result's hash prefix or
None), ``"votes"`` (its count) and ``"voters"`` (samples with a non-empty result). ``stats()`` counts the
samples of each status, the queries ``executed`` (refused and repeated queries do not run) and
``workerStarts`` (more than 1: restarts after timeouts or crashes).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import select
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import weakref
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

from ..contract import BadInput
from .base import Scorer, ScorerParamsError, check_keys, number_param

WORKER = Path(__file__).with_name("_sql_worker.py")
READY_TIMEOUT_S = 60.0
MAX_ERROR_CHARS = 300
STATUSES = ("ok", "parse_error", "disallowed", "error", "timeout")
FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_sql(text: str) -> str:
    """The query of a sample as described in the module docstring (step 1)."""
    blocks = FENCE.findall(text)
    tagged = [body for lang, body in blocks if lang.lower() in ("sql", "sqlite")]
    if tagged:
        return tagged[-1].strip()
    if blocks:
        return blocks[-1][1].strip()
    return text.strip()


@contextmanager
def _quiet_sqlglot():
    """sqlglot logs a warning for each statement it falls back to parsing as a Command: noise per sample."""
    log = logging.getLogger("sqlglot")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


@functools.cache
def _forbidden() -> tuple[type, ...]:
    """The sqlglot statement types refused as a query or anywhere inside one."""
    from sqlglot import exp

    return (
        exp.Insert,
        exp.Update,
        exp.Delete,
        exp.Create,
        exp.Drop,
        exp.Alter,
        exp.Command,
        exp.Pragma,
        exp.Attach,
        exp.Detach,
        exp.Merge,
        exp.Into,
        exp.Transaction,
        exp.Commit,
        exp.Rollback,
        exp.TruncateTable,
        exp.Analyze,
        exp.Set,
        exp.Use,
    )


def check_sql(sql: str, dialect: str = "sqlite") -> tuple[str, str] | None:
    """None when ``sql`` is a single read-only query, else (status, reason) with status ``parse_error`` or
    ``disallowed`` (module docstring, step 2)."""
    import sqlglot
    from sqlglot import exp

    forbidden = _forbidden()
    if not sql:
        return "parse_error", "no SQL found"
    try:
        with _quiet_sqlglot():
            statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except Exception as e:  # noqa: BLE001 - sqlglot raises ParseError, TokenError, sometimes others
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return "parse_error", first[:MAX_ERROR_CHARS]
    if not statements:
        return "parse_error", "no SQL statement"
    if len(statements) > 1:
        return "disallowed", f"{len(statements)} statements (only one SELECT query is allowed)"
    stmt = statements[0]
    root = stmt
    while isinstance(root, exp.Subquery):
        root = root.this
    if isinstance(root, exp.Select | exp.SetOperation):
        for node in stmt.walk():
            if isinstance(node, forbidden):
                return "disallowed", f"{_kind(node)} inside the query (only SELECT/WITH queries are allowed)"
        return None
    if isinstance(stmt, forbidden):
        return "disallowed", f"{_kind(stmt)} statement (only SELECT/WITH queries are allowed)"
    return "parse_error", f"not a SQL query (parsed as {type(stmt).__name__})"


def _kind(node) -> str:
    if type(node).__name__ == "Command":
        return str(node.this).upper()
    return {"Into": "SELECT INTO", "TruncateTable": "TRUNCATE"}.get(type(node).__name__, type(node).__name__.upper())


class SqlWorker:
    """The worker process (``_sql_worker.py``): started on first use, killed on timeout, restarted on demand."""

    def __init__(self):
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def _start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(WORKER), str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        self.starts += 1
        reply = self._read(READY_TIMEOUT_S)
        if reply is None or not reply.get("ready"):
            self.kill()
            raise RuntimeError(f"the SQL worker ({WORKER}) did not start")

    def _read(self, timeout: float) -> dict | None:
        """One reply line, or None on timeout or when the worker died (then it is reaped)."""
        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        if not line:
            self.kill()
            return None
        return json.loads(line)

    def run(self, db: str, sql: str, timeout: float, max_rows: int) -> dict:
        """``{"ok": True, ...}`` or ``{"ok": False, "error": ..., "timeout"?: True}``."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps({"db": db, "sql": sql, "maxRows": max_rows}) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            self.kill()
            return {"ok": False, "error": "the SQL worker exited unexpectedly"}
        proc = self.proc
        reply = self._read(timeout)
        if reply is not None:
            return reply
        if self.proc is None:  # died while running the query (e.g. out of memory)
            return {"ok": False, "error": f"the SQL worker exited with code {proc.returncode} during the query"}
        self.kill()
        return {"ok": False, "timeout": True, "error": f"query ran past the {timeout:g} s timeout (killed)"}

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for f in (proc.stdin, proc.stdout):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass


def _cleanup(worker: SqlWorker, tmpdir: list[Path]) -> None:
    worker.kill()
    for d in tmpdir:
        shutil.rmtree(d, ignore_errors=True)
    tmpdir.clear()


class SqlScorer(Scorer):
    uses_store = True
    PARAMS = frozenset({"database", "databaseField", "timeoutS", "dialect", "vote", "maxRows"})

    def __init__(self, params: dict, store=None):
        problems = check_keys(params, set(self.PARAMS))
        self.database = params.get("database")
        self.field = params.get("databaseField")
        if (self.database is None) == (self.field is None):
            problems.append("database: set exactly one of database and databaseField")
        if self.database is not None and (
            not isinstance(self.database, str) or not self.database.startswith(("file:", "s3://"))
        ):
            problems.append(f"database: must be a file:// (or file:relative) or s3:// URI, got {self.database!r}")
        if self.field is not None and (not isinstance(self.field, str) or not self.field):
            problems.append("databaseField: must be a non-empty string (a key of the prompt's meta)")
        self.timeout = number_param(params, "timeoutS", 5.0, problems, exclusive_minimum=0)
        self.max_rows = number_param(params, "maxRows", 100000, problems, minimum=1, integer=True)
        self.dialect = params.get("dialect", "sqlite")
        if self.dialect != "sqlite":
            problems.append(f"dialect: only 'sqlite' is supported (SQLite executes the queries), got {self.dialect!r}")
        self.vote = params.get("vote", True)
        if not isinstance(self.vote, bool):
            problems.append(f"vote: must be true or false, got {self.vote!r}")
        if problems:
            raise ScorerParamsError(problems)
        self._store = store
        self._worker = SqlWorker()
        self._tmpdir: list[Path] = []
        self._copies: dict[str, str] = {}
        self._counts = dict.fromkeys(STATUSES, 0) | {"executed": 0}
        self._finalizer = weakref.finalize(self, _cleanup, self._worker, self._tmpdir)

    # --- databases -----------------------------------------------------------------------------------
    def _database_uri(self, prompt: dict) -> str:
        if self.database is not None:
            return self.database
        meta = prompt.get("meta") or {}
        uri = meta.get(self.field) if isinstance(meta, dict) else None
        if not isinstance(uri, str) or not uri.startswith(("file://", "s3://")):
            raise BadInput(
                f"prompt {prompt.get('prompt_id')!r}: meta.{self.field} must be the file:// or s3:// URI of its "
                f"SQLite database, got {uri!r}"
            )
        return uri

    def _local_copy(self, uri: str) -> str:
        """The path of the private read-only copy of ``uri`` (made on first use)."""
        if uri in self._copies:
            return self._copies[uri]
        if not self._tmpdir:
            self._tmpdir.append(Path(tempfile.mkdtemp(prefix="tao-sql-")))
        dest = self._tmpdir[0] / f"db-{len(self._copies)}.sqlite"
        download = None
        if uri.startswith("file:"):  # file:relative resolves against the job's working directory
            src = Path(unquote(urlparse(uri).path))
            if not src.is_file():
                raise BadInput(f"{uri}: database file does not exist")
        else:
            if self._store is None:
                from ..store import Store

                self._store = Store()
            download = src = dest.with_suffix(".download")
            src.write_bytes(self._store.read_bytes(uri))
        try:
            source = sqlite3.connect(f"file:{quote(str(src))}?mode=ro", uri=True)
            target = sqlite3.connect(dest)
            try:
                source.backup(target)
                target.execute("PRAGMA journal_mode = DELETE")
            finally:
                target.close()
                source.close()
        except sqlite3.Error as e:
            raise BadInput(f"{uri}: cannot read it as a SQLite database ({e})") from e
        finally:
            if download is not None:
                download.unlink(missing_ok=True)
        os.chmod(dest, 0o444)
        self._copies[uri] = str(dest)
        return str(dest)

    # --- scoring -------------------------------------------------------------------------------------
    def _run_texts(self, db: str, texts: list[str], run) -> list[tuple[dict, str | None]]:
        """``run(db, sql)`` for each text's SQL, once per distinct query (samples often repeat one); statuses
        are counted per sample; each sample gets its own copy of the details."""
        seen: dict[str, tuple[dict, str | None]] = {}
        out: list[tuple[dict, str | None]] = []
        for t in texts:
            sql = extract_sql(t)
            if sql not in seen:
                seen[sql] = run(db, sql)
            details, digest = seen[sql]
            self._counts[details["status"]] += 1
            out.append((dict(details), digest))
        return out

    def _outcome(self, db: str, sql: str) -> tuple[dict, str | None]:
        """(details, full result digest or None) for one query; an empty result has no digest (no vote)."""
        details, digest = self.execute(db, sql)
        return details, digest if details.get("rows", 0) > 0 else None

    def execute(self, db: str, sql: str) -> tuple[dict, str | None]:
        """(details, full digest of the result set, empty results included; None when the query failed)."""
        refused = check_sql(sql, self.dialect)
        if refused is not None:
            return {"status": refused[0], "error": refused[1]}, None
        self._counts["executed"] += 1
        reply = self._worker.run(db, sql, self.timeout, self.max_rows)
        if not reply.get("ok"):
            status = "timeout" if reply.get("timeout") else "error"
            return {"status": status, "error": str(reply.get("error"))[:MAX_ERROR_CHARS]}, None
        details = {
            "status": "ok",
            "rows": reply["rows"],
            "distinct": reply["distinct"],
            "result": reply["digest"][:12],
            "preview": reply["preview"],
        }
        return details, reply["digest"]

    def score_group(self, prompt: dict, texts: list[str]) -> list[tuple[float, object]]:
        if not texts:
            return []
        db = self._local_copy(self._database_uri(prompt))
        outcomes = self._run_texts(db, texts, self._outcome)
        if not self.vote:
            return [(1.0 if d["status"] == "ok" else 0.0, d) for d, _ in outcomes]
        # Counter keeps first-occurrence order and most_common sorts stably: ties go to the earliest sample.
        counts = Counter(digest for _, digest in outcomes if digest is not None)
        top, votes = counts.most_common(1)[0] if counts else (None, 0)
        voters = sum(counts.values())
        summary = {"majority": top[:12] if top else None, "votes": votes, "voters": voters}
        return [(1.0 if digest is not None and digest == top else 0.0, d | summary) for d, digest in outcomes]

    def stats(self) -> dict:
        return dict(self._counts) | {"workerStarts": self._worker.starts}

    def close(self) -> None:
        self._finalizer()
