"""``TrainSettings``: every option of one training run in one object (``tempflex train`` flags map 1:1).

    >>> from tempflex.train.settings import TrainSettings
    >>> settings = TrainSettings(output_dir="runs/s3", max_steps=20, gradient_accumulation_steps=1)
    >>> settings.batch_plan(stage_global_batch=512, processes=1)
    (1, 1)

The global batch (samples per optimiser step over all processes) is the stage recipe's ``global_batch_size``
(512; 256 in stage 4, as in the paper) unless ``global_batch`` or ``gradient_accumulation_steps`` is given:
``batch_plan`` turns it into ``(global batch, accumulation)`` with ``global = batch_size x processes x
accumulation``, and refuses a global batch that is not such a product. A smoke run on a laptop passes
``gradient_accumulation_steps=1`` (``--grad-accum 1``); the recipe's 512 would mean 512 samples per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["MIXED_PRECISION", "TrainSettings"]

MIXED_PRECISION = ("no", "bf16", "fp16")
"""``mixed_precision`` values: autocast dtype of forward and backward; the weights stay as loaded (fp32 masters)."""


@dataclass
class TrainSettings:
    """How one stage is run (the stage recipe says what trains, at which rates; this says how).

    - ``output_dir``: model, processor, ``loss.jsonl``, ``failures.json`` and checkpoints land here.
    - ``max_steps``: optimiser steps (``-1``: the recipe's epochs). ``stop_after``: end after N steps as if
      interrupted (the schedule still plans ``max_steps``; for resume tests).
    - ``batch_size``: samples (or packed rows) per process and micro-step. ``global_batch`` /
      ``gradient_accumulation_steps``: see ``batch_plan`` (default: the recipe's global batch).
    - ``packing``: pack whole samples into rows of ``max_length`` tokens (one row per micro-batch under
      FlashAttention, read from the model as loaded: ``tempflex.load(..., attn_implementation=...)``, see
      ``collate.PackingCollator``). ``max_length``: the longest sample kept whole; a longer one
      loses its tail tokens when all its visual tokens come before the cut, else it is skipped (both logged).
    - ``mixed_precision``: ``"bf16"`` / ``"fp16"`` autocast over fp32 master weights (DeepSpeed configs take it
      from here too); ``"no"`` trains in the weights' own dtype.
    - ``deepspeed``: a DeepSpeed config path (``"zero2"``: the shipped ZeRO-2 one). ``fsdp``: shard with FSDP2
      (``fully_shard``; the model must come in through ``engines.load_for_fsdp2``). ``gradient_checkpointing``:
      recompute activations in backward (vision, TFF and LM layers).
    - ``num_workers``: DataLoader worker processes (failures found in a worker still reach ``failures.json``).
    - ``save_steps``: a resumable checkpoint every N steps; ``save_total_limit``: keep only the newest N;
      ``resume``: continue from the newest complete checkpoint.
    - ``lora``: PEFT ``LoraConfig`` arguments for the LLM (merged at the end). ``shuffle=False``: records in order
      (under torchrun, rank r takes every r-th batch). ``cache``: keep processed samples in this dict across runs.
    - ``max_failure_share``: stop (``TooManyFailuresError``) once more than this share of the samples failed.
    - ``cache_vision_features``: a stage that freezes the vision tower (the paper's stage 3) encodes each frame once
      and reuses its features in later epochs (``VisionTower.cache_features``; exact). ``True``: a store for this
      run; a dict: that store, shared with other runs over the same clips and the same frozen tower.
    """

    output_dir: str | Path
    max_steps: int = -1
    batch_size: int = 1
    global_batch: int | None = None
    gradient_accumulation_steps: int | None = None
    packing: bool = False
    max_length: int = 8192
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    deepspeed: str | None = None
    fsdp: bool = False
    num_workers: int = 0
    seed: int = 0
    logging_steps: int = 1
    save_steps: int | None = None
    save_total_limit: int | None = None
    resume: bool = False
    lora: dict | None = None
    stop_after: int | None = None
    shuffle: bool = True
    cache: dict | None = None
    max_failure_share: float = 0.5
    cache_vision_features: bool | dict = False

    def __post_init__(self) -> None:
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision {self.mixed_precision!r} is not one of {MIXED_PRECISION}")
        if self.fsdp and self.deepspeed:
            raise ValueError("choose one engine: --fsdp or --deepspeed, not both")
        for name in ("batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be 0 or more, got {self.num_workers}")

    def batch_plan(self, *, stage_global_batch: int, processes: int) -> tuple[int, int]:
        """``(global batch, gradient accumulation steps)`` for ``processes`` processes.

        Explicit ``gradient_accumulation_steps`` wins (the global batch follows from it); else ``global_batch``,
        else the recipe's ``stage_global_batch``, which must then be ``batch_size x processes x accumulation``.
        """
        per_step = self.batch_size * processes
        if self.gradient_accumulation_steps is not None:
            if self.global_batch is not None and self.global_batch != per_step * self.gradient_accumulation_steps:
                raise ValueError(
                    f"global batch {self.global_batch} != batch size {self.batch_size} x {processes} processes x "
                    f"{self.gradient_accumulation_steps} accumulation steps: give one of them"
                )
            return per_step * self.gradient_accumulation_steps, self.gradient_accumulation_steps
        target = self.global_batch if self.global_batch is not None else stage_global_batch
        if target < per_step or target % per_step:
            raise ValueError(
                f"global batch {target} is not a multiple of batch size {self.batch_size} x {processes} processes "
                "(set --global-batch or --grad-accum)"
            )
        return target, target // per_step
