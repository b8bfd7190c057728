import pickle
from dataclasses import replace

import pytest

from quorum.reasoning.answers import AnswerFormat
from quorum.reasoning.early_stop import EarlyStopping, StopRule
from quorum.reasoning.errors import ReasoningInputError, UnknownToolError
from quorum.reasoning.llm import ChatTurn
from quorum.reasoning.request import Budget, ReasoningLimits, ReasonRequest, SamplingOverrides, Strategy, validate
from quorum.reasoning.tools import ToolStep

LIMITS = ReasoningLimits(max_samples=8, max_question_chars=100, max_messages=2, max_steps=6)
TOOLS = ("calculator", "unit_convert")
BASE = ReasonRequest(question="What is 5 + 8?")
SC = replace(BASE, strategy=Strategy.SELF_CONSISTENCY, samples=4)
REACT = replace(BASE, strategy=Strategy.REACT, tools=("calculator",))


@pytest.mark.parametrize(
    "request_",
    [
        BASE,
        replace(BASE, strategy=Strategy.DIRECT),
        SC,
        replace(SC, early_stopping=EarlyStopping(StopRule.BETA, threshold=0.5, min_samples=4)),
        replace(SC, early_stopping=EarlyStopping(StopRule.ESC, window=2)),
        REACT,
        replace(REACT, tools=TOOLS, max_steps=1, budget=Budget(max_tool_calls=0)),
        replace(BASE, strategy=Strategy.RAG, collection="docs"),
        replace(BASE, answer_format=AnswerFormat.CHOICE, choices=("Yes", "No")),
        replace(BASE, messages=(ChatTurn("system", "Be brief."), ChatTurn("tool", "42"))),
        replace(BASE, sampling=SamplingOverrides(temperature=0, top_p=1, max_tokens=1, seed=0)),
    ],
)
def test_valid_requests_pass(request_: ReasonRequest) -> None:
    validate(request_, LIMITS, TOOLS)


@pytest.mark.parametrize(
    ("request_", "field", "problem"),
    [
        (replace(BASE, question="  \n"), "question", "must not be empty"),
        (replace(BASE, question="x" * 101), "question", "the limit is 100"),
        (replace(BASE, strategy="tree_of_thought"), "strategy", "unknown value 'tree_of_thought'"),  # type: ignore[arg-type]
        (replace(BASE, messages=(ChatTurn("user", "a"),) * 3), "messages", "the limit is 2"),
        (replace(BASE, messages=(ChatTurn("robot", "a"),)), "messages[0].role", "unknown role 'robot'"),
        (replace(SC, samples=0), "samples", "between 1 and 8"),
        (replace(SC, samples=9), "samples", "between 1 and 8"),
        (replace(BASE, samples=3), "samples", "only self_consistency"),
        (replace(SC, budget=Budget(max_tokens=3)), "budget.max_tokens", "each of the 4 samples"),
        (replace(BASE, tools=("calculator",)), "tools", "only the react strategy"),
        (replace(REACT, tools=()), "tools", "at least one tool"),
        (replace(REACT, tools=("calculator", "calculator")), "tools", "named once"),
        (replace(REACT, max_steps=0), "max_steps", "between 1 and 6"),
        (replace(REACT, max_steps=7), "max_steps", "between 1 and 6"),
        (replace(BASE, budget=Budget(max_tokens=0)), "budget.max_tokens", "between 1 and"),
        (replace(BASE, budget=Budget(max_tokens=10**6)), "budget.max_tokens", "between 1 and"),
        (replace(BASE, budget=Budget(max_seconds=-1)), "budget.max_seconds", "must be > 0"),
        (replace(BASE, budget=Budget(max_seconds=0)), "budget.max_seconds", "must be > 0"),
        (replace(BASE, budget=Budget(max_seconds=float("nan"))), "budget.max_seconds", "finite"),
        (replace(BASE, budget=Budget(max_seconds=301)), "budget.max_seconds", "at most 300"),
        (replace(BASE, budget=Budget(max_tool_calls=-1)), "budget.max_tool_calls", "between 0 and"),
        (
            replace(BASE, early_stopping=EarlyStopping(StopRule.BETA)),
            "early_stopping.rule",
            "only self_consistency",
        ),
        (
            replace(SC, early_stopping=EarlyStopping("median")),  # type: ignore[arg-type]
            "early_stopping.rule",
            "unknown value",
        ),
        (
            replace(SC, early_stopping=EarlyStopping(StopRule.BETA, threshold=1.0)),
            "early_stopping.threshold",
            "[0.5, 1)",
        ),
        (
            replace(SC, early_stopping=EarlyStopping(StopRule.BETA, threshold=0.4)),
            "early_stopping.threshold",
            "[0.5, 1)",
        ),
        (replace(SC, early_stopping=EarlyStopping(StopRule.ESC, window=1)), "early_stopping.window", "between 2"),
        (replace(SC, early_stopping=EarlyStopping(StopRule.ESC, window=5)), "early_stopping.window", "samples=4"),
        (
            replace(SC, early_stopping=EarlyStopping(StopRule.BETA, min_samples=5)),
            "early_stopping.min_samples",
            "samples=4",
        ),
        (replace(BASE, sampling=SamplingOverrides(temperature=-1)), "sampling.temperature", "in [0, 2]"),
        (replace(BASE, sampling=SamplingOverrides(temperature=50)), "sampling.temperature", "in [0, 2]"),
        (replace(BASE, sampling=SamplingOverrides(temperature=float("inf"))), "sampling.temperature", "finite"),
        (replace(BASE, sampling=SamplingOverrides(top_p=0)), "sampling.top_p", "(0, 1]"),
        (replace(BASE, sampling=SamplingOverrides(max_tokens=0)), "sampling.max_tokens", "between 1"),
        (replace(BASE, sampling=SamplingOverrides(seed=-1)), "sampling.seed", ">= 0"),
        (replace(BASE, answer_format="date"), "answer_format", "unknown value"),  # type: ignore[arg-type]
        (replace(BASE, answer_format=AnswerFormat.CHOICE, choices=()), "choices", "at least one"),
        (replace(BASE, answer_format=AnswerFormat.CHOICE, choices=("A", "a")), "choices", "distinct"),
        (replace(BASE, answer_format=AnswerFormat.CHOICE, choices=(" A",)), "choices", "whitespace"),
        (replace(BASE, strategy=Strategy.RAG), "collection", "needs the name of a document collection"),
        (replace(BASE, collection="docs"), "collection", "only the rag strategy"),
    ],
)
def test_invalid_requests_name_the_field(request_: ReasonRequest, field: str, problem: str) -> None:
    with pytest.raises(ReasoningInputError) as info:
        validate(request_, LIMITS, TOOLS)
    assert info.value.field == field
    assert info.value.message.startswith(f"{field}: ")
    assert problem in info.value.problem


def test_strategy_may_be_given_by_value() -> None:
    validate(replace(BASE, strategy="direct"), LIMITS, TOOLS)  # type: ignore[arg-type]


def test_unknown_tool_is_its_own_error() -> None:
    with pytest.raises(UnknownToolError) as info:
        validate(replace(REACT, tools=("calculator", "shell")), LIMITS, TOOLS)
    assert not isinstance(info.value, ReasoningInputError)  # NOT_FOUND, not INVALID_ARGUMENT
    assert info.value.name == "shell"
    assert info.value.field == "tools"
    assert info.value.message == "tools: unknown tool 'shell'; available tools: calculator, unit_convert"


def test_errors_survive_pickling() -> None:
    for error in (ReasoningInputError("question", "must not be empty"), UnknownToolError("shell", TOOLS)):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert copy.message == error.message


def test_the_size_of_the_conversation_is_capped_before_anything_is_tokenized() -> None:
    limits = ReasoningLimits(max_messages=64, max_input_chars=1_000_000)
    messages = tuple(ChatTurn("user", "x" * 126_600) for _ in range(64))  # 8.1 M characters, as observed
    with pytest.raises(ReasoningInputError) as info:
        validate(replace(BASE, messages=messages), limits, TOOLS)
    assert info.value.field == "messages"
    assert "8102414 characters" in info.value.message  # with the 14-character question
    assert "reasoning.max_input_chars" in info.value.message
    validate(replace(BASE, messages=messages[:7]), limits, TOOLS)  # 886 214 characters fit


def test_replayed_steps_count_toward_the_size_cap() -> None:
    step = ToolStep("call_1", "calculator", {"expression": "1 + 1"}, output="2" * 600)
    limits = ReasoningLimits(max_question_chars=100, max_input_chars=500)
    with pytest.raises(ReasoningInputError) as info:
        validate(replace(REACT, steps=(step,)), limits, TOOLS)
    assert info.value.field == "steps"
