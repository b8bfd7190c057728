import json

import pytest

from quorum.client.sdk import chat_request
from quorum.cluster.errors import InvalidArgument
from quorum.cluster.tool_calls import (
    ToolCallDecoder,
    check_tools,
    constraint_for,
    parse_turn,
    template_messages,
    tool_mode,
)
from quorum.cluster.types import (
    ChoiceDelta,
    FinishReason,
    GenerationChunk,
    Message,
    OutputConstraint,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
    ToolSpec,
)
from quorum.services.convert import merge_chunks, messages_from_proto, tools_from_proto
from quorum.v1 import inference_pb2 as pb

WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather of a city.",
    parameters_json_schema=json.dumps(
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    ),
)
CLOCK = ToolSpec(name="now", description="The time.")


def _field(error: pytest.ExceptionInfo[InvalidArgument]) -> str:
    return error.value.field


@pytest.mark.parametrize(
    ("tools", "choice", "constraint", "field"),
    [
        ((ToolSpec(name="bad name"),), ToolChoice(), None, "tools[0].name"),
        ((WEATHER, WEATHER), ToolChoice(), None, "tools[1].name"),
        ((ToolSpec(name="t", parameters_json_schema="{nope"),), ToolChoice(), None, "tools[0].parameters_json_schema"),
        (
            (ToolSpec(name="t", parameters_json_schema='{"type": "string"}'),),
            ToolChoice(),
            None,
            "tools[0].parameters_json_schema",
        ),
        ((WEATHER,), ToolChoice(name="missing"), None, "tool_choice.name"),
        ((), ToolChoice(mode=ToolChoiceMode.REQUIRED), None, "tool_choice"),
        ((WEATHER,), ToolChoice(), OutputConstraint(regex="a+"), "sampling.constraint"),
    ],
)
def test_bad_tools_name_the_field(
    tools: tuple[ToolSpec, ...], choice: ToolChoice, constraint: OutputConstraint | None, field: str
) -> None:
    with pytest.raises(InvalidArgument) as error:
        check_tools(tools, choice, constraint)
    assert _field(error) == field


def test_tool_choice_none_allows_a_constraint_and_offers_no_grammar() -> None:
    choice = ToolChoice(mode=ToolChoiceMode.NONE)
    check_tools((WEATHER,), choice, OutputConstraint(regex="a+"))
    assert constraint_for((WEATHER,), choice) is None
    assert tool_mode((), ToolChoice()) is ToolChoiceMode.NONE


def test_auto_grammar_allows_each_tool_and_a_reply() -> None:
    constraint = constraint_for((WEATHER, CLOCK), ToolChoice())
    assert constraint is not None
    assert constraint.json_schema is not None
    branches = json.loads(constraint.json_schema)["anyOf"]
    assert [b["properties"].get("tool", {}).get("enum") for b in branches] == [["get_weather"], ["now"], None]
    assert branches[0]["properties"]["arguments"]["required"] == ["city"]
    assert branches[2]["required"] == ["content"]


def test_named_tool_choice_offers_only_that_tool_and_no_reply() -> None:
    constraint = constraint_for((WEATHER, CLOCK), ToolChoice(name="now"))
    assert constraint is not None
    assert constraint.json_schema is not None
    branches = json.loads(constraint.json_schema)["anyOf"]
    assert [b["properties"]["tool"]["enum"] for b in branches] == [["now"]]


def test_template_merges_tool_prompt_into_system_and_renders_earlier_calls() -> None:
    messages = (
        Message("system", "Be brief."),
        Message("user", "Weather in Oslo?"),
        Message("assistant", "", tool_calls=(ToolCall("call_1", "get_weather", '{"city": "Oslo"}'),)),
        Message("tool", "rain, 4 C", tool_call_id="call_1"),
    )
    rendered = template_messages(messages, (WEATHER,), ToolChoice())
    assert rendered[0]["role"] == "system"
    assert rendered[0]["content"].startswith("Be brief.")
    assert "get_weather" in rendered[0]["content"]
    assert json.loads(rendered[2]["content"]) == {"tool": "get_weather", "arguments": {"city": "Oslo"}}
    assert rendered[3] == {"role": "tool", "content": "rain, 4 C"}
    assert len(rendered) == 4


def test_no_tools_renders_the_conversation_unchanged() -> None:
    messages = (Message("user", "hi"),)
    assert template_messages(messages, (), ToolChoice()) == [{"role": "user", "content": "hi"}]


def test_parse_turn_reads_calls_and_replies() -> None:
    text, calls = parse_turn('{"tool": "get_weather", "arguments": {"city": "Oslo"}}')
    assert text == ""
    assert [(c.name, json.loads(c.arguments_json)) for c in calls] == [("get_weather", {"city": "Oslo"})]
    assert calls[0].id.startswith("call_")
    assert parse_turn('{"content": "Sunny."}') == ("Sunny.", ())
    assert parse_turn("not json") == ("not json", ())


def test_decoder_emits_whole_turns_when_choices_finish() -> None:
    decoder = ToolCallDecoder()
    assert decoder.feed((ChoiceDelta(0, '{"tool": "now", '), ChoiceDelta(1, '{"content": "hi'))) == ()
    finished = decoder.feed(
        (ChoiceDelta(0, '"arguments": {}}', FinishReason.STOP), ChoiceDelta(1, '"}', FinishReason.STOP))
    )
    assert finished[0].finish_reason is FinishReason.TOOL_CALLS
    assert finished[0].tool_calls[0].name == "now"
    assert (finished[1].text, finished[1].finish_reason, finished[1].tool_calls) == ("hi", FinishReason.STOP, ())


def test_decoder_hands_back_a_cut_turn_as_text() -> None:
    decoder = ToolCallDecoder()
    (cut,) = decoder.feed((ChoiceDelta(0, '{"tool": "no', FinishReason.LENGTH),))
    assert (cut.text, cut.finish_reason, cut.tool_calls) == ('{"tool": "no', FinishReason.LENGTH, ())


def test_wire_round_trip_of_tools_and_calls() -> None:
    request = chat_request(
        [pb.ChatMessage(role="assistant", tool_calls=[pb.ToolCallRequest(id="c1", name="now", arguments_json="{}")])],
        "",
        [{"name": "get_weather", "description": "d", "parameters": {"type": "object"}}, pb.ToolDefinition(name="now")],
        "get_weather",
        {},
    )
    tools, choice = tools_from_proto(request.tools, request.tool_choice)
    assert [t.name for t in tools] == ["get_weather", "now"]
    assert json.loads(tools[0].parameters_json_schema) == {"type": "object"}
    assert choice == ToolChoice(mode=ToolChoiceMode.REQUIRED, name="get_weather")
    (message,) = messages_from_proto(request.messages)
    assert message.tool_calls == (ToolCall("c1", "now", "{}"),)
    call = ToolCall("c2", "now", "{}")
    choices, _ = merge_chunks(
        [GenerationChunk(choices=(ChoiceDelta(0, "", FinishReason.TOOL_CALLS, tool_calls=(call,)),))]
    )
    assert choices[0].finish_reason == pb.FINISH_REASON_TOOL_CALLS
    assert [(c.id, c.name) for c in choices[0].tool_calls] == [("c2", "now")]
