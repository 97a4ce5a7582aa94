"""EmoCue data: the sample schema, the synthetic generator, decoding, adapters and the DataModule.

| module | holds |
|---|---|
| :mod:`.schema` | the sample record and manifest files |
| :mod:`.batch` | the batch contract every component reads (keys, shapes, masks) |
| :mod:`.datamodule` | the LightningDataModule: manifest folders or litdata packs -> batches |
| :mod:`.decode` | video/audio decoding (PyAV), frame sampling and resampling |
| :mod:`.feature_cache` | frozen encoders' outputs on disk, filled with ``Trainer.predict`` |
| :mod:`.views` | the data one component trains on alone (bridge features, descriptions) |
| :mod:`.streaming` | litdata packs (``xemogpt data pack``) |
| :mod:`.problems` | bad input: skipped and repaired samples, counted and logged |
| :mod:`.callbacks` | the per-epoch bad-input summary |
| :mod:`.synth`, :mod:`.adapters` | the synthetic generator; importers of outside datasets (EMER, MER, tables) |
"""

from xemogpt.data.schema import EmoCueSample, read_manifest, write_manifest  # noqa: F401
