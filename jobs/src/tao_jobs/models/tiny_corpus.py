"""The in-code pre-training corpus of the tiny models: two tasks where being right is not being greedy.

**Counting trivia** ("How many legs does a spider have?"). Each answer is *correct* (the fact's number),
the fact's *misconception* (a fixed wrong number, for half of the facts), or *noise* (another number). A
correct answer introduces its number in one of four ways (``NUMBER_FORMS``: "a spider has 8 legs.", "a
spider has exactly 8 legs.", "... a total of 8 ...", "... just 8 ..."); a misconception always uses the
first one. So the correct number holds most of the
probability mass but spread over four paths, while the misconception holds less mass on a single path:
greedy decoding, which follows the most likely token at each step, answers "a spider has 10 legs." while a
majority vote over sampled answers (self-consistency on the extracted number) finds 8. The ``cot``
strategy ("Think step by step") answers correctly more often (``COT_CORRECT``): test-time compute helps.
Style choices stay independent of correctness: all lowercase (else capitalised sentences) and short (else
one chatty extra sentence), each with probability ``STYLE_P`` (short: ``1 - STYLE_P`` under ``concise``).

**Text-to-SQL** over ``examples/sql/shop.sqlite`` (one table, ``SQL_SCHEMA``). Each question template has
several equivalent correct queries (``COUNT(*)``/``COUNT(id)``, an alias, ``ORDER BY ... LIMIT 1`` for
``MAX``...), in upper- or lowercase keywords; a misconception is one fixed wrong query (the wrong column,
no filter, the wrong order) written like the most common correct one up to where it goes wrong. Greedy
decoding follows the misconception; the correct queries execute to the same result, so an execution vote
(the ``sql`` scorer) finds it. The ``cot`` strategy writes a ``-- plan`` comment line first and is right
more often.

For both tasks, *which* items carry a misconception is fixed (``has_misconception``): about half of them,
so the base model's greedy answer is wrong on about half of the held-out prompts of the examples
(``examples/demo``: trivia; ``examples/sql``: SQL; ``examples/multitask``: both), while votes over samples
and strategies carry the information a label-free round needs. ``demo_prompts`` generates those prompt
files (with their ``reference``: the gold number or the gold SQL) so the files and the corpus agree.
"""

from __future__ import annotations

import json
import random

from ..strategies import STRATEGIES, build_messages

STYLE_P = 0.3
PLAIN_CORRECT = 0.56  # P(correct) for an item with a misconception, plain strategy; P(misconception) 0.36
COT_CORRECT = 0.88  # ... under the cot strategy (misconception 0.04)
NOISE = 0.08  # another number / another slot value, either strategy
CLEAN_CORRECT = 0.92  # P(correct) for an item without misconception (the rest is noise)

# (question, answer with {n}, n): the demo prompts (examples/demo/prompts.jsonl) ask these.
FACTS: list[tuple[str, str, int]] = [
    ("how many legs does a spider have?", "a spider has {n} legs.", 8),
    ("how many legs does a cat have?", "a cat has {n} legs.", 4),
    ("how many legs does a bird have?", "a bird has {n} legs.", 2),
    ("how many legs does an ant have?", "an ant has {n} legs.", 6),
    ("how many legs does a crab have?", "a crab has {n} legs.", 10),
    ("how many legs does a horse have?", "a horse has {n} legs.", 4),
    ("how many arms does an octopus have?", "an octopus has {n} arms.", 8),
    ("how many arms does a starfish have?", "a starfish has {n} arms.", 5),
    ("how many hearts does an octopus have?", "an octopus has {n} hearts.", 3),
    ("how many days are in a week?", "there are {n} days in a week.", 7),
    ("how many months are in a year?", "there are {n} months in a year.", 12),
    ("how many hours are in a day?", "there are {n} hours in a day.", 24),
    ("how many minutes are in an hour?", "there are {n} minutes in an hour.", 60),
    ("how many seconds are in a minute?", "there are {n} seconds in a minute.", 60),
    ("how many days are in a year?", "there are {n} days in a year.", 365),
    ("how many weeks are in a year?", "there are {n} weeks in a year.", 52),
    ("how many years are in a century?", "there are {n} years in a century.", 100),
    ("how many years are in a decade?", "there are {n} years in a decade.", 10),
    ("how many sides does a triangle have?", "a triangle has {n} sides.", 3),
    ("how many sides does a square have?", "a square has {n} sides.", 4),
    ("how many sides does a pentagon have?", "a pentagon has {n} sides.", 5),
    ("how many sides does a hexagon have?", "a hexagon has {n} sides.", 6),
    ("how many sides does an octagon have?", "an octagon has {n} sides.", 8),
    ("how many faces does a cube have?", "a cube has {n} faces.", 6),
    ("how many wheels does a bicycle have?", "a bicycle has {n} wheels.", 2),
    ("how many wheels does a tricycle have?", "a tricycle has {n} wheels.", 3),
    ("how many wheels does a car have?", "a car has {n} wheels.", 4),
    ("how many players are on a soccer team?", "a soccer team has {n} players.", 11),
    ("how many players are on a basketball team?", "a basketball team has {n} players.", 5),
    ("how many strings does a guitar have?", "a guitar has {n} strings.", 6),
    ("how many strings does a violin have?", "a violin has {n} strings.", 4),
    ("how many keys does a piano have?", "a piano has {n} keys.", 88),
    ("how many planets are in the solar system?", "there are {n} planets in the solar system.", 8),
    ("how many continents are there?", "there are {n} continents.", 7),
    ("how many oceans are there?", "there are {n} oceans.", 5),
    ("how many colors are in a rainbow?", "there are {n} colors in a rainbow.", 7),
    ("how many letters are in the alphabet?", "there are {n} letters in the alphabet.", 26),
    ("how many eggs are in a dozen?", "there are {n} eggs in a dozen.", 12),
    ("how many fingers are on one hand?", "there are {n} fingers on one hand.", 5),
    ("how many toes are on two feet?", "there are {n} toes on two feet.", 10),
    ("how many teeth does an adult have?", "an adult has {n} teeth.", 32),
    ("how many bones are in the human body?", "there are {n} bones in the human body.", 206),
    ("how many cents are in a dollar?", "there are {n} cents in a dollar.", 100),
    ("how many cards are in a deck?", "there are {n} cards in a deck.", 52),
    ("how many squares are on a chess board?", "there are {n} squares on a chess board.", 64),
    ("how many degrees are in a right angle?", "there are {n} degrees in a right angle.", 90),
    ("how many players are on a baseball team?", "a baseball team has {n} players.", 9),
    ("how many legs does a dog have?", "a dog has {n} legs.", 4),
]
# The phrasings of a correct answer: the fact's sentence with its number introduced in one of four ways
# ("a spider has 8 legs.", "a spider has exactly 8 legs."...); a misconception always uses the first.
NUMBER_FORMS = ["{n}", "exactly {n}", "a total of {n}", "just {n}"]
QUESTION_PREFIXES = ["", "quick question: ", "please tell me, ", "i wonder, ", "do you know: "]
FILLERS = [
    "that is a fun fact to share with friends.",
    "i hope this helps you learn something new today.",
    "many people are surprised when they hear this.",
    "you can find this in most books about the topic.",
]
COT_PREFIX = "let me think step by step. "

SQL_SCHEMA = "employees(id, name, dept, city, salary, age)"
DEPTS = ["sales", "engineering", "support", "marketing", "finance"]
CITIES = ["paris", "london", "berlin", "madrid"]
# (question with {v}, slot: "dept" | "city", correct queries, the misconception query). Keywords are
# written uppercase here; an answer lowercases them half the time (the misconception never).
SQL_TASKS: list[tuple[str, str, list[str], str]] = [
    (
        "how many employees work in {v}?",
        "dept",
        [
            "SELECT COUNT(*) FROM employees WHERE dept = '{v}'",
            "SELECT COUNT(id) FROM employees WHERE dept = '{v}'",
            "SELECT COUNT(*) FROM employees AS e WHERE e.dept = '{v}'",
        ],
        "SELECT COUNT(*) FROM employees WHERE city = '{v}'",
    ),
    (
        "how many employees live in {v}?",
        "city",
        [
            "SELECT COUNT(*) FROM employees WHERE city = '{v}'",
            "SELECT COUNT(id) FROM employees WHERE city = '{v}'",
            "SELECT COUNT(*) FROM employees AS e WHERE e.city = '{v}'",
        ],
        "SELECT COUNT(*) FROM employees",
    ),
    (
        "what is the average salary in {v}?",
        "dept",
        [
            "SELECT AVG(salary) FROM employees WHERE dept = '{v}'",
            "SELECT AVG(e.salary) FROM employees AS e WHERE e.dept = '{v}'",
            "SELECT AVG(salary) FROM employees WHERE '{v}' = dept",
        ],
        "SELECT AVG(salary) FROM employees",
    ),
    (
        "what is the highest salary in {v}?",
        "city",
        [
            "SELECT MAX(salary) FROM employees WHERE city = '{v}'",
            "SELECT salary FROM employees WHERE city = '{v}' ORDER BY salary DESC LIMIT 1",
            "SELECT MAX(e.salary) FROM employees AS e WHERE e.city = '{v}'",
        ],
        "SELECT MIN(salary) FROM employees WHERE city = '{v}'",
    ),
    (
        "list the names of the employees in {v}.",
        "dept",
        [
            "SELECT name FROM employees WHERE dept = '{v}'",
            "SELECT name FROM employees WHERE dept = '{v}' ORDER BY name",
            "SELECT e.name FROM employees AS e WHERE e.dept = '{v}'",
        ],
        "SELECT name FROM employees WHERE city = '{v}'",
    ),
    (
        "who is the oldest employee in {v}?",
        "city",
        [
            "SELECT name FROM employees WHERE city = '{v}' ORDER BY age DESC LIMIT 1",
            "SELECT name FROM employees WHERE city = '{v}' AND age = (SELECT MAX(age) FROM employees WHERE city = '{v}')",  # noqa: E501
            "SELECT e.name FROM employees AS e WHERE e.city = '{v}' ORDER BY e.age DESC LIMIT 1",
        ],
        "SELECT name FROM employees WHERE city = '{v}' ORDER BY age LIMIT 1",
    ),
]
SQL_PREFIXES = ["", "tell me: ", "quick question: ", "i need to know: "]
SQL_KEYWORDS = ["SELECT", "FROM", "WHERE", "AND", "ORDER BY", "DESC", "LIMIT", "AS", "COUNT", "AVG", "MAX", "MIN"]
SQL_PLAN = "-- plan: one table, filter the rows first, then select.\n"


def has_misconception(task: str, key: str) -> bool:
    """Whether a trivia fact (key: the question) or an SQL item (key: ``"<template>:<value>"``) has a fixed
    misconception: every other one in ``FACTS`` / ``sql_items()`` order (half of the items, whatever the
    seed)."""
    if task == "trivia":
        return [f[0] for f in FACTS].index(key) % 2 == 0
    t, v = key.split(":", 1)
    return sql_items().index((int(t), v)) % 2 == 0


def misconception_number(n: int) -> int:
    return n + 2 if n < 10 else n + 10


def _capitalise(text: str) -> str:
    return ". ".join(s[:1].upper() + s[1:] for s in text.split(". "))


def _outcome(rng: random.Random, misconceived: bool, strategy: str) -> str:
    """``"correct"``, ``"misconception"`` or ``"noise"`` for one answer."""
    u = rng.random()
    if not misconceived:
        return "correct" if u < CLEAN_CORRECT else "noise"
    correct = COT_CORRECT if strategy == "cot" else PLAIN_CORRECT
    if u < correct:
        return "correct"
    return "misconception" if u < 1 - NOISE else "noise"


def answer(rng: random.Random, fact: tuple[str, str, int], strategy: str) -> str:
    """One trivia answer (see the module docstring)."""
    q, template, n = fact
    outcome = _outcome(rng, has_misconception("trivia", q), strategy)
    if outcome == "misconception":
        text = template.format(n=misconception_number(n))
    else:
        if outcome == "noise":
            n = rng.choice([k for k in range(1, 13) if k != n])
        text = template.format(n=rng.choice(NUMBER_FORMS).format(n=n))
    short = rng.random() < (1 - STYLE_P if strategy == "concise" else STYLE_P)
    lower = rng.random() < STYLE_P
    if not short:
        text += " " + rng.choice(FILLERS)
    if strategy == "cot":
        text = COT_PREFIX + text
    if not lower:
        text = _capitalise(text)
    if strategy == "json":
        text = json.dumps({"answer": text})
    return text


def question(rng: random.Random, fact: tuple[str, str, int]) -> str:
    q = rng.choice(QUESTION_PREFIXES) + fact[0]
    return q[:1].upper() + q[1:]


def sql_items() -> list[tuple[int, str]]:
    """Every (template index, slot value) of ``SQL_TASKS``."""
    return [(t, v) for t, (_, slot, _, _) in enumerate(SQL_TASKS) for v in (DEPTS if slot == "dept" else CITIES)]


def sql_question(template: int, value: str, prefix: str = "") -> str:
    q = prefix + SQL_TASKS[template][0].format(v=value)
    return f"Database: {SQL_SCHEMA}. Question: {q[:1].upper() + q[1:]}"


def gold_sql(template: int, value: str) -> str:
    return SQL_TASKS[template][2][0].format(v=value)


def _lower_keywords(sql: str) -> str:
    for k in SQL_KEYWORDS:
        sql = sql.replace(k + " ", k.lower() + " ").replace(k + "(", k.lower() + "(")
    return sql


def sql_answer(rng: random.Random, template: int, value: str, strategy: str) -> str:
    """One SQL answer (see the module docstring)."""
    _, slot, correct, wrong = SQL_TASKS[template]
    outcome = _outcome(rng, has_misconception("sql", f"{template}:{value}"), strategy)
    if outcome == "misconception":
        text = wrong.format(v=value)
    else:
        if outcome == "noise":
            value = rng.choice([v for v in (DEPTS if slot == "dept" else CITIES) if v != value])
        text = rng.choice(correct).format(v=value)
        if rng.random() < 0.5:
            text = _lower_keywords(text)
    if strategy == "cot":
        text = SQL_PLAN + text
    if strategy == "json":
        text = json.dumps({"answer": text})
    return text


def corpus(rng: random.Random, size: int) -> list[tuple[list[dict], str]]:
    """``size`` (prompt messages, answer) pairs, 60% trivia and 40% SQL; a third carry a strategy's system
    prompt."""
    out = []
    items = sql_items()
    for _ in range(size):
        strategy = rng.choice(STRATEGIES) if rng.random() < 0.34 else "plain"
        if rng.random() < 0.6:
            fact = rng.choice(FACTS)
            user, text = question(rng, fact), answer(rng, fact, strategy)
        else:
            t, v = rng.choice(items)
            user, text = sql_question(t, v, rng.choice(SQL_PREFIXES)), sql_answer(rng, t, v, strategy)
        out.append((build_messages(strategy, [{"role": "user", "content": user}]), text))
    return out


def demo_prompts(task: str) -> list[dict]:
    """The prompt rows of the examples, with references: ``trivia`` (every fact in 2-3 phrasings, 120 rows)
    or ``sql`` (every item in 3 phrasings, 81 rows). Deterministic; the example files are these rows."""
    rows = []
    if task == "trivia":
        for i, (q, _, n) in enumerate(FACTS):
            for j in range(len(QUESTION_PREFIXES)):
                if (i + j) % 2 == 0:  # 2-3 phrasings per fact, 120 in all
                    text = QUESTION_PREFIXES[j] + q
                    rows.append(
                        {
                            "id": f"q{i:02d}-{j}",
                            "prompt": text[:1].upper() + text[1:],
                            "task": "trivia",
                            "reference": str(n),
                        }
                    )
        return rows
    if task == "sql":
        for t, v in sql_items():
            for j in range(3):
                rows.append(
                    {
                        "id": f"s{t}-{v}-{j}",
                        "prompt": sql_question(t, v, SQL_PREFIXES[(j + t) % len(SQL_PREFIXES)]),
                        "task": "sql",
                        "reference": gold_sql(t, v),
                    }
                )
        return rows
    raise ValueError(f"unknown demo task {task!r} (known: trivia, sql)")


# --- the tiny judge (``tiny://judge``) --------------------------------------------------------------
JUDGE_RIGHT, JUDGE_WRONG = 9, 2
JUDGE_MAX_GROUP = 6
JUDGE_SHORT_FROM = 5
"""The tiny judge's first reply to a group of ``JUDGE_SHORT_FROM`` or more responses leaves the last score
out (small judges lose count on long lists); after the ``group`` mode's correction it gives them all. So a
real server running it exercises the count retry."""


def _judge_response(rng: random.Random, fact: tuple[str, str, int]) -> tuple[str, bool]:
    _, template, n = fact
    x = n if rng.random() < 0.5 else rng.choice([k for k in range(1, 13) if k != n] + [misconception_number(n)])
    text = template.format(n=x)
    return (text if rng.random() < STYLE_P else _capitalise(text)), x == n


def judge_corpus(rng: random.Random, size: int) -> list[tuple[list[dict], str]]:
    """(messages, verdict) pairs in the ``judge`` scorer's own request formats (pointwise and group, with and
    without a reference) about trivia answers: ``JUDGE_RIGHT`` when the answer's number is the fact's,
    ``JUDGE_WRONG`` otherwise."""
    from ..scorers import judge as j

    out = []
    for _ in range(size):
        fact = rng.choice(FACTS)
        context = f"[Conversation]\n[user]\n{question(rng, fact)}"
        rubric = j.DEFAULT_RUBRIC
        if rng.random() < 0.3:
            context += f"\n\n[Reference answer]\n{fact[2]}"
            rubric = j.REFERENCE_RUBRIC
        if rng.random() < 0.5:
            text, right = _judge_response(rng, fact)
            system = j.POINTWISE_SYSTEM.format(rubric=rubric)
            verdict = {"score": JUDGE_RIGHT if right else JUDGE_WRONG, "reason": "right" if right else "wrong"}
            msgs = [
                {"role": "system", "content": system},
                {"role": "user", "content": f"{context}\n\n[Response to judge]\n{text}"},
            ]
            out.append((msgs, json.dumps(verdict)))
            continue
        n = rng.randint(2, JUDGE_MAX_GROUP)
        responses = [_judge_response(rng, fact) for _ in range(n)]
        shown = "\n\n".join(f"[Response {i}]\n{t}" for i, (t, _) in enumerate(responses, start=1))
        msgs = [
            {"role": "system", "content": j.GROUP_SYSTEM.format(rubric=rubric, n=n)},
            {"role": "user", "content": f"{context}\n\n{shown}"},
        ]
        scores = [JUDGE_RIGHT if right else JUDGE_WRONG for _, right in responses]
        full = json.dumps({"scores": scores, "reason": "right numbers score high"})
        if n < JUDGE_SHORT_FROM:
            out.append((msgs, full))
            continue
        short = json.dumps({"scores": scores[:-1], "reason": "right numbers score high"})
        if rng.random() < 0.5:
            out.append((msgs, short))
        else:
            problem = f"got {n - 1} scores for {n} responses"
            correction = j.GROUP_CORRECTION.format(problem=problem, n=n)
            msgs = msgs + [{"role": "assistant", "content": short}, {"role": "user", "content": correction}]
            out.append((msgs, full))
    return out
