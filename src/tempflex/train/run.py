"""One training stage through transformers' ``Trainer``: stage recipe -> frozen parts, optimiser groups, schedule.

Command (a smoke run of stage 3 on the tiny preset, CPU)::

    tempflex train --stage 3 --model tiny --data data/train.jsonl --output runs/stage3 --max-steps 20

``train(...)`` freezes what the stage does not train, builds AdamW with one parameter group per trained module
at the stage's rate (``StageTrainer``, also under DeepSpeed), lets the Trainer add the stage's schedule
(cosine, 3% warm-up), batches with padding or packing, logs every step to ``OUTPUT/loss.jsonl``, and saves a
``from_pretrained``-able model and processor in ``OUTPUT``. Samples that fail are skipped and reported at the
end (``failures.json``).
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from tempflex.train.collate import PackingCollator, PaddingCollator
from tempflex.train.data import SupervisedDataset, load_annotations, load_mixture
from tempflex.train.stages import Stage, apply_stage, parameter_groups

COMPLETE_MARKER = "COMPLETE"
ZERO2_CONFIG = Path(__file__).parent / "recipes" / "zero2.json"
"""The DeepSpeed ZeRO-2 config of the paper's training (``--deepspeed`` takes it or your own)."""

__all__ = ["ZERO2_CONFIG", "LossLog", "MarkComplete", "StageTrainer", "latest_checkpoint", "load_records", "train"]

logger = logging.getLogger(__name__)


class LossLog(TrainerCallback):
    """Appends every log line of the Trainer (step, loss, learning rate) to a JSONL file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if logs and state.is_world_process_zero:
            with self.path.open("a") as log:
                log.write(json.dumps({"step": state.global_step, **logs}) + "\n")


class MarkComplete(TrainerCallback):
    """Writes ``COMPLETE`` into a checkpoint folder once the Trainer has finished writing it.

    transformers writes ``checkpoint-N`` in place; a run killed mid-write leaves a partial folder. Resuming only
    from marked folders makes checkpoints atomic in effect: a partial one is never read.
    """

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            (Path(args.output_dir) / f"checkpoint-{state.global_step}" / COMPLETE_MARKER).write_text("")


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest fully written checkpoint (``checkpoint-N`` holding the ``COMPLETE`` marker), if any."""
    complete = [p for p in Path(output_dir).glob("checkpoint-*") if (p / COMPLETE_MARKER).is_file()]
    return max(complete, key=lambda p: int(p.name.rpartition("-")[2]), default=None)


class StopAfter(TrainerCallback):
    """Ends training after ``steps`` optimiser steps, as an interruption would (for resume tests)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step >= self.steps:
            control.should_training_stop = True


class StageTrainer(Trainer):
    """A Trainer whose optimiser is AdamW with one parameter group per module the stage trains, at its rate.

    Built in ``create_optimizer``, the hook that both the plain path and transformers' DeepSpeed integration
    call (an optimiser handed to ``Trainer(optimizers=...)`` is replaced by a single-rate one under DeepSpeed).
    """

    def __init__(self, *args: Any, stage: Stage, **kwargs: Any) -> None:
        self.stage = stage
        super().__init__(*args, **kwargs)

    def create_optimizer(self, model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            groups = parameter_groups(model or self.model, self.stage, weight_decay=self.args.weight_decay)
            self.optimizer = torch.optim.AdamW(groups)
        return self.optimizer


def load_records(data: str | Path, *, seed: int = 0) -> list[tuple[dict, Path]]:
    """``(record, media_root)`` pairs from a YAML mixture or a LLaVA JSON / JSONL file."""
    data = Path(data)
    if data.suffix in (".yaml", ".yml"):
        return load_mixture(data, seed=seed)
    return [(record, data.parent.resolve()) for record in load_annotations(data)]


def train(
    model: torch.nn.Module,
    processor: Any,
    stage: Stage,
    records: list[tuple[dict, Path]],
    output_dir: str | Path,
    *,
    max_steps: int = -1,
    batch_size: int = 1,
    gradient_accumulation_steps: int = 1,
    packing: bool = False,
    max_length: int = 8192,
    gradient_checkpointing: bool = False,
    seed: int = 0,
    deepspeed: str | None = None,
    fsdp: str | None = None,
    logging_steps: int = 1,
    save_steps: int | None = None,
    resume: bool = False,
    lora: dict | None = None,
    stop_after: int | None = None,
    shuffle: bool = True,
    cache: dict | None = None,
) -> Trainer:
    """Run one stage and save the result in ``output_dir``; returns the Trainer (its ``state`` holds the logs).

    ``save_steps``: write a resumable checkpoint (model, optimiser, scheduler, RNG, data position) every N
    steps into ``output_dir/checkpoint-N``, marked complete once written; ``resume=True`` continues from the
    newest complete one, reproducing the uninterrupted run. TensorBoard logs are written when it is installed.
    ``lora``: PEFT ``LoraConfig`` arguments for the LLM (see ``lora.apply_lora``).
    ``stop_after``: end after N steps as if interrupted (the schedule still plans ``max_steps``).
    ``shuffle=False`` reads the records in order (under torchrun, rank r takes every r-th batch).
    ``cache``: keep processed samples in this dict (see ``SupervisedDataset``), e.g. across several runs.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    apply_stage(model, stage)
    if lora is not None:
        from tempflex.train.lora import apply_lora

        apply_lora(model, **lora)
    dataset = SupervisedDataset(records, processor, video_options={"max_frames": stage.max_frames}, cache=cache)
    pad_id = processor.tokenizer.pad_token_id
    collator = PackingCollator(pad_id, max_length) if packing else PaddingCollator(pad_id)
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=max_steps,
        num_train_epochs=stage.epochs,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=gradient_accumulation_steps,
        lr_scheduler_type=stage.lr_scheduler,
        warmup_steps=stage.warmup_ratio,  # v5: a float in [0, 1) is a ratio of the total steps
        logging_steps=logging_steps,
        save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500,
        report_to=["tensorboard"] if importlib.util.find_spec("tensorboard") else "none",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        activation_checkpointing=gradient_checkpointing,
        use_cpu=not torch.cuda.is_available(),
        seed=seed,
        deepspeed=deepspeed,
        fsdp=fsdp or "",
        fsdp_config={"transformer_layer_cls_to_wrap": list(model._no_split_modules)} if fsdp else None,
        train_sampling_strategy="random" if shuffle else "sequential",
    )
    trainer = StageTrainer(
        stage=stage,
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=collator,
        callbacks=[
            LossLog(output_dir / "loss.jsonl"),
            MarkComplete(),
            *([StopAfter(stop_after)] if stop_after else []),
        ],
    )
    checkpoint = latest_checkpoint(output_dir) if resume else None
    if resume and checkpoint is None:
        logger.warning("no complete checkpoint in %s: starting from the beginning", output_dir)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    if lora is not None:
        from tempflex.train.lora import merge_lora

        merge_lora(model)
    trainer.save_model(str(output_dir))
    processor.save_pretrained(str(output_dir))
    if dataset.failures:
        (output_dir / "failures.json").write_text(json.dumps(dataset.failures, indent=1))
        logger.warning("%d samples skipped (media failed): see %s", len(dataset.failures), output_dir / "failures.json")
    return trainer
