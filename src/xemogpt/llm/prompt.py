"""Prompt templates and how a prompt is cut around its modality markers.

Templates (``llm_head.template``):

* ``paper``: the released XEmoGPT prompt, byte for byte (its weights were trained on it): ``###Human: The audio
  content is as follows: <Audio><AudioHere></Audio>. Meanwhile, ...<Subtitle>{s}</Subtitle>. ... ###Assistant: ``.
  The instruction is the official one unless a run sets its own.
* ``human-assistant``: a short ``###Human: <Audio>..</Audio> <Video>..</Video> <Subtitle>..</Subtitle> {instruction}
  ###Assistant: `` (the tiny recipe: fewer tokens to train through).
* ``chat``: the tokenizer's chat template around the same user turn.

A prompt is tokenised in pieces, as the official ``prompt_wrap`` does: the text before ``<AudioHere>``, the audio
tokens, the text up to ``<VideoHere>``, the video tokens, the rest -- each text piece tokenised on its own. A
modality a clip lacks is handled per template: ``paper`` leaves its marker in the text, where it is tokenised as
plain text (what the official code does with a missing modality); the others write ``none`` in its place, so a
model trained with dropped modalities reads which ones it has.
"""

from __future__ import annotations

from dataclasses import dataclass

AUDIO_MARKER = "<AudioHere>"
VIDEO_MARKER = "<VideoHere>"
MARKERS = {"audio": AUDIO_MARKER, "video": VIDEO_MARKER}
TEMPLATES = ("paper", "human-assistant", "chat")

DEFAULT_INSTRUCTION = (
    "Describe the emotional cues you see in the video, hear in the audio and read in the subtitle, "
    "then reason from them to the person's emotional state."
)
# The released model's instruction and prompt (inference.py), whitespace included.
PAPER_INSTRUCTION = (
    "\n                Please describe the speaker's emotional state in the video. \n"
    "                **Output Requirements:**  \n"
    "                Present the synthesized multimodal information in a well-structured paragraph, such as: "
    "'In the video, ... In the audio, ...'. \n"
    "                Conclude the paragraph with an emotion state inference based on all cues. \n"
    "                "
)
PAPER_TEMPLATE = (
    "###Human: The audio content is as follows: <Audio>" + AUDIO_MARKER + "</Audio>. "
    "Meanwhile, we uniformly sample raw frames from the video: <Video>" + VIDEO_MARKER + "</Video>. "
    "The subtitle of this video is: <Subtitle>{subtitle}</Subtitle>. "
    "Now, please answer my question based on all the provided information. {instruction} ###Assistant: "
)
ABSENT = "none"  # what the human-assistant and chat templates write where a modality is missing


def default_instruction(template: str) -> str:
    return PAPER_INSTRUCTION if template == "paper" else DEFAULT_INSTRUCTION


def user_content(subtitle: str) -> str:
    """The user turn of the short templates: audio and video markers, the subtitle."""
    return (f"<Audio>{AUDIO_MARKER}</Audio> <Video>{VIDEO_MARKER}</Video> "
            f"<Subtitle>{subtitle.strip()}</Subtitle>")


def build_prompt(subtitle: str, instruction: str | None = None, template: str = "paper", tokenizer=None) -> str:
    """The text before the target description, markers included (``instruction`` None: the template's own)."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown prompt template {template!r}; choose from {', '.join(TEMPLATES)}")
    instruction = default_instruction(template) if instruction is None else instruction
    if template == "paper":
        # str.replace, not format: a subtitle may hold braces
        return PAPER_TEMPLATE.replace("{instruction}", instruction).replace("{subtitle}", subtitle)
    body = f"{user_content(subtitle)} {instruction}"
    if template == "human-assistant":
        return f"###Human: {body} ###Assistant: "
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ValueError("template 'chat' needs a tokenizer with a chat_template; use template: paper")
    return tokenizer.apply_chat_template([{"role": "user", "content": body}], tokenize=False,
                                         add_generation_prompt=True)


@dataclass(frozen=True)
class Slot:
    """Where a prompt takes the tokens of ``modality`` (``audio`` or ``video``)."""

    modality: str


def prompt_pieces(prompt: str, present: dict[str, bool], template: str = "paper") -> list[str | Slot]:
    """Cut a prompt at the markers of the modalities a clip has: ``[text, Slot("audio"), text, Slot("video"),
    text]`` (the video marker is looked for after the audio one, as in the official ``prompt_wrap``). A missing
    modality's marker stays in the text (``paper``) or becomes :data:`ABSENT`."""
    pieces: list[str | Slot] = []
    rest = prompt
    for mod in ("audio", "video"):
        marker = MARKERS[mod]
        if not present.get(mod, False):
            if template != "paper":
                rest = rest.replace(marker, ABSENT)
            continue
        head, sep, tail = rest.partition(marker)
        if not sep:
            raise ValueError(f"the prompt has no {marker} marker for the {mod} tokens: {prompt!r}")
        pieces += [head, Slot(mod)]
        rest = tail
    pieces.append(rest)
    return pieces
