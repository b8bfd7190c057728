"""RAG: retrieve passages for the question, answer from them, cite the documents the answer came from.

One retrieval, re-ranked by a hybrid dense + word-overlap score (streamed as a
retrieval event, in that order), one greedy model call over the numbered
passages that score close to the best one (streamed as step 1), then the final event whose ``citations`` are
the retrieved documents that contain the answer (see
:func:`~quorum.reasoning.retrieval.citations`). Small models copy facts from a
short context far more reliably than they pick source numbers, so citations
are attributed by checking the answer against the passages, not asked of the model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import replace

from ..answers import AnswerFormat, extract_answer
from ..errors import ReasoningInputError
from ..events import Event, Passage, RetrievalEvent, StopReason
from ..llm import ChatTurn, LLMClient
from ..prompts import answer_hint
from ..request import ReasonRequest
from ..retrieval import Retriever, citations, context_passages, format_passages, rerank
from ..state import RunState
from ..telemetry import ending, start_span
from .common import Completion, call_tokens, final_event, step_sampling, stream_step, tokens_exhausted

TEMPERATURE = 0.0
MAX_TOKENS = 64

PROMPT = """Sources:
{sources}

Answer the question using only the sources above.
Question: {question}
Reply with only the answer ({hint}) and nothing else."""


def rag_messages(request: ReasonRequest, passages: Sequence[Passage]) -> list[ChatTurn]:
    prompt = PROMPT.format(sources=format_passages(passages), question=request.question, hint=answer_hint(request))
    return [*request.messages, ChatTurn("user", prompt)]


async def _retrieve(retriever: Retriever, request: ReasonRequest, top_k: int) -> tuple[Passage, ...]:
    """The question's passages; a problem with the search query is reported on ``question``, the field the
    caller sent (a RAG request has no ``query``)."""
    try:
        return await retriever.retrieve(request.collection, request.question, top_k)
    except ReasoningInputError as error:
        if error.field != "query":
            raise
        raise ReasoningInputError("question", error.problem) from None


def _answer(text: str, request: ReasonRequest) -> str | None:
    if request.answer_format is AnswerFormat.FREE_TEXT:
        line = text.strip().splitlines()[0].strip() if text.strip() else ""
        return line.rstrip(".").strip() or None
    return extract_answer(text, request.answer_format, request.choices)


async def run(
    request: ReasonRequest, client: LLMClient, state: RunState, retriever: Retriever, top_k: int
) -> AsyncIterator[Event]:
    with ending(start_span("reason.retrieve", state.span, {"quorum.collection": request.collection})) as span:
        passages = rerank(request.question, await _retrieve(retriever, request, top_k))
        span.set_attribute("quorum.passages", len(passages))
    yield RetrievalEvent(query=request.question, passages=passages)
    sampling = step_sampling(request, state, temperature=TEMPERATURE, max_tokens=MAX_TOKENS)
    completion = Completion()
    with ending(start_span("reason.step", state.span, {"quorum.step": 1})) as span:
        context = context_passages(request.question, passages)
        span.set_attribute("quorum.context_passages", len(context))
        messages = rag_messages(request, context)
        async with aclosing(
            stream_step(client, request.model, messages, sampling, state, span, 1, completion)
        ) as steps:
            async for event in steps:
                yield event
        answer = _answer(completion.text, request)
        cited = citations(answer, passages)
        span.set_attribute("quorum.citations", list(cited))
    if answer is not None:
        final = final_event(state, answer, StopReason.ANSWERED, samples_used=1)
    elif completion.finish_reason == "length" and sampling.max_tokens < call_tokens(request, MAX_TOKENS):
        final = final_event(state, None, StopReason.BUDGET_TOKENS, samples_used=1, detail=tokens_exhausted(state))
    else:
        final = final_event(state, None, StopReason.NO_ANSWER, samples_used=1)
    yield replace(final, citations=cited)
