"""The demo's tables (markdown) and bar chart (PNG) from its results dict (``demo.run_demo``).

``format_report(results)`` gives the Table-4-style ablation (mean ± the 95% interval's half-width over seeds,
a chance row), a call per temporal task, the training losses' trend, and the encoding-strategy table;
``plot_report(results, path)`` draws both.

The call (``intervals.call``): full TFF is *ahead* of (*behind*) no TFF on a task when its 95% interval lies
wholly above (below) no TFF's; overlapping intervals are a *tie* when both half-widths are at most 0.08, and
*undecided* when wider (the seeds disagree too much to tell). With one seed there is no interval, and the line
says so instead of calling a difference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tempflex.fusion import PATHS
from tempflex.probe.intervals import DECISIVE_HALF_WIDTH, call
from tempflex.probe.tasks import TASKS, TEMPORAL_TASKS, make_sample

__all__ = ["chance", "format_report", "plot_report", "verdicts"]


def chance(task: str) -> float:
    """Accuracy of a uniform guess among the task's options."""
    return 1 / len(make_sample(task, 0).options)


def _half(summary: dict, task: str) -> float:
    low, high = summary["interval"][task]
    return (high - low) / 2


def _cell(summary: dict, task: str) -> str:
    mean = summary["mean"][task]
    return f"{mean:.2f} ± {_half(summary, task):.2f}" if "interval" in summary else f"{mean:.2f}"


def verdicts(results: dict[str, Any]) -> dict[str, str]:
    """Per temporal task: full TFF against no TFF, ahead / behind / tied / undecided by their 95% intervals."""
    temporal = results["temporal"]
    if "full TFF" not in temporal or "no TFF" not in temporal:
        return {}
    full, none = temporal["full TFF"], temporal["no TFF"]
    lines = {}
    for task in [t for t in [*TEMPORAL_TASKS, "temporal mean"] if t in full["mean"]]:
        difference = full["mean"][task] - none["mean"][task]
        if "interval" not in full:
            lines[task] = f"{difference:+.2f} (one seed: no interval to judge it by)"
            continue
        verdict = call(full["interval"][task], none["interval"][task])
        lines[task] = f"{verdict}, {difference:+.2f} (half-widths {_half(full, task):.2f} and {_half(none, task):.2f})"
    return lines


def format_report(results: dict[str, Any]) -> str:
    """The demo's markdown: the ablation table, the verdicts and the encoding-strategy table."""
    settings = results["settings"]
    temporal = results["temporal"]
    tasks = [t for t in TASKS if t in next(iter(temporal.values()))["mean"]]
    temporal_columns = [t for t in tasks if t in TEMPORAL_TASKS]
    columns = [*temporal_columns, "temporal mean", *[t for t in tasks if t not in TEMPORAL_TASKS]]
    seeds = settings["seeds"]
    pooled = settings["frames_to_llm"]
    lines = [
        "## Temporal probe: held-out accuracy per task"
        + (f" (mean ± 95% half-width over {seeds} seeds)" if seeds > 1 else " (one seed)"),
        "",
        f"Seeds {settings['seed_offset']}-{settings['seed_offset'] + seeds - 1}; 16-frame clips, pooled to "
        f"{pooled if pooled is not None else 'all'} frame(s) before the LM; `align` {settings['align_steps']} steps "
        f"(TFF off), then {settings['temporal_steps']} steps per variant on the frozen tower (TFF, merger, LM); "
        f"batch {settings['batch_size']}, lr {settings['learning_rate']} (TFF {settings['fusion_learning_rate']}); "
        f"{results['temporal_test_clips']} held-out clips per task.",
        "",
        "| Local | Memory | Periodic | " + " | ".join(columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    for summary in temporal.values():
        marks = " | ".join("✓" if fiber in summary["paths"] else "" for fiber in PATHS)
        cells = [_cell(summary, c) for c in columns]
        lines.append(f"| {marks} | " + " | ".join(cells) + " |")
    mean_chance = sum(chance(t) for t in temporal_columns) / len(temporal_columns)
    chance_cells = [f"{chance(c):.2f}" if c in TASKS else f"{mean_chance:.2f}" for c in columns]
    lines.append("| chance | | | " + " | ".join(chance_cells) + " |")
    judged = verdicts(results)
    if judged:
        lines += ["", f"Full TFF against no TFF (tied: intervals overlap, half-widths <= {DECISIVE_HALF_WIDTH}):", ""]
        lines += [f"- {task}: {text}" for task, text in judged.items()]
    lines += ["", "Training loss, mean over seeds of the last quarter of logged steps (change from the quarter "
              "before): " + "; ".join(f"{name} {s['loss']['final']:.3f} ({s['loss']['change']:+.1%})"
                                      for name, s in [("align", {"loss": results["align_loss"]}), *temporal.items()])
              + "."]  # fmt: skip
    reading = results.get("reading") or {}
    if reading:
        lines += [
            "",
            "## Reading a small digit in a 256x256 image: encoding strategies (one seed)",
            "",
            f"{settings['reading_steps']} steps each; glyphs {5 * settings['reading_scale']}x"
            f"{7 * settings['reading_scale']} px; {settings['reading_test']} held-out images.",
            "",
            "| Strategy | Views encoded | Visual tokens | Accuracy | Final loss |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {strategy} | {row['views']} | {row['visual_tokens']} | {row['accuracy']:.2f} | "
            f"{row['loss']['final']:.3f} |"
            for strategy, row in reading.items()
        ]
        lines.append("| chance | | | 0.25 | |")
    machine = results["machine"]
    lines += ["", f"Wall time {results['wall_seconds']:.0f} s on {machine['workers']} worker process(es) x "
              f"{machine['torch_threads_per_worker']} thread(s); peak RSS at most {results['peak_rss_mb']} MB "
              "(the main process and each worker at its own peak)."]  # fmt: skip
    return "\n".join(lines) + "\n"


def plot_report(results: dict[str, Any], path: str | Path) -> Path:
    """Bar charts: accuracy per task and variant (error bars: 95% intervals), and per encoding strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    temporal = results["temporal"]
    tasks = [t for t in TASKS if t in next(iter(temporal.values()))["mean"]]
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 4.5), gridspec_kw={"width_ratios": [4, 1]})
    width = 0.8 / len(temporal)
    for index, (name, summary) in enumerate(temporal.items()):
        positions = [i + (index - (len(temporal) - 1) / 2) * width for i in range(len(tasks))]
        errors = [_half(summary, t) for t in tasks] if "interval" in summary else None
        left.bar(positions, [summary["mean"][t] for t in tasks], width, yerr=errors, label=name, capsize=2)
    left.scatter(range(len(tasks)), [chance(t) for t in tasks], marker="_", s=400, color="black", label="chance")
    left.set_xticks(range(len(tasks)), [t.replace("_", "\n") for t in tasks], fontsize=8)
    left.set_ylim(0, 1.05)
    left.set_ylabel("held-out accuracy")
    left.set_title("Temporal probe: TFF ablation")
    left.legend(fontsize=7, ncol=3)
    reading = results.get("reading") or {}
    names = list(reading)
    right.bar(names, [reading[n]["accuracy"] for n in names], color="tab:gray")
    for i, n in enumerate(names):
        right.text(i, reading[n]["accuracy"] + 0.02, f"{reading[n]['visual_tokens']} tok", ha="center", fontsize=8)
    right.axhline(0.25, color="black", linewidth=1)
    right.set_ylim(0, 1.05)
    right.set_title("Digit reading")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
