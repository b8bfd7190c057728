"""RAG runs and the retrieve tool over a scripted retriever (the real store is tested in rag/ and integration)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import pytest

from quorum.reasoning.answers import AnswerFormat
from quorum.reasoning.errors import ReasoningError, ReasoningInputError
from quorum.reasoning.events import FinalEvent, Passage, RetrievalEvent, StepEvent, StopReason, ToolResultEvent
from quorum.reasoning.request import ReasoningLimits, ReasonRequest, Strategy, validate
from quorum.reasoning.retrieval import RETRIEVE_TOOL, citations, context_passages, format_passages, rerank, supports
from quorum.reasoning.runner import run_reasoning
from quorum.reasoning.tools import FINAL_ANSWER, default_registry

from .fakes import ScriptedClient, action, reply
from .helpers import drain, of_type

ORLIN = Passage("bridges", "The Orlin Bridge was designed by Mara Quell in 1911.", 0.82)
TOWER = Passage("towers", "The Vesk Tower was designed by Ido Brann.", 0.41)
RAG = ReasonRequest(
    question="Who designed the Orlin Bridge?",
    strategy=Strategy.RAG,
    collection="docs",
    answer_format=AnswerFormat.FREE_TEXT,
)


class MissingCollection(ReasoningError):
    pass


@dataclass
class FakeRetriever:
    passages: tuple[Passage, ...]
    collections: tuple[str, ...] = ("docs",)
    queries: list[tuple[str, str, int]] = field(default_factory=list)
    default_top_k: int = 4
    max_top_k: int = 10

    async def check_collection(self, collection: str) -> None:
        if collection not in self.collections:
            raise MissingCollection(f"collection '{collection}' does not exist")

    async def retrieve(self, collection: str, query: str, top_k: int) -> tuple[Passage, ...]:
        self.queries.append((collection, query, top_k))
        return self.passages[:top_k]


async def _run(request: ReasonRequest, client: ScriptedClient, retriever: FakeRetriever) -> list[object]:
    """``request`` as the gateway runs it: its gate's checks (retrieval on), then the run."""
    registry = default_registry()
    trusted = validate(request, ReasoningLimits(), (*registry.names(), RETRIEVE_TOOL))
    events = run_reasoning(trusted, client, registry, retriever=retriever)
    return list(await drain(events))


def test_support_is_containment_of_the_answer_or_all_its_content_words() -> None:
    assert supports("Mara Quell", ORLIN.text)
    assert supports("quell, mara", ORLIN.text)
    assert not supports("Ido Brann", ORLIN.text)
    assert not supports("", "")


def test_citations_prefer_passages_holding_the_answer_then_the_top_passage() -> None:
    assert citations("Ido Brann", (ORLIN, TOWER)) == ("towers",)
    assert citations("someone else", (ORLIN, TOWER)) == ("bridges",)
    assert citations(None, (TOWER,)) == ("towers",)
    assert citations("x", ()) == ()
    assert format_passages(()) == "No matching passages."


def test_rerank_lifts_passages_that_share_the_query_words() -> None:
    close_in_embedding = Passage("towers", "The Vesk Tower was designed by Ido Brann.", 0.9)
    assert rerank("Who designed the Orlin Bridge?", (close_in_embedding, ORLIN)) == (ORLIN, close_in_embedding)
    assert rerank("the of", (TOWER, ORLIN)) == (ORLIN, TOWER), "no content words: the dense order"


def test_context_keeps_only_passages_close_to_the_best() -> None:
    question = "Who designed the Orlin Bridge?"
    rival = Passage("rival", "The Orlin Bridge was painted red.", 0.86)
    assert context_passages(question, rerank(question, (TOWER, rival, ORLIN))) == (ORLIN, rival)
    assert context_passages(question, ()) == ()


async def test_rag_retrieves_answers_from_the_sources_and_cites_them() -> None:
    client = ScriptedClient([reply("Mara Quell.")])
    retriever = FakeRetriever((TOWER, ORLIN))
    events = await _run(RAG, client, retriever)
    (retrieval,) = of_type(events, RetrievalEvent)  # type: ignore[arg-type]
    assert retrieval.passages == (ORLIN, TOWER), "re-ranked: the passage naming the Orlin Bridge first"
    assert retriever.queries == [("docs", RAG.question, 4)]
    prompt = client.calls[0].messages[-1].content
    assert "[1] (bridges) The Orlin Bridge" in prompt
    assert prompt.index("Sources:") < prompt.index(RAG.question)
    assert "".join(e.text for e in of_type(events, StepEvent)) == "Mara Quell."  # type: ignore[arg-type]
    final = events[-1]
    assert isinstance(final, FinalEvent)
    assert (final.answer, final.citations, final.stop_reason) == ("Mara Quell", ("bridges",), StopReason.ANSWERED)


async def test_rag_top_k_comes_from_the_request_and_is_capped() -> None:
    retriever = FakeRetriever((ORLIN, TOWER))
    await _run(replace(RAG, top_k=1), ScriptedClient([reply("Mara Quell")]), retriever)
    assert retriever.queries[0][2] == 1
    with pytest.raises(ReasoningInputError, match="top_k"):
        await _run(replace(RAG, top_k=11), ScriptedClient([]), retriever)


async def test_unknown_collection_fails_before_the_first_event() -> None:
    client = ScriptedClient([])
    with pytest.raises(MissingCollection):
        await _run(replace(RAG, collection="nope"), client, FakeRetriever((ORLIN,)))
    assert client.calls == []


async def test_react_can_search_the_collection_with_the_retrieve_tool() -> None:
    request = ReasonRequest(
        question=RAG.question,
        strategy=Strategy.REACT,
        tools=("retrieve",),
        collection="docs",
        answer_format=AnswerFormat.FREE_TEXT,
    )
    client = ScriptedClient(
        [reply(action("retrieve", query="Orlin Bridge")), reply(action(FINAL_ANSWER, answer="Mara Quell"))]
    )
    retriever = FakeRetriever((ORLIN,))
    events = await _run(request, client, retriever)
    (result,) = of_type(events, ToolResultEvent)  # type: ignore[arg-type]
    assert "Mara Quell" in result.output
    assert retriever.queries == [("docs", "Orlin Bridge", 4)]
    schema = json.loads(client.calls[0].sampling.json_schema or "{}")
    assert "retrieve" in json.dumps(schema)
    final = events[-1]
    assert isinstance(final, FinalEvent)
    assert final.answer == "Mara Quell"


async def test_retrieve_tool_needs_a_collection() -> None:
    request = ReasonRequest(question="q", strategy=Strategy.REACT, tools=("retrieve",))
    with pytest.raises(ReasoningInputError, match="collection"):
        await _run(request, ScriptedClient([]), FakeRetriever(()))


@dataclass
class QueryLimitRetriever(FakeRetriever):
    """Rejects long queries the way the document store does (its error names its own field, ``query``)."""

    max_query_chars: int = 40

    async def retrieve(self, collection: str, query: str, top_k: int) -> tuple[Passage, ...]:
        if len(query) > self.max_query_chars:
            raise ReasoningInputError("query", f"is {len(query)} characters long; the limit is {self.max_query_chars}")
        return await super().retrieve(collection, query, top_k)


async def test_a_rag_question_too_long_to_search_names_the_question_field() -> None:
    request = replace(RAG, question="Who designed the Orlin Bridge, and in which year was it finished?")
    with pytest.raises(ReasoningInputError) as info:
        await _run(request, ScriptedClient([]), QueryLimitRetriever((ORLIN,)))
    assert info.value.field == "question"
    assert info.value.message == "question: is 65 characters long; the limit is 40"
