"""``tempflex demo``: a tiny TempFlex learns the probe on a CPU, with the paper's ablations in miniature.

Command::

    tempflex demo --out demo            # ~10 min on 2 CPU cores; demo/results.{md,json}, demo/accuracy.png
    tempflex demo --out demo --quick    # ~15 s smoke run (too few steps to learn; checks the plumbing)

What it does, in order:

1. writes the temporal probe (``probe.dataset``) and the digit-reading images (``probe.reading``) under ``OUT``;
2. for each seed, trains the ``tiny`` preset through two stages adapted to a CPU:
   ``align`` (TFF off; vision tower, merger and LM learn the probe, as the paper's stages 1-2 build a
   single-frame model) and then, from those weights, ``temporal`` once per Table-4 variant (no TFF, each
   fiber removed, full TFF; TFF starts as the identity, as in the paper's stage 3) for the same number of
   steps; every variant is scored on the held-out split;
3. trains one model per image encoding strategy (native / fixed / tiled) on the reading task;
4. prints and writes the tables (markdown, JSON) and a bar chart (PNG).

Frames are average-pooled before the LM, as the official pipeline pools after TFF (64 -> 32 frames); here 16
frames become ``frames_to_llm`` = 2 windows of 8. Within a window the LM sees only the mean, so order inside
it is gone unless TFF, which runs on every frame before pooling, carries it into the features. Three tasks live
mostly inside the windows: the motion direction (each window's smear covers half of the wrapping path, so the two
halves say nothing about direction), the flash count and the flash rate (both rates light 4 of every 8 frames).
The other four change across the halfway point (a square appearing, a bar filling up, one colour then another,
a short smear then a long one) and stay visible without TFF; the table shows both kinds. With
``frames_to_llm=1`` the mean frame says nothing about any temporal answer (``probe.tasks``), so without TFF
every temporal task is at chance by construction; TFF then needs far more steps than a CPU demo has
(measured: no temporal task above chance after 1,000 steps), so it is not the default.

The tables report mean and spread (population standard deviation) over seeds and say, per task, whether full
TFF is ahead of no TFF by more than the spreads; they never round a tie into a win. At the default budget the
outcome is fragile: on the development machine the defaults gave full TFF 1.00 vs 0.51 on the flash rate, and
``--align-steps 200`` gave no gain anywhere; ``--steps 1000 --seeds 3`` (34 min) put full TFF ahead beyond the
spreads on flash count (+0.39) and rate (+0.36) (``benchmarks/README.md``).
"""

from __future__ import annotations

import json
import logging
import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from tempflex.fusion import PATHS
from tempflex.probe.dataset import generate_probe
from tempflex.probe.evaluate import evaluate
from tempflex.probe.reading import STRATEGIES, generate_reading
from tempflex.probe.tasks import TASKS, TEMPORAL_TASKS
from tempflex.train.data import load_annotations
from tempflex.train.run import load_records, train
from tempflex.train.settings import TrainSettings
from tempflex.train.stages import Stage

__all__ = ["QUICK", "VARIANTS", "DemoSettings", "run_demo", "variant_name"]

logger = logging.getLogger(__name__)

VARIANTS: tuple[tuple[str, ...], ...] = (
    (),
    ("local", "memory"),
    ("local", "periodic"),
    ("memory", "periodic"),
    PATHS,
)
"""The rows of the paper's Table 4: no TFF, each single fiber removed, full TFF."""


SINGLE_FRAME_MODULES = ("vision_tower", "merger", "language_model")
"""What every demo stage trains; the temporal stage adds TFF at ``fusion_learning_rate``."""


def variant_name(paths: tuple[str, ...]) -> str:
    """``"no TFF"``, ``"full TFF"`` or the kept fibers joined by ``+``."""
    if not paths:
        return "no TFF"
    return "full TFF" if tuple(paths) == PATHS else "+".join(paths)


@dataclass(frozen=True)
class DemoSettings:
    """Every knob of the demo; the defaults are the full run (about 10 minutes on 2 CPU cores)."""

    seeds: int = 2
    per_task: int = 150  # probe clips per task; a quarter are held out
    align_steps: int = 150
    temporal_steps: int = 250
    reading_steps: int = 200
    reading_train: int = 800
    reading_test: int = 200
    batch_size: int = 16
    learning_rate: float = 1e-3
    fusion_learning_rate: float = 3e-3  # TFF learns faster than the rest, as in the paper's stage 3
    frames_to_llm: int | None = 2
    variants: tuple[tuple[str, ...], ...] = VARIANTS
    strategies: tuple[str, ...] = STRATEGIES


QUICK = DemoSettings(
    seeds=1, per_task=8, align_steps=4, temporal_steps=4, reading_steps=4, reading_train=16, reading_test=8,
    batch_size=4, variants=((), PATHS),
)  # fmt: skip
"""``--quick``: every step of the demo at toy sizes (about 15 s; too few steps to learn anything)."""


def _stage(name: str, rates: dict[str, float], fusion: bool) -> Stage:
    return Stage(name=name, trainable=rates, use_temporal_fusion=fusion, warmup_ratio=0.05)


def _model(settings: DemoSettings, paths: tuple[str, ...]) -> tuple[Any, Any]:
    from tempflex.loading import load

    return load("tiny", max_frames_to_llm=settings.frames_to_llm, fusion_paths=list(paths or PATHS))


@dataclass
class _Progress:
    total: int
    report: Callable[[str], None]
    done: int = 0
    started: float = field(default_factory=time.perf_counter)

    def step(self, what: str) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.started
        self.report(f"[{self.done}/{self.total}] {what}  ({elapsed:.0f} s elapsed)")


def _run_temporal(settings: DemoSettings, out: Path, progress: _Progress) -> dict[str, dict]:
    probe = out / "probe"
    records = load_records(probe / "train.jsonl")
    test = load_annotations(probe / "test.jsonl")
    train_cache: dict = {}
    eval_cache: dict = {}
    scores: dict[str, list[dict[str, float]]] = {variant_name(v): [] for v in settings.variants}
    common = {"batch_size": settings.batch_size, "gradient_accumulation_steps": 1, "logging_steps": 50,
              "cache": train_cache}  # fmt: skip
    for seed in range(settings.seeds):
        torch.manual_seed(seed)
        model, processor = _model(settings, PATHS)
        align = _stage("align", dict.fromkeys(SINGLE_FRAME_MODULES, settings.learning_rate), False)
        progress.report(f"seed {seed}: align ({settings.align_steps} steps, TFF off)")
        folder = out / f"runs/seed{seed}/align"
        train(model, processor, align, records, TrainSettings(folder, settings.align_steps, seed=seed, **common))
        aligned = {k: v for k, v in model.state_dict().items() if not k.startswith("temporal_fusion.")}
        progress.step(f"seed {seed}: aligned")
        for paths in settings.variants:
            name = variant_name(paths)
            torch.manual_seed(seed)  # the same fresh TFF weights for a variant whatever ran before it
            model, processor = _model(settings, paths)
            missing, unexpected = model.load_state_dict(aligned, strict=False)
            if unexpected or any(not key.startswith("temporal_fusion.") for key in missing):
                raise RuntimeError(f"aligned weights do not fit variant {name}: {missing} {unexpected}")
            rates = dict.fromkeys(SINGLE_FRAME_MODULES, settings.learning_rate)
            if paths:
                rates["temporal_fusion"] = settings.fusion_learning_rate
            stage = _stage("temporal", rates, bool(paths))
            progress.report(f"seed {seed}: {name} ({settings.temporal_steps} steps)")
            folder = out / f"runs/seed{seed}/{name.replace(' ', '_')}"
            train(model, processor, stage, records, TrainSettings(folder, settings.temporal_steps, seed=seed, **common))
            result = evaluate(model, processor, test, probe, cache=eval_cache)
            scores[name].append({task: value["accuracy"] for task, value in result.items()})
            progress.step(f"seed {seed}: {name}: {result['all']['accuracy']:.2f} on {result['all']['count']} clips")
    return {variant_name(v): {"paths": list(v), **_summarise(scores[variant_name(v)])} for v in settings.variants}


def _summarise(runs: list[dict[str, float]]) -> dict:
    tasks = [t for t in TASKS if t in runs[0]]
    for run in runs:
        run["temporal mean"] = statistics.fmean(run[t] for t in tasks if t in TEMPORAL_TASKS)
    keys = [*tasks, "temporal mean"]
    return {
        "seeds": runs,
        "mean": {k: statistics.fmean(run[k] for run in runs) for k in keys},
        "spread": {k: statistics.pstdev([run[k] for run in runs]) for k in keys},
    }


def _run_reading(settings: DemoSettings, out: Path, progress: _Progress) -> dict[str, dict]:
    folder = out / "reading"
    results = {}
    for strategy in settings.strategies:
        torch.manual_seed(0)
        model, processor = _model(settings, PATHS)
        stage = _stage("reading", dict.fromkeys(SINGLE_FRAME_MODULES, settings.learning_rate), False)
        records = load_records(folder / f"{strategy}_train.jsonl")
        test = load_annotations(folder / f"{strategy}_test.jsonl")
        progress.report(f"reading: {strategy} ({settings.reading_steps} steps)")
        run = TrainSettings(out / f"runs/reading/{strategy}", settings.reading_steps, batch_size=settings.batch_size,
                            gradient_accumulation_steps=1, logging_steps=50, cache={})  # fmt: skip
        train(model, processor, stage, records, run)
        accuracy = evaluate(model, processor, test, folder)["all"]["accuracy"]
        sample = processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image", "image": str(folder / p)} for p in test[0]["image"]]}],
            tokenize=True, return_dict=True,
        )  # fmt: skip
        tokens = sum(token == model.config.image_token_id for token in sample["input_ids"][0])
        results[strategy] = {"accuracy": accuracy, "visual_tokens": int(tokens), "views": len(test[0]["image"])}
        progress.step(f"reading: {strategy}: {accuracy:.2f} with {tokens} visual tokens")
    return results


def run_demo(
    out: str | Path, settings: DemoSettings = DemoSettings(), report: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run the whole demo into ``out``; returns the results (also written as ``results.json``)."""
    from tempflex.probe.report import format_report, plot_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report(f"writing the probe ({settings.per_task} clips per task) and the reading images to {out}")
    generate_probe(out / "probe", per_task=settings.per_task)
    generate_reading(out / "reading", train=settings.reading_train, test=settings.reading_test)
    runs = settings.seeds * (1 + len(settings.variants)) + len(settings.strategies)
    progress = _Progress(runs, report)
    temporal = _run_temporal(settings, out, progress)
    reading = _run_reading(settings, out, progress)
    results = {
        "settings": {**asdict(settings), "variants": [variant_name(v) for v in settings.variants]},
        "temporal": temporal,
        "reading": reading,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "wall_seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),  # KiB on Linux
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))
    markdown = format_report(results)
    (out / "results.md").write_text(markdown)
    plot_report(results, out / "accuracy.png")
    report(markdown)
    report(f"wrote {out / 'results.md'}, {out / 'results.json'} and {out / 'accuracy.png'}")
    return results


def settings_from(quick: bool, **overrides: Any) -> DemoSettings:
    """The default or ``--quick`` settings with the given fields replaced (``None`` values are ignored)."""
    base = QUICK if quick else DemoSettings()
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})
