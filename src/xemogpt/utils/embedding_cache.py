"""A disk cache of sentence embeddings (used by EmoCue-360): ``(model fingerprint, exact text) -> float32 vector``.

Scoring the same references every epoch, every ablation cell or every re-run re-encodes the same cues; with this
cache each cue is encoded once per embedding model, ever. The store is one SQLite file (stdlib ``sqlite3``: its
locking lets several processes read and write at once without corrupting it; keep the folder on a local disk, as
network filesystems often lock badly), in front of it an in-process dictionary so that repeated scoring in one
process does not even read the file.

Bit-identical scores with and without the cache: vectors are stored as the exact float32 bytes the encoder gave,
and a SentenceTransformer is asked to encode texts grouped by their exact token count (no padding), which makes a
text's vector independent of the batch it was encoded in - so a cue embedded in an earlier run's batch and read
back equals the same cue embedded now in a different one.

The fingerprint (:func:`model_fingerprint`) is a sha256 of the model's weights, its tokenizer, its pipeline
configuration, the device type, dtype and the torch / sentence-transformers versions; an encoder may instead carry a
``fingerprint`` string attribute. An encoder with neither (e.g. a plain callable) is not cached.

Location: ``$XEMOGPT_EMBED_CACHE`` (a folder; ``off`` disables the cache) or ``~/.cache/xemogpt/embeddings``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xemogpt.utils.sentence import SentenceEncoder, encode_texts, is_sentence_transformer

DB_NAME = "embeddings.sqlite"
_MEMORY_LIMIT = 200_000  # texts kept in memory per cache (~300 MB at 384 dims) before the dictionary is emptied
_SQL_CHUNK = 500  # texts per SELECT (SQLite's limit on bound variables is 999 on old builds)
_SCHEMA = ("CREATE TABLE IF NOT EXISTS embeddings (model TEXT NOT NULL, text TEXT NOT NULL, dim INTEGER NOT NULL, "
           "vector BLOB NOT NULL, PRIMARY KEY (model, text)) WITHOUT ROWID")


def default_cache_dir() -> Path | None:
    """``$XEMOGPT_EMBED_CACHE`` (None when set to off/0/false/none), else ``~/.cache/xemogpt/embeddings``."""
    value = os.environ.get("XEMOGPT_EMBED_CACHE")
    if value is not None and value.strip().lower() in ("", "off", "0", "false", "none", "no"):
        return None
    return Path(value).expanduser() if value else Path.home() / ".cache" / "xemogpt" / "embeddings"


_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def model_fingerprint(encoder: Any) -> str | None:
    """A sha256 naming what the encoder computes, or None when it cannot be known (see the module docstring).
    Hashing MiniLM's 90 MB of weights takes a fraction of a second and is redone only when a weight changed."""
    given = getattr(encoder, "fingerprint", None)
    if isinstance(given, str) and given:
        return given
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return None
    if not isinstance(encoder, torch.nn.Module):
        return None
    # Reused while no tensor was replaced or modified in place (torch bumps a tensor's _version on each write).
    state = encoder.state_dict()
    signature = tuple((name, t.data_ptr(), t._version) for name, t in state.items())
    memo = _FINGERPRINTS.get(encoder)
    if memo is not None and memo[0] == signature:
        return memo[1]
    h = hashlib.sha256()
    h.update(f"{type(encoder).__module__}.{type(encoder).__qualname__}\n".encode())
    versions = {"torch": torch.__version__}
    try:
        import sentence_transformers

        versions["sentence_transformers"] = sentence_transformers.__version__
    except ImportError:  # pragma: no cover
        pass
    h.update(json.dumps(versions, sort_keys=True).encode())
    for module in encoder.children():  # a SentenceTransformer: Transformer, Pooling, Normalize...
        h.update(type(module).__name__.encode())
        config = getattr(module, "get_config_dict", None)
        if callable(config):
            h.update(json.dumps(config(), sort_keys=True, default=str).encode())
    tokenizer = getattr(encoder, "tokenizer", None)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    elif tokenizer is not None:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    h.update(str(getattr(encoder, "max_seq_length", "")).encode())
    for name, tensor in state.items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}:{t.device.type}\n".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    params = next(encoder.parameters(), None)
    if params is not None:
        h.update(f"device={params.device.type} dtype={params.dtype}".encode())
    digest = h.hexdigest()
    _FINGERPRINTS[encoder] = (signature, digest)
    return digest


class EmbeddingCache:
    """Vectors of one embedding model (``fingerprint``) in the SQLite file ``folder/embeddings.sqlite``.

    Safe across threads and processes: every operation opens its own connection; writes are single
    ``INSERT OR IGNORE`` transactions, so concurrent writers of the same text simply keep the first vector (which
    is bit-identical to the others).
    """

    def __init__(self, folder: str | Path, fingerprint: str) -> None:
        self.path = Path(folder).expanduser() / DB_NAME
        self.fingerprint = fingerprint
        self.memory: dict[str, np.ndarray] = {}
        self.hits = self.misses = 0
        self._lock = threading.Lock()
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=120.0, isolation_level=None)
        if not self._ready:
            con.execute(_SCHEMA)  # the default rollback journal: unlike WAL it needs no shared memory
            self._ready = True
        return con

    def get_many(self, texts: Iterable[str]) -> dict[str, np.ndarray]:
        """The cached vectors of ``texts`` (missing ones are absent from the result)."""
        texts = list(dict.fromkeys(texts))
        with self._lock:
            found = {t: self.memory[t] for t in texts if t in self.memory}
        rest = [t for t in texts if t not in found]
        if rest and self.path.exists():
            con = self._connect()
            try:
                for start in range(0, len(rest), _SQL_CHUNK):
                    chunk = rest[start:start + _SQL_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    sql = f"SELECT text, dim, vector FROM embeddings WHERE model = ? AND text IN ({marks})"
                    rows = con.execute(sql, (self.fingerprint, *chunk)).fetchall()
                    for text, dim, blob in rows:
                        if len(blob) == 4 * dim:  # anything else is not ours: ignore it and encode again
                            found[text] = np.frombuffer(blob, dtype=np.float32)
            finally:
                con.close()
            self._remember({t: found[t] for t in rest if t in found})
        self.hits += len(found)
        self.misses += len(texts) - len(found)
        return found

    def put_many(self, vectors: dict[str, np.ndarray]) -> None:
        """Store ``{text: (D,) vector}``; texts already stored keep their vector."""
        if not vectors:
            return
        rows = []
        for text, vec in vectors.items():
            v = np.ascontiguousarray(vec, dtype=np.float32).reshape(-1)
            rows.append((self.fingerprint, text, int(v.size), v.tobytes()))
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            con.executemany("INSERT OR IGNORE INTO embeddings (model, text, dim, vector) VALUES (?, ?, ?, ?)", rows)
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()
        self._remember({t: np.frombuffer(r[3], dtype=np.float32) for t, r in zip(vectors, rows)})

    def _remember(self, vectors: dict[str, np.ndarray]) -> None:
        with self._lock:
            if len(self.memory) + len(vectors) > _MEMORY_LIMIT:
                self.memory.clear()
            self.memory.update(vectors)

    def __len__(self) -> int:
        if not self.path.exists():
            return 0
        con = self._connect()
        try:
            return con.execute("SELECT COUNT(*) FROM embeddings WHERE model = ?", (self.fingerprint,)).fetchone()[0]
        finally:
            con.close()


_SHARED: dict[tuple[str, str], EmbeddingCache] = {}
_SHARED_LOCK = threading.Lock()


def cache_for(encoder: Any, folder: str | Path | None = None) -> EmbeddingCache | None:
    """The process-wide cache of ``encoder``'s vectors in ``folder`` (default :func:`default_cache_dir`), or None
    when caching is off or the encoder has no fingerprint. One object per (folder, model), so that its in-memory
    layer serves every later call in the process."""
    folder = Path(folder).expanduser() if folder is not None else default_cache_dir()
    if folder is None:
        return None
    fingerprint = model_fingerprint(encoder)
    if fingerprint is None:
        return None
    key = (str(folder.resolve()), fingerprint)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = EmbeddingCache(folder, fingerprint)
        return _SHARED[key]


def encode_batch_independent(encoder: SentenceEncoder, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
    """(N, D) float32 vectors of ``texts`` such that each text's vector does not depend on the other texts: a
    SentenceTransformer encodes groups of equal token count (no padding); other encoders are called as they are."""
    texts = list(texts)
    if not texts or not is_sentence_transformer(encoder):
        return encode_texts(encoder, texts, batch_size=batch_size)
    prepare = getattr(encoder, "preprocess", None) or encoder.tokenize  # sentence-transformers >= 6 / older
    lengths = prepare(texts)["attention_mask"].sum(dim=1).tolist()  # the model's own tokenisation
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        groups.setdefault(int(n), []).append(i)
    out: np.ndarray | None = None
    for idx in groups.values():
        emb = encode_texts(encoder, [texts[i] for i in idx], batch_size=batch_size)
        if out is None:
            out = np.empty((len(texts), emb.shape[1]), dtype=np.float32)
        out[idx] = emb
    assert out is not None
    return out


def embed(encoder: SentenceEncoder, texts: Sequence[str], cache: EmbeddingCache | None,
          batch_size: int = 128) -> np.ndarray:
    """(N, D) float32 vectors of distinct ``texts``: cached ones read back, the others encoded and stored."""
    texts = list(texts)
    if cache is None:
        return encode_batch_independent(encoder, texts, batch_size)
    found = cache.get_many(texts)
    missing = [t for t in texts if t not in found]
    if missing:
        emb = encode_batch_independent(encoder, missing, batch_size)
        new = dict(zip(missing, emb))
        cache.put_many(new)
        found.update(new)
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)
