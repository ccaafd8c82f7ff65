"""Trainer callbacks of a run: the loss log, checkpoint completion markers, an interruption for resume tests.

``LossLog`` writes ``OUTPUT/loss.jsonl``: one line per logged step with the Trainer's loss and grad norm, the
learning rate of every parameter group (``lr/vision_tower``, ``lr/merger``, ...: a stage trains its modules at
different rates), and ``tokens_per_second`` (non-padding input tokens over all processes since the previous line,
per second of wall time), e.g.::

    {"step": 2, "loss": 6.27, "grad_norm": 5.5, "lr/merger": 2e-06, "lr/language_model": 2e-06,
     "num_input_tokens_seen": 412, "tokens_per_second": 810.3, ...}
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

__all__ = ["COMPLETE_MARKER", "LossLog", "MarkComplete", "StopAfter", "latest_checkpoint"]

COMPLETE_MARKER = "COMPLETE"


class LossLog(TrainerCallback):
    """Appends every log line of the Trainer (step, loss, each group's learning rate, tokens/s) to a JSONL file.

    A resumed run starts again from its checkpoint's step: the lines an interrupted run wrote after that step are
    dropped when training begins, so every step appears once and the file reads as the uninterrupted run's.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._last: tuple[float, int] | None = None  # (time, tokens seen) at the previous line

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._last = (time.perf_counter(), state.num_input_tokens_seen)
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

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict | None = None, optimizer: Any = None, **kwargs: Any
    ) -> None:
        if not logs or not state.is_world_process_zero:
            return
        line = {"step": state.global_step, **logs}
        if "loss" in logs and optimizer is not None:  # a training line (not the closing summary)
            for index, group in enumerate(optimizer.param_groups):
                line[f"lr/{group.get('name', index)}"] = group["lr"]
        now, tokens = time.perf_counter(), state.num_input_tokens_seen
        if "loss" in logs and self._last is not None and now > self._last[0]:
            line["tokens_per_second"] = round((tokens - self._last[1]) / (now - self._last[0]), 1)
        self._last = (now, tokens)
        with self.path.open("a") as log:
            log.write(json.dumps(line) + "\n")


class MarkComplete(TrainerCallback):
    """Writes ``COMPLETE`` into a checkpoint folder once the Trainer has finished writing it.

    transformers writes ``checkpoint-N`` in place; a run killed mid-write leaves a partial folder. Resuming only
    from marked folders makes checkpoints atomic in effect: a partial one is never read.
    """

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and folder.is_dir():
            (folder / COMPLETE_MARKER).write_text("")


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
