"""``python -m tempflex.train ARGS`` (e.g. under ``torchrun``) = ``tempflex train ARGS``."""

import sys

from tempflex.cli import main

raise SystemExit(main(["train", *sys.argv[1:]]))
