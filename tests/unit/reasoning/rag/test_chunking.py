from __future__ import annotations

import itertools
import random

import pytest

from quorum.reasoning.rag import Chunk, chunk_text

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda"]


def random_text(seed: int, length: int) -> str:
    """Words, sentences and paragraphs, with a few over-long words, reproducibly."""
    rng = random.Random(seed)
    parts: list[str] = []
    size = 0
    while size < length:
        word = rng.choice(WORDS) if rng.random() > 0.02 else "x" * rng.randint(50, 300)
        end = rng.choice([" ", " ", " ", " ", ". ", "! ", ".\n\n", "\n", "  \t"])
        parts.append(word + end)
        size += len(word) + len(end)
    return "".join(parts)


def check_invariants(text: str, chunks: list[Chunk], size: int, overlap: int) -> None:
    assert chunks, "a text with words has chunks"
    covered = [False] * len(text)
    for position, chunk in enumerate(chunks):
        assert chunk.index == position
        assert chunk.text == text[chunk.start : chunk.end]
        assert 0 < len(chunk.text) <= size
        assert chunk.text == chunk.text.strip()
        for i in range(chunk.start, chunk.end):
            covered[i] = True
    for before, after in itertools.pairwise(chunks):
        assert after.start > before.start
        assert after.start >= before.end - overlap, "consecutive chunks share at most the overlap"
    missed = [i for i, flag in enumerate(covered) if not flag and not text[i].isspace()]
    assert not missed, f"uncovered characters at {missed[:5]}"


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(("size", "overlap"), [(800, 120), (100, 0), (64, 63), (40, 10), (1, 0)])
def test_invariants_on_random_text(seed: int, size: int, overlap: int) -> None:
    text = random_text(seed, 3_000 if size > 1 else 200)
    check_invariants(text, chunk_text("doc", text, size, overlap), size, overlap)


def test_short_text_is_one_trimmed_chunk() -> None:
    assert chunk_text("d", "  \n hello world. \n", 800, 120) == [Chunk("d", 0, 4, 16, "hello world.")]


def test_blank_text_has_no_chunks() -> None:
    assert chunk_text("d", " \n\t ", 800, 120) == []
    assert chunk_text("d", "", 800, 120) == []


def test_deterministic() -> None:
    text = random_text(7, 5_000)
    assert chunk_text("d", text, 300, 50) == chunk_text("d", text, 300, 50)


def test_prefers_paragraph_then_sentence_then_word_boundaries() -> None:
    paragraph = "First paragraph sentence one. Sentence two here.\n\nSecond paragraph goes on and on without stopping"
    chunks = chunk_text("d", paragraph, 70, 0)
    assert chunks[0].text == "First paragraph sentence one. Sentence two here."

    sentences = "One sentence that is fairly long. Another sentence that is also long enough to overflow."
    chunks = chunk_text("d", sentences, 60, 0)
    assert chunks[0].text == "One sentence that is fairly long."

    words = "word " * 30
    chunks = chunk_text("d", words, 23, 0)
    assert all(chunk.text.split() == ["word"] * len(chunk.text.split()) for chunk in chunks), "no word is cut"


def test_overlap_starts_at_a_word() -> None:
    text = " ".join(f"w{i:03d}" for i in range(200))
    chunks = chunk_text("d", text, 100, 30)
    assert len(chunks) > 3
    for before, after in itertools.pairwise(chunks):
        assert after.start < before.end, "chunks overlap"
        assert text[after.start - 1] == " ", "the overlap starts at a word"


def test_a_word_longer_than_a_chunk_is_cut() -> None:
    text = "a" * 250
    chunks = chunk_text("d", text, 100, 10)
    assert [len(c.text) for c in chunks] == [100, 100, 70]
    assert [c.start for c in chunks] == [0, 90, 180]


def test_offsets_index_the_original_text() -> None:
    text = "Préface — ünïcode.  Ωmega text follows here. " * 20
    chunks = chunk_text("doc-1", text, 90, 15)
    assert all(text[c.start : c.end] == c.text and c.document_id == "doc-1" for c in chunks)


@pytest.mark.parametrize(("size", "overlap"), [(10, 10), (10, -1), (0, 0)])
def test_invalid_sizes(size: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="chunk_overlap"):
        chunk_text("d", "text", size, overlap)
