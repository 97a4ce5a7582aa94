"""Tokenizers made offline for LMs built from a config (no vocabulary download)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from xemogpt.llm.prompt import AUDIO_MARKER, VIDEO_MARKER

EOS = "<|endoftext|>"
# Tokenizers built here reserve the marker strings as tokens (kept for vocabulary compatibility); prompts never rely
# on them: markers are cut out of the text before tokenising (llm/prompt.py).
SPECIAL_TOKENS = (EOS, AUDIO_MARKER, VIDEO_MARKER)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2000, min_frequency: int = 2):
    """Train a byte-level BPE tokenizer on ``texts`` and wrap it as a transformers fast tokenizer.

    Byte-level BPE decodes back to exactly the text it encoded (spaces and punctuation included), which a
    word-level vocabulary would not.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(texts), trainer=trainer)
    return wrap_tokenizer(tok)


def wrap_tokenizer(tok):
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS, bos_token=None,
                                   unk_token=None)
    ensure_pad(fast)
    return fast


def ensure_pad(tokenizer) -> None:
    """A pad token where the tokenizer has none (its eos). Nothing else is added: a pretrained tokenizer must
    tokenise text exactly as its model was trained (a missing modality's marker is plain text in the paper prompt)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def tokenizer_from_json(text: str):
    """Rebuild a tokenizer from its ``tokenizer.json`` string (checkpoints carry it)."""
    from tokenizers import Tokenizer

    return wrap_tokenizer(Tokenizer.from_str(text))


def tokenizer_to_json(tokenizer) -> str:
    return tokenizer.backend_tokenizer.to_str()


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    ensure_pad(tok)
    return tok
