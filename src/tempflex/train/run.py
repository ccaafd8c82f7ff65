"""One training stage through transformers' ``Trainer``: stage recipe -> frozen parts, optimiser groups, schedule.

Command (a smoke run of stage 3 on the tiny preset, CPU)::

    tempflex train --stage 3 --model tiny --data data/train.jsonl --output runs/stage3 --max-steps 20

``train(...)`` freezes what the stage does not train, builds AdamW with one parameter group per trained module
at the stage's rate (``StageTrainer``, also under DeepSpeed), lets the Trainer add the stage's schedule
(cosine, 3% warm-up), batches with padding or packing, logs every step to ``OUTPUT/loss.jsonl``, and saves a
``from_pretrained``-able model and processor in ``OUTPUT``.

Samples that cannot be used are skipped at any batch size (batch size 1 included) and listed in
``OUTPUT/failures.json`` (``[{"id", "file", "line" | "index", "reason"}, ...]``): a line that is not a JSON object,
a malformed record or one without an assistant turn is left out before training; a sample whose media fail to
load is replaced by the next usable one (``data.SkippingDataset``: no batch is ever empty, every step trains on
real samples). The run stops with ``TooManyFailuresError`` (a ``ValueError``; ``tempflex train`` exits 2) once more
than ``max_failure_share`` of the samples have failed; ``failures.json`` is written then too.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from tempflex.train.collate import PackingCollator, PaddingCollator
from tempflex.train.data import Entry, SkippingDataset, TooManyFailuresError, load_entries, load_mixture
from tempflex.train.stages import Stage, apply_stage, parameter_groups

COMPLETE_MARKER = "COMPLETE"
ZERO2_CONFIG = Path(__file__).parent / "recipes" / "zero2.json"
"""The DeepSpeed ZeRO-2 config of the paper's training (``--deepspeed`` takes it or your own)."""

__all__ = ["ZERO2_CONFIG", "LossLog", "MarkComplete", "StageTrainer", "latest_checkpoint", "load_records", "train"]

logger = logging.getLogger(__name__)


class LossLog(TrainerCallback):
    """Appends every log line of the Trainer (step, loss, learning rate) to a JSONL file.

    A resumed run starts again from its checkpoint's step: the lines an interrupted run wrote after that step are
    dropped when training begins, so every step appears once and the file reads as the uninterrupted run's.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                step = json.loads(line).get("step", 0)
            except json.JSONDecodeError:  # a line cut off by the interruption
                continue
            if step <= state.global_step:
                kept.append(line)
        self.path.write_text("".join(line + "\n" for line in kept))

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
        self.failures: list[dict] = []  # the samples the run skipped (``train`` fills it; see failures.json)
        super().__init__(*args, **kwargs)

    def create_optimizer(self, model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            groups = parameter_groups(model or self.model, self.stage, weight_decay=self.args.weight_decay)
            self.optimizer = torch.optim.AdamW(groups)
        return self.optimizer


def load_records(data: str | Path, *, seed: int = 0) -> list[Entry]:
    """``(record, media_root)`` pairs (``data.Entry``: with file and line) from a YAML mixture or a LLaVA JSON /
    JSONL file; lines that are not records are kept with their error, for ``train`` to list as failures."""
    data = Path(data)
    if data.suffix in (".yaml", ".yml"):
        return load_mixture(data, seed=seed)
    return load_entries(data)


def failures_path(output_dir: str | Path) -> Path:
    """``output_dir/failures.json`` (under torchrun, rank r > 0 writes ``failures.rank<r>.json``: its own)."""
    rank = int(os.environ.get("RANK", "0"))
    return Path(output_dir) / ("failures.json" if rank == 0 else f"failures.rank{rank}.json")


def write_failures(failures: list[dict], output_dir: Path) -> Path | None:
    """Write ``failures_path(output_dir)``; nothing is written when nothing failed."""
    if not failures:
        return None
    path = failures_path(output_dir)
    path.write_text(json.dumps(failures, indent=1))
    return path


def _merged(earlier: list[dict], failures: list[dict]) -> list[dict]:
    """The failures of a resumed run after those of the runs before it, each listed once."""
    seen = {json.dumps(f, sort_keys=True) for f in earlier}
    return [*earlier, *(f for f in failures if json.dumps(f, sort_keys=True) not in seen)]


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
    max_failure_share: float = 0.5,
) -> Trainer:
    """Run one stage and save the result in ``output_dir``; returns the Trainer (its ``state`` holds the logs).

    ``save_steps``: write a resumable checkpoint (model, optimiser, scheduler, RNG, data position) every N
    steps into ``output_dir/checkpoint-N``, marked complete once written; ``resume=True`` continues from the
    newest complete one, reproducing the uninterrupted run. TensorBoard logs are written when it is installed.
    ``lora``: PEFT ``LoraConfig`` arguments for the LLM (see ``lora.apply_lora``).
    ``stop_after``: end after N steps as if interrupted (the schedule still plans ``max_steps``).
    ``shuffle=False`` reads the records in order (under torchrun, rank r takes every r-th batch).
    ``cache``: keep processed samples in this dict (see ``SupervisedDataset``), e.g. across several runs.
    ``max_failure_share``: stop (``TooManyFailuresError``) once more than this share of the samples have failed; the
    failures are listed in ``output_dir/failures.json`` either way and counted in ``trainer.failures``.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    apply_stage(model, stage)
    if lora is not None:
        from tempflex.train.lora import apply_lora

        apply_lora(model, **lora)
    if not records:
        raise ValueError("no training records")
    dataset = SkippingDataset.build(
        records, processor, max_failure_share=max_failure_share,
        video_options={"max_frames": stage.max_frames}, cache=cache,
    )  # fmt: skip
    earlier = []  # a resumed run lists the failures of the runs before it too
    if resume and failures_path(output_dir).is_file():
        earlier = json.loads(failures_path(output_dir).read_text())
    try:
        dataset.check_share()  # records refused before training may already be too many
    except TooManyFailuresError as error:
        raise TooManyFailuresError(f"{error}: see {write_failures(dataset.failures, output_dir)}") from None
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
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except TooManyFailuresError as error:
        path = write_failures(_merged(earlier, dataset.failures), output_dir)
        raise TooManyFailuresError(f"{error}: see {path}") from None
    except BaseException:  # an interrupted or crashed run still says which samples it skipped
        write_failures(_merged(earlier, dataset.failures), output_dir)
        raise
    trainer.failures = _merged(earlier, dataset.failures)
    if lora is not None:
        from tempflex.train.lora import merge_lora

        merge_lora(model)
    trainer.save_model(str(output_dir))
    processor.save_pretrained(str(output_dir))
    path = write_failures(trainer.failures, output_dir)
    if path is not None:
        logger.warning("%d of %d samples skipped: see %s", len(trainer.failures), dataset.total, path)
    return trainer
