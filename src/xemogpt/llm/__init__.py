"""The LLM head: a causal LM (from a small config or a local transformers folder), its tokenizer, the prompt
template and the batched splicing of modality tokens into the prompt. Importing this package registers it."""

from xemogpt.llm import causal_lm  # noqa: F401
