"""Statistics of a synthesis store: the paper's Figure 5 (samples per dimension; per source, captions and VQA),
plus statuses, failures by reason, tokens and cost.

Example::

    tempflex synth stats --store synth.db --png stats.png
    # status: done 98, failed 1, duplicate 1; requests 131, tokens 1.2M in / 80.1k out, cost $3.10
    # dimension                         VQA pairs
    # Temporal Reasoning                       97 ...
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tempflex.synth.store import Store

__all__ = ["SynthStats", "collect_stats", "format_stats", "plot_stats"]


@dataclass
class SynthStats:
    """Counts of one prompt version of a store."""

    prompt_version: str
    statuses: dict[str, int]
    dimensions: dict[str, int]
    sources: dict[str, dict[str, int]]
    failures: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    unknown_usage: int = 0  # requests whose usage was missing or malformed: not in the tokens and cost


def collect_stats(store: Store, prompt_version: str, *, dimensions: tuple[str, ...] = ()) -> SynthStats:
    """Count per dimension (every name of ``dimensions`` listed, zero included) and per source."""
    per_dimension: Counter = Counter(dict.fromkeys(dimensions, 0))
    sources: dict[str, dict[str, int]] = {}
    failures: Counter = Counter()
    stats = SynthStats(prompt_version, store.counts(prompt_version), {}, sources)
    for row in store.rows(prompt_version):
        stats.requests += row.requests
        stats.prompt_tokens += row.prompt_tokens
        stats.completion_tokens += row.completion_tokens
        stats.cost += row.cost
        stats.unknown_usage += row.unknown_usage
        if row.status == "failed":
            failures[(row.last_error or "unknown").split(":")[0][:80]] += 1
        if row.status != "done" or row.result is None:
            continue
        source = sources.setdefault(str(row.metadata.get("source", "unknown")), {"caption": 0, "vqa": 0})
        source["caption"] += 1
        for key in ("vqa_type1", "vqa_type2"):
            source["vqa"] += len(row.result[key])
            per_dimension.update(pair["dimension"] for pair in row.result[key])
    stats.dimensions = dict(per_dimension)
    stats.failures = dict(failures.most_common())
    return stats


def _short(number: float) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if number >= limit:
            return f"{number / limit:.1f}{suffix}"
    return f"{number:.0f}"


def format_stats(stats: SynthStats) -> str:
    """A plain-text report: statuses and cost, a table per dimension and one per source."""
    statuses = ", ".join(f"{name} {count}" for name, count in sorted(stats.statuses.items()))
    lines = [
        f"prompt version {stats.prompt_version}",
        f"status: {statuses or 'no videos'}; requests {stats.requests}, tokens {_short(stats.prompt_tokens)} in / "
        f"{_short(stats.completion_tokens)} out, cost ${stats.cost:.2f}"
        + (f" (+ {stats.unknown_usage} requests of unknown usage)" if stats.unknown_usage else ""),
        "",
        f"{'dimension':<44}{'VQA pairs':>10}",
    ]
    lines += [f"{name:<44}{count:>10}" for name, count in stats.dimensions.items()]
    lines += ["", f"{'source':<30}{'captions':>10}{'VQA':>10}"]
    lines += [f"{name:<30}{c['caption']:>10}{c['vqa']:>10}" for name, c in sorted(stats.sources.items())]
    if stats.failures:
        lines += ["", "failures by reason:"] + [f"{count:>6}  {reason}" for reason, count in stats.failures.items()]
    return "\n".join(lines)


def plot_stats(stats: SynthStats, path: str | Path) -> Path:
    """Figure 5 as a PNG: (a) VQA pairs per dimension, (b) captions and VQA pairs per source."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("the stats figure needs matplotlib: pip install 'tempflex[synth]'") from error
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 2]})
    names = list(stats.dimensions)
    left.barh(names[::-1], [stats.dimensions[n] for n in names][::-1], color="#4878d0")
    left.set_title("(a) VQA pairs per dimension")
    left.set_xlabel("pairs")
    sources = sorted(stats.sources)
    positions = range(len(sources))
    right.bar([p - 0.2 for p in positions], [stats.sources[s]["caption"] for s in sources], 0.4, label="caption")
    right.bar([p + 0.2 for p in positions], [stats.sources[s]["vqa"] for s in sources], 0.4, label="open-ended VQA")
    right.set_xticks(list(positions), sources, rotation=20)
    right.set_title("(b) samples per source")
    right.legend()
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
