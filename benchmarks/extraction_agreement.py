"""Multiple-choice answer extraction: ours against lmms-eval's and VLMEvalKit's, on the project's reply table.

Command (a few seconds; importing lmms-eval's task modules takes most of it)::

    git -C VLMEVALKIT_GIT_DIR archive HEAD vlmeval | tar -x -C /tmp/vlmevalkit   # or any VLMEvalKit checkout
    python benchmarks/extraction_agreement.py --vlmevalkit /tmp/vlmevalkit

Prints, for the replies of ``tests/reply_table.py`` (options A-D), how many each extractor gets right (the
expected letter, or no letter where the reply gives no answer), then a markdown table of every reply some
extractor gets wrong. Expected result: ``tempflex extract_choice`` gets every row (the same table is its unit
test); the others miss hedges, negations and answers followed by discussion.

The other extractors are called from the installed ``lmms_eval`` package and from the VLMEvalKit checkout at
run time, never copied; a missing one is reported and its columns skipped:

lmms-eval's evaluator removes ``<think>...</think>`` blocks (its ``--reasoning_tags`` default) before a task
sees the reply, so its columns get the reply after its ``strip_reasoning_tags``; VLMEvalKit only splits thinking
when ``SPLIT_THINK`` is set, so its columns get the raw reply.

- lmms-eval ``extract_mcq_answer``, through Video-MME's ``extract_characters_regex`` (also used by MLVU,
  LVBench, MMStar, RealWorldQA, ...).
- lmms-eval MVBench: its ``mcq_acc(answer, pred)`` scores a reply against a letter; the extracted letter is the
  one that scores 1.
- lmms-eval MMBench with ``eval_method="static"``: ``MMBench_Evaluator.can_infer``, else ``extract_mcq_answer``.
- VLMEvalKit ``can_infer`` (``vlmeval/utils/matching_util.py``): MMBench and the other image MCQ datasets with
  the ``exact_matching`` judge (no LLM); a reply it cannot read scores as no answer.
- VLMEvalKit Video-MME (``vlmeval/dataset/utils/videomme.py``): ``extract_characters_regex``, and where that
  finds nothing, ``extract_option``, which without a judge model is ``can_infer`` on the options.

VLMEvalKit's package ``__init__`` imports torch, termcolor, dotenv and more, and turns off SSL certificate
checks for the process, so the two files are loaded alone with importlib under empty ``vlmeval`` package
modules; the imports they need but these functions never call are stubs.

TempCompass multiple-choice in lmms-eval and MVBench in VLMEvalKit are left out: both hand replies their rules
cannot read to an LLM judge (ChatGPT), so their scores are not a function of the reply alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from reply_table import COLOURS, REPLIES
from tempflex.evaluation.answers import extract_choice

Extractor = Callable[[str, dict[str, str]], str | None]


@dataclass
class Column:
    """One extractor: a short name for the differences table, a description, and the function."""

    short: str
    name: str
    extract: Extractor


def _letter(value: object) -> str | None:
    """Their "no answer" values (``""``, ``False``, ``None``, VLMEvalKit's ``"Z"``) as ``None``."""
    if not value or value == "Z":
        return None
    return str(value)


def ours() -> list[Column]:
    """tempflex's ``extract_choice``."""
    return [Column("ours", "tempflex extract_choice", lambda reply, options: extract_choice(reply, options))]


def lmms_eval_columns() -> list[Column]:
    """lmms-eval's Video-MME, MVBench and MMBench (static) extractors, from the installed package."""
    from importlib.metadata import version

    from loguru import logger

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escape sequences in their regexes
        from lmms_eval.tasks.mmbench.mmbench_evals import MMBench_Evaluator
        from lmms_eval.tasks.mvbench.utils import mcq_acc
        from lmms_eval.tasks.videomme.utils import extract_characters_regex

    from lmms_eval.api.reasoning import parse_reasoning_tags_config, strip_reasoning_tags
    from lmms_eval.tasks._task_utils.mcq_extract import extract_mcq_answer

    logger.disable("lmms_eval")  # MMBench's "A might be a quantifier" notes
    mmbench = MMBench_Evaluator()
    tag = f"lmms-eval {version('lmms_eval')}"
    # the evaluator strips reasoning blocks before any task sees a reply; this is its CLI's --reasoning_tags default
    tags = parse_reasoning_tags_config(cli_value='[["<think>", "</think>"], ["<analysis>", "</analysis>"]]')

    def video_mme(reply: str, options: dict[str, str]) -> str | None:
        return _letter(extract_characters_regex(strip_reasoning_tags(reply, tags)))

    def mvbench(reply: str, options: dict[str, str]) -> str | None:
        reply = strip_reasoning_tags(reply, tags)
        scored = [letter for letter in options if mcq_acc(letter, reply)]
        return "|".join(scored) or None

    def mmbench_static(reply: str, options: dict[str, str]) -> str | None:
        reply = strip_reasoning_tags(reply, tags)
        return _letter(mmbench.can_infer(reply, dict(options)) or extract_mcq_answer(reply, choices=sorted(options)))

    return [
        Column("lmms Video-MME", f"{tag} Video-MME extract_characters_regex (= extract_mcq_answer)", video_mme),
        Column("lmms MVBench", f"{tag} MVBench mcq_acc", mvbench),
        Column("lmms MMBench", f"{tag} MMBench static: can_infer, else extract_mcq_answer", mmbench_static),
    ]


def _load_file(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _stub(name: str, **attributes: object) -> types.ModuleType:
    """An empty (package) module, so ``from vlmeval.x import y`` finds ``y`` without running VLMEvalKit's code."""
    module = sys.modules.get(name) or types.ModuleType(name)
    module.__path__ = []  # type: ignore[attr-defined]
    module.__dict__.update(attributes)
    sys.modules[name] = module
    return module


def _not_loaded(*args: object, **kwargs: object) -> None:
    raise NotImplementedError("not loaded by benchmarks/extraction_agreement.py")


def vlmevalkit_columns(root: Path) -> list[Column]:
    """VLMEvalKit's ``can_infer`` and its Video-MME extraction, loaded from the checkout at ``root``."""
    package = root / "vlmeval"
    if not (package / "utils" / "matching_util.py").is_file():
        raise FileNotFoundError(f"no vlmeval/utils/matching_util.py under {root}")
    for name in ("vlmeval", "vlmeval.smp", "vlmeval.utils", "vlmeval.dataset", "vlmeval.dataset.utils"):
        _stub(name)
    _load_file("vlmeval.smp.log", package / "smp" / "log.py")  # standard library only
    matching = _load_file("vlmeval.utils.matching_util", package / "utils" / "matching_util.py")
    _stub("vlmeval.smp.file", load=_not_loaded)
    _stub("vlmeval.dataset.utils.multiple_choice", extract_answer_from_item=_not_loaded)
    videomme = _load_file("vlmeval.dataset.utils.videomme", package / "dataset" / "utils" / "videomme.py")
    found = re.search(r"__version__ = '([^']+)'", (package / "__init__.py").read_text())
    tag = f"VLMEvalKit {found.group(1) if found else '?'}"

    def can_infer(reply: str, options: dict[str, str]) -> str | None:
        return _letter(matching.can_infer(reply, dict(options)))  # it lowercases the dict it is given

    def video_mme(reply: str, options: dict[str, str]) -> str | None:
        # VideoMME.evaluate: extract_characters_regex(pred), and where it is "", extract_option -> can_infer
        return _letter(videomme.extract_characters_regex(reply)) or can_infer(reply, options)

    return [
        Column("VLMEvalKit can_infer", f"{tag} can_infer (MMBench, image MCQ; exact_matching)", can_infer),
        Column("VLMEvalKit Video-MME", f"{tag} Video-MME extract_characters_regex, else can_infer", video_mme),
    ]


def _cell(value: str | None) -> str:
    return "-" if value is None else value


def _quote(reply: str) -> str:
    return "`" + reply.replace("\n", "\\n").replace("|", "\\|") + "`" if reply else "(empty)"


def report(columns: list[Column], skipped: list[str]) -> str:
    """The counts table and the markdown table of replies some extractor gets wrong."""
    answers = {c.short: [c.extract(reply, COLOURS) for reply, _ in REPLIES] for c in columns}
    expected = [want for _, want in REPLIES]
    with_answer = sum(want is not None for want in expected)
    lines = [
        f"Reply table: {len(REPLIES)} replies (tests/reply_table.py), options A-D; {with_answer} give a letter,",
        f"{len(REPLIES) - with_answer} give no answer (hedges, negations, echoed options, refusals).",
        "",
        "| extractor | right | of the replies with a letter | of the replies without |",
        "|---|---:|---:|---:|",
    ]
    for column in columns:
        got = answers[column.short]
        right = [g == want for g, want in zip(got, expected, strict=True)]
        on_letter = sum(r for r, want in zip(right, expected, strict=True) if want is not None)
        on_none = sum(right) - on_letter
        lines.append(
            f"| {column.name} | {sum(right)}/{len(REPLIES)} | {on_letter}/{with_answer} "
            f"| {on_none}/{len(REPLIES) - with_answer} |"
        )
    lines += [f"skipped: {reason}" for reason in skipped]
    lines += [
        "",
        "Replies some extractor gets wrong (- = no answer):",
        "",
        "| reply | expected | " + " | ".join(c.short for c in columns) + " |",
        "|---|:-:|" + ":-:|" * len(columns),
    ]
    for i, (reply, want) in enumerate(REPLIES):
        row = [answers[c.short][i] for c in columns]
        if all(got == want for got in row):
            continue
        cells = [_cell(got) if got == want else f"**{_cell(got)}**" for got in row]
        lines.append(f"| {_quote(reply)} | {_cell(want)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run every available extractor on the reply table and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vlmevalkit", type=Path, help="a VLMEvalKit checkout (the folder holding vlmeval/)")
    args = parser.parse_args(argv)
    columns, skipped = ours(), []
    try:
        columns += lmms_eval_columns()
    except ImportError as error:
        skipped.append(f"lmms-eval (cannot import: {error})")
    if args.vlmevalkit is None:
        skipped.append("VLMEvalKit (no --vlmevalkit PATH)")
    else:
        try:
            columns += vlmevalkit_columns(args.vlmevalkit)
        except (ImportError, OSError) as error:
            skipped.append(f"VLMEvalKit ({error})")
    print(report(columns, skipped))


if __name__ == "__main__":
    main()
