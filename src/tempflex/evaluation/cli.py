"""``tempflex eval``: parsed arguments -> model, processor -> ``run_benchmark``.

Command::

    tempflex eval --model tiny --benchmark probe --data probe --output eval/probe --limit 8

prints the overall score and the paths of ``results.json`` / ``results.md``; see ``runner`` for the files.
"""

from __future__ import annotations

import argparse
import shlex

__all__ = ["add_eval_arguments", "run_eval_command"]


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``tempflex eval`` options."""
    from tempflex.evaluation.benchmarks import BENCHMARKS
    from tempflex.model_arguments import add_model_arguments

    parser.add_argument("--model", required=True, help="a preset (tiny) or a saved TempFlex folder")
    parser.add_argument("--benchmark", required=True, choices=sorted(BENCHMARKS), help="which benchmark")
    parser.add_argument("--data", required=True, help="the benchmark's downloaded files (see its layout)")
    parser.add_argument("--output", required=True, help="folder for predictions.jsonl, results.json/.md")
    parser.add_argument("--frames", type=int, help="frames per video (default: the paper's 128)")
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--max-new-tokens", type=int, help="reply length (default 16; 32 for open answers)")
    parser.add_argument(
        "--rule", choices=("generate", "logits"), default="generate",
        help="multiple choice: extract the letter from a greedy reply, or (probe) the highest letter logit",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seeds a preset's random initialisation")
    add_model_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _command(args: argparse.Namespace) -> str:
    parts = ["tempflex", "eval", "--model", args.model, "--benchmark", args.benchmark, "--data", args.data]
    parts += ["--output", args.output, "--rule", args.rule, "--seed", str(args.seed)]
    for flag, value in (("--frames", args.frames), ("--limit", args.limit), ("--max-new-tokens", args.max_new_tokens)):
        if value is not None:
            parts += [flag, str(value)]
    return shlex.join(parts)


def run_eval_command(args: argparse.Namespace) -> int:
    """Run ``tempflex eval`` from parsed arguments; returns the exit code."""
    from transformers import set_seed

    from tempflex.evaluation.runner import run_benchmark
    from tempflex.loading import load_from_args

    set_seed(args.seed)
    model, processor = load_from_args(args)
    results = run_benchmark(
        model, processor, args.benchmark, args.data, args.output, frames=args.frames, limit=args.limit,
        max_new_tokens=args.max_new_tokens, rule=args.rule, command=_command(args), seed=args.seed,
        progress=not args.no_progress,
    )  # fmt: skip
    metrics = results["metrics"]
    print(f"{args.benchmark}: {metrics['overall']:.2f} over {metrics['count']} questions "
          f"({len(results['failures'])} failed); wrote {args.output}/results.json and results.md")  # fmt: skip
    return 0
