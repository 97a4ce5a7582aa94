"""Shared fixtures: a small generated EmoCue dataset and a tiny recipe over it."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs two workers on two cores: one thread each, not four
    os.environ["OMP_NUM_THREADS"] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _private_caches(tmp_path_factory):
    """The embedding and LLM-reply caches live in the session's temporary folder, never in the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("caches")
    patch = pytest.MonkeyPatch()
    patch.setenv("XEMOGPT_EMBED_CACHE", str(folder / "embeddings"))
    patch.setenv("XEMOGPT_CUE_CACHE", str(folder / "cues"))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """28 generated clips (4 per emotion), 64 px, shared by the tests that need real media."""
    from xemogpt.data.synth import generate

    root = tmp_path_factory.mktemp("emocue") / "synth"
    generate(root, n=28, seed=3, workers=2, size=64, progress=False)
    return root


def tiny_overrides(root: Path, epochs: int = 1) -> list[str]:
    """Overrides that shrink the tiny recipe to seconds on generated data."""
    return [
        f"data.root={root}",
        "data.batch_size=8",
        "data.num_workers=0",
        f"stages.0.epochs={epochs}",
        f"stages.1.epochs={epochs}",
        f"stages.2.epochs={epochs}",
        "model.llm_head.config.hidden_size=64",
        "model.llm_head.config.num_hidden_layers=2",
        "model.llm_head.config.head_dim=16",
        "model.llm_head.config.intermediate_size=128",
        "generation.max_new_tokens=24",
        "run.tokenizer_vocab_size=400",
        "trainer.enable_progress_bar=false",
    ]
