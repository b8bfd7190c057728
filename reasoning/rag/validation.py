"""Checks of retrieval requests; each failure is a :class:`RagInputError` naming the field."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .errors import RagInputError
from .types import Document

if TYPE_CHECKING:
    from quorum.cluster.config import RagConfig

COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_DOCUMENT_ID_CHARS = 256
MAX_QUERY_CHARS = 4_096


def collection_name(name: str) -> str:
    """``name`` when it is a valid collection name: 1-64 of ``[A-Za-z0-9_.-]``, starting alphanumeric."""
    if not isinstance(name, str) or not name:
        raise RagInputError("collection", "must not be empty")
    if COLLECTION_NAME.fullmatch(name) is None:
        raise RagInputError(
            "collection",
            f"'{name[:80]}' is not a valid name: use 1-64 letters, digits, '_', '.' or '-', starting with a letter "
            "or digit",
        )
    return name


def document_id(value: str, field: str) -> str:
    """``value`` when it is a valid document id: non-empty, at most 256 characters."""
    if not isinstance(value, str) or not value:
        raise RagInputError(field, "must not be empty")
    if len(value) > MAX_DOCUMENT_ID_CHARS:
        raise RagInputError(field, f"is {len(value)} characters long; the limit is {MAX_DOCUMENT_ID_CHARS}")
    return value


def documents(docs: Sequence[Document], settings: RagConfig) -> None:
    """Check one ingest's documents: count, ids (valid, unique), texts (non-blank, within the limit), metadata
    (string values, within its size limit)."""
    if not docs:
        raise RagInputError("documents", "must not be empty")
    if len(docs) > settings.max_documents_per_request:
        raise RagInputError(
            "documents",
            f"{len(docs)} documents in one request; the limit is {settings.max_documents_per_request}",
        )
    seen: dict[str, int] = {}
    for i, doc in enumerate(docs):
        document_id(doc.id, f"documents[{i}].id")
        if doc.id in seen:
            raise RagInputError(f"documents[{i}].id", f"duplicate id '{doc.id}' (also documents[{seen[doc.id]}].id)")
        seen[doc.id] = i
        if not isinstance(doc.text, str) or not doc.text.strip():
            raise RagInputError(f"documents[{i}].text", "must not be empty")
        if len(doc.text) > settings.max_document_chars:
            raise RagInputError(
                f"documents[{i}].text",
                f"is {len(doc.text)} characters long; the limit is {settings.max_document_chars}",
            )
        size = 0
        for key, value in doc.metadata.items():
            if not isinstance(key, str) or not key:
                raise RagInputError(f"documents[{i}].metadata", "keys must be non-empty strings")
            if not isinstance(value, str):
                raise RagInputError(f"documents[{i}].metadata['{key[:80]}']", "must be a string")
            size += len(key) + len(value)
        if size > settings.max_metadata_chars:
            raise RagInputError(
                f"documents[{i}].metadata",
                f"holds {size} characters (keys plus values); the limit is {settings.max_metadata_chars} "
                "(rag.max_metadata_chars)",
            )


def document_ids(ids: Sequence[str], settings: RagConfig) -> list[str]:
    """The distinct ids of a delete request, in order; checks each and the count."""
    if not ids:
        raise RagInputError("ids", "must not be empty")
    if len(ids) > settings.max_documents_per_request:
        raise RagInputError("ids", f"{len(ids)} ids in one request; the limit is {settings.max_documents_per_request}")
    return list(dict.fromkeys(document_id(value, f"ids[{i}]") for i, value in enumerate(ids)))


def query(text: str) -> str:
    """``text`` when it is a usable query: not blank, at most ``MAX_QUERY_CHARS`` characters."""
    if not isinstance(text, str) or not text.strip():
        raise RagInputError("query", "must not be empty")
    if len(text) > MAX_QUERY_CHARS:
        raise RagInputError("query", f"is {len(text)} characters long; the limit is {MAX_QUERY_CHARS}")
    return text


def top_k(value: int | None, settings: RagConfig) -> int:
    """``value``, or the default when it is None; it must lie in [1, ``max_top_k``]."""
    if value is None:
        return settings.default_top_k
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= settings.max_top_k:
        raise RagInputError("top_k", f"must be an integer in [1, {settings.max_top_k}], got {value!r}")
    return value
