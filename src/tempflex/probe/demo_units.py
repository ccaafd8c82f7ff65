"""The work units of ``tempflex demo``, each run in a worker process (``demo.run_demo`` schedules them).

- ``train_seed``: one seed's ``align`` stage, then every Table-4 variant's ``temporal`` stage from those weights;
- ``score_seed``: the seed's five trained variants, read back from disk, scored on the held-out clips in one pass
  (each clip decoded once, each frame encoded once by the shared frozen tower);
- ``train_reading``: one encoding strategy of the reading task, trained from scratch and scored.

Each returns plain data (scores, logged losses, the worker's pid and peak RSS) for the parent to summarise.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from tempflex.fusion import PATHS
from tempflex.probe.demo import peak_rss_mb, variant_name
from tempflex.probe.evaluate import evaluate, evaluate_many
from tempflex.train.data import SupervisedDataset, load_annotations
from tempflex.train.run import load_records, train
from tempflex.train.settings import TrainSettings
from tempflex.train.stages import Stage

__all__ = ["ALIGN_MODULES", "TEMPORAL_MODULES", "score_seed", "train_reading", "train_seed"]

ALIGN_MODULES = ("vision_tower", "merger", "language_model")
"""What the ``align`` stage and the reading runs train."""

TEMPORAL_MODULES = ("merger", "language_model")
"""What the ``temporal`` stage trains besides TFF: the vision tower stays frozen, as in the paper's stage 3."""


def variant_folder(out: Path, seed: int, name: str) -> Path:
    """Where the ``temporal`` stage of one variant and seed saves its model."""
    return out / f"runs/seed{seed}/{name.replace(' ', '_')}"


def init_worker(threads: int) -> None:
    """Each worker process uses ``threads`` torch threads (the cores split between the workers)."""
    torch.set_num_threads(threads)


def _cache_pages(own: bool) -> None:
    """While ``own`` (a unit filling its cache of processed clips), give every allocation of 128 KiB or more its
    own pages; afterwards, let glibc serve them from the heap again (``mallopt(M_MMAP_THRESHOLD)``).

    Measured on the probe: a cached clip (786 KB) costs 0.89 MB of RSS this way and 1.65 MB by glibc's default,
    whose rising threshold leaves freed decoding buffers stranded in the heap between the cached tensors (2.4 GB
    per seed). Own pages for every large allocation slow training by ~1.6x (page faults), so they are on only
    while ``_fill_cache`` runs. Skipped where the C library is not glibc.
    """
    library = ctypes.util.find_library("c")
    if platform.system() == "Linux" and library and platform.libc_ver()[0] == "glibc":
        ctypes.CDLL(library).mallopt(-3, 128 * 1024 if own else 64 * 1024 * 1024)  # -3: M_MMAP_THRESHOLD


def _stage(name: str, rates: dict[str, float], fusion: bool) -> Stage:
    return Stage(name=name, trainable=rates, use_temporal_fusion=fusion, warmup_ratio=0.05)


def _model(frames_to_llm: int | None, paths: tuple[str, ...]) -> tuple[Any, Any]:
    from tempflex.loading import load

    return load("tiny", max_frames_to_llm=frames_to_llm, fusion_paths=list(paths or PATHS))


def _run_settings(folder: Path, steps: int, settings: Any, **extra: Any) -> TrainSettings:
    return TrainSettings(
        folder, steps, batch_size=settings.batch_size, gradient_accumulation_steps=1,
        logging_steps=max(1, steps // 20), **extra,
    )  # fmt: skip


def _losses(trainer: Any) -> list[float]:
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def _report(messages: Any, started: float, text: str) -> None:
    messages.put(f"{text} ({time.perf_counter() - started:.0f} s)")


def _fill_cache(records: list, processor: Any, stage: Stage, run: TrainSettings) -> None:
    """Process every record into ``run.cache`` as ``train`` would on first reading it (the same keys), each clip
    on its own pages (``_cache_pages``), so that training then reads them all from the cache."""
    dataset = SupervisedDataset(records, processor, video_options={"max_frames": stage.max_frames}, cache=run.cache,
                                max_length=run.max_length)  # fmt: skip
    _cache_pages(own=True)
    try:
        for index in range(len(dataset)):
            dataset[index]
    finally:
        _cache_pages(own=False)


def train_seed(settings: Any, out: Path, seed: int, messages: Any) -> dict[str, Any]:
    """``align`` (TFF off), then each variant's ``temporal`` stage from the aligned weights; models saved to disk."""
    records = load_records(out / "probe" / "train.jsonl")
    started = time.perf_counter()
    samples: dict = {}  # processed clips, decoded once for every stage of this seed
    features: dict = {}  # the frozen tower's frame features, shared by the temporal stage of every variant
    torch.manual_seed(seed)
    model, processor = _model(settings.frames_to_llm, PATHS)
    align = _stage("align", dict.fromkeys(ALIGN_MODULES, settings.learning_rate), False)
    run = _run_settings(out / f"runs/seed{seed}/align", settings.align_steps, settings, seed=seed, cache=samples)
    _fill_cache(records, processor, align, run)
    losses = {"align": _losses(train(model, processor, align, records, run))}
    aligned = {k: v for k, v in model.state_dict().items() if not k.startswith("temporal_fusion.")}
    _report(messages, started, f"seed {seed}: aligned")
    for paths in settings.variants:
        name = variant_name(paths)
        torch.manual_seed(seed)  # the same fresh TFF weights for a variant whatever ran before it
        model, processor = _model(settings.frames_to_llm, paths)
        missing, unexpected = model.load_state_dict(aligned, strict=False)
        if unexpected or any(not key.startswith("temporal_fusion.") for key in missing):
            raise RuntimeError(f"aligned weights do not fit variant {name}: {missing} {unexpected}")
        rates = dict.fromkeys(TEMPORAL_MODULES, settings.learning_rate)
        if paths:
            rates["temporal_fusion"] = settings.fusion_learning_rate
        stage = _stage("temporal", rates, bool(paths))
        run = _run_settings(variant_folder(out, seed, name), settings.temporal_steps, settings, seed=seed,
                            cache=samples, cache_vision_features=features)  # fmt: skip
        losses[name] = _losses(train(model, processor, stage, records, run))
        _report(messages, started, f"seed {seed}: {name} trained")
    return {"seed": seed, "losses": losses, "seconds": round(time.perf_counter() - started, 1),
            "pid": os.getpid(), "peak_rss_mb": peak_rss_mb()}  # fmt: skip


def score_seed(settings: Any, out: Path, seed: int, messages: Any) -> dict[str, Any]:
    """Every variant of ``seed`` (as ``train_seed`` saved it) on the held-out clips, in one pass over them."""
    from tempflex.loading import load

    started = time.perf_counter()
    test = load_annotations(out / "probe" / "test.jsonl")
    features: dict = {}  # every variant kept the aligned tower frozen: each test frame is encoded once
    models, processor = {}, None
    for paths in settings.variants:
        name = variant_name(paths)
        models[name], processor = load(str(variant_folder(out, seed, name)))
        models[name].vision_tower.requires_grad_(False)
        models[name].vision_tower.cache_features(features)
    scored = evaluate_many(models, processor, test, out / "probe")
    _report(messages, started, f"seed {seed}: scored {len(models)} variants on {len(test)} clips")
    return {
        "seed": seed,
        "scores": {
            name: {task: value["accuracy"] for task, value in result.items()} for name, result in scored.items()
        },
        "seconds": round(time.perf_counter() - started, 1),
        "pid": os.getpid(),
        "peak_rss_mb": peak_rss_mb(),
    }


def train_reading(settings: Any, out: Path, strategy: str, messages: Any) -> dict[str, Any]:
    """One encoding strategy of the reading task: train the tiny preset from scratch, then score it."""
    folder = out / "reading"
    started = time.perf_counter()
    torch.manual_seed(0)
    model, processor = _model(settings.frames_to_llm, PATHS)
    stage = _stage("reading", dict.fromkeys(ALIGN_MODULES, settings.learning_rate), False)
    records = load_records(folder / f"{strategy}_train.jsonl")
    test = load_annotations(folder / f"{strategy}_test.jsonl")
    run = _run_settings(out / f"runs/reading/{strategy}", settings.reading_steps, settings, cache={})
    _fill_cache(records, processor, stage, run)
    losses = _losses(train(model, processor, stage, records, run))
    accuracy = evaluate(model, processor, test, folder)["all"]["accuracy"]
    sample = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image", "image": str(folder / p)} for p in test[0]["image"]]}],
        tokenize=True, return_dict=True,
    )  # fmt: skip
    tokens = sum(token == model.config.image_token_id for token in sample["input_ids"][0])
    _report(messages, started, f"reading: {strategy}: {accuracy:.2f} with {tokens} visual tokens")
    return {
        "strategy": strategy, "accuracy": accuracy, "visual_tokens": int(tokens), "views": len(test[0]["image"]),
        "losses": losses, "pid": os.getpid(), "peak_rss_mb": peak_rss_mb(),
    }  # fmt: skip
