"""Training: the four-stage recipe (``stages``), LLaVA-format data (``data``), padding / packing (``collate``)
and one stage through transformers' Trainer (``run``). Needs the ``train`` extra (accelerate)."""

from tempflex.train.collate import PackingCollator, PaddingCollator
from tempflex.train.data import (
    SkippingDataset,
    SupervisedDataset,
    TooManyFailuresError,
    load_annotations,
    load_mixture,
    to_messages,
)
from tempflex.train.run import train
from tempflex.train.settings import TrainSettings
from tempflex.train.stages import Stage, apply_stage, load_stage, parameter_groups

__all__ = [
    "PackingCollator",
    "PaddingCollator",
    "SkippingDataset",
    "Stage",
    "SupervisedDataset",
    "TooManyFailuresError",
    "TrainSettings",
    "apply_stage",
    "load_annotations",
    "load_mixture",
    "load_stage",
    "parameter_groups",
    "to_messages",
    "train",
]
