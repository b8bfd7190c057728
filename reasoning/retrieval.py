"""Retrieval for RAG runs and the ``retrieve`` tool: the :class:`Retriever` protocol and citation choice.

The reasoning layer only needs "passages for a query from a named collection";
the deployment plugs in its document store (``quorum.reasoning.rag``) or any
other search service behind this protocol.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from .events import Passage
from .tools.base import ToolError, ToolExample

RETRIEVE_TOOL = "retrieve"
MAX_CITATIONS = 3
LEXICAL_WEIGHT = 0.5
RELEVANCE_MARGIN = 0.15
_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    {"a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "is", "it", "of", "on", "or", "the"}
    | {"to", "was", "were", "which", "who", "with"}
)


class Retriever(Protocol):
    """Searches document collections.

    ``retrieve`` returns at most ``top_k`` passages, best first. It raises a
    :class:`~quorum.reasoning.errors.ReasoningError` subclass for an unknown
    collection (NOT_FOUND at the edge) or a bad query.
    """

    @property
    def default_top_k(self) -> int: ...

    @property
    def max_top_k(self) -> int: ...

    async def retrieve(self, collection: str, query: str, top_k: int) -> tuple[Passage, ...]: ...

    async def check_collection(self, collection: str) -> None:
        """Raise if ``collection`` does not exist (called before a run starts)."""
        ...


def _content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


def supports(answer: str, passage: str) -> bool:
    """Whether ``passage`` contains the answer: its text, or every content word of it."""
    if not answer.strip():
        return False
    if answer.lower() in passage.lower():
        return True
    words = _content_words(answer)
    present = set(_content_words(passage))
    return bool(words) and all(word in present for word in words)


def citations(answer: str | None, passages: Sequence[Passage]) -> tuple[str, ...]:
    """The documents an answer relies on: passages that contain it, in retrieval order (at most
    :data:`MAX_CITATIONS`); the best passage's document when none does (the answer was drawn from
    the retrieved text, so the top source is the most likely one); nothing without passages."""
    cited: list[str] = []
    if answer:
        for passage in passages:
            if passage.doc_id not in cited and supports(answer, passage.text):
                cited.append(passage.doc_id)
    if not cited and passages:
        cited.append(passages[0].doc_id)
    return tuple(cited[:MAX_CITATIONS])


def rerank(query: str, passages: Sequence[Passage], weight: float = LEXICAL_WEIGHT) -> tuple[Passage, ...]:
    """Passages re-ordered by dense score plus ``weight`` x the share of the query's content words they contain.

    Dense embeddings blur rare names (made-up or domain-specific terms look alike to a
    small sentence encoder); exact word overlap separates them. A hybrid score is the
    usual cure, and reordering is what the answer step needs: small models copy from
    the first source.
    """
    return tuple(sorted(passages, key=lambda passage: hybrid_score(query, passage, weight), reverse=True))


def hybrid_score(query: str, passage: Passage, weight: float = LEXICAL_WEIGHT) -> float:
    """Dense score plus ``weight`` x the share of the query's content words the passage contains."""
    words = set(_content_words(query))
    if not words:
        return passage.score
    return passage.score + weight * len(words & set(_content_words(passage.text))) / len(words)


def context_passages(query: str, ranked: Sequence[Passage], margin: float = RELEVANCE_MARGIN) -> tuple[Passage, ...]:
    """The passages worth showing the model: those scoring within ``margin`` of the best (hybrid score).

    Near-miss passages written like the right one are what a small model copies from by
    mistake; a clear score gap means the best passage alone answers the question.
    """
    if not ranked:
        return ()
    best = hybrid_score(query, ranked[0])
    return tuple(p for p in ranked if hybrid_score(query, p) >= best - margin)


def format_passages(passages: Sequence[Passage]) -> str:
    """Passages as numbered sources for a prompt or a tool result."""
    if not passages:
        return "No matching passages."
    return "\n".join(f"[{i}] ({p.doc_id}) {p.text.strip()}" for i, p in enumerate(passages, start=1))


class RetrieveTool:
    """The ``retrieve`` tool of a ReAct run: search the run's collection for a query."""

    name = RETRIEVE_TOOL
    description = "Searches the document collection and returns the passages that best match a query."
    parameters: Mapping[str, Any] = {
        "type": "object",
        "properties": {"query": {"type": "string", "minLength": 1, "maxLength": 500}},
        "required": ["query"],
        "additionalProperties": False,
    }
    example = ToolExample(
        question="Who designed the Orlin Bridge?",
        arguments={"query": "Orlin Bridge designer"},
        output="[1] (bridges.txt) The Orlin Bridge was designed by Mara Quell in 1911.",
        answer="Mara Quell",
        thought="The documents should say who designed the Orlin Bridge: search for it.",
    )

    def __init__(self, retriever: Retriever, collection: str, top_k: int) -> None:
        self._retriever = retriever
        self._collection = collection
        self._top_k = top_k

    async def run(self, arguments: Mapping[str, Any]) -> str:
        query = arguments.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ToolError(f"arguments.query must be a non-empty string, got {json.dumps(query)}")
        return format_passages(await self._retriever.retrieve(self._collection, query, self._top_k))
