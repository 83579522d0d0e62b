"""``sql-execution-match``: execution accuracy against gold SQL (BIRD's metric). Evaluation only.

The prompt's ``reference`` is the gold query (or a list of acceptable gold queries). Each sample's query and
the gold query run on the same private read-only copy of the task's database, in the ``sql`` scorer's worker
process with its read-only guards (see ``sql.py``: sqlglot check, SELECT/WITH only, authorizer, timeout,
``maxRows``). The sample scores 1.0 when its result *set* equals the gold query's (order and duplicates
ignored, an integral float equals the integer; an empty result equals an empty gold result), else 0.0 (also
for a query that fails, is refused or times out).

Params: ``database`` or ``databaseField``, ``timeoutS``, ``maxRows``, ``dialect``: as in ``sql`` (no ``vote``).

A gold query that does not run is the data's fault: BadInput (exit 65) naming the prompt and the reason. A
prompt without a reference is abstained on. Details: the sample's execution details as in ``sql``
(``status``, ``rows``, ``result``, ``preview``, ``error``) plus ``"gold"`` (the gold result's hash prefix)
and ``"match"``. ``stats()`` as in ``sql`` plus ``goldQueries`` (distinct gold queries that ran).
"""

from __future__ import annotations

from ..contract import BadInput
from .reference import NO_REFERENCE, references_of
from .sql import SqlScorer, extract_sql


class SqlExecutionMatchScorer(SqlScorer):
    PARAMS = SqlScorer.PARAMS - {"vote"}
    needs_reference = True

    def __init__(self, params: dict, store=None):
        super().__init__(params, store=store)
        self._gold: dict[tuple[str, str], str] = {}

    def _gold_digest(self, prompt: dict, db: str, gold: str) -> str:
        key = (db, gold)
        if key not in self._gold:
            details, digest = self.execute(db, extract_sql(gold))
            if digest is None:
                raise BadInput(
                    f"prompt {prompt.get('prompt_id')!r}: the gold SQL in 'reference' does not run "
                    f"({details.get('status')}: {details.get('error')})"
                )
            self._gold[key] = digest
        return self._gold[key]

    def score_group(self, prompt: dict, texts: list[str]) -> list[tuple[float | None, object]]:
        refs = references_of(prompt)
        if refs is None:
            return [(None, dict(NO_REFERENCE)) for _ in texts]
        if not texts:
            return []
        db = self._local_copy(self._database_uri(prompt))
        golds = [self._gold_digest(prompt, db, str(g)) for g in refs]
        out: list[tuple[float | None, object]] = []
        for details, digest in self._run_texts(db, texts, self.execute):
            match = digest is not None and digest in golds
            out.append((1.0 if match else 0.0, details | {"gold": golds[0][:12], "match": match}))
        return out

    def stats(self) -> dict:
        return super().stats() | {"goldQueries": len(self._gold)}
