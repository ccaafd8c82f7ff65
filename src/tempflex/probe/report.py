"""The demo's tables (markdown) and bar chart (PNG) from its results dict (``demo.run_demo``).

``format_report(results)`` gives the Table-4-style ablation (mean ± spread over seeds, a chance row), a
verdict per temporal task, and the encoding-strategy table; ``plot_report(results, path)`` draws both.

The verdict rule: full TFF is *ahead* of no TFF on a task when its mean accuracy is higher by more than the
sum of the two variants' spreads (population standard deviations over seeds); with one seed there is no
spread, and the verdict says so instead of calling a difference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tempflex.fusion import PATHS
from tempflex.probe.tasks import TASKS, TEMPORAL_TASKS, make_sample

__all__ = ["chance", "format_report", "plot_report", "verdicts"]


def chance(task: str) -> float:
    """Accuracy of a uniform guess among the task's options."""
    return 1 / len(make_sample(task, 0).options)


def _cell(mean: float, spread: float, seeds: int) -> str:
    return f"{mean:.2f} ± {spread:.2f}" if seeds > 1 else f"{mean:.2f}"


def verdicts(results: dict[str, Any]) -> dict[str, str]:
    """Per temporal task: whether full TFF is ahead of no TFF by more than the seeds' spread."""
    temporal = results["temporal"]
    if "full TFF" not in temporal or "no TFF" not in temporal:
        return {}
    full, none = temporal["full TFF"], temporal["no TFF"]
    seeds = len(full["seeds"])
    lines = {}
    for task in [t for t in [*TEMPORAL_TASKS, "temporal mean"] if t in full["mean"]]:
        difference = full["mean"][task] - none["mean"][task]
        margin = full["spread"][task] + none["spread"][task]
        if seeds < 2:
            lines[task] = f"{difference:+.2f} (one seed: no spread to judge it by)"
        elif difference > margin:
            lines[task] = f"{difference:+.2f}, ahead (spreads sum to {margin:.2f})"
        else:
            lines[task] = f"{difference:+.2f}, not ahead (within the spreads' sum {margin:.2f})"
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
        + (f" (mean ± spread over {seeds} seeds)" if seeds > 1 else " (one seed)"),
        "",
        f"16-frame clips, pooled to {pooled if pooled is not None else 'all'} frame(s) before the LM; "
        f"`align` {settings['align_steps']} steps (TFF off), then {settings['temporal_steps']} steps per variant; "
        f"batch {settings['batch_size']}, lr {settings['learning_rate']}.",
        "",
        "| Local | Memory | Periodic | " + " | ".join(columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    for summary in temporal.values():
        marks = " | ".join("✓" if fiber in summary["paths"] else "" for fiber in PATHS)
        cells = [_cell(summary["mean"][c], summary["spread"][c], seeds) for c in columns]
        lines.append(f"| {marks} | " + " | ".join(cells) + " |")
    mean_chance = sum(chance(t) for t in temporal_columns) / len(temporal_columns)
    chance_cells = [f"{chance(c):.2f}" if c in TASKS else f"{mean_chance:.2f}" for c in columns]
    lines.append("| chance | | | " + " | ".join(chance_cells) + " |")
    judged = verdicts(results)
    if judged:
        lines += ["", "Full TFF minus no TFF:", ""]
        lines += [f"- {task}: {text}" for task, text in judged.items()]
    reading = results.get("reading") or {}
    if reading:
        lines += [
            "",
            "## Reading a small digit in a 256x256 image: encoding strategies (one seed)",
            "",
            "| Strategy | Views encoded | Visual tokens | Accuracy |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {strategy} | {row['views']} | {row['visual_tokens']} | {row['accuracy']:.2f} |"
            for strategy, row in reading.items()
        ]
        lines.append("| chance | | | 0.25 |")
    lines += ["", f"Wall time {results['wall_seconds']:.0f} s, peak RSS {results['peak_rss_mb']} MB."]
    return "\n".join(lines) + "\n"


def plot_report(results: dict[str, Any], path: str | Path) -> Path:
    """Bar charts: accuracy per task and variant (error bars = spread), and per encoding strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    temporal = results["temporal"]
    tasks = [t for t in TASKS if t in next(iter(temporal.values()))["mean"]]
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 4.5), gridspec_kw={"width_ratios": [4, 1]})
    width = 0.8 / len(temporal)
    for index, (name, summary) in enumerate(temporal.items()):
        positions = [i + (index - (len(temporal) - 1) / 2) * width for i in range(len(tasks))]
        left.bar(positions, [summary["mean"][t] for t in tasks], width, yerr=[summary["spread"][t] for t in tasks],
                 label=name, capsize=2)  # fmt: skip
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
