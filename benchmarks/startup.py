"""Start-up cost of the package and the command line: wall time and peak RSS of each, in fresh processes.

Command (CPU, about 1 minute)::

    python benchmarks/startup.py [--repeats 5]

Each row runs its code in a new interpreter ``--repeats`` times (interleaved with the other rows) and prints the
median wall time, the peak RSS, and whether torch / transformers were imported. The last rows import the model
code itself (``tempflex.load``), so the light rows' ratio to it is measured in the same run. Goal (issue 18):
``import tempflex``, ``tempflex.media``, ``tempflex --help`` and ``tempflex tokens`` import neither torch nor
transformers and take <= 0.5 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time


def _command(*argv: str) -> str:
    """Code that runs ``tempflex ARGV`` in-process (``--help`` exits through SystemExit)."""
    return f"from tempflex.cli import main\ntry:\n    main({list(argv)!r})\nexcept SystemExit:\n    pass"


ROWS = {
    "import tempflex": "import tempflex",
    "from tempflex.media import load_video": "from tempflex.media import load_video",
    "tempflex --help": _command("--help"),
    "tempflex tokens --height 720 --width 1280": _command("tokens", "--height", "720", "--width", "1280"),
    "tempflex eval --help": _command("eval", "--help"),
    "import av, numpy (the floor)": "import av, numpy",
    "tempflex.load (the model code)": "import tempflex\ntempflex.load",
    "tempflex.load('tiny') (a model built)": "import tempflex\ntempflex.load('tiny')",
}

_REPORT = (
    "\nimport json, resource, sys\n"
    "print(json.dumps({'rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,"
    " 'torch': 'torch' in sys.modules, 'transformers': 'transformers' in sys.modules}))"
)


def run_once(code: str) -> tuple[float, dict]:
    """Wall seconds of a fresh interpreter running ``code``, and what it reported about itself."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code + _REPORT], capture_output=True, text=True, check=True)
    return time.perf_counter() - started, json.loads(result.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in ROWS}
    reports: dict[str, dict] = {}
    for _ in range(args.repeats):
        for name, code in ROWS.items():  # interleaved: a busy moment hits every row alike
            seconds, reports[name] = run_once(code)
            times[name].append(seconds)
    heavy = statistics.median(times["tempflex.load (the model code)"])
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()};"
          f" median of {args.repeats} fresh processes")  # fmt: skip
    print(f"{'what':44s} {'seconds':>8s} {'x model code':>13s} {'peak RSS MB':>12s}  torch  transformers")
    for name in ROWS:
        median = statistics.median(times[name])
        report = reports[name]
        print(f"{name:44s} {median:8.2f} {median / heavy:13.2f} {report['rss_mb']:12.0f}  "
              f"{'yes' if report['torch'] else 'no':5s}  {'yes' if report['transformers'] else 'no'}")  # fmt: skip


if __name__ == "__main__":
    main()
