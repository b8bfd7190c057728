"""Reference check: does a served model answer what the same weights answer under HF transformers in float32?

A served engine can drift from its model for reasons no unit test on one machine
sees: reduced-precision activations (bfloat16 on a CPU whose kernels round
differently), a quantized checkpoint, a broken adapter. This module holds the
reference side of the check: :data:`REFERENCE_PROMPTS`, short factual chat
questions with one plain answer each, answered greedily by Hugging Face
transformers in float32 on CPU (:func:`reference_answers`), and the comparison
(:func:`compare`). The served side is whatever a client gets back at temperature 0
with the same prompt and token budget (``quorum models verify`` asks a running
cluster over gRPC).

A prompt *agrees* when the first :data:`AGREEMENT_WORDS` whitespace-separated
words of both answers are equal (all words when an answer is shorter). Greedy
decoding amplifies the smallest numeric difference once two next tokens are
nearly tied, so whole answers of 32 tokens can part ways late for harmless
reasons; the opening words are where a broken numeric path shows (bfloat16 on
the 135M model answered "L'Étoile, la Marseillaise" to the capital of France).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

AGREEMENT_WORDS = 6
MAX_TOKENS = 24

REFERENCE_PROMPTS: tuple[str, ...] = (
    "What is the capital of France?",
    "What is the largest planet in our solar system?",
    "Who wrote the play Romeo and Juliet?",
    "What is the chemical symbol for gold?",
    "How many days are there in a week?",
    "What is the boiling point of water in degrees Celsius?",
    "Which ocean is the largest on Earth?",
    "What language is mainly spoken in Brazil?",
    "What gas do plants take in from the air?",
    "What is the freezing point of water in Fahrenheit?",
    "Who painted the Mona Lisa?",
    "What is the capital city of Japan?",
    "How many legs does a spider have?",
    "What is the main ingredient of guacamole?",
    "Which planet is known as the Red Planet?",
    "What is the square root of 81?",
)

_WORD = re.compile(r"\S+")


def opening_words(text: str, words: int = AGREEMENT_WORDS) -> tuple[str, ...]:
    """The first ``words`` whitespace-separated words of ``text``."""
    return tuple(_WORD.findall(text)[:words])


def answers_agree(reference: str, served: str, words: int = AGREEMENT_WORDS) -> bool:
    """The opening words are equal (all of them when an answer has fewer than ``words``)."""
    return opening_words(reference, words) == opening_words(served, words)


@dataclass(frozen=True)
class PromptCheck:
    """One prompt's two answers."""

    prompt: str
    reference: str
    served: str

    @property
    def agrees(self) -> bool:
        return answers_agree(self.reference, self.served)


@dataclass(frozen=True)
class ReferenceReport:
    """The outcome of comparing a served model with its float32 reference."""

    model: str
    reference_source: str
    checks: tuple[PromptCheck, ...]

    @property
    def agreed(self) -> int:
        return sum(check.agrees for check in self.checks)

    @property
    def total(self) -> int:
        return len(self.checks)

    def summary(self) -> str:
        return f"reference model={self.model} agreement={self.agreed}/{self.total}"


def compare(
    model: str, reference_source: str, prompts: Sequence[str], reference: Sequence[str], served: Sequence[str]
) -> ReferenceReport:
    """Pair each prompt's reference and served answers."""
    if not len(prompts) == len(reference) == len(served):
        raise ValueError(f"{len(prompts)} prompts, {len(reference)} reference and {len(served)} served answers")
    checks = tuple(PromptCheck(p, r, s) for p, r, s in zip(prompts, reference, served, strict=True))
    return ReferenceReport(model=model, reference_source=reference_source, checks=checks)


def reference_answers(
    source: str | Path, prompts: Sequence[str], max_tokens: int = MAX_TOKENS, tokenizer_source: str | None = None
) -> list[str]:
    """Greedy answers of the model at ``source`` under HF transformers, float32 on CPU, one chat turn per prompt.

    ``source`` is a Hugging Face model directory (or a hub id transformers can load). The chat template of the
    tokenizer is applied exactly as the served engine applies it (a user turn plus the generation prompt), and
    special tokens are dropped from the decoded text, as the server drops them.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_source or source))
    model = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32)
    model.eval()
    answers = []
    with torch.inference_mode():
        for prompt in prompts:
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
            encoded = tokenizer(text, add_special_tokens=False, return_tensors="pt")
            output = model.generate(
                **encoded,
                max_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
            )
            new_tokens = output[0, encoded["input_ids"].shape[1] :]
            answers.append(tokenizer.decode(new_tokens, skip_special_tokens=True))
    return answers
