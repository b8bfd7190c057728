from fractions import Fraction
from math import exp, lgamma

import pytest

from quorum.reasoning.early_stop import (
    BetaRule,
    EarlyStopping,
    NeverStop,
    StopRule,
    WindowRule,
    leader_probability,
    make_rule,
)


def _beta_tail_by_integration(a: int, b: int, steps: int = 200_000) -> float:
    """P(X > 1/2) for X ~ Beta(a, b) by the midpoint rule, as an independent check."""
    log_norm = lgamma(a + b) - lgamma(a) - lgamma(b)
    width = 0.5 / steps
    total = 0.0
    for step in range(steps):
        x = 0.5 + (step + 0.5) * width
        total += x ** (a - 1) * (1 - x) ** (b - 1)
    return total * width * exp(log_norm)


@pytest.mark.parametrize(
    ("v1", "v2", "expected"),
    [
        (0, 0, Fraction(1, 2)),  # uniform prior
        (1, 0, Fraction(3, 4)),  # Beta(2, 1): 1 - 0.5**2
        (3, 0, Fraction(15, 16)),
        (4, 0, Fraction(31, 32)),  # 0.96875: four agreeing samples pass 0.95
        (5, 1, Fraction(15, 16)),
        (2, 2, Fraction(1, 2)),  # a tie is a coin flip
        (6, 2, Fraction(233, 256)),  # 1 - (C(9,7) + C(9,8) + C(9,9)) / 2**9
    ],
)
def test_leader_probability_known_values(v1: int, v2: int, expected: Fraction) -> None:
    assert leader_probability(v1, v2) == expected


@pytest.mark.parametrize(("v1", "v2"), [(1, 0), (3, 1), (7, 3), (10, 2)])
def test_leader_probability_matches_numeric_integration(v1: int, v2: int) -> None:
    assert float(leader_probability(v1, v2)) == pytest.approx(_beta_tail_by_integration(v1 + 1, v2 + 1), abs=1e-6)


def test_leader_probability_is_symmetric_and_monotone() -> None:
    for v1 in range(12):
        for v2 in range(12):
            assert leader_probability(v1, v2) + leader_probability(v2, v1) == 1
            assert leader_probability(v1 + 1, v2) > leader_probability(v1, v2)


def test_leader_probability_rejects_negative_counts() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        leader_probability(-1, 0)


@pytest.mark.parametrize(
    ("answers", "stop"),
    [
        ([], False),
        (["7", "7", "7"], False),  # 15/16 < 0.95
        (["7", "7", "7", "7"], True),  # 31/32 > 0.95
        (["7", None, "7", None, "7", "7"], True),  # unanswered samples do not count against the leader
        (["7", "8", "7", "7", "7"], False),  # 4 vs 1: 26/32
        ([None, None, None, None, None], False),
    ],
)
def test_beta_rule(answers: list[str | None], stop: bool) -> None:
    assert BetaRule(threshold=0.95).should_stop(answers) is stop


def test_beta_rule_waits_for_min_samples() -> None:
    assert not BetaRule(threshold=0.95, min_samples=5).should_stop(["7"] * 4)
    assert BetaRule(threshold=0.95, min_samples=5).should_stop(["7"] * 5)


@pytest.mark.parametrize(
    ("answers", "stop"),
    [
        (["7", "7"], False),
        (["7", "7", "7"], True),
        (["8", "7", "7", "7"], True),
        (["7", "7", "8"], False),
        ([None, None, None], False),
        (["7", None, "7"], False),
    ],
)
def test_window_rule(answers: list[str | None], stop: bool) -> None:
    assert WindowRule(window=3).should_stop(answers) is stop


def test_window_rule_waits_for_min_samples() -> None:
    assert not WindowRule(window=2, min_samples=3).should_stop(["7", "7"])
    assert WindowRule(window=2, min_samples=3).should_stop(["8", "7", "7"])


def test_make_rule() -> None:
    assert isinstance(make_rule(EarlyStopping()), NeverStop)
    assert make_rule(EarlyStopping(StopRule.BETA, threshold=0.9, min_samples=2)) == BetaRule(0.9, 2)
    assert make_rule(EarlyStopping(StopRule.ESC, window=5)) == WindowRule(5, 1)
    assert not NeverStop().should_stop(["7"] * 100)
