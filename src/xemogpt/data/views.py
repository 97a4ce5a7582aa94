"""What a single component trains on, taken from the :class:`~xemogpt.data.datamodule.EmoCueDataModule`:

- :class:`BridgeData`: one modality's cached frozen-encoder features with the embedding of each clip's cue text,
  batches ``{"ids", "features": (B, N, D), "mask": (B, N), "text_emb": (B, E)}`` (``Trainer.fit(bridge, data)``);
- :class:`DescriptionData`: the descriptions alone, batches ``{"ids", "description": [B strings]}``
  (``Trainer.fit(llm_head, data)``: the ``lm_warmup`` stage).

Both read the train and val splits in the same resumable, seeded order as the DataModule's own loaders.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch.utils.data import Dataset

from xemogpt.data.datamodule import EmoCueLoader, FeatureDataset, ResumableSampler, cue_text

CUE_MODALITY = {"video": "visual", "audio": "auditory"}


class _Items(Dataset):
    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Any:
        return self.items[i]


class _ViewData(L.LightningDataModule):
    """Train/val loaders over ``self.datasets`` with the DataModule's sampler, batch sizes and seed."""

    def __init__(self, dm) -> None:
        super().__init__()
        self.dm = dm
        self.datasets: dict[str, Dataset] = {}

    def _loader(self, split: str, shuffle: bool, batch_size: int) -> torch.utils.data.DataLoader:
        ds = self.datasets[split]
        return EmoCueLoader(ds, sampler=ResumableSampler(len(ds), shuffle, self.dm.seed), batch_size=batch_size,
                            num_workers=0, collate_fn=self.collate)

    def train_dataloader(self):
        return self._loader("train", True, self.dm.batch_size)

    def val_dataloader(self):
        return self._loader("val", False, self.dm.eval_batch_size)

    def collate(self, items: list[Any]) -> dict[str, Any]:
        raise NotImplementedError


class BridgeData(_ViewData):
    """One modality's cached features (the DataModule's feature cache for it must be active, see
    :meth:`~xemogpt.data.datamodule.EmoCueDataModule.use_features`) and its cue-text embeddings.

    Args:
        dm: the DataModule. modality: ``video`` or ``audio``.
        text_embed: cue texts -> (N, E) embeddings (the frozen text encoder of that modality); every distinct
            text is embedded once, before training.
    """

    def __init__(self, dm, modality: str, text_embed: Callable[[list[str]], torch.Tensor]) -> None:
        super().__init__(dm)
        store = dm._stores.get(modality)
        if store is None:
            raise RuntimeError(f"the {modality} feature cache is not active; call datamodule.use_features() with the "
                               f"frozen {modality} encoder first")
        self.modality, self.text_embed = modality, text_embed
        self.store = store
        self.text_emb: dict[str, torch.Tensor] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        kind = CUE_MODALITY[self.modality]
        texts: dict[str, str] = {}
        for split in ("train", "val"):
            samples = [s for s in self.dm._feature_samples() if s.split == split]
            keys = self.dm._clip_keys(self.store, samples)
            ds = FeatureDataset(samples, {self.modality: self.store}, {self.modality: keys})
            # clips without this modality have nothing to align
            self.datasets[split] = _Items([it for it in (ds[i] for i in range(len(ds)))
                                           if it.get(f"{self.modality}_features") is not None])
            texts.update({s.id: cue_text(s, kind) for s in samples})
        unique = list(dict.fromkeys(texts.values()))
        if unique:
            emb = self.text_embed(unique).float().cpu()
            by_text = dict(zip(unique, emb))
            self.text_emb = {sid: by_text[t] for sid, t in texts.items()}

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        feats = [it[f"{self.modality}_features"] for it in items]
        n = max(f.shape[0] for f in feats)
        x = torch.zeros(len(feats), n, feats[0].shape[-1])
        mask = torch.zeros(len(feats), n, dtype=torch.bool)
        for i, f in enumerate(feats):
            x[i, :f.shape[0]] = f
            mask[i, :f.shape[0]] = True
        return {"ids": [it["id"] for it in items], "features": x, "mask": mask,
                "text_emb": torch.stack([self.text_emb[it["id"]] for it in items])}


class DescriptionData(_ViewData):
    """The descriptions of the train and val splits (samples without one are left out)."""

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        for split in ("train", "val"):
            self.datasets[split] = _Items([{"id": s.id, "description": s.description}
                                           for s in self.dm.usable_samples() if s.split == split and s.description])

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {"ids": [it["id"] for it in items], "description": [it["description"] for it in items]}
