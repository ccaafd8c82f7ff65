"""Training: the four-stage recipe (``stages``), LLaVA-format data (``data``), padding / packing (``collate``)
and one stage through transformers' Trainer (``run``). Needs the ``train`` extra (accelerate)."""

from tempflex.lazy import lazy_exports

# Each name loads its module on first use: ``tempflex train --help`` imports no torch.
_EXPORTS = {
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
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
