"""Prompt templates: the paper's ``###Human:``/``###Assistant:`` template or the tokenizer's chat template."""

from __future__ import annotations

from xemogpt.llm.tokenizer import AUDIO_MARKER, VIDEO_MARKER

DEFAULT_INSTRUCTION = (
    "Describe the emotional cues you see in the video, hear in the audio and read in the subtitle, "
    "then reason from them to the person's emotional state."
)


def user_content(subtitle: str) -> str:
    """The user turn: audio and video markers, the subtitle (markers are replaced by modality tokens)."""
    return (f"<Audio>{AUDIO_MARKER}</Audio> <Video>{VIDEO_MARKER}</Video> "
            f"<Subtitle>{subtitle.strip()}</Subtitle>")


def build_prompt(subtitle: str, instruction: str = DEFAULT_INSTRUCTION, template: str = "paper",
                 tokenizer=None) -> str:
    """The text before the target description."""
    body = f"{user_content(subtitle)} {instruction}"
    if template == "paper":
        return f"###Human: {body} ###Assistant: "
    if template == "chat":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError("template 'chat' needs a tokenizer with a chat_template; use template: paper")
        return tokenizer.apply_chat_template([{"role": "user", "content": body}], tokenize=False,
                                             add_generation_prompt=True)
    raise ValueError(f"unknown prompt template {template!r}; use 'paper' or 'chat'")
