"""Splitting a document into overlapping chunks of at most ``chunk_chars`` characters.

Each chunk is a span of the original text (``text[start:end]``, offsets in
characters), trimmed of surrounding whitespace, so offsets can be used for
citations. A chunk ends at the last good boundary inside its window, in order of
preference: a paragraph break (a blank line), the end of a sentence, any
whitespace; only a run without whitespace is cut mid-word. A boundary is taken
only past half the window (and past the overlap), so chunks never shrink to
slivers and every step makes progress. The next chunk starts ``chunk_overlap``
characters before the previous end, moved forward to the start of a word.

Guarantees: chunks are non-empty, at most ``chunk_chars`` long, in text order
with strictly increasing starts; consecutive chunks share at most
``chunk_overlap`` characters and leave no non-whitespace character uncovered.
The split is a pure function of its arguments.
"""

from __future__ import annotations

import re

from .types import Chunk

_PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n")
_SENTENCE = re.compile(r"[.!?\u3002\uff01\uff1f][\"'\u201d\u2019)\]]*(?=\s)")
_SPACE = re.compile(r"\s")


def chunk_text(document_id: str, text: str, chunk_chars: int, chunk_overlap: int) -> list[Chunk]:
    """The chunks of ``text`` (see the module docstring); empty for a text of only whitespace.

    Raises ValueError unless 0 <= ``chunk_overlap`` < ``chunk_chars``.
    """
    if not 0 <= chunk_overlap < chunk_chars:
        raise ValueError(f"need 0 <= chunk_overlap < chunk_chars, got {chunk_overlap} and {chunk_chars}")
    chunks: list[Chunk] = []
    n = len(text)
    start = _skip_space(text, 0)
    while start < n:
        limit = start + chunk_chars
        if limit >= n:
            end = n
        else:
            lowest = min(limit, start + max(chunk_chars // 2, chunk_overlap + 1))
            end = _last_break(text, lowest, limit)
        end = _trim_end(text, start, end)
        chunks.append(Chunk(document_id, len(chunks), start, end, text[start:end]))
        if _skip_space(text, end) >= n:
            break
        start = _next_start(text, start, end, chunk_overlap)
    return chunks


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _trim_end(text: str, start: int, end: int) -> int:
    while end > start + 1 and text[end - 1].isspace():
        end -= 1
    return end


def _last_break(text: str, lowest: int, limit: int) -> int:
    """The preferred end in [lowest, limit] for a chunk; ``text[limit]`` exists (the text goes on)."""
    window = text[lowest : limit + 1]
    for pattern, use_end in ((_PARAGRAPH, False), (_SENTENCE, True), (_SPACE, False)):
        matches = list(pattern.finditer(window))
        if matches:
            return lowest + (matches[-1].end() if use_end else matches[-1].start())
    return limit


def _next_start(text: str, start: int, end: int, overlap: int) -> int:
    """Where the chunk after ``text[start:end]`` starts: ``overlap`` back from ``end``, at a word start."""
    position = max(end - overlap, start + 1)
    if 0 < position < end and not text[position - 1].isspace() and not text[position].isspace():
        space = _SPACE.search(text, position, end)
        if space is not None:
            position = space.start()
    return _skip_space(text, position)
