"""``tempflex plot-loss RUN_DIR``: the loss curve of a run (``RUN_DIR/loss.jsonl``) as a PNG.

Writes ``RUN_DIR/loss.png`` (or ``--out PATH``): training loss against the optimiser step, and the learning
rate of the first parameter group on a second axis. Needs matplotlib (the ``plot`` extra).
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["plot_loss"]


def plot_loss(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draw ``run_dir/loss.jsonl`` into a PNG; returns its path."""
    run_dir = Path(run_dir)
    log = run_dir / "loss.jsonl"
    if not log.is_file():
        raise ValueError(f"{run_dir} has no loss.jsonl: is it the --output of tempflex train?")
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    points = sorted({row["step"]: row for row in rows if "loss" in row}.items())
    if not points:
        raise ValueError(f"{log} holds no loss values yet")
    try:  # a Figure without pyplot: no global backend switch (safe in notebooks)
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'tempflex[plot]'") from error
    steps = [step for step, _ in points]
    figure = Figure(figsize=(7, 4))
    axes = figure.subplots()
    axes.plot(steps, [row["loss"] for _, row in points], label="training loss", color="tab:blue")
    axes.set_xlabel("optimiser step")
    axes.set_ylabel("loss")
    axes.grid(alpha=0.3)
    if all("learning_rate" in row for _, row in points):
        rate_axes = axes.twinx()
        rate_axes.plot(steps, [row["learning_rate"] for _, row in points], color="tab:orange", alpha=0.6)
        rate_axes.set_ylabel("learning rate (first group)", color="tab:orange")
    axes.set_title(f"{run_dir.name}: {len(points)} logged steps")
    figure.tight_layout()
    path = Path(out) if out else run_dir / "loss.png"
    figure.savefig(path, dpi=110)
    return path
