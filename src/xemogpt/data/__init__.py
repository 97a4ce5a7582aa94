"""EmoCue data: the sample schema, the synthetic generator, decoding, adapters and the DataModule."""

from xemogpt.data.schema import EmoCueSample, read_manifest, write_manifest  # noqa: F401
