"""ReasonRequest messages become reasoning requests: the grounding switch and the CoT prompt it feeds."""

from __future__ import annotations

from quorum.cluster.config import ReasoningConfig
from quorum.reasoning.prompts import COT_EXAMPLES, chain_of_thought_messages
from quorum.reasoning.request import Strategy
from quorum.services.reasoning_service import request_from_proto
from quorum.v1 import reasoning_pb2 as rpb


def test_react_is_grounded_unless_the_client_frees_arithmetic() -> None:
    message = rpb.ReasonRequest(question="What is 2 + 3?", strategy=rpb.STRATEGY_REACT, tools=["calculator"])
    assert request_from_proto(message, ReasoningConfig()).grounded
    message.free_arithmetic = True
    assert not request_from_proto(message, ReasoningConfig()).grounded


def test_numeric_chain_of_thought_shows_the_worked_examples_first() -> None:
    message = rpb.ReasonRequest(question="What is 2 + 3?", strategy=rpb.STRATEGY_CHAIN_OF_THOUGHT)
    request = request_from_proto(message, ReasoningConfig())
    assert request.strategy is Strategy.CHAIN_OF_THOUGHT
    turns = chain_of_thought_messages(request)
    assert [t.role for t in turns] == ["user", "assistant"] * len(COT_EXAMPLES) + ["user"]
    assert turns[-1].content.startswith("What is 2 + 3?")
    assert all(t.content.endswith(".") and "The answer is " in t.content for t in turns[1:-1:2])
    choice = rpb.ReasonRequest(question="Pick one", strategy=rpb.STRATEGY_CHAIN_OF_THOUGHT, choices=["A", "B"])
    choice.answer_format = rpb.ANSWER_FORMAT_CHOICE
    assert len(chain_of_thought_messages(request_from_proto(choice, ReasoningConfig()))) == 1
