"""Self-supervised speech encoders (HuBERT, wav2vec 2.0, WavLM) from transformers folders or torchaudio builders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from xemogpt.bridges.layers import LayerShape
from xemogpt.component import Component
from xemogpt.components_io import (
    MissingWeightsError,
    WeightArg,
    build_hf_model,
    hf_config,
    hf_config_dict,
    is_architecture_only,
    load_into,
    load_state_file,
    resolve_source,
)
from xemogpt.encoders.frames import parse_dtype
from xemogpt.registry import register

SPEECH_TYPES = ("hubert", "wav2vec2", "wavlm", "data2vec-audio", "wav2vec2-conformer", "unispeech", "unispeech-sat")
SPEECH_FOLDER = WeightArg("folder", "a Hugging Face HuBERT / wav2vec2 / WavLM folder (config.json, model.safetensors "
                                    "or pytorch_model.bin, preprocessor_config.json)", ("config.json",))
TORCHAUDIO_FILE = WeightArg("file", "a state dict of the torchaudio model that `builder` makes (.safetensors, or "
                                    ".pt/.pth readable with weights_only=True)")
# torchaudio builders that return a Wav2Vec2Model.
TORCHAUDIO_BUILDERS = ("wav2vec2_model", "wav2vec2_base", "wav2vec2_large", "wav2vec2_large_lv60k",
                       "wav2vec2_xlsr_300m", "wav2vec2_xlsr_1b", "wav2vec2_xlsr_2b", "hubert_base", "hubert_large",
                       "hubert_xlarge", "wavlm_model", "wavlm_base", "wavlm_large")


def normalize_waveform(wav: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero-mean, unit-variance per utterance over its valid samples (what the feature extractors do); padding 0."""
    m = mask.to(wav.dtype)
    n = m.sum(1, keepdim=True).clamp(min=1.0)
    mean = (wav * m).sum(1, keepdim=True) / n
    var = (((wav - mean) * m) ** 2).sum(1, keepdim=True) / n
    return (wav - mean) / torch.sqrt(var + 1e-7) * m


def conv_output_lengths(lengths: torch.Tensor, kernels: list[int], strides: list[int]) -> torch.Tensor:
    """Sample counts (B,) -> frame counts (B,) after the convolutional feature extractor (no padding)."""
    for k, s in zip(kernels, strides):
        lengths = torch.div(lengths - k, s, rounding_mode="floor") + 1
    return lengths.clamp(min=0)


@register("audio_encoder", "hf-speech")
class HFSpeechEncoder(Component):
    """Frozen transformers speech model (HuBERT, wav2vec2, WavLM, data2vec-audio) over the whole clip.

    wav (B, S) float 16 kHz with mask (B, S) bool -> tokens (B, A, hidden) with mask (B, A) bool: all frame tokens
    (about 50 per second; (B, 599, 1024) for 12 s through HuBERT-large), padded frames zeroed and masked. The
    padding mask goes to models whose feature extractor uses layer norm (large models), as their feature extractor
    config asks; base models get zero-padded input, as they were trained.

    Args:
        path: a transformers folder (``checkpoints/chinese-hubert-large``).
        arch: a shipped architecture (``chinese-hubert-large``, ``hubert-large-ll60k``, ``hubert-base-ls960``,
            ``wav2vec2-base``) used when ``path`` is absent (describe, CI) or null.
        config: config fields overriding the folder's / arch's (tiny test models, ``mask_time_prob: 0``...).
        layer: hidden-state index to output (None: the final output). normalize: zero-mean unit-variance input
            (None: the folder's ``preprocessor_config.json`` ``do_normalize``). freeze: frozen (default).
        dtype: weights dtype. sample_rate: the rate the model expects (the data pipeline resamples to it).
    """

    weight_args = {"path": SPEECH_FOLDER}

    def __init__(self, path: str | None = None, arch: str | None = None, config: dict[str, Any] | None = None,
                 layer: int | None = None, normalize: bool | None = None, freeze: bool = True,
                 dtype: str | None = None, sample_rate: int = 16000) -> None:
        super().__init__()
        self.save_hyperparameters()
        from transformers.models.auto.modeling_auto import MODEL_MAPPING

        key = "model.audio_encoder"
        src = resolve_source(path, arch, config, key, SPEECH_FOLDER.what)
        cfg = hf_config(src.config, "hubert")
        if cfg.model_type not in SPEECH_TYPES:
            raise ValueError(f"{key}: {path or arch} is a {cfg.model_type!r} model; hf-speech takes "
                             f"{', '.join(SPEECH_TYPES)}")
        self.model = build_hf_model(MODEL_MAPPING[type(cfg)], src, cfg, parse_dtype(dtype, key), key)
        self.normalize = bool(src.preprocess.get("do_normalize", False)) if normalize is None else bool(normalize)
        # The padding mask goes in when the feature extractor returns one (it then reaches the model, as in the
        # released code); without that setting, as transformers' extractor defaults it: for layer-norm models.
        self.pass_mask = bool(src.preprocess.get("return_attention_mask",
                                                 getattr(cfg, "feat_extract_norm", "layer") == "layer"))
        self.kernels, self.strides = list(cfg.conv_kernel), list(cfg.conv_stride)
        self.output_dim = int(cfg.hidden_size)
        self.layer = layer
        if freeze:
            self.set_frozen(True)

    def preprocess_config(self) -> dict[str, Any]:
        return {"sample_rate": self.hparams.sample_rate, "normalize": self.normalize}

    def forward(self, wav: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """wav (B, S), mask (B, S) -> (tokens (B, A, hidden), mask (B, A))."""
        if mask is None:
            mask = torch.ones_like(wav, dtype=torch.bool)
        wav = wav.float() * mask
        if self.normalize:
            wav = normalize_waveform(wav, mask)
        dtype = next(self.parameters()).dtype
        # The attention-mask path of transformers is data dependent, which the meta device (describe) cannot run.
        attn = mask.long() if (self.pass_mask and wav.device.type != "meta") else None
        out = self.model(wav.to(dtype), attention_mask=attn, output_hidden_states=self.layer is not None)
        h = (out.last_hidden_state if self.layer is None else out.hidden_states[self.layer]).float()
        tmask = torch.arange(h.shape[1], device=h.device)[None] < conv_output_lengths(
            mask.sum(1), self.kernels, self.strides)[:, None]
        return h * tmask[..., None], tmask

    def layer_config(self) -> dict[str, Any]:
        """The model's layer config, which AECB builds its layers from (``HubertEncoderLayer(config)``)."""
        return LayerShape.from_config(self.model.config).to_dict()

    def portable_spec(self, folder: Path) -> dict[str, Any]:
        return {"path": None, "arch": None, "config": hf_config_dict(self.model.config), "normalize": self.normalize}


def layer_norm_extractor(model: torch.nn.Module) -> bool:
    """Whether a torchaudio Wav2Vec2Model's conv feature extractor uses layer norm (``extractor_mode="layer_norm"``).

    torchaudio's bundles normalise the waveform for exactly these models (HuBERT/WavLM large, wav2vec2 LV-60k and
    XLS-R) and not for the group-norm ones (base models, wav2vec2_large), as Hugging Face's ``do_normalize`` does.
    """
    first = model.feature_extractor.conv_layers[0]
    return isinstance(getattr(first, "layer_norm", None), torch.nn.LayerNorm)


@register("audio_encoder", "torchaudio-speech")
class TorchaudioSpeechEncoder(Component):
    """Frozen torchaudio Wav2Vec2Model (HuBERT, wav2vec2, WavLM builders) with weights from a local state dict.

    wav (B, S) float 16 kHz with mask (B, S) bool -> tokens (B, A, D) with mask (B, A) bool (lengths go through
    torchaudio's own length computation). An auxiliary ASR head in the state dict is dropped.

    Args:
        builder: a ``torchaudio.models`` builder (``hubert_large``, ``wav2vec2_base``, ``wavlm_base``,
            ``wav2vec2_model`` with ``builder_args`` for a custom shape).
        checkpoint: a local state-dict file of that model (a HuBERTPretrainModel's ``wav2vec2.`` prefix is handled).
        builder_args: keyword arguments of the builder. layer: number of transformer layers to run and output
            (None: the full model with its final norm). normalize: layer-normalise the waveform (None: as
            torchaudio's bundles do, which is exactly when the model has a layer-norm feature extractor:
            hubert_large/xlarge, wav2vec2_large_lv60k, xlsr, wavlm_large yes; base models and wav2vec2_large no).
            freeze: frozen (default).
    """

    weight_args = {"checkpoint": TORCHAUDIO_FILE}

    def __init__(self, builder: str = "hubert_large", checkpoint: str | None = None,
                 builder_args: dict[str, Any] | None = None, layer: int | None = None,
                 normalize: bool | None = None, freeze: bool = True, sample_rate: int = 16000) -> None:
        super().__init__()
        self.save_hyperparameters()
        import torchaudio

        key = "model.audio_encoder"
        if builder not in TORCHAUDIO_BUILDERS:
            raise ValueError(f"{key}.builder: {builder!r} is not a torchaudio Wav2Vec2Model builder; choose from "
                             f"{', '.join(TORCHAUDIO_BUILDERS)}")
        self.model = getattr(torchaudio.models, builder)(**(builder_args or {}))
        if checkpoint is not None and not is_architecture_only():
            if not Path(checkpoint).is_file():
                raise MissingWeightsError(f"{key}.checkpoint: file {checkpoint!r} does not exist; put "
                                          f"{TORCHAUDIO_FILE.what} there (see checkpoints/README.md)")
            state = load_state_file(checkpoint, f"{key}.checkpoint")
            if state and all(k.startswith(("wav2vec2.", "mask_generator.", "logit_generator.")) for k in state):
                state = {k[len("wav2vec2."):]: v for k, v in state.items() if k.startswith("wav2vec2.")}
            load_into(self.model, state, f"{key}.checkpoint {checkpoint}", ignore_prefixes=("aux.",))
        self.model.aux = None  # features, never ASR logits
        self.normalize = layer_norm_extractor(self.model) if normalize is None else bool(normalize)
        self.output_dim = int(self.model.encoder.feature_projection.projection.out_features)
        self.layer = layer
        if freeze:
            self.set_frozen(True)

    def preprocess_config(self) -> dict[str, Any]:
        return {"sample_rate": self.hparams.sample_rate, "normalize": self.normalize}

    def forward(self, wav: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """wav (B, S), mask (B, S) -> (tokens (B, A, D), mask (B, A))."""
        if mask is None:
            mask = torch.ones_like(wav, dtype=torch.bool)
        wav = wav.float() * mask
        if self.normalize:
            wav = normalize_waveform(wav, mask)
        lengths = mask.sum(1)
        if self.layer is None:
            h, out_len = self.model(wav, lengths)
        else:
            hs, out_len = self.model.extract_features(wav, lengths, num_layers=self.layer)
            h = hs[-1]
        tmask = torch.arange(h.shape[1], device=h.device)[None] < out_len[:, None]
        return h * tmask[..., None], tmask

    def portable_spec(self, folder: Path) -> dict[str, Any]:
        """The builder ships with torchaudio; the weights travel in the component's safetensors file."""
        return {"checkpoint": None, "normalize": self.normalize}
