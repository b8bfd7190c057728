import pytest

from quorum.cluster.reference import REFERENCE_PROMPTS, answers_agree, compare, opening_words


def test_opening_words_split_on_any_whitespace() -> None:
    assert opening_words(" The capital\nof  France is Paris. It is", 6) == (
        "The",
        "capital",
        "of",
        "France",
        "is",
        "Paris.",
    )


def test_answers_agree_on_their_opening_words_only() -> None:
    assert answers_agree("The capital of France is Paris. It has", "The capital of France is Paris. Paris is")
    assert not answers_agree("The capital of France is Paris.", "L'Étoile, la Marseillaise, la femme")
    assert not answers_agree("Paris.", "Paris. It is the capital")  # a shorter answer must end where it ends


def test_compare_counts_agreeing_prompts_and_rejects_misaligned_answers() -> None:
    report = compare("m", "src", ["a", "b"], ["yes it is", "no"], ["yes it is", "maybe"])
    assert (report.agreed, report.total, report.summary()) == (1, 2, "reference model=m agreement=1/2")
    with pytest.raises(ValueError, match="1 prompts"):
        compare("m", "src", ["a"], ["x", "y"], ["x"])


def test_the_prompt_set_is_fixed_and_distinct() -> None:
    assert len(REFERENCE_PROMPTS) == len(set(REFERENCE_PROMPTS)) == 16
