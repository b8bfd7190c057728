"""Majority vote over sample answers, with a deterministic tie-break."""

from __future__ import annotations

from .answers import answer_key
from .events import AnswerCount, VoteEvent


class Tally:
    """The votes of the finished samples, in finish order.

    Answers are grouped by :func:`~quorum.reasoning.answers.answer_key` and
    shown as first spelled. The leader has the most votes; among equal counts
    the answer that appeared first wins, so a tally never depends on dict or
    set ordering.
    """

    def __init__(self) -> None:
        self._keys: list[str | None] = []
        self._spelling: dict[str, str] = {}  # insertion order is first appearance
        self._counts: dict[str, int] = {}

    def add(self, answer: str | None) -> None:
        """Count one finished sample; None is a sample without an answer."""
        if answer is None:
            self._keys.append(None)
            return
        key = answer_key(answer)
        self._keys.append(key)
        self._spelling.setdefault(key, answer)
        self._counts[key] = self._counts.get(key, 0) + 1

    @property
    def keys(self) -> list[str | None]:
        """The vote keys of the finished samples in finish order (what stopping rules see)."""
        return list(self._keys)

    @property
    def finished(self) -> int:
        return len(self._keys)

    def counts(self) -> tuple[AnswerCount, ...]:
        """Answer counts, leader first; equal counts keep first-appearance order (``sorted`` is stable)."""
        ranked = sorted(self._spelling, key=lambda key: -self._counts[key])
        return tuple(AnswerCount(self._spelling[key], self._counts[key]) for key in ranked)

    def winner(self) -> str | None:
        counts = self.counts()
        return counts[0].answer if counts else None

    def confidence(self) -> float:
        """The leader's share of the answered samples (0.0 without answers)."""
        answered = sum(self._counts.values())
        return max(self._counts.values()) / answered if answered else 0.0

    def event(self) -> VoteEvent:
        return VoteEvent(counts=self.counts(), unanswered=self._keys.count(None))
