"""The built-in temporal probe: procedurally generated video QA that a tiny TempFlex can learn on a CPU.

``tasks`` draws the clips and questions; ``dataset`` writes a split to disk in LLaVA format (mp4 + JSONL);
``evaluate`` scores a model by the option letter it ranks first.
"""

from tempflex.probe.tasks import TASKS, TEMPORAL_TASKS, ProbeSample, make_sample

__all__ = ["TASKS", "TEMPORAL_TASKS", "ProbeSample", "make_sample"]
