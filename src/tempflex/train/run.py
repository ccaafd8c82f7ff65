"""One training stage through transformers' ``Trainer``: stage recipe -> frozen parts, optimiser groups, schedule.

Command (a smoke run of stage 3 on the tiny preset, CPU; ``--grad-accum 1``: one sample per step, not the
recipe's global batch of 512)::

    tempflex train --stage 3 --model tiny --data data/train.jsonl --output runs/stage3 --max-steps 20 --grad-accum 1

``train(model, processor, stage, records, TrainSettings(...))`` freezes what the stage does not train, builds
AdamW with one parameter group per trained module at the stage's rate (``StageTrainer``, also under DeepSpeed),
lets the Trainer add the stage's schedule (cosine, 3% warm-up), batches with padding or packing, logs every step
to ``OUTPUT/loss.jsonl`` (``callbacks.LossLog``), and saves a ``from_pretrained``-able model and processor in
``OUTPUT``. The engine (DDP, DeepSpeed, FSDP2) and mixed precision: ``engines``; every option: ``settings``.

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
from transformers import Trainer

from tempflex.train.callbacks import LossLog, MarkComplete, StopAfter, latest_checkpoint
from tempflex.train.collate import PackingCollator, PaddingCollator
from tempflex.train.data import Entry, SkippingDataset, TooManyFailuresError, load_entries, load_mixture
from tempflex.train.engines import describe_engine, training_arguments, world_size
from tempflex.train.settings import TrainSettings
from tempflex.train.stages import Stage, apply_stage, parameter_groups

__all__ = ["StageTrainer", "load_records", "train"]

logger = logging.getLogger(__name__)


class StageTrainer(Trainer):
    """A Trainer whose optimiser is AdamW with one parameter group per module the stage trains, at its rate.

    Built in ``create_optimizer``, the hook that both the plain path and transformers' DeepSpeed integration
    call (an optimiser handed to ``Trainer(optimizers=...)`` is replaced by a single-rate one under DeepSpeed).
    """

    def __init__(self, *args: Any, stage: Stage, **kwargs: Any) -> None:
        self.stage = stage
        self.failures: list[dict] = []  # the samples the run skipped (``train`` fills it; see failures.json)
        super().__init__(*args, **kwargs)

    def training_step(self, model: torch.nn.Module, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> torch.Tensor:
        """The Trainer's step, after taking the failures a DataLoader worker found into this process's dataset."""
        skipped = inputs.pop("skipped", None)
        if skipped:
            self.train_dataset.record_skipped(skipped)
        return super().training_step(model, inputs, *args, **kwargs)

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
    settings: TrainSettings,
) -> Trainer:
    """Run one stage as ``settings`` say and save the result in ``settings.output_dir``; returns the Trainer (its
    ``state`` holds the logs, ``failures`` the skipped samples). The first log line names the engine in use."""
    output_dir = Path(settings.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    apply_stage(model, stage)
    if settings.cache_vision_features is not False and "vision_tower" in stage.trainable:
        raise ValueError(f"--cache-vision-features needs a frozen vision tower, but stage {stage.name!r} trains it")
    if settings.lora is not None:
        from tempflex.train.lora import apply_lora

        apply_lora(model, **settings.lora)
    if not records:
        raise ValueError("no training records")
    global_batch, accumulation = settings.batch_plan(stage_global_batch=stage.global_batch_size, processes=world_size())
    dataset = SkippingDataset.build(
        records, processor, max_failure_share=settings.max_failure_share, cache=settings.cache,
        video_options={"max_frames": stage.max_frames}, max_length=settings.max_length,
    )  # fmt: skip
    earlier = []  # a resumed run lists the failures of the runs before it too
    if settings.resume and failures_path(output_dir).is_file():
        earlier = json.loads(failures_path(output_dir).read_text())
    try:
        dataset.check_share()  # records refused before training may already be too many
    except TooManyFailuresError as error:
        raise TooManyFailuresError(f"{error}: see {write_failures(dataset.failures, output_dir)}") from None
    pad_id = processor.tokenizer.pad_token_id
    attention = model.config.text_config._attn_implementation  # as loaded (tempflex.load's attn_implementation)
    if settings.packing:  # FlashAttention separates samples by position ids only within one row
        collator = PackingCollator(pad_id, settings.max_length, one_row=attention not in ("sdpa", "eager"))
    else:
        collator = PaddingCollator(pad_id)
    args = training_arguments(
        settings, stage, model, accumulation, has_tensorboard=importlib.util.find_spec("tensorboard") is not None
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
            *([StopAfter(settings.stop_after)] if settings.stop_after else []),
        ],
    )
    if trainer.is_world_process_zero():
        logger.warning("%s", describe_engine(trainer))
        logger.warning(
            "global batch %d = %d per process x %d process(es) x %d accumulation step(s) (%s)", global_batch,
            settings.batch_size, world_size(), accumulation,
            f"stage {stage.name}'s recipe" if settings.global_batch is None and settings.gradient_accumulation_steps
            is None else "as given",
        )  # fmt: skip
        if global_batch > len(dataset):
            logger.warning("the global batch (%d) is larger than the data (%d samples)", global_batch, len(dataset))
    checkpoint = latest_checkpoint(output_dir) if settings.resume else None
    if settings.resume and checkpoint is None:
        logger.warning("no complete checkpoint in %s: starting from the beginning", output_dir)
    if settings.cache_vision_features is not False:
        store = settings.cache_vision_features if isinstance(settings.cache_vision_features, dict) else {}
        model.vision_tower.cache_features(store)
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except TooManyFailuresError as error:
        path = write_failures(_merged(earlier, dataset.failures), output_dir)
        raise TooManyFailuresError(f"{error}: see {path}") from None
    except BaseException:  # an interrupted or crashed run still says which samples it skipped
        write_failures(_merged(earlier, dataset.failures), output_dir)
        raise
    finally:
        model.vision_tower.cache_features(None)
    trainer.failures = _merged(earlier, dataset.failures)
    if settings.lora is not None:
        from tempflex.train.lora import merge_lora

        merge_lora(model)
    trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():
        processor.save_pretrained(str(output_dir))
    path = write_failures(trainer.failures, output_dir)
    if path is not None:
        logger.warning("%d of %d samples skipped: see %s", len(trainer.failures), dataset.total, path)
    return trainer
