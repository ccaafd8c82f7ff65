"""Evaluation: benchmark readers, answer scoring, a resumable runner, and adapters for VLMEvalKit and lmms-eval.

Command::

    tempflex eval --model runs/stage4 --benchmark videomme --data ~/data/Video-MME --output eval/videomme

- ``answers``: ``extract_choice`` (option letter from free text); ``metrics``: VQA accuracy, ANLS, exact match.
- ``video_benchmarks`` / ``image_benchmarks``: one reader per benchmark, each documenting its file layout;
  ``benchmarks.BENCHMARKS`` names them.
- ``runner.run_benchmark``: predictions.jsonl (resumable), results.json and results.md.
- ``vlmevalkit.TempFlexVLMEval``; ``lmms_eval_model.TempFlexLmms`` (needs lmms-eval installed).
"""

from tempflex.evaluation.answers import extract_choice
from tempflex.evaluation.benchmarks import BENCHMARKS
from tempflex.evaluation.metrics import anls, exact_match, vqa_accuracy
from tempflex.evaluation.runner import run_benchmark

__all__ = ["BENCHMARKS", "anls", "exact_match", "extract_choice", "run_benchmark", "vqa_accuracy"]
