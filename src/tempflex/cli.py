"""The ``tempflex`` command: thin argument parsing over library calls.

Commands:
    tempflex tokens --height 720 --width 1280   # three encoding strategies side by side
    tempflex tokens --plot tokens.png           # the paper's Figure 3 (right): tokens vs resolution
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
    return parser


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
