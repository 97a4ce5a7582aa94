"""xemogpt: a Lightning model zoo for explainable multimodal emotion recognition."""

__version__ = "0.1.0"
