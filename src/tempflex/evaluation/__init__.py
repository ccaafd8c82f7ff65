"""Evaluation: benchmark readers, answer scoring, a resumable runner, and adapters for VLMEvalKit and lmms-eval.

Command::

    tempflex eval --model runs/stage4 --benchmark videomme --data ~/data/Video-MME --output eval/videomme

- ``answers``: ``extract_choice`` (option letter from free text); ``metrics``: VQA accuracy, ANLS, exact match.
- ``video_benchmarks`` / ``image_benchmarks``: one reader per benchmark, each documenting its file layout;
  ``benchmarks.BENCHMARKS`` names them.
- ``runner.run_benchmark``: predictions.jsonl (resumable), results.json and results.md.
- ``vlmevalkit.TempFlexVLMEval``; ``lmms_eval_model.TempFlexLmms`` (needs lmms-eval installed).
"""

from tempflex.lazy import lazy_exports

# Each name loads its module on first use: ``tempflex eval --help`` imports no model code.
_EXPORTS = {
    "BENCHMARKS": "tempflex.evaluation.benchmarks",
    "anls": "tempflex.evaluation.metrics",
    "exact_match": "tempflex.evaluation.metrics",
    "extract_choice": "tempflex.evaluation.answers",
    "run_benchmark": "tempflex.evaluation.runner",
    "vqa_accuracy": "tempflex.evaluation.metrics",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
