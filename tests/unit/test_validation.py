import pytest

from quorum.cluster.errors import ContextOverflow, InvalidArgument
from quorum.cluster.types import Message, OutputConstraint, SamplingOptions
from quorum.cluster.validation import check_context, check_messages, check_prompt, check_sampling


@pytest.mark.parametrize(
    ("options", "field"),
    [
        (SamplingOptions(temperature=-0.1), "sampling.temperature"),
        (SamplingOptions(temperature=float("nan")), "sampling.temperature"),
        (SamplingOptions(top_p=0.0), "sampling.top_p"),
        (SamplingOptions(top_p=1.5), "sampling.top_p"),
        (SamplingOptions(top_k=-1), "sampling.top_k"),
        (SamplingOptions(n=5), "sampling.n"),
        (SamplingOptions(n=2, temperature=0), "sampling.n"),
        (SamplingOptions(presence_penalty=3), "sampling.presence_penalty"),
        (SamplingOptions(repetition_penalty=0), "sampling.repetition_penalty"),
        (SamplingOptions(stop=("",)), "sampling.stop"),
        (SamplingOptions(logprobs=21), "sampling.logprobs"),
        (SamplingOptions(max_tokens=4, min_tokens=8), "sampling.min_tokens"),
        (SamplingOptions(constraint=OutputConstraint(json_schema="{not json")), "sampling.constraint.json_schema"),
        (SamplingOptions(constraint=OutputConstraint(choice=())), "sampling.constraint.choice"),
    ],
)
def test_out_of_range_sampling_names_the_field(options: SamplingOptions, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        check_sampling(options, max_n=4)
    assert info.value.field == field
    assert info.value.message.startswith(field)


def test_valid_sampling_passes() -> None:
    check_sampling(SamplingOptions(temperature=0.7, top_p=1, n=4, stop=("\n",), logprobs=2), max_n=4)
    check_sampling(SamplingOptions(temperature=0, n=1), max_n=4)


def test_prompt_and_messages() -> None:
    with pytest.raises(InvalidArgument, match="prompt: must not be empty"):
        check_prompt("", 10)
    with pytest.raises(InvalidArgument, match="limit is 3"):
        check_prompt("abcd", 3)
    with pytest.raises(InvalidArgument, match="at least one message"):
        check_messages((), 10)
    with pytest.raises(InvalidArgument, match=r"messages\[1\]\.role"):
        check_messages((Message("user", "hi"), Message("robot", "x")), 10)


def test_context_fits_or_explains() -> None:
    assert check_context(10, None, 256, 100, "m") == 90
    assert check_context(10, None, 16, 100, "m") == 16
    assert check_context(10, 90, 16, 100, "m") == 90
    with pytest.raises(InvalidArgument, match=r"sampling\.max_tokens: 91 does not fit.*at most 90"):
        check_context(10, 91, 16, 100, "m")
    with pytest.raises(ContextOverflow, match=r"prompt: is 100 tokens.*shorten the prompt"):
        check_context(100, None, 16, 100, "m")


def test_fit_lowers_max_tokens_to_the_room_left() -> None:
    assert check_context(10, 500, 16, 100, "m", fit=True) == 90
    assert check_context(10, 50, 16, 100, "m", fit=True) == 50
    with pytest.raises(ContextOverflow, match=r"prompt: is 100 tokens"):  # nothing left to fit into
        check_context(100, 500, 16, 100, "m", fit=True)
