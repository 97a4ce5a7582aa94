"""Evaluation metrics: EmoCue-360 (cue level), OV-MER and its emotion-wheel variant, discrete emotion metrics.

Importing this package registers every metric under kind ``metric``: ``emocue360``, ``ovmer``, ``ovmer-wheel``,
``accuracy``, ``weighted-f1``, ``uar``, ``war``. The plain functions (``emocue360``, ``ovmer``, ``ovmer_wheel``,
``discrete_scores``) score whole files at once; the registered classes are torchmetrics Metrics for training loops.
"""

from xemogpt.metrics.discrete import UnweightedAverageRecall, accuracy, discrete_scores, war, weighted_f1
from xemogpt.metrics.emocue360 import MODALITIES, CueFormatError, emocue360, emocue360_per_sample_reference
from xemogpt.metrics.emocue360_metric import EmoCue360
from xemogpt.metrics.labels_io import LabelFormatError, load_synonyms, read_openset_csv
from xemogpt.metrics.ovmer import OVMER, ovmer
from xemogpt.metrics.ovmer_wheel import EmotionWheel, OVMERWheel, load_wheel, ovmer_wheel

__all__ = [
    "MODALITIES", "CueFormatError", "EmoCue360", "EmotionWheel", "LabelFormatError", "OVMER", "OVMERWheel",
    "UnweightedAverageRecall", "accuracy", "discrete_scores", "emocue360", "emocue360_per_sample_reference",
    "load_synonyms", "load_wheel", "ovmer", "ovmer_wheel", "read_openset_csv", "war", "weighted_f1",
]
