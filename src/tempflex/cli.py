"""The ``tempflex`` command: thin argument parsing over library calls.

Commands:
    tempflex tokens --height 720 --width 1280   # three encoding strategies side by side
    tempflex tokens --plot tokens.png           # the paper's Figure 3 (right): tokens vs resolution
    tempflex train --stage 3 --model tiny --data train.jsonl --output runs/s3 --grad-accum 1
                                                # one stage of the recipe (torchrun -m tempflex.train ... too)
    tempflex plot-loss runs/s3                  # runs/s3/loss.png
    tempflex probe generate --out probe         # the temporal probe: mp4 clips + train/test JSONL
    tempflex demo --out demo [--quick]          # train a tiny TempFlex on the probe; TFF ablation tables
    tempflex synth run --videos clips/ --store synth.db --model gpt-4o   # caption + VQA data (synth.cli)
    tempflex eval --model runs/s4 --benchmark videomme --data Video-MME --output eval/videomme
                                                # one benchmark: resumable predictions, results.json/.md
    tempflex chat --model tiny --image cat.png "What is it?"   # a streamed answer; no question: interactive
    tempflex serve --model tiny --port 8000     # OpenAI-compatible API and a web chat page at /
    tempflex convert-gguf FILE.gguf --out llm   # a GGUF LLM -> a safetensors folder
    tempflex assemble --vision SIGLIP2 --llm LLM --out model   # released checkpoints -> a TempFlex folder
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _tokens(args: argparse.Namespace) -> int:
    from tempflex.token_report import format_token_table, plot_token_curves

    if args.plot is None and (args.height is None or args.width is None):
        print("tempflex tokens: give --height and --width, or --plot PATH", file=sys.stderr)
        return 2
    if args.height is not None and args.width is not None:
        print(format_token_table(args.height, args.width, max_tokens=args.max_tokens))
    if args.plot is not None:
        path = plot_token_curves(args.plot, max_tokens=args.max_tokens)
        print(f"wrote {path}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from tempflex.train.cli import run_training

    return run_training(args)


def _plot_loss(args: argparse.Namespace) -> int:
    from tempflex.train.plot import plot_loss

    print(f"wrote {plot_loss(args.run_dir, args.out)}")
    return 0


def _probe_generate(args: argparse.Namespace) -> int:
    from tempflex.probe.dataset import generate_probe

    counts = generate_probe(args.out, per_task=args.per_task, frames=args.frames, size=args.size)
    print(f"wrote {counts['train']} train and {counts['test']} test clips to {args.out}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from tempflex.probe.demo import run_demo, settings_from

    settings = settings_from(
        args.quick, seeds=args.seeds, seed_offset=args.seed_offset, temporal_steps=args.steps,
        align_steps=args.align_steps, reading_steps=args.reading_steps, per_task=args.per_task, workers=args.workers,
    )  # fmt: skip
    if args.frames_to_llm is not None:  # 0: every frame reaches the LM
        settings = replace(settings, frames_to_llm=args.frames_to_llm or None)
    run_demo(args.out, settings)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from tempflex.evaluation.cli import run_eval_command

    return run_eval_command(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tempflex`` command."""
    parser = argparse.ArgumentParser(prog="tempflex", description="TempFlex-VL toolkit")
    commands = parser.add_subparsers(dest="command", required=True)
    tokens = commands.add_parser("tokens", help="visual token counts of the encoding strategies")
    tokens.add_argument("--height", type=int, help="image height in pixels")
    tokens.add_argument("--width", type=int, help="image width in pixels")
    tokens.add_argument("--max-tokens", type=int, default=2048, help="TempFlex's LLM-token cap per image")
    tokens.add_argument("--plot", metavar="PATH", help="write the tokens-vs-resolution figure (PNG) here")
    tokens.set_defaults(run=_tokens)
    train = commands.add_parser("train", help="train one stage of the four-stage recipe")
    from tempflex.train.cli import add_train_arguments  # argparse only: the train extra loads per command

    add_train_arguments(train)
    train.set_defaults(run=_train)
    plot = commands.add_parser("plot-loss", help="draw a training run's loss curve (PNG)")
    plot.add_argument("run_dir", help="the --output folder of tempflex train")
    plot.add_argument("--out", help="PNG path (default RUN_DIR/loss.png)")
    plot.set_defaults(run=_plot_loss)
    probe = commands.add_parser("probe", help="the built-in temporal probe")
    probe_commands = probe.add_subparsers(dest="probe_command", required=True)
    generate = probe_commands.add_parser("generate", help="write the probe's clips and train/test annotations")
    generate.add_argument("--out", required=True, help="output folder")
    generate.add_argument("--per-task", type=int, default=200, help="clips per task (a quarter go to test)")
    generate.add_argument("--frames", type=int, default=16, help="frames per clip (at least 12)")
    generate.add_argument("--size", type=int, default=64, help="frame side in pixels (a multiple of 8)")
    generate.set_defaults(run=_probe_generate)
    demo = commands.add_parser("demo", help="train a tiny TempFlex on the probe on this CPU: TFF ablation tables")
    demo.add_argument("--out", default="tempflex-demo", help="output folder (default: tempflex-demo)")
    demo.add_argument("--quick", action="store_true", help="a smoke run at toy sizes (~30 s)")
    demo.add_argument("--seeds", type=int, help="training seeds per variant (default 3)")
    demo.add_argument("--seed-offset", type=int, help="first seed (default 0; 3 gives seeds 3-5)")
    demo.add_argument("--steps", type=int, help="optimiser steps of each TFF variant (default 300)")
    demo.add_argument("--align-steps", type=int, help="steps of the shared align stage per seed (default 150)")
    demo.add_argument("--reading-steps", type=int, help="steps per image encoding strategy (default 400)")
    demo.add_argument("--per-task", type=int, help="probe clips per task, 56%% held out (default 300)")
    demo.add_argument("--workers", type=int, help="processes side by side (default 2; threads split the cores)")
    demo.add_argument("--frames-to-llm", type=int, help="frames left after pooling, 0 for all (default 2)")
    demo.set_defaults(run=_demo)
    from tempflex.synth.cli import add_synth_commands  # imports only argparse; the synth extra loads per command

    add_synth_commands(commands)
    evaluate = commands.add_parser("eval", help="score a model on a benchmark from local files")
    from tempflex.evaluation.cli import add_eval_arguments  # light: no model or media imports

    add_eval_arguments(evaluate)
    evaluate.set_defaults(run=_eval)
    _add_serving(commands)
    from tempflex.checkpoint_cli import add_checkpoint_commands  # imports only argparse at this point

    add_checkpoint_commands(commands)
    return parser


def _add_serving(commands: argparse._SubParsersAction) -> None:
    """``tempflex chat`` and ``tempflex serve`` (the serve extra; handlers import lazily)."""
    from tempflex.serve.cli import add_arguments, run_chat, run_serve

    chat = commands.add_parser("chat", help="ask about an image or a video (interactive without a question)")
    serve = commands.add_parser("serve", help="OpenAI-compatible HTTP server with a web chat page")
    add_arguments(chat, serve)
    chat.set_defaults(run=run_chat)
    serve.set_defaults(run=run_serve)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tempflex`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ValueError as error:
        print(f"tempflex {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
