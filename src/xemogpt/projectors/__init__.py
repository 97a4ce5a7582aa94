"""Projectors from bridge width to the LLM's hidden size. Importing this package registers them."""

from xemogpt.projectors import linear  # noqa: F401
