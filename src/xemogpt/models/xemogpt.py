"""XEmoGPT: the composed model. It holds the registered components, owns logging, and trains stage by stage.

Data flow (shapes for batch B, T frames, S audio samples, H the LLM hidden size)::

    frames (B, T, 3, h, w) -> video_encoder -> (B, T, Dv) -> video_bridge -> (B, T, Dv') -> video_projector -> (B, T, H)
    audio (B, S)           -> audio_encoder -> (B, A, Da) -> audio_bridge -> (B, A, Da') -> audio_projector -> (B, A, H)
    prompt ids with <AudioHere>/<VideoHere> --splice--> (B, L, H) -> llm_head -> description

Every component is built through the registry from the recipe's ``model`` section, which is saved with the
checkpoint (with the tokenizer), so ``XEmoGPT.load_from_checkpoint(path)`` rebuilds a run from its checkpoint alone.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn

from xemogpt import registry
from xemogpt.component import Component, ShapeError
from xemogpt.llm.prompt import Slot, build_prompt, prompt_pieces
from xemogpt.llm.splice import Spliced, pad_ids, splice

# Recipe keys of the model section, the registry kind each names, and what the model wires into it.
COMPONENT_KINDS: dict[str, str] = {
    "video_encoder": "video_encoder",
    "audio_encoder": "audio_encoder",
    "text_encoder": "text_encoder",
    "video_bridge": "video_bridge",
    "audio_bridge": "audio_bridge",
    "llm_head": "llm_head",
    "video_projector": "projector",
    "audio_projector": "projector",
}
WIRED: dict[str, tuple[str, ...]] = {
    "video_bridge": ("input_dim", "text_dim", "encoder_layer"),
    "audio_bridge": ("input_dim", "text_dim", "encoder_layer"),
    "video_projector": ("input_dim", "output_dim", "context_dim"),
    "audio_projector": ("input_dim", "output_dim", "context_dim"),
}
REQUIRED = ("video_encoder", "audio_encoder", "video_bridge", "audio_bridge", "video_projector", "audio_projector",
            "llm_head")
LOSSES = ("vecb", "aecb", "lm")

DEFAULT_GENERATION = {"max_new_tokens": 160, "num_beams": 1, "do_sample": False, "temperature": None, "top_p": None}


def accepted(kind: str, spec: Any, **candidates: Any) -> dict[str, Any]:
    """The wired arguments a component's constructor takes (``context_dim`` for attention-fusion projectors,
    ``encoder_layer`` for bridges built from the encoder's layer config); None values are left out."""
    import inspect

    name, _ = registry.split_spec(spec, kind)
    params = inspect.signature(registry.get(kind, name).obj).parameters
    return {k: v for k, v in candidates.items() if k in params and v is not None}


def validate_model_spec(spec: dict[str, Any], prefix: str = "model") -> None:
    """Check every component name and argument of a recipe's model section without building anything."""
    if not isinstance(spec, dict):
        raise registry.RegistryError(f"recipe key '{prefix}' must be a mapping of components")
    for key in spec:
        if key not in COMPONENT_KINDS:
            import difflib

            near = difflib.get_close_matches(key, list(COMPONENT_KINDS), n=2)
            hint = f" Did you mean {', '.join(map(repr, near))}?" if near else ""
            raise registry.RegistryError(f"unknown model component key '{prefix}.{key}'.{hint} "
                                         f"Keys: {', '.join(COMPONENT_KINDS)}.")
    for key in REQUIRED:
        if key not in spec:
            raise registry.RegistryError(f"recipe is missing '{prefix}.{key}' ({COMPONENT_KINDS[key]})")
    for key, kind in COMPONENT_KINDS.items():
        if key in spec and spec[key] is not None:
            registry.resolve(kind, spec[key], f"{prefix}.{key}", provided=WIRED.get(key, ()))


class XEmoGPT(L.LightningModule):
    """The composed XEmoGPT model.

    Args:
        components: the recipe's ``model`` section (registry specs per component key).
        tokenizer_json: serialised tokenizer for LMs built from a config (None when the LM has its own folder).
        generation: generation settings (max_new_tokens, num_beams, do_sample, temperature, top_p).
        instruction: the instruction in the prompt (None: the template's own, see :mod:`xemogpt.llm.prompt`).
        stage: the training stage to start in (see :meth:`set_stage`).
        feature_memo: memoise frozen encoders' outputs per sample id within a stage.
    """

    def __init__(self, components: dict[str, Any], tokenizer_json: str | None = None,
                 generation: dict[str, Any] | None = None, instruction: str | None = None,
                 stage: dict[str, Any] | None = None, feature_memo: bool = True) -> None:
        super().__init__()
        self.save_hyperparameters()
        validate_model_spec(components)
        c = components
        self.video_encoder: Component = registry.build("video_encoder", c["video_encoder"], "model.video_encoder")
        self.audio_encoder: Component = registry.build("audio_encoder", c["audio_encoder"], "model.audio_encoder")
        self.text_encoder: Component | None = (
            registry.build("text_encoder", c["text_encoder"], "model.text_encoder") if c.get("text_encoder") else None)
        # Each bridge projects its own text encoder's embeddings (CLIP text for VECB, LaBSE for AECB), so their
        # widths need not match.
        for mod, enc_key in (("video", "video_encoder"), ("audio", "audio_encoder")):
            enc = getattr(self, enc_key)
            key = f"{mod}_bridge"
            layer = getattr(enc, "layer_config", lambda: None)()
            bridge = registry.build(key, c[key], f"model.{key}", input_dim=enc.output_dim,
                                    text_dim=self.text_dim(mod),
                                    **accepted(key, c[key], encoder_layer=layer))
            setattr(self, key, bridge)
        llm_spec = c["llm_head"]
        if tokenizer_json is not None:
            llm_spec = {**registry.split_spec(llm_spec, "model.llm_head")[1],
                        "name": registry.split_spec(llm_spec, "model.llm_head")[0], "tokenizer_json": tokenizer_json}
            llm_spec.pop("tokenizer", None)
        self.llm_head: Component = registry.build("llm_head", llm_spec, "model.llm_head")
        hidden = self.llm_head.hidden_size
        vdim, adim = self.video_bridge.output_dim, self.audio_bridge.output_dim
        self.video_projector: Component = registry.build(
            "projector", c["video_projector"], "model.video_projector", input_dim=vdim, output_dim=hidden,
            **accepted("projector", c["video_projector"], context_dim=adim))
        self.audio_projector: Component = registry.build(
            "projector", c["audio_projector"], "model.audio_projector", input_dim=adim, output_dim=hidden,
            **accepted("projector", c["audio_projector"], context_dim=vdim))
        for name in ("video_projector", "audio_projector"):
            proj = getattr(self, name)
            if proj.output_dim != hidden:
                raise ShapeError(f"model.{name} outputs width {proj.output_dim} but llm_head hidden size is {hidden}")
        self.generation = {**DEFAULT_GENERATION, **(generation or {})}
        self.instruction = instruction
        self._token_cache: dict[str, list[int]] = {}
        self.stage: dict[str, Any] = {}
        self.feature_memo = feature_memo
        self._memo: dict[str, dict[str, torch.Tensor]] = {}
        self.datamodule_skips = None
        self.portable_source: dict[str, Any] | None = None  # see portable(); set by rebuilds from a checkpoint
        self._warned_truncation = False
        self.set_stage(stage or {"name": "instruct", "train": ["video_projector", "audio_projector", "llm_head"],
                                  "losses": ["lm"]})

    # --- components and stages ------------------------------------------------------------------------------
    def component_names(self) -> list[str]:
        return [k for k in COMPONENT_KINDS if getattr(self, k, None) is not None]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Every checkpoint also carries the architecture and small files (tokenizer) of folder-loaded components,
        so a run rebuilds from the checkpoint alone when the pretrained folders are not at hand
        (:mod:`xemogpt.training.portable`)."""
        from xemogpt.training.portable import PORTABLE_KEY

        record = self.portable()
        if record:
            checkpoint[PORTABLE_KEY] = record

    def portable(self) -> dict[str, Any]:
        """The record of :mod:`xemogpt.training.portable` for this model, made once (the components do not change
        after the build, and periodic checkpoints should not re-save the tokenizer each time)."""
        if self.portable_source is None:
            from xemogpt.training.portable import portable_record

            self.portable_source = portable_record(self)
        return self.portable_source

    def set_stage(self, stage: dict[str, Any]) -> None:
        """Choose what trains and which losses apply: ``{"name", "train": [component keys], "losses": [vecb, aecb,
        lm], "lr", "weight_decay", "warmup"}``. Components not listed are frozen for the stage."""
        train = list(stage.get("train", []))
        losses = list(stage.get("losses", []))
        for k in train:
            if k not in COMPONENT_KINDS or getattr(self, k, None) is None:
                raise registry.RegistryError(f"stage {stage.get('name')!r} trains unknown component {k!r}; "
                                             f"components: {', '.join(self.component_names())}")
        for k in losses:
            if k not in LOSSES:
                raise registry.RegistryError(f"stage {stage.get('name')!r} has unknown loss {k!r}; losses: {LOSSES}")
        if not losses:
            raise registry.RegistryError(f"stage {stage.get('name')!r} has no losses")
        self.stage = dict(stage)
        self._memo = {}  # what is frozen may change with the stage
        for name in self.component_names():
            comp: Component = getattr(self, name)
            permanently_frozen = bool(comp.hparams.get("freeze", False)) or name == "text_encoder"
            trainable = name in train and not permanently_frozen
            if name in train and permanently_frozen:
                raise registry.RegistryError(f"stage {stage.get('name')!r} trains {name}, which the recipe freezes "
                                             f"(model.{name}.freeze: true)")
            if name == "llm_head" and comp.hparams.get("train_mode") == "lora":
                comp._frozen = not trainable
                for n, p in comp.named_parameters():
                    p.requires_grad_(trainable and "lora_" in n)
            elif name == "llm_head" and comp.hparams.get("train_mode") == "frozen":
                comp.set_frozen(True)
            else:
                comp.set_frozen(not trainable)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    # --- modality tokens ------------------------------------------------------------------------------------
    @staticmethod
    def _maybe_no_grad(comp: Component):
        return torch.no_grad() if comp.frozen else torch.enable_grad()

    def encode_video(self, frames: torch.Tensor, frame_mask: torch.Tensor,
                     ids: list[str] | None = None) -> torch.Tensor:
        """frames (B, T, 3, h, w) -> encoder tokens (B, T, Dv) (under no_grad when the encoder is frozen).

        A frozen encoder's outputs are memoised per sample id while a stage trains, so later epochs skip it (not in
        eval mode: generation may see other clips under the same ids).
        ``frames`` may instead hold the frozen encoder's cached outputs (B, T, Dv) from the DataModule's feature cache
        (:mod:`xemogpt.data.feature_cache`); they are used as they are.
        """
        enc = self.video_encoder
        if frames.dim() == 3:  # cached features: the encoder is skipped (it must be frozen, or they would be stale)
            if not enc.frozen:
                raise RuntimeError("the batch holds cached video features but model.video_encoder trains in this "
                                   "stage; call datamodule.use_features() without it to read media again")
            return frames.to(self.device)
        if not enc.frozen:
            return enc(frames)
        if ids is None or not self.feature_memo or not self.training:  # memo only within a training stage
            with torch.no_grad():
                return enc(frames)
        memo = self._memo.setdefault("video", {})
        todo = [i for i, sid in enumerate(ids) if sid not in memo]
        if todo:
            with torch.no_grad():
                feats = enc(frames[todo])
            for j, i in enumerate(todo):
                memo[ids[i]] = feats[j].detach()
        return torch.stack([memo[sid] for sid in ids]).to(self.device)

    def encode_audio(self, audio: torch.Tensor, audio_mask: torch.Tensor,
                     ids: list[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """audio (B, S), mask (B, S) -> tokens (B, A, Da), mask (B, A) (memoised like :meth:`encode_video`).

        ``audio`` may instead hold cached encoder tokens (B, A, Da) with their mask (B, A), used as they are.
        """
        enc = self.audio_encoder
        if audio.dim() == 3:  # cached features (see encode_video)
            if not enc.frozen:
                raise RuntimeError("the batch holds cached audio features but model.audio_encoder trains in this "
                                   "stage; call datamodule.use_features() without it to read media again")
            return audio.to(self.device), audio_mask.to(self.device)
        if not enc.frozen:
            return enc(audio, audio_mask)
        if ids is None or not self.feature_memo or not self.training:  # memo only within a training stage
            with torch.no_grad():
                return enc(audio, audio_mask)
        memo = self._memo.setdefault("audio", {})
        todo = [i for i, sid in enumerate(ids) if sid not in memo]
        if todo:
            with torch.no_grad():
                tok, m = enc(audio[todo], audio_mask[todo])
            for j, i in enumerate(todo):
                memo[ids[i]] = tok[j][m[j]].detach()
        seqs = [memo[sid] for sid in ids]
        n = max(1, max(x.shape[0] for x in seqs))
        out = torch.zeros(len(ids), n, seqs[0].shape[-1], dtype=seqs[0].dtype, device=self.device)
        mask = torch.zeros(len(ids), n, dtype=torch.bool, device=self.device)
        for i, x in enumerate(seqs):
            out[i, : x.shape[0]] = x
            mask[i, : x.shape[0]] = True
        return out, mask

    def video_token_mask(self, frame_mask: torch.Tensor) -> torch.Tensor:
        """Frame mask (B, T) -> mask of the video encoder's tokens (B, T * tokens_per_frame for patch tokens)."""
        if getattr(self.video_encoder, "tokens_per_frame", 1) > 1:
            return self.video_encoder.token_mask(frame_mask)
        return frame_mask

    def text_dim(self, modality: str) -> int | None:
        """Width of the text embeddings the ``modality`` bridge aligns with (None without a text encoder)."""
        enc = self.text_encoder
        if enc is None:
            return None
        return int(getattr(enc, modality).output_dim) if getattr(enc, "per_modality", False) else int(enc.output_dim)

    def encode_text(self, texts: list[str], modality: str) -> torch.Tensor:
        """Cue texts -> (B, E) embeddings; a per-modality text encoder picks the tower of ``modality``."""
        enc = self.text_encoder
        if getattr(enc, "per_modality", False):
            return enc.encode(texts, modality=modality)
        return enc.encode(texts)

    def modality_tokens(self, batch: dict[str, Any], trace: dict[str, torch.Tensor] | None = None
                        ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """-> {"video": ((B, T, H), (B, T) mask), "audio": ((B, A, H), (B, A) mask)}; ``trace`` (a dict) receives
        the bridges' outputs and masks (``video_bridge_out``, ``video_mask``, ``audio_bridge_out``, ``audio_mask``)."""
        vmask = batch["frame_mask"]
        ids = batch.get("ids")
        v = self.encode_video(batch["frames"], vmask, ids)
        vmask = self.video_token_mask(vmask)
        v = self.video_bridge(v, vmask)
        a, amask = self.encode_audio(batch["audio"], batch["audio_mask"], ids)
        a = self.audio_bridge(a, amask)
        if trace is not None:
            trace.update(video_bridge_out=v, video_mask=vmask, audio_bridge_out=a, audio_mask=amask)
        # Bridges that change the sequence length (Q-Former: B x num_queries) give the mask of their output.
        if getattr(self.video_bridge, "changes_length", False):
            vmask = self.video_bridge.out_mask(vmask)
        if getattr(self.audio_bridge, "changes_length", False):
            amask = self.audio_bridge.out_mask(amask)
        # Fusion projectors (uses_context) attend to the other modality's bridge output before the LLM.
        if getattr(self.video_projector, "uses_context", False):
            pv, pvmask = self.video_projector(v, vmask, context=a, context_mask=amask)
        else:
            pv, pvmask = self.video_projector(v, vmask)
        if getattr(self.audio_projector, "uses_context", False):
            pa, pamask = self.audio_projector(a, amask, context=v, context_mask=vmask)
        else:
            pa, pamask = self.audio_projector(a, amask)
        return {"video": (pv, pvmask), "audio": (pa, pamask)}

    # --- text -------------------------------------------------------------------------------------------------
    def _tokens(self, text: str) -> list[int]:
        ids = self._token_cache.get(text)
        if ids is None:
            ids = self.llm_head.tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(self._token_cache) < 200_000:
                self._token_cache[text] = ids
        return ids

    def prompts(self, subtitles: list[str]) -> list[str]:
        """The prompt text of each subtitle, markers included (see :mod:`xemogpt.llm.prompt`)."""
        llm = self.llm_head
        return [build_prompt(s, self.instruction, llm.hparams.template, llm.tokenizer) for s in subtitles]

    def prompt_ids(self, subtitles: list[str], present: dict[str, list[bool]]) -> list[list[int]]:
        """Token ids of each prompt: the ``bos`` id (if any), then every text piece tokenised on its own (as the
        official ``prompt_wrap`` does) with the audio/video slot ids between them for the modalities a sample has
        (``present``: modality -> one bool per sample)."""
        llm = self.llm_head
        slots = {"audio": llm.audio_marker_id, "video": llm.video_marker_id}
        head = [llm.bos_id] if llm.bos_id is not None else []
        out = []
        for i, text in enumerate(self.prompts(subtitles)):
            pieces = prompt_pieces(text, {m: bool(present[m][i]) for m in slots}, llm.hparams.template)
            ids = list(head)
            for piece in pieces:
                if isinstance(piece, Slot):
                    ids.append(slots[piece.modality])
                elif piece:
                    ids += self._tokens(piece)
            out.append(ids)
        return out

    def spliced(self, batch: dict[str, Any], with_targets: bool, tokens=None) -> Spliced:
        """The LLM input of a batch: prompt (with ``bos``), modality tokens, and with ``with_targets`` the
        description plus eos. -> :class:`~xemogpt.llm.splice.Spliced`, right-aligned for training, left-aligned
        for generation."""
        llm = self.llm_head
        tokens = tokens if tokens is not None else self.modality_tokens(batch)
        present = {m: tokens[m][1].any(1).tolist() for m in ("audio", "video")}
        prompts = self.prompt_ids(batch["subtitle"], present)
        if with_targets:
            targets = [self._tokens(d) + [llm.eos_id] for d in batch["description"]]
            seqs = [p + t for p, t in zip(prompts, targets)]
        else:
            seqs = prompts
        ids, mask = pad_ids(seqs, llm.tokenizer.pad_token_id, device=self.device)
        target_mask = None
        if with_targets:
            plen = torch.tensor([len(p) for p in prompts], device=self.device)[:, None]
            target_mask = (torch.arange(ids.shape[1], device=self.device)[None] >= plen) & mask
        embed_dtype = llm.model.get_input_embeddings().weight.dtype
        mods = {llm.audio_marker_id: (tokens["audio"][0].to(embed_dtype), tokens["audio"][1]),
                llm.video_marker_id: (tokens["video"][0].to(embed_dtype), tokens["video"][1])}
        cap = int(llm.hparams.max_length) + (1 if llm.bos_id is not None else 0)
        out = splice(ids, mask, llm.embed, mods, target_mask, align="right" if with_targets else "left",
                     prompt_cap=cap)
        if out.truncated is not None and bool(out.truncated.any()) and not self._warned_truncation:
            self._warned_truncation = True
            rank_zero_warn(f"{int(out.truncated.sum())} prompt(s) of the batch (text and modality tokens) exceed "
                           f"llm_head.max_length={llm.hparams.max_length}: their first {llm.hparams.max_length} "
                           "places are kept (the official max_context_len rule) and the target follows; raise "
                           "llm_head.max_length to keep them whole")
        return out

    # --- losses -----------------------------------------------------------------------------------------------
    def bridge_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        losses: dict[str, torch.Tensor] = {}
        if self.text_encoder is None:
            raise registry.RegistryError("bridge pre-training losses (vecb/aecb) need model.text_encoder")
        active = self.stage["losses"]
        if "vecb" in active:
            has_v = batch["frame_mask"].any(1)
            if has_v.any():
                ids = [i for i, h in zip(batch["ids"], has_v.tolist()) if h]
                v = self.encode_video(batch["frames"][has_v], batch["frame_mask"][has_v], ids)
                vmask = self.video_token_mask(batch["frame_mask"][has_v])
                emb = self.encode_text([t for t, h in zip(batch["visual_text"], has_v.tolist()) if h], "video")
                for k, val in self.video_bridge.task_losses(v, vmask, emb.to(v.dtype)).items():
                    losses[f"vecb/{k}"] = val
        if "aecb" in active:
            has_a = batch["audio_mask"].any(1)
            if has_a.any():
                ids = [i for i, h in zip(batch["ids"], has_a.tolist()) if h]
                a, amask = self.encode_audio(batch["audio"][has_a], batch["audio_mask"][has_a], ids)
                emb = self.encode_text([t for t, h in zip(batch["auditory_text"], has_a.tolist()) if h], "audio")
                for k, val in self.audio_bridge.task_losses(a, amask, emb.to(a.dtype)).items():
                    losses[f"aecb/{k}"] = val
        return losses

    def compute_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        losses: dict[str, torch.Tensor] = {}
        if "vecb" in self.stage["losses"] or "aecb" in self.stage["losses"]:
            losses.update(self.bridge_losses(batch))
        if "lm" in self.stage["losses"]:
            sp = self.spliced(batch, with_targets=True)
            out = self.llm_head(sp.inputs_embeds, sp.attention_mask, sp.position_ids, sp.labels)
            losses["lm"] = out.loss
        return losses

    def drop_modalities(self, batch: dict[str, Any], epoch: int) -> dict[str, Any]:
        """Modality dropout (stage key ``modality_dropout``, probability p): a training clip that has both modalities
        loses its video with probability p/2 or its audio with probability p/2, and its target becomes the
        description without them (``batch["description_without"]``; clips whose description cannot be rebuilt keep
        both). The prompt then says which modality is missing, so the model learns to describe only what it
        perceives. Which clip loses what is a function of (stage seed, epoch, clip id): the same on every run.
        """
        p = float(self.stage.get("modality_dropout") or 0.0)
        alt = batch.get("description_without")
        if p <= 0 or not alt or "lm" not in self.stage.get("losses", ()):
            return batch
        seed = int(self.stage.get("seed", 0))
        vmask, amask, desc = batch["frame_mask"].clone(), batch["audio_mask"].clone(), list(batch["description"])
        for i, sid in enumerate(batch["ids"]):
            u = int.from_bytes(hashlib.blake2b(f"{seed}:{epoch}:{sid}".encode(), digest_size=8).digest(), "big") / 2**64
            drop = "video" if u < p / 2 else ("audio" if u < p else None)
            if drop is None or alt[drop][i] is None or not (bool(vmask[i].any()) and bool(amask[i].any())):
                continue
            (vmask if drop == "video" else amask)[i] = False
            desc[i] = alt[drop][i]
        return {**batch, "frame_mask": vmask, "audio_mask": amask, "description": desc}

    def _step(self, batch: dict[str, Any], split: str, batch_idx: int | None = None) -> torch.Tensor | None:
        if batch.get("skipped") and self.trainer is not None and self.trainer.datamodule is not None:
            note = getattr(self.trainer.datamodule, "note_skipped", None)
            if note is not None and split == "train":
                note(batch["skipped"])
        if split == "train" and batch["ids"]:
            batch = self.drop_modalities(batch, self.current_epoch if self._trainer is not None else 0)
        losses = self.compute_losses(batch) if batch["ids"] else {}
        if not losses:  # every clip of the batch was bad, or none has the modality of this stage's losses
            return self._idle_step(batch, batch_idx) if split == "train" else None
        total = sum(losses.values())
        if split == "train":
            self._check_finite(losses, total, batch, batch_idx)
        bs = len(batch["ids"])
        sync = split != "train"  # validation means are averaged over ranks; training logs stay per-step local
        for k, v in losses.items():
            self.log(f"{split}/{k}", v, batch_size=bs, prog_bar=(split == "train" and k == "lm"),
                     on_step=split == "train", on_epoch=True, sync_dist=sync)
        self.log(f"{split}/loss", total, batch_size=bs, prog_bar=True, on_step=split == "train", on_epoch=True,
                 sync_dist=sync)
        return total

    def _idle_step(self, batch: dict[str, Any], batch_idx: int | None) -> torch.Tensor | None:
        """A training batch with nothing to learn from: skipped alone, but under DDP this rank must still take part in
        the step's collectives (the finite-loss vote, DDP's gradient all-reduce) or the other ranks wait forever. It
        then returns a zero loss over every trainable parameter: zero gradients, the same optimiser step on all ranks.
        """
        trainer = self._trainer
        if trainer is None or trainer.world_size <= 1:
            return None
        zero = sum(p.sum() for p in self.trainable_parameters()) * 0.0
        self._check_finite({}, zero, batch, batch_idx)
        return zero

    def _check_finite(self, losses: dict[str, torch.Tensor], total: torch.Tensor, batch: dict[str, Any],
                      batch_idx: int | None) -> None:
        """Stop training on a NaN/inf loss before backward and the optimiser step touch the weights.

        Every rank takes part (one boolean all-reduce per step under DDP/FSDP) so all stop at the same batch; the
        error names the stage, step and the sample ids of every rank's batch, and ``NonFiniteGuard`` then saves the
        still-clean state.
        """
        bad = not bool(torch.isfinite(total.detach()).all())
        trainer = self._trainer
        distributed = trainer is not None and trainer.world_size > 1
        if distributed:
            bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if not bad:
            return
        from xemogpt.training.callbacks import NonFiniteLossError, gather_objects

        mine = {"ids": list(batch["ids"]), "losses": {k: float(v.detach()) for k, v in losses.items()}}
        ranks = gather_objects(trainer, mine) if distributed else [mine]
        values = {(f"rank{r}/{k}" if len(ranks) > 1 else k): v for r, m in enumerate(ranks)
                  for k, v in m["losses"].items()}
        raise NonFiniteLossError(stage=str(self.stage.get("name")), global_step=trainer.global_step if trainer else 0,
                                 epoch=trainer.current_epoch if trainer else 0,
                                 batch_idx=-1 if batch_idx is None else batch_idx,
                                 ids=[i for m in ranks for i in m["ids"]], losses=values)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        return self._step(batch, "train", batch_idx)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self):
        lr = float(self.stage.get("lr", 1e-3))
        params = self.trainable_parameters()
        if not params:
            raise registry.RegistryError(f"stage {self.stage.get('name')!r} has nothing to train")
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=float(self.stage.get("weight_decay", 0.01)),
                                betas=(0.9, 0.98))
        total = max(1, int(self.trainer.estimated_stepping_batches)) if self._trainer is not None else 1000
        warmup = int(self.stage.get("warmup", 0.05) * total) if self.stage.get("warmup", 0.05) < 1 else int(
            self.stage["warmup"])
        min_ratio = float(self.stage.get("min_lr_ratio", 0.05))

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / max(1, warmup)
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # --- generation -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, batch: dict[str, Any], trace: dict[str, torch.Tensor] | None = None,
                 **overrides: Any) -> list[str]:
        """Batched generation with the KV cache: a batch -> one description per sample.

        ``overrides`` replace the run's generation settings (``greedy=True``: one beam, no sampling). ``trace`` (a
        dict) receives what :meth:`modality_tokens` records plus ``inputs_embeds`` (B, L, H) and
        ``attention_mask`` (B, L) of the left-aligned LLM input, ``first_logits`` (B, V) at its last position and
        ``generated_ids`` (B, N).
        """
        was_training = self.training
        self.eval()
        try:
            tokens = self.modality_tokens(batch, trace)
            sp = self.spliced(batch, with_targets=False, tokens=tokens)
            gen = {**self.generation, **{k: v for k, v in overrides.items() if v is not None}}
            if gen.pop("greedy", False):
                gen.update(num_beams=1, do_sample=False)
            ids = self.llm_head.generate_ids(sp.inputs_embeds, sp.attention_mask, **gen)
            if trace is not None:
                logits = self.llm_head(sp.inputs_embeds, sp.attention_mask, sp.position_ids).logits
                trace.update(inputs_embeds=sp.inputs_embeds, attention_mask=sp.attention_mask,
                             first_logits=logits[:, -1].float(), generated_ids=ids)
            return self.llm_head.decode(ids)
        finally:
            self.train(was_training)

    def train(self, mode: bool = True) -> XEmoGPT:
        super().train(mode)
        # Components frozen for this stage stay in eval mode (no dropout, no norm-statistics updates).
        for name in self.component_names():
            comp = getattr(self, name)
            if comp.frozen:
                comp.train(False)
        return self
