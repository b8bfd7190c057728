"""The ``quorum tune`` dataset: every malformed row is reported by line and field, and nothing is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.tool_use_data import CALCULATOR_TOOL, generate
from quorum.cluster.tune import TuneConfig, tune
from quorum.cluster.tune_data import DatasetError, load_rows

USER = {"role": "user", "content": "What is 6 * 7?"}
CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "calculator", "arguments": '{"expression": "6*7"}'}}
    ],
}
RESULT = {"role": "tool", "tool_call_id": "c1", "content": "42"}
ANSWER = {"role": "assistant", "content": "42"}
GOOD: dict[str, Any] = {"messages": [USER, CALL, RESULT, ANSWER], "tools": [CALCULATOR_TOOL]}


def _write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def _problem(tmp_path: Path, bad: Any) -> str:
    """The one problem reported for a file whose second line is ``bad`` (the others are valid)."""
    with pytest.raises(DatasetError) as caught:
        load_rows(_write(tmp_path / "data.jsonl", [GOOD, bad, GOOD]))
    assert len(caught.value.problems) == 1
    return caught.value.problems[0]


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("{not json", "row 2: (line): not valid JSON"),
        ([1, 2], "row 2: (line): must be a JSON object, got an array"),
        ({"messages": [USER, ANSWER], "extra": 1}, "row 2: extra: unknown field"),
        ({"messages": "hi"}, "row 2: messages: must be an array, got a string"),
        ({"messages": []}, "row 2: messages: must not be empty"),
        (
            {"messages": [USER, {"role": "bot", "content": "x"}]},
            "row 2: messages[1].role: must be one of system, user, assistant, tool",
        ),
        ({"messages": [USER, {"role": "assistant", "content": 5}]}, "row 2: messages[1].content: must be a string"),
        ({"messages": [USER]}, "row 2: messages[0].role: the last message must be from the assistant"),
        ({"messages": [ANSWER, USER, ANSWER]}, "row 2: messages[0].role: the conversation must start with"),
        ({"messages": [USER, CALL, RESULT, ANSWER]}, "row 2: messages[1].tool_calls[0].function.name: must name one"),
        (
            {"messages": [USER, {**RESULT, "tool_calls": CALL["tool_calls"]}, ANSWER], "tools": [CALCULATOR_TOOL]},
            "row 2: messages[1].tool_calls: only assistant messages carry tool calls",
        ),
        (
            {
                "messages": [
                    USER,
                    {**CALL, "tool_calls": [{"function": {"name": "calculator", "arguments": "6*7"}}]},
                    ANSWER,
                ],
                "tools": [CALCULATOR_TOOL],
            },
            "row 2: messages[1].tool_calls[0].function.arguments: must be a JSON object",
        ),
        ({"messages": [USER, ANSWER], "tools": {}}, "row 2: tools: must be an array, got an object"),
        (
            {"messages": [USER, ANSWER], "tools": [{"type": "function", "function": {"name": "two words"}}]},
            "row 2: tools[0].function.name: must be 1-64 letters",
        ),
        (
            {"messages": [USER, ANSWER], "tools": [CALCULATOR_TOOL, CALCULATOR_TOOL]},
            "row 2: tools[1].function.name: 'calculator' is declared twice",
        ),
        (
            {"messages": [USER, {"role": "assistant", "content": ""}]},
            "row 2: messages[1].content: an assistant message needs content or tool_calls",
        ),
    ],
)
def test_a_malformed_row_is_named_by_line_and_field(tmp_path: Path, bad: Any, expected: str) -> None:
    assert _problem(tmp_path, bad).startswith(expected)


def test_every_bad_row_is_reported_with_its_line_number_and_blank_lines_count(tmp_path: Path) -> None:
    path = _write(tmp_path / "data.jsonl", [GOOD, "", {"messages": [USER]}, GOOD, "[]"])
    with pytest.raises(DatasetError) as caught:
        load_rows(path)
    assert [p.split(":")[0] for p in caught.value.problems] == ["row 3", "row 5"]
    assert "2 invalid row(s)" in str(caught.value)


def test_an_empty_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no rows"):
        load_rows(_write(tmp_path / "data.jsonl", [""]))


def test_valid_rows_keep_their_line_numbers_tools_and_calls(tmp_path: Path) -> None:
    rows = load_rows(_write(tmp_path / "data.jsonl", [GOOD, "", {"messages": [USER, ANSWER]}]))
    assert [row.line for row in rows] == [1, 3]
    assert rows[0].tools[0].name == "calculator"
    call = rows[0].messages[1].tool_calls[0]
    assert (call.name, json.loads(call.arguments_json)) == ("calculator", {"expression": "6*7"})
    assert rows[1].tools == ()


def test_the_generator_writes_valid_rows_deterministically(tmp_path: Path) -> None:
    rows = generate(60, seed=5)
    assert rows == generate(60, seed=5)
    assert rows != generate(60, seed=6)
    loaded = load_rows(_write(tmp_path / "data.jsonl", rows))
    assert len(loaded) == 60
    assert all(row.messages[-1].content.split("Answer: ")[-1] == row.messages[-2].content for row in loaded)


def test_a_bad_row_leaves_nothing_at_the_output(tmp_path: Path) -> None:
    data = _write(tmp_path / "data.jsonl", [GOOD, {"messages": [USER, {"role": "assistant"}]}])
    output = tmp_path / "adapter"
    config = TuneConfig(data=str(data), output=str(output), checkpoint_every=1)
    with pytest.raises(DatasetError, match=r"row 2: messages\[1\]\.content: must be a string"):
        tune(config, tmp_path / "no-model-needed", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl"]


def test_rows_render_as_the_server_renders_them_and_only_assistant_turns_are_trained() -> None:
    from transformers import AutoTokenizer

    from quorum.cluster.config import DEFAULT_CONFIG, load_config
    from quorum.cluster.models import prepare_embedded
    from quorum.cluster.tune_data import IGNORE_INDEX, ChatRow, encode_row, parse_row

    base = prepare_embedded("smollm2-135m-instruct", load_config(DEFAULT_CONFIG).model_cache_dir, progress=False)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    row = parse_row(json.dumps(GOOD), 1)
    encoded = encode_row(tokenizer, row)
    text = tokenizer.decode(list(encoded.input_ids))
    assert text.startswith("<|im_start|>system\nYou can call tools.")  # the server's tool prompt
    trained = tokenizer.decode([t for t in encoded.labels if t != IGNORE_INDEX])
    # The call in the server's JSON form, then the last reply in the tool grammar's reply form.
    assert trained == '{"tool": "calculator", "arguments": {"expression": "6*7"}}<|im_end|>{"content": "42"}<|im_end|>'
    plain = encode_row(tokenizer, ChatRow(line=1, messages=row.messages[:1] + row.messages[3:]))
    assert tokenizer.decode([t for t in plain.labels if t != IGNORE_INDEX]) == "42<|im_end|>"


def test_quorum_tune_exits_2_naming_the_row_or_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from quorum.client.cli import main

    data = _write(tmp_path / "data.jsonl", [GOOD, {"messages": [USER, {"role": "bot", "content": "x"}]}])
    output = tmp_path / "adapter"
    assert main(["tune", "--data", str(data), "--output", str(output), "--no-progress"]) == 2
    assert "row 2: messages[1].role: must be one of system, user, assistant, tool" in capsys.readouterr().err
    assert main(["tune", "--data", str(data), "--output", str(output), "--rank", "65"]) == 2
    assert "tune: rank: Input should be less than or equal to 64" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl"]
