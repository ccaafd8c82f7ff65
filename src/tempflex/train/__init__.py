"""Training: the four-stage recipe (``stages``), LLaVA-format data (``data``), padding / packing (``collate``)
and one stage through transformers' Trainer (``run``). Needs the ``train`` extra (accelerate)."""

from tempflex.lazy import lazy_exports

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

# Each name loads its module on first use: ``tempflex train --help`` imports no torch.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "PackingCollator": "tempflex.train.collate",
        "PaddingCollator": "tempflex.train.collate",
        "SkippingDataset": "tempflex.train.data",
        "SupervisedDataset": "tempflex.train.data",
        "TooManyFailuresError": "tempflex.train.data",
        "load_annotations": "tempflex.train.data",
        "load_mixture": "tempflex.train.data",
        "to_messages": "tempflex.train.data",
        "train": "tempflex.train.run",
        "TrainSettings": "tempflex.train.settings",
        "Stage": "tempflex.train.stages",
        "apply_stage": "tempflex.train.stages",
        "load_stage": "tempflex.train.stages",
        "parameter_groups": "tempflex.train.stages",
    },
)
