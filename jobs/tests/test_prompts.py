"""Prompt sources: normalisation, every kind of malformed line with its line number, fail vs skip."""

from __future__ import annotations

import pytest

from conftest import write_jsonl
from tao_jobs.contract import BadInput
from tao_jobs.prompts import (
    MAX_LISTED,
    expand,
    iter_jsonl,
    read_artifact,
    read_prepared,
    read_prompts,
)
from tao_jobs.prompts import write_jsonl as write_rows
from tao_jobs.store import Store


def test_normalises_prompt_and_messages_forms(tmp_path):
    uri = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"id": "a", "prompt": "How many legs?", "task": "trivia"},
            {
                "id": "b",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi", "name": "ignored"},
                ],
                "meta": {"origin": "x"},
            },
        ],
    )
    src = read_prompts(Store(), uri)
    assert src.lines == 2 and src.invalid == 0
    assert src.prompts == [
        {
            "prompt_id": "a",
            "messages": [{"role": "user", "content": "How many legs?"}],
            "task": "trivia",
            "source": {"uri": uri, "line": 1},
        },
        {
            "prompt_id": "b",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
            "task": None,
            "source": {"uri": uri, "line": 2},
            "meta": {"origin": "x"},
        },
    ]


BAD_LINES = [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"prompt": "no id"}', "id: required"),
    ('{"id": 7, "prompt": "int id"}', "id: required, a non-empty string"),
    ('{"id": "x"}', "set exactly one of prompt and messages"),
    ('{"id": "x", "prompt": "a", "messages": []}', "set exactly one of prompt and messages"),
    ('{"id": "x", "prompt": "   "}', "prompt: must be a non-empty string"),
    ('{"id": "x", "prompt": 5}', "prompt: must be a non-empty string"),
    ('{"id": "x", "messages": []}', "messages: must be a non-empty list"),
    ('{"id": "x", "messages": ["hi"]}', "messages.0: must be an object"),
    ('{"id": "x", "messages": [{"role": "bot", "content": "hi"}]}', "messages.0.role: must be one of"),
    ('{"id": "x", "messages": [{"role": "user", "content": ""}]}', "messages.0.content: must be a non-empty"),
    (
        '{"id": "x", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}',
        "messages.1.role: the last message must be the user's",
    ),
    ('{"id": "x", "prompt": "q", "task": 3}', "task: must be a non-empty string"),
    ('{"id": "x", "prompt": "q", "meta": "m"}', "meta: must be an object"),
]


@pytest.mark.parametrize(("line", "reason"), BAD_LINES)
def test_each_malformed_line_is_reported_with_file_and_line(tmp_path, line, reason):
    uri = write_jsonl(tmp_path / "p.jsonl", [{"id": "ok", "prompt": "fine"}, None], raw_lines={2: line})
    with pytest.raises(BadInput) as e:
        read_prompts(Store(), uri, "fail")
    msg = str(e.value)
    assert msg.startswith(f"{uri}: 1 invalid prompt line(s)")
    assert f"line 2: {reason}" in msg
    skipped = read_prompts(Store(), uri, "skip")
    assert [p["prompt_id"] for p in skipped.prompts] == ["ok"]
    assert skipped.invalid == 1 and skipped.problems[0].startswith(f"line 2: {reason}")


def test_fail_lists_at_most_twenty_problems(tmp_path):
    rows = [{"id": f"p{i}"} for i in range(25)]
    uri = write_jsonl(tmp_path / "p.jsonl", [{"id": "ok", "prompt": "q"}, *rows])
    with pytest.raises(BadInput) as e:
        read_prompts(Store(), uri, "fail")
    msg = str(e.value)
    assert "25 invalid prompt line(s)" in msg
    assert msg.count("set exactly one of prompt and messages") == MAX_LISTED
    assert "line 2: " in msg and "line 21: " in msg and "line 22: " not in msg
    assert msg.endswith("; and 5 more")


def test_blank_lines_are_ignored_and_missing_file_is_bad_input(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text('\n{"id": "a", "prompt": "q"}\n   \n')
    src = read_prompts(Store(), p.as_uri())
    assert src.lines == 1 and src.prompts[0]["source"]["line"] == 2
    with pytest.raises(BadInput, match="does not exist"):
        read_prompts(Store(), (tmp_path / "missing.jsonl").as_uri())
    (tmp_path / "bin.jsonl").write_bytes(b'{"id": "\xff"}\n')
    with pytest.raises(BadInput, match="not UTF-8"):
        read_prompts(Store(), (tmp_path / "bin.jsonl").as_uri())


def test_artifact_reader_names_file_and_line(tmp_path):
    rows = [{"prompt_id": "a", "messages": [{"role": "user", "content": "q"}]}] * 3
    uri = write_jsonl(tmp_path / "a.jsonl", rows, raw_lines={3: '{"prompt_id": "c", "messa'})
    with pytest.raises(BadInput, match=rf"^{uri}:3: not valid JSON"):
        list(iter_jsonl(Store(), uri))
    uri = write_jsonl(tmp_path / "b.jsonl", [{"prompt_id": "a", "messages": []}, {"prompt_id": "b"}])
    with pytest.raises(BadInput, match=rf"^{uri}:2: missing field 'messages'"):
        read_prepared(Store(), uri)
    uri = write_jsonl(tmp_path / "c.jsonl", [{"n": 1}, {"n": True}, '"str"'])
    with pytest.raises(BadInput, match=rf"^{uri}:2: field 'n' has the wrong type \(bool\)"):
        read_artifact(Store(), uri, {"n": int})
    uri = write_jsonl(tmp_path / "d.jsonl", [{"n": 1}, "str"])
    with pytest.raises(BadInput, match=rf"^{uri}:2: expected a JSON object, got str"):
        read_artifact(Store(), uri, {"n": int})
    uri = write_jsonl(tmp_path / "e.jsonl", [{"prompt_id": "a", "messages": []}] * 2)
    with pytest.raises(BadInput, match=rf"^{uri}:2: duplicate prompt_id 'a' \(first on line 1\)"):
        read_prepared(Store(), uri)


def test_expand_prefix(tmp_path):
    write_jsonl(tmp_path / "d" / "b.jsonl", [])
    write_jsonl(tmp_path / "d" / "a.jsonl", [])
    (tmp_path / "d" / "notes.txt").write_text("x")
    prefix = (tmp_path / "d").as_uri() + "/"
    assert expand(Store(), prefix) == [prefix + "a.jsonl", prefix + "b.jsonl"]
    assert expand(Store(), prefix + "a.jsonl") == [prefix + "a.jsonl"]
    with pytest.raises(BadInput, match="no .jsonl files"):
        expand(Store(), (tmp_path / "empty").as_uri() + "/")


def test_unicode_line_separators_inside_strings_do_not_split_rows(tmp_path):
    text = "a\u2028b\u0085c\u2029d"
    path = tmp_path / "p.jsonl"
    write_rows(path, [{"id": "u", "prompt": text}, {"id": "v", "prompt": "plain"}])
    contents = [p["messages"][0]["content"] for p in read_prompts(Store(), path.as_uri()).prompts]
    assert contents == [text, "plain"]
    assert [n for n, _ in iter_jsonl(Store(), path.as_uri())] == [1, 2]
    path.write_text(path.read_text().replace("\n", "\r\n"))  # CRLF files too
    assert len(read_prompts(Store(), path.as_uri()).prompts) == 2
