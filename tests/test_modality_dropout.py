"""Explanations never invent a modality: synthetic descriptions rebuilt for one modality, modality dropout in
training, and prompts that say which modality is missing (issue #12)."""

from __future__ import annotations

import torch

from xemogpt.data.synth.annotate import description_for, draw_annotation
from xemogpt.data.synth.cues import AUDITORY_CUE_IDS, VISUAL_CUE_IDS, match_sentence, split_sentences


def _ids(text: str) -> set[str]:
    return {c for c in (match_sentence(s) for s in split_sentences(text)) if c}


def test_descriptions_rebuilt_for_one_modality_cite_only_it():
    for i in range(40):
        s = draw_annotation(5, i)
        assert description_for(s, {"video", "audio"}) == s.description
        video_only, audio_only = description_for(s, {"video"}), description_for(s, {"audio"})
        v, a = _ids(video_only), _ids(audio_only)
        assert not v & set(AUDITORY_CUE_IDS) and v & set(VISUAL_CUE_IDS) == set(s.cue_ids["visual"])
        assert not a & set(VISUAL_CUE_IDS) and a & set(AUDITORY_CUE_IDS) == set(s.cue_ids["auditory"])
        for text, other in ((video_only, "voice"), (audio_only, "face")):
            assert other not in text.lower(), text  # the emotional sentences cite only what is kept
            assert f"feels {s.emotion}" in text and set(s.cue_ids["emotional"]) <= _ids(text)
    s = draw_annotation(5, 0)
    s.meta = {}  # not made by the generator: nothing to rebuild it from
    assert description_for(s, {"video"}) is None and description_for(draw_annotation(5, 0), set()) is None


def _batch(n: int) -> dict:
    samples = [draw_annotation(9, i) for i in range(n)]
    return {"ids": [s.id for s in samples], "frame_mask": torch.ones(n, 4, dtype=torch.bool),
            "audio_mask": torch.ones(n, 50, dtype=torch.bool), "description": [s.description for s in samples],
            "description_without": {"video": [description_for(s, {"audio"}) for s in samples],
                                    "audio": [description_for(s, {"video"}) for s in samples]}}


class _Host:
    """The model's drop_modalities reads only ``stage``."""

    def __init__(self, p: float, seed: int = 0) -> None:
        self.stage = {"losses": ["lm"], "modality_dropout": p, "seed": seed}


def test_modality_dropout_is_deterministic_and_rewrites_the_target():
    from xemogpt.models.xemogpt import XEmoGPT

    batch = _batch(400)
    out = XEmoGPT.drop_modalities(_Host(0.3), batch, epoch=2)
    again = XEmoGPT.drop_modalities(_Host(0.3), batch, epoch=2)
    no_video = ~out["frame_mask"].any(1)
    no_audio = ~out["audio_mask"].any(1)
    assert torch.equal(no_video, ~again["frame_mask"].any(1)) and out["description"] == again["description"]
    assert not (no_video & no_audio).any()  # never both
    assert 0.10 < float(no_video.float().mean()) < 0.20 and 0.10 < float(no_audio.float().mean()) < 0.20
    for i in range(400):
        if no_video[i]:
            assert out["description"][i] == batch["description_without"]["video"][i]
        elif no_audio[i]:
            assert out["description"][i] == batch["description_without"]["audio"][i]
        else:
            assert out["description"][i] == batch["description"][i]
    other_epoch = XEmoGPT.drop_modalities(_Host(0.3), batch, epoch=3)
    assert not torch.equal(~other_epoch["frame_mask"].any(1), no_video)  # a new draw every epoch
    assert XEmoGPT.drop_modalities(_Host(0.0), batch, epoch=2) is batch
    assert torch.equal(batch["frame_mask"], torch.ones(400, 4, dtype=torch.bool))  # the input batch is untouched


def test_prompts_say_which_modality_is_missing():
    from xemogpt.llm.prompt import Slot, build_prompt, prompt_pieces

    text = build_prompt("Hi.", template="human-assistant")
    pieces = prompt_pieces(text, {"video": True, "audio": False}, "human-assistant")
    assert pieces[1] == Slot("video") and "<Audio>none</Audio>" in pieces[0] and "<AudioHere>" not in pieces[0]
    both = prompt_pieces(text, {"video": True, "audio": True}, "human-assistant")
    assert [p for p in both if isinstance(p, Slot)] == [Slot("audio"), Slot("video")]
    paper = prompt_pieces(build_prompt("Hi."), {"video": False, "audio": True}, "paper")
    assert "<VideoHere>" in paper[-1] and [p for p in paper if isinstance(p, Slot)] == [Slot("audio")]
