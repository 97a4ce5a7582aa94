"""Dataset adapters: other emotion datasets into the EmoCue schema (``xemogpt data import --format F``).

Each adapter is registered under kind ``data_adapter``: ``emer-v2``, ``emer-v1``, ``mer2024-ov``,
``mer-discrete``, ``ravdess``, ``cremad``, ``generic`` (the underscore spellings ``emer_v2`` ... are aliases). All
share :class:`DatasetAdapter.load` (media lookup, joins, splits, cues, problem counting) and :func:`import_dataset`
(media placed under ``DIR/media``, manifest written). Problems are skipped and counted in an
:class:`ImportReport`, or raise with ``strict=True``.

Example::

    from xemogpt.data.adapters import get_adapter, import_dataset
    adapter = get_adapter("mer-discrete")(["/data/mer/video"], labels="label.csv", subtitles="subtitle.csv")
    result = import_dataset(adapter, "data/mer")
    print(result.report.summary())
"""

from __future__ import annotations

from xemogpt.data.adapters.base import DatasetAdapter, ImportResult, SourceRecord, import_dataset
from xemogpt.data.adapters.emer import EmerV1Adapter, EmerV2Adapter
from xemogpt.data.adapters.filenames import CremadAdapter, RavdessAdapter
from xemogpt.data.adapters.generic import GenericAdapter, parse_map
from xemogpt.data.adapters.labels import normalize_emotion, parse_label_list
from xemogpt.data.adapters.media import MediaIndex, probe
from xemogpt.data.adapters.mer import Mer2024OVAdapter, MerDiscreteAdapter
from xemogpt.data.adapters.report import ImportProblemError, ImportReport
from xemogpt.data.adapters.splits import hash_split

ADAPTERS: dict[str, type[DatasetAdapter]] = {
    cls.name: cls
    for cls in (EmerV2Adapter, EmerV1Adapter, Mer2024OVAdapter, MerDiscreteAdapter, RavdessAdapter, CremadAdapter,
                GenericAdapter)
}


def get_adapter(name: str) -> type[DatasetAdapter]:
    """The adapter class registered as ``name`` or an alias of it (errors suggest close names).

    A registry lookup of this kind imports this package only, not the encoders a data import does not need.
    """
    from xemogpt import registry

    return registry.get("data_adapter", name).obj


__all__ = [
    "ADAPTERS", "CremadAdapter", "DatasetAdapter", "EmerV1Adapter", "EmerV2Adapter", "GenericAdapter",
    "ImportProblemError", "ImportReport", "ImportResult", "MediaIndex", "Mer2024OVAdapter", "MerDiscreteAdapter",
    "RavdessAdapter", "SourceRecord", "get_adapter", "hash_split", "import_dataset", "normalize_emotion",
    "parse_label_list", "parse_map", "probe",
]
