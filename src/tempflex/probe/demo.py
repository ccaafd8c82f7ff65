"""``tempflex demo``: a tiny TempFlex learns the probe on a CPU, with the paper's ablations in miniature.

Command::

    tempflex demo --out demo                   # ~7 min on 2 CPU cores; demo/results.{md,json}, demo/accuracy.png
    tempflex demo --out demo --seed-offset 3   # the same with seeds 3-5: do the calls hold?
    tempflex demo --out demo --quick           # ~30 s smoke run (too few steps to learn; checks the plumbing)

What it does:

1. writes the temporal probe (``probe.dataset``; 300 clips per task, 168 of them held out) and the digit-reading
   images (``probe.reading``) under ``OUT``;
2. for each seed (3 by default), trains the ``tiny`` preset through two stages adapted to a CPU: ``align`` (TFF
   off; vision tower, merger and LM learn the probe, as the paper's stages 1-2 build a single-frame model), then,
   from those weights, ``temporal`` once per Table-4 variant (no TFF, each fiber removed, full TFF) for the same
   number of steps. As in the paper's stage 3 the vision tower is frozen there and TFF starts as the identity;
   the merger and the LM keep learning (with the LM frozen too, no task moved in 600 steps: measured). The
   frozen tower encodes each frame once per seed (``--cache-vision-features``, shared by the five variants);
3. scores the five variants of a seed in one pass over the held-out clips (each decoded once);
4. trains one model per image encoding strategy (native / fixed / tiled) on the reading task;
5. prints and writes the tables (markdown, JSON) and a bar chart (PNG).

The units run in ``workers`` processes side by side (2, one torch thread each: on 2 cores, two 1-thread
processes train 1.6x as many steps per second as one 2-thread process, measured), longest first.

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

The tables give the mean and the 95% t interval over seeds (``probe.intervals``) and call full TFF against no TFF
per task: ahead / behind when the intervals are apart, tied when they overlap and are both narrow (half-width
<= 0.08), undecided otherwise. They never round a tie into a win. What the default run found, and what it could
not decide, is in ``benchmarks/README.md`` ("tempflex demo").
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import queue
import resource
import statistics
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tempflex.fusion import PATHS
from tempflex.probe.intervals import interval
from tempflex.probe.reading import STRATEGIES
from tempflex.probe.tasks import TASKS, TEMPORAL_TASKS

__all__ = ["QUICK", "VARIANTS", "DemoSettings", "run_demo", "settings_from", "variant_name"]

VARIANTS: tuple[tuple[str, ...], ...] = (
    (),
    ("local", "memory"),
    ("local", "periodic"),
    ("memory", "periodic"),
    PATHS,
)
"""The rows of the paper's Table 4: no TFF, each single fiber removed, full TFF."""


def variant_name(paths: tuple[str, ...]) -> str:
    """``"no TFF"``, ``"full TFF"`` or the kept fibers joined by ``+``."""
    if not paths:
        return "no TFF"
    return "full TFF" if tuple(paths) == PATHS else "+".join(paths)


@dataclass(frozen=True)
class DemoSettings:
    """Every knob of the demo; the defaults are the full run (about 10 minutes on 2 CPU cores)."""

    seeds: int = 3
    seed_offset: int = 0  # seeds seed_offset .. seed_offset + seeds - 1 (a second set checks the calls' stability)
    per_task: int = 300  # probe clips per task
    test_fraction: float = 0.56  # 168 held out, 132 train: multiples of 12, so every answer is equally common
    align_steps: int = 150
    temporal_steps: int = 300
    frames_to_llm: int | None = 2  # both stages pool 16 frames to 2 before the LM
    reading_steps: int = 400
    reading_train: int = 800
    reading_test: int = 200
    reading_scale: int = 2  # glyph pixels per font pixel (5x7 font)
    reading_copies: tuple[int, int] = (1, 1)
    batch_size: int = 16
    learning_rate: float = 1e-3
    fusion_learning_rate: float = 3e-3  # TFF learns faster than the rest, as in the paper's stage 3
    variants: tuple[tuple[str, ...], ...] = VARIANTS
    strategies: tuple[str, ...] = STRATEGIES
    workers: int = 2  # processes side by side, each with cores // workers torch threads

    def seed_list(self) -> list[int]:
        """The training seeds of this run."""
        return list(range(self.seed_offset, self.seed_offset + self.seeds))

    def threads_per_worker(self) -> int:
        """Torch threads of each worker process: the machine's cores split between the workers."""
        return max(1, (os.cpu_count() or 1) // self.workers)


QUICK = DemoSettings(
    seeds=2, per_task=9, align_steps=4, temporal_steps=4, reading_steps=4, reading_train=16, reading_test=8,
    batch_size=4, variants=((), PATHS),
)  # fmt: skip
"""``--quick``: every step of the demo at toy sizes (too few steps to learn anything; checks the plumbing)."""


def peak_rss_mb() -> int:
    """This process's peak resident set size so far, in MB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB on Linux


def _write_probe(settings: DemoSettings, out: Path) -> dict[str, int]:
    from tempflex.probe.dataset import generate_probe

    return generate_probe(out / "probe", per_task=settings.per_task, test_fraction=settings.test_fraction)


def _write_reading(settings: DemoSettings, out: Path) -> dict[str, int]:
    from tempflex.probe.reading import generate_reading

    return generate_reading(out / "reading", train=settings.reading_train, test=settings.reading_test,
                            scale=settings.reading_scale, copies=settings.reading_copies)  # fmt: skip


def _loss_trend(runs: list[list[float]]) -> dict[str, float]:
    """Mean over seeds of the last quarter's mean logged loss, and its change from the quarter before."""
    last, before = [], []
    for losses in runs:
        quarter = max(1, len(losses) // 4)
        last.append(statistics.fmean(losses[-quarter:]))
        before.append(statistics.fmean(losses[-2 * quarter : -quarter] or losses[-quarter:]))
    final, previous = statistics.fmean(last), statistics.fmean(before)
    return {"final": final, "change": (final - previous) / previous if previous else 0.0}


def _summarise(runs: list[dict[str, float]], losses: list[list[float]]) -> dict:
    tasks = [t for t in TASKS if t in runs[0]]
    for run in runs:
        run["temporal mean"] = statistics.fmean(run[t] for t in tasks if t in TEMPORAL_TASKS)
    keys = [*tasks, "temporal mean"]
    summary = {
        "seeds": runs,
        "mean": {k: statistics.fmean(run[k] for run in runs) for k in keys},
        "loss": _loss_trend(losses),
    }
    if len(runs) > 1:
        summary["interval"] = {k: list(interval([run[k] for run in runs])) for k in keys}
    return summary


def _run_units(settings: DemoSettings, out: Path, report: Callable[[str], None]) -> dict[str, list[dict]]:
    """Every unit of work over ``settings.workers`` processes, each started once what it reads exists.

    Writing the probe and writing the reading images run first, side by side; each seed's training starts once
    the probe is written, its scoring once its training is done; the reading runs queue behind the seeds' training
    (the longest units first, so that no worker is left with a whole seed at the end).
    """
    from tempflex.probe import demo_units

    context = multiprocessing.get_context("spawn")  # no fork of a process with torch's thread pools
    threads = settings.threads_per_worker()
    done: dict[str, list[dict]] = {"probe": [], "train": [], "score": [], "reading": []}
    with context.Manager() as manager:
        messages = manager.Queue()
        with ProcessPoolExecutor(settings.workers, mp_context=context, initializer=demo_units.init_worker,
                                 initargs=(threads,)) as pool:  # fmt: skip
            report(f"{settings.workers} worker processes x {threads} torch thread(s)")
            kinds: dict[Future, str] = {
                pool.submit(_write_probe, settings, out): "probe",
                pool.submit(_write_reading, settings, out): "reading images",
            }
            waiting_reading = probe_written = False
            while kinds:
                finished, _ = wait(list(kinds), timeout=0.5, return_when=FIRST_COMPLETED)
                _drain(messages, report)
                for future in finished:
                    kind, result = kinds.pop(future), future.result()  # a failed unit stops the demo with its error
                    if kind == "probe":
                        done["probe"].append(result)
                        report(f"probe written: {result['train']} training and {result['test']} held-out clips")
                        for seed in settings.seed_list():
                            kinds[pool.submit(demo_units.train_seed, settings, out, seed, messages)] = "train"
                        probe_written = True
                    elif kind == "reading images":
                        waiting_reading = True
                    else:
                        done[kind].append(result)
                        if kind == "train":
                            kinds[pool.submit(demo_units.score_seed, settings, out, result["seed"], messages)] = "score"
                if waiting_reading and probe_written:  # queued behind the seeds: the longest units start first
                    waiting_reading = False
                    for strategy in settings.strategies:
                        kinds[pool.submit(demo_units.train_reading, settings, out, strategy, messages)] = "reading"
        _drain(messages, report)
    return done


def _drain(messages: Any, report: Callable[[str], None]) -> None:
    while True:
        try:
            report(messages.get_nowait())
        except queue.Empty:
            return


def run_demo(
    out: str | Path, settings: DemoSettings = DemoSettings(), report: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run the whole demo into ``out``; returns the results (also written as ``results.json``)."""
    from tempflex.probe.report import format_report, plot_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report(f"writing the probe ({settings.per_task} clips per task) and the reading images to {out}")
    done = _run_units(settings, out, report)
    trained = {unit["seed"]: unit for unit in done["train"]}
    scored = sorted(done["score"], key=lambda unit: unit["seed"])
    temporal = {}
    for paths in settings.variants:
        name = variant_name(paths)
        runs = [unit["scores"][name] for unit in scored]
        losses = [trained[unit["seed"]]["losses"][name] for unit in scored]
        temporal[name] = {"paths": list(paths), **_summarise(runs, losses)}
    reading = sorted(done["reading"], key=lambda unit: settings.strategies.index(unit["strategy"]))
    workers: dict[int, int] = {}
    for unit in [*done["train"], *done["score"], *reading]:  # each worker process's own peak
        workers[unit["pid"]] = max(workers.get(unit["pid"], 0), unit["peak_rss_mb"])
    results = {
        "settings": {**asdict(settings), "variants": [variant_name(v) for v in settings.variants]},
        "temporal": temporal,
        "temporal_test_clips": done["probe"][0]["test"] // len(TASKS),
        "align_loss": _loss_trend([unit["losses"]["align"] for unit in trained.values()]),
        "reading": {
            unit["strategy"]: {
                "accuracy": unit["accuracy"],
                "visual_tokens": unit["visual_tokens"],
                "views": unit["views"],
                "loss": _loss_trend([unit["losses"]]),
            }
            for unit in reading
        },
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "workers": settings.workers,
            "torch_threads_per_worker": settings.threads_per_worker(),
        },
        "seconds": {
            f"seed {unit['seed']} {kind}": unit["seconds"] for kind in ("train", "score") for unit in done[kind]
        },
        "wall_seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": peak_rss_mb() + sum(workers.values()),  # an upper bound: every process at its own peak
        "worker_peak_rss_mb": sorted(workers.values()),
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
