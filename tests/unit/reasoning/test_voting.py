from quorum.reasoning.events import AnswerCount, VoteEvent
from quorum.reasoning.voting import Tally


def test_leader_first_and_ties_go_to_the_answer_seen_first() -> None:
    tally = Tally()
    for answer in ["8", "7", None, "7", "8", "9"]:
        tally.add(answer)
    assert tally.counts() == (AnswerCount("8", 2), AnswerCount("7", 2), AnswerCount("9", 1))
    assert tally.winner() == "8"
    assert tally.confidence() == 2 / 5
    assert tally.event() == VoteEvent(counts=tally.counts(), unanswered=1)
    assert tally.keys == ["8", "7", None, "7", "8", "9"]


def test_free_text_votes_ignore_case_and_keep_the_first_spelling() -> None:
    tally = Tally()
    for answer in ["Paris", "paris", "PARIS ", "Rome"]:
        tally.add(answer)
    assert tally.counts() == (AnswerCount("Paris", 3), AnswerCount("Rome", 1))


def test_empty_tally() -> None:
    tally = Tally()
    tally.add(None)
    assert tally.winner() is None
    assert tally.confidence() == 0.0
    assert tally.finished == 1
