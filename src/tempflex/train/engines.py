"""The distributed engine of a run: DDP, DeepSpeed ZeRO, FSDP2 or one process; mixed precision; the Trainer's arguments.

Command (2 CPU processes over gloo, FSDP2; the first log line names the engine)::

    torchrun --nproc_per_node 2 -m tempflex.train --stage 2 --model tiny --data d.jsonl --output o --fsdp \\
        --grad-accum 1 --max-steps 3
    # distributed: fsdp2, 2 processes, gloo

Engines, and why each runs the same collectives on every process whatever its samples:

- **DDP** (torchrun, no engine flag): gradients are all-reduced per parameter bucket once per backward. A text-only
  sample runs the visual path on a blank clip with a loss term of exactly 0 (``modeling._zero_visual_term``), so
  every process marks the same parameters ready; checkpointing is non-reentrant (transformers 5's default), so a
  tower called once per size bucket still reports each parameter once.
- **DeepSpeed ZeRO** (``--deepspeed zero2`` or a config): the same, with the shipped config's ``"auto"`` fields
  (micro-batch, accumulation, clipping, bf16 / fp16) filled from these settings by transformers.
- **FSDP2** (``--fsdp``): ``torch.distributed.fsdp.fully_shard`` through transformers' ``DistributedConfig``
  (``load_for_fsdp2``), on CPU/gloo as on GPU/NCCL. Each LM decoder layer is its own FSDP group (called exactly
  once per forward). The vision tower, TFF and merger stay in the root group: their call count depends on the clip
  shapes in a batch (size buckets, one TFF call per clip shape), and a per-layer group would all-gather a different
  number of times on each process; the root group is gathered once per step. Parameters are DTensors sharded over
  the processes; the Trainer then does not wrap the model in DDP. Checkpoints hold the model only (transformers
  does not save the optimiser state of a model sharded at load), so ``--resume`` is refused with ``--fsdp``.

Mixed precision (``--bf16`` / ``--fp16``) is autocast over fp32 master weights: ``tempflex train`` loads the model
in float32 unless ``--dtype`` asks otherwise, so a folder saved in bf16 trains in mixed precision, not pure bf16.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from tempflex.train.settings import TrainSettings

__all__ = ["ZERO2_CONFIG", "describe_engine", "load_for_fsdp2", "resolve_deepspeed_config", "world_size"]

ZERO2_CONFIG = Path(__file__).parent / "recipes" / "zero2.json"
"""The DeepSpeed ZeRO-2 config of the paper's training (``--deepspeed zero2`` names it)."""


def world_size() -> int:
    """Processes of this run (torchrun's ``WORLD_SIZE``; 1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_deepspeed_config(name: str | None) -> str | None:
    """``"zero2"`` -> the shipped ZeRO-2 config; a path stays a path (``ValueError`` when it does not exist)."""
    if name is None:
        return None
    if name == "zero2":
        return str(ZERO2_CONFIG)
    if not Path(name).is_file():
        raise ValueError(f"DeepSpeed config {name!r} is not a file (or 'zero2' for the shipped ZeRO-2 config)")
    return name


def load_for_fsdp2(spec: Any, **load_options: Any) -> tuple[torch.nn.Module, Any]:
    """``tempflex.load(spec)`` sharded over this run's processes with FSDP2 (``DistributedConfig(fsdp_size=N)``).

    transformers shards a model while ``from_pretrained`` loads it, so a preset or a ``(vision, language)`` pair is
    first built as usual (the same seed gives every process the same weights) and written to a temporary folder
    of this process, then loaded from there; a saved folder is loaded directly. Needs torchrun (``WORLD_SIZE`` > 1).
    """
    from transformers.distributed import DistributedConfig

    from tempflex.loading import load

    processes = world_size()
    if processes < 2:
        raise ValueError("--fsdp shards over several processes: launch with torchrun --nproc_per_node N (N >= 2)")
    distributed = DistributedConfig(fsdp_size=processes)
    if isinstance(spec, (str, Path)) and Path(spec).is_dir():
        return load(spec, distributed_config=distributed, **load_options)
    model, processor = load(spec, **load_options)
    with tempfile.TemporaryDirectory(prefix="tempflex-fsdp2-") as folder:
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        del model
        return load(folder, distributed_config=distributed, **load_options)


def describe_engine(trainer: Any) -> str:
    """One line naming the engine the Trainer actually uses, its precision and the LLM's attention, e.g.
    ``distributed: fsdp2, 2 processes, gloo; autocast bf16 over float32 weights; attention sdpa``."""
    processes = trainer.args.world_size
    backend = torch.distributed.get_backend() if torch.distributed.is_initialized() else trainer.args.device.type
    if trainer.is_deepspeed_enabled:
        stage = trainer.accelerator.state.deepspeed_plugin.zero_stage
        engine = f"deepspeed zero-{stage}"
    elif getattr(trainer.model, "is_distributed_loading_by_transformers", False):
        engine = "fsdp2"
    elif processes > 1:
        engine = "ddp"
    else:
        engine = "none"
    plural = "process" if processes == 1 else "processes"
    precision = trainer.accelerator.mixed_precision
    dtype = str(next(trainer.model.parameters()).dtype).removeprefix("torch.")
    mixed = f"autocast {precision} over {dtype} weights" if precision != "no" else f"{dtype} weights"
    attention = trainer.model.config.text_config._attn_implementation
    return f"distributed: {engine}, {processes} {plural}, {backend}; {mixed}; attention {attention}"


def training_arguments(
    settings: TrainSettings, stage: Any, model: torch.nn.Module, accumulation: int, *, has_tensorboard: bool
) -> Any:
    """transformers ``TrainingArguments`` for this run (engine, precision, schedule, logging, checkpoints)."""
    from transformers import TrainingArguments

    fsdp = bool(getattr(model, "is_distributed_loading_by_transformers", False))
    if settings.fsdp and not fsdp:
        raise ValueError("settings.fsdp is set but the model is not sharded: load it with engines.load_for_fsdp2")
    if fsdp and settings.resume:
        raise ValueError(
            "--resume is not available with --fsdp: transformers keeps no optimiser state for a model sharded at "
            "load, so FSDP2 checkpoints hold the model only (restart a stage from one with --model CHECKPOINT)"
        )
    if settings.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise ValueError("--fp16 autocast needs a CUDA device; on the CPU use --bf16")
    return TrainingArguments(
        output_dir=str(settings.output_dir),
        max_steps=settings.max_steps,
        num_train_epochs=stage.epochs,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=accumulation,
        lr_scheduler_type=stage.lr_scheduler,
        warmup_steps=stage.warmup_ratio,  # v5: a float in [0, 1) is a ratio of the total steps
        logging_steps=settings.logging_steps,
        save_strategy="steps" if settings.save_steps else "no",
        save_steps=settings.save_steps or 500,
        save_total_limit=settings.save_total_limit,
        save_only_model=fsdp,
        report_to=["tensorboard"] if has_tensorboard else "none",
        remove_unused_columns=False,
        dataloader_num_workers=settings.num_workers,
        activation_checkpointing=settings.gradient_checkpointing,
        bf16=settings.mixed_precision == "bf16",
        fp16=settings.mixed_precision == "fp16",
        include_num_input_tokens_seen="non_padding",
        use_cpu=not torch.cuda.is_available(),
        seed=settings.seed,
        deepspeed=resolve_deepspeed_config(settings.deepspeed),
        train_sampling_strategy="random" if settings.shuffle else "sequential",
    )
