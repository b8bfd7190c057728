"""When self-consistency may stop sampling: the stopping rules and their settings.

A rule sees the answers of the finished samples in the order they finished
(None for a sample without an answer) and says whether the vote is settled:

- ``none``: never stop early; all k samples are used.
- ``beta`` (Adaptive-Consistency, Aggarwal et al. 2023): with v1 and v2 the
  counts of the two most frequent answers, stop once
  P(p1 > p2 | v1, v2) > threshold, where p1 / (p1 + p2) has the posterior
  Beta(v1 + 1, v2 + 1) under a uniform prior.
- ``esc`` (Early-Stopping Self-Consistency, Li et al. 2024): stop once the last
  ``window`` answers are all the same (and not None).

No rule stops before ``min_samples`` samples have finished.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from math import comb
from typing import Protocol


class StopRule(StrEnum):
    NONE = "none"
    BETA = "beta"
    ESC = "esc"


@dataclass(frozen=True)
class EarlyStopping:
    """Early-stopping settings of a self-consistency request.

    ``threshold`` is the posterior probability the beta rule needs, in [0.5, 1);
    ``window`` is the number of identical answers in a row the esc rule needs.
    """

    rule: StopRule = StopRule.NONE
    threshold: float = 0.95
    window: int = 4
    min_samples: int = 1


class StoppingRule(Protocol):
    def should_stop(self, answers: Sequence[str | None]) -> bool:
        """Whether sampling may stop, given the answers of the finished samples in finish order."""
        ...


def leader_probability(v1: int, v2: int) -> Fraction:
    """P(p1 > p2) for p1 / (p1 + p2) ~ Beta(v1 + 1, v2 + 1), exactly.

    For integer parameters a, b the regularized incomplete beta function is a
    binomial tail, I_x(a, b) = P(Binomial(a + b - 1, x) >= a), so
    P(X > 1/2) = 1 - I_{1/2}(a, b) = P(Binomial(v1 + v2 + 1, 1/2) <= v1).
    Counts are at most the sample cap, so the sum is small and exact.
    """
    if v1 < 0 or v2 < 0:
        raise ValueError(f"vote counts must be >= 0, got {v1} and {v2}")
    trials = v1 + v2 + 1
    return Fraction(sum(comb(trials, successes) for successes in range(v1 + 1)), 2**trials)


@dataclass(frozen=True)
class NeverStop:
    def should_stop(self, answers: Sequence[str | None]) -> bool:
        return False


@dataclass(frozen=True)
class BetaRule:
    """Adaptive-Consistency: stop when the leader beats the runner-up with posterior probability > threshold."""

    threshold: float = 0.95
    min_samples: int = 1

    def should_stop(self, answers: Sequence[str | None]) -> bool:
        if len(answers) < self.min_samples:
            return False
        counts = sorted(Counter(answer for answer in answers if answer is not None).values(), reverse=True)
        if not counts:
            return False
        runner_up = counts[1] if len(counts) > 1 else 0
        return leader_probability(counts[0], runner_up) > self.threshold


@dataclass(frozen=True)
class WindowRule:
    """ESC: stop when the last ``window`` answers are identical and not None."""

    window: int = 4
    min_samples: int = 1

    def should_stop(self, answers: Sequence[str | None]) -> bool:
        if len(answers) < max(self.min_samples, self.window):
            return False
        recent = answers[-self.window :]
        return recent[0] is not None and all(answer == recent[0] for answer in recent)


def make_rule(settings: EarlyStopping) -> StoppingRule:
    """The stopping rule ``settings`` describe."""
    if settings.rule is StopRule.BETA:
        return BetaRule(settings.threshold, settings.min_samples)
    if settings.rule is StopRule.ESC:
        return WindowRule(settings.window, settings.min_samples)
    return NeverStop()
