"""Train/val/test assignment: taken from a column, or a seeded hash of the sample id (or its speaker).

Hash splits do not depend on file order or on which other samples exist, so re-importing a grown dataset keeps
every old sample in its split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from xemogpt.data.schema import SPLITS

SPLIT_SYNONYMS: dict[str, str] = {
    "train": "train", "training": "train", "trn": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val", "development": "val",
    "test": "test", "testing": "test", "tst": "test", "eval": "test",
}


def parse_ratios(text: str | Sequence[float]) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` -> (0.8, 0.1, 0.1); ratios are non-negative and normalised to sum to 1."""
    parts = [float(x) for x in text.split(",")] if isinstance(text, str) else [float(x) for x in text]
    if len(parts) != 3 or any(p < 0 for p in parts) or sum(parts) <= 0:
        raise ValueError(f"--split-ratios needs three non-negative numbers train,val,test, got {text!r}")
    total = sum(parts)
    return parts[0] / total, parts[1] / total, parts[2] / total


def hash_split(key: str, seed: int, ratios: Sequence[float]) -> str:
    """The split of ``key``: a uniform number from sha256(seed, key) compared against the cumulative ratios."""
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    acc = 0.0
    for name, r in zip(SPLITS, ratios):
        acc += r
        if u < acc:
            return name
    return SPLITS[-1]


def normalize_split(value: str) -> str:
    """``"Validation"`` -> ``"val"``.

    Raises:
        ValueError: the value is not a known split name.
    """
    key = str(value).strip().lower()
    if key not in SPLIT_SYNONYMS:
        raise ValueError(f"unknown split {value!r}; use one of {', '.join(SPLITS)} (or train/valid/dev/test)")
    return SPLIT_SYNONYMS[key]
