"""A generated RAG test set: documents of fictional facts and questions about them (fixed seed).

Every entity, place and person is made up from syllables, so the model cannot
know an answer without retrieving it. Each document describes one entity with
several facts in the same sentence patterns as every other document, so the
retriever has to match on the entity's name, not on the wording, and the
distractors look alike.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SYLLABLES = (
    *("ka", "ri", "to", "ven", "mor", "lis", "dra", "quel", "an", "bo", "zu", "fen", "tar", "ish", "ol"),
    *("ne", "ga", "sul", "vor", "pe", "lin", "ost", "ar", "bre", "ki", "mo", "dun", "sel", "va", "ro"),
)
KINDS = ("observatory", "library", "shipyard", "orchard", "academy", "foundry", "museum", "brewery")
PRODUCTS = ("star charts", "rare maps", "river barges", "blue pears", "glass lenses", "copper bells", "silk kites")
COLORS = ("red", "green", "violet", "amber", "white", "black", "silver")


@dataclass(frozen=True)
class Question:
    question: str
    answer: str
    document_id: str


@dataclass(frozen=True)
class RagDocument:
    id: str
    title: str
    text: str


def _name(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(syllables)).capitalize()


def generate(documents: int, seed: int = 0) -> tuple[list[RagDocument], list[Question]]:
    """``documents`` documents with three questions each (founder, city, year), deterministic in ``seed``."""
    rng = random.Random(seed)
    used: set[str] = set()
    docs: list[RagDocument] = []
    questions: list[Question] = []
    while len(docs) < documents:
        place = f"{_name(rng, 2)} {rng.choice(KINDS).capitalize()}"
        if place in used:
            continue
        used.add(place)
        founder = f"{_name(rng, 2)} {_name(rng, 2)}"
        city = _name(rng, 3)
        year = rng.randint(1700, 1990)
        product = rng.choice(PRODUCTS)
        color = rng.choice(COLORS)
        doc_id = f"doc-{len(docs):03d}"
        text = (
            f"The {place} was founded by {founder} in the year {year}. "
            f"It stands in the city of {city}, next to a {color} gate. "
            f"The {place} is best known for its {product}, which visitors come from far away to see. "
            f"Its staff of {rng.randint(3, 90)} people keeps records of every visitor."
        )
        docs.append(RagDocument(id=doc_id, title=place, text=text))
        questions += [
            Question(f"Who founded the {place}?", founder, doc_id),
            Question(f"In which city is the {place}?", city, doc_id),
            Question(f"In which year was the {place} founded?", str(year), doc_id),
        ]
    rng.shuffle(questions)
    return docs, questions


def normalize(text: str) -> str:
    return " ".join(text.lower().replace(".", " ").replace(",", " ").split())


def is_correct(answer: str, gold: str) -> bool:
    """The gold answer appears in the model's answer (names and years are distinctive made-up strings)."""
    return bool(answer) and normalize(gold) in normalize(answer)
