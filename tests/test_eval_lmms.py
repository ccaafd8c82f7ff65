"""lmms-eval's unmodified CLI drives TempFlex: ``python -m lmms_eval --model tempflex`` on local tasks.

The tasks are YAML files written here (``--include_path``) over generated images and videos (``dataset_path:
json`` with local ``data_files``): ``generate_until`` (stop string, batch of 2), ``multiple_choice`` (lmms-eval's
log-likelihood path and its argmin) and ``loglikelihood`` (the continuation arrives as ``doc_to_target``). The
checks read lmms-eval's results JSON and samples logs, and recompute the expected values in-process from the same
saved model (lmms-eval exits 0 even when the model fails to build, so the exit code proves nothing). lmms-eval 0.7.3
breaks every log-likelihood task for every model (its ``unwrap_generation_output`` turns the ``(loss, greedy)``
pairs into strings): a test pins that upstream failure, and the log-likelihood path is checked with lmms-eval's real
task objects and their own ``process_results`` instead.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from setup_parts import require
from video_files import encode_video

require("lmms_eval", "lmms-eval")  # scripts/setup installs it; TEMPFLEX_SKIP=lmms-eval leaves it out

COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220)}

UTILS = """
from PIL import Image


def doc_to_visual(doc):
    if doc.get("image"):
        return [Image.open(doc["image"]).convert("RGB")]
    return [doc["video"]]


def doc_to_text(doc):
    return doc["question"]
"""

TASKS = {
    "tempflex_gen": """
        output_type: generate_until
        doc_to_target: answer
        generation_kwargs:
          until: ["a", "e"]
          max_new_tokens: 12
        metric_list:
          - metric: exact_match
            aggregation: mean
            higher_is_better: true
        """,
    "tempflex_mc": """
        output_type: multiple_choice
        doc_to_choice: ["red", "blue", "green"]
        doc_to_target: label
        metric_list:
          - metric: acc
            aggregation: mean
            higher_is_better: true
        """,
    "tempflex_ll": """
        output_type: loglikelihood
        doc_to_target: answer
        metric_list:
          - metric: acc
            aggregation: mean
            higher_is_better: true
        """,
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from tempflex import load

    root = tmp_path_factory.mktemp("lmms")
    torch.manual_seed(0)
    model, processor = load("tiny")
    with torch.no_grad():  # sharper logits: greedy replies of a random tiny LM then vary with the input
        for parameter in model.language_model.parameters():
            parameter.mul_(30)
    model.save_pretrained(root / "model")
    processor.save_pretrained(root / "model")
    docs = []
    for index, (name, rgb) in enumerate(COLOURS.items()):
        Image.new("RGB", (64, 48), rgb).save(root / f"{name}.png")
        docs.append({"id": index, "image": str(root / f"{name}.png"), "video": "", "question": "Colour?",
                     "answer": name, "label": index})  # fmt: skip
    encode_video(root / "clip.mp4", 30, fps=10)
    docs.append({"id": 2, "image": "", "video": str(root / "clip.mp4"), "question": "What moves?", "answer": "red",
                 "label": 0})  # fmt: skip
    (root / "docs.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    tasks = root / "tasks"
    tasks.mkdir()
    (tasks / "utils.py").write_text(UTILS)
    for task, body in TASKS.items():
        header = f"""
            task: {task}
            dataset_path: json
            dataset_kwargs:
              data_files:
                test: {root / "docs.jsonl"}
            test_split: test
            doc_to_visual: !function utils.doc_to_visual
            doc_to_text: !function utils.doc_to_text
            """
        (tasks / f"{task}.yaml").write_text(textwrap.dedent(header) + textwrap.dedent(body))
    return root, docs


def run_lmms_eval(root, tasks, *extra):
    out = root / "out" / "-".join(tasks)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false", "HF_DATASETS_CACHE": str(root / "hf-cache")}  # fmt: skip
    command = [
        sys.executable, "-m", "lmms_eval", "--model", "tempflex",
        "--model_args", f"pretrained={root / 'model'},max_num_frames=4,device=cpu",
        "--tasks", ",".join(tasks), "--include_path", str(root / "tasks"), "--output_path", str(out),
        "--log_samples", *extra,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, stdin=subprocess.DEVNULL)
    log = result.stdout + result.stderr
    results = sorted(out.rglob("*_results.json"))
    assert results, f"lmms-eval wrote no results; its output ends with:\n{log[-4000:]}"
    samples = {}
    for task in tasks:
        found = sorted(out.rglob(f"*_samples_{task}.jsonl"))
        assert found, f"no samples log for {task}:\n{log[-3000:]}"
        samples[task] = [json.loads(line) for line in found[-1].read_text().splitlines() if line.strip()]
    return json.loads(results[-1].read_text()), samples


def conversation(doc):
    """What the adapter builds for a document (``max_num_frames=4``)."""
    part = (
        {"type": "image", "image": Image.open(doc["image"]).convert("RGB")}
        if doc["image"]
        else {"type": "video", "video": doc["video"], "nframes": 4, "max_frames": 4}
    )
    return [{"role": "user", "content": [part, {"type": "text", "text": doc["question"]}]}]


def test_lmms_eval_cli_generates_with_stop_strings_in_batches(workspace):
    from tempflex import load
    from tempflex.evaluation.generation import generate_replies

    root, docs = workspace
    results, samples = run_lmms_eval(root, ["tempflex_gen"], "--batch_size", "2")
    assert results["results"]["tempflex_gen"]["exact_match,none"] == 0.0  # a random tiny model
    model, processor = load(root / "model")
    model.eval()
    by_id = {doc["id"]: doc for doc in docs}
    assert sorted(sample["doc_id"] for sample in samples["tempflex_gen"]) == sorted(by_id)
    cut = 0
    for sample in samples["tempflex_gen"]:  # the replies lmms-eval logged are ours, cut at the task's stop strings
        doc = by_id[sample["doc_id"]]
        expected = generate_replies(model, processor, [conversation(doc)], max_new_tokens=12, stop=("a", "e"))[0]
        assert sample["filtered_resps"] == expected
        assert "a" not in expected and "e" not in expected
        whole = generate_replies(model, processor, [conversation(doc)], max_new_tokens=12)[0]
        assert whole.startswith(expected)
        cut += int(whole != expected)
    assert cut >= 1  # a stop string really ended a reply early


def test_lmms_eval_0_7_3_breaks_every_log_likelihood_task_upstream(workspace):
    """lmms-eval 0.7.3 turns every model's ``(loss, greedy)`` into a string (``unwrap_generation_output``) before
    ``process_results``: multiple-choice tasks fail for every model. When this test fails, upstream has fixed it;
    then check the CLI's results as the generation test does."""
    root, _ = workspace
    with pytest.raises(AssertionError, match="wrote no results") as failure:
        run_lmms_eval(root, ["tempflex_mc"])
    assert "RetryError" in str(failure.value)  # process_results failed on the stringified pairs
    from lmms_eval.api.instance import unwrap_generation_output

    assert unwrap_generation_output((1.5, True))[0] == "(1.5, True)"


def _requests(task, model):
    """lmms-eval's own requests for every document of ``task`` (``build_all_requests``, as its evaluator does)."""
    split = task.config.test_split
    model.task_dict = {task.config.task: {split: task.test_docs()}}
    task.build_all_requests()
    per_doc = {}
    for instance in task.instances:
        per_doc.setdefault(instance.doc_id, []).append(instance)
    return [(task.test_docs()[doc_id], sorted(made, key=lambda i: i.idx)) for doc_id, made in sorted(per_doc.items())]


def test_log_likelihoods_score_right_in_lmms_eval_tasks(workspace):
    """The real task objects (lmms-eval's TaskManager over our YAMLs) build the requests and score our answers with
    their own ``process_results``, as a fixed evaluator would; values equal our in-process computation."""
    from lmms_eval.models import get_model
    from lmms_eval.tasks import TaskManager, get_task_dict

    from tempflex.evaluation.generation import continuation_nll

    root, _ = workspace
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    tasks = get_task_dict(["tempflex_mc", "tempflex_ll"], TaskManager(include_path=str(root / "tasks")))
    lmms = get_model("tempflex").create_from_arg_string(
        f"pretrained={root / 'model'},max_num_frames=4", {"batch_size": 2, "device": "cpu"}
    )
    correct = 0
    for doc, requests in _requests(tasks["tempflex_mc"], lmms):
        answers = lmms.loglikelihood(requests)
        expected = [continuation_nll(lmms.model, lmms.processor, conversation(doc), " " + c) for c in COLOURS] + [
            continuation_nll(lmms.model, lmms.processor, conversation(doc), " green")
        ]
        assert np.allclose([v for v, _ in answers], [v for v, _ in expected], rtol=1e-5)
        assert all(value > 0 for value, _ in answers)  # a loss: lmms-eval takes the argmin
        scored = tasks["tempflex_mc"].process_results.__wrapped__(tasks["tempflex_mc"], doc, answers)
        best = int(np.argmin([v for v, _ in expected]))
        assert scored["acc"] == float(best == doc["label"])
        correct += int(best == doc["label"])
    for doc, requests in _requests(tasks["tempflex_ll"], lmms):
        assert callable(requests[0].args[1])  # output_type loglikelihood: the continuation is doc_to_target
        ((value, greedy),) = lmms.loglikelihood(requests)
        assert (value, greedy) == pytest.approx(continuation_nll(lmms.model, lmms.processor, conversation(doc),
                                                                 doc["answer"]))  # fmt: skip


def test_the_entry_point_is_found_whatever_was_imported_first():
    code = (
        "import tempflex.evaluation.lmms_eval_model\n"
        "from lmms_eval.models import get_model\n"
        "print(get_model('tempflex').__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.stdout.strip().splitlines()[-1] == "TempFlexLmms", result.stderr[-2000:]


def test_lmms_eval_arguments_are_accepted_and_unknown_ones_named():
    from lmms_eval.models import get_model

    cls = get_model("tempflex")
    model = cls.create_from_arg_string(
        "pretrained=tiny,max_num_frames=8,fps=2,max_pixels=50000", {"batch_size": 4, "max_batch_size": 3,
                                                                     "device": "cpu"}
    )  # fmt: skip
    assert model.batch_size_per_gpu == 3 and model.model.device.type == "cpu"
    assert model._video_part("a.mp4") == {"type": "video", "video": "a.mp4", "max_frames": 8, "fps": 2.0,
                                          "max_pixels": 50000}  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown model_args \['frames'\]"):
        cls.create_from_arg_string("pretrained=tiny,frames=3", {"batch_size": 1})
