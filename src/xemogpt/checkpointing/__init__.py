"""Weight formats from outside the project: the released XEmoGPT checkpoint (``official``)."""
