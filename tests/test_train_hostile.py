"""Training on hostile data: corrupt media, records with nothing to learn, lines that are not records.

Real files in tmp_path, the tiny preset, a few optimiser steps per run (CPU, seconds each).
"""

import dataclasses
import json
import math
import random

import pytest
import torch
from PIL import Image

from tempflex import TempFlexConfig, TempFlexForConditionalGeneration, TempFlexProcessor
from tempflex.tokenization import build_tiny_tokenizer
from tempflex.train import SkippingDataset, TooManyFailuresError, TrainSettings, load_annotations, load_stage, train
from tempflex.train.run import load_records

CONFIG = TempFlexConfig.from_preset("tiny")
STAGE = dataclasses.replace(load_stage(2), trainable={"merger": 1e-3, "language_model": 1e-3})


@pytest.fixture(scope="module")
def processor():
    return TempFlexProcessor.for_model(CONFIG, build_tiny_tokenizer())


def image_record(folder, index):
    Image.new("RGB", (64, 64), (40 * index % 255, 90, 200)).save(folder / f"{index}.png")
    return {
        "id": f"img{index}",
        "image": f"{index}.png",
        "conversations": [{"from": "human", "value": "<image>\nColour?"}, {"from": "gpt", "value": "Blue."}],
    }


def video_record(name):
    return {
        "id": name,
        "video": f"{name}.mp4",
        "conversations": [{"from": "human", "value": "What happens?"}, {"from": "gpt", "value": "Nothing."}],
    }


def write_jsonl(path, lines):
    """Write ``lines`` (dicts are dumped as JSON, strings written as they are), one per line."""
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def corrupt_video(folder, name):
    # Fixed bytes, not os.urandom: about 1 random 4 KiB file in 300 probes as an audio-only stream,
    # which fails with "no video stream" instead of FFmpeg's "Invalid data" (seen once in CI).
    (folder / f"{name}.mp4").write_bytes(random.Random(0).randbytes(4096))


def losses(folder):
    lines = (folder / "loss.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines if '"loss"' in line]


def run(processor, records, output, **options):
    torch.manual_seed(0)
    model = TempFlexForConditionalGeneration(CONFIG)
    run_settings = {"max_steps": 3, "shuffle": False, "gradient_accumulation_steps": 1, **options}
    return train(model, processor, STAGE, records, TrainSettings(output, **run_settings))


def test_batch_size_one_survives_a_corrupt_video(processor, tmp_path):
    corrupt_video(tmp_path, "x")
    records = [image_record(tmp_path, 0), video_record("x"), image_record(tmp_path, 1)]
    data = write_jsonl(tmp_path / "train.jsonl", records)
    trainer = run(processor, load_records(data), tmp_path / "out", batch_size=1, max_steps=4)
    assert trainer.state.global_step == 4
    assert all(math.isfinite(loss) for loss in losses(tmp_path / "out")) and len(losses(tmp_path / "out")) == 4
    failures = json.loads((tmp_path / "out" / "failures.json").read_text())
    assert len(failures) == 1 and trainer.failures == failures
    assert failures[0]["id"] == "x" and failures[0]["file"] == str(data) and failures[0]["line"] == 2
    assert "x.mp4" in failures[0]["reason"] and "cannot read video" in failures[0]["reason"]
    assert (tmp_path / "out" / "model.safetensors").exists()


def test_packing_and_padding_batches_survive_a_corrupt_video(processor, tmp_path):
    corrupt_video(tmp_path, "x")
    records = [image_record(tmp_path, 0), video_record("x"), image_record(tmp_path, 1), image_record(tmp_path, 2)]
    data = write_jsonl(tmp_path / "train.jsonl", records)
    for packing in (False, True):
        output = tmp_path / f"packing{packing}"
        trainer = run(processor, load_records(data), output, batch_size=2, max_steps=2, packing=packing)
        assert trainer.state.global_step == 2 and [f["line"] for f in trainer.failures] == [2]


def test_a_resumed_run_with_a_corrupt_video_reproduces_the_uninterrupted_one(processor, tmp_path):
    corrupt_video(tmp_path, "x")
    records = [image_record(tmp_path, 0), video_record("x"), image_record(tmp_path, 1), image_record(tmp_path, 2)]
    data = write_jsonl(tmp_path / "train.jsonl", records)

    def by_step(folder):
        lines = (folder / "loss.jsonl").read_text().splitlines()
        return {json.loads(line)["step"]: json.loads(line)["loss"] for line in lines if '"loss"' in line}

    run(processor, load_records(data), tmp_path / "whole", batch_size=1, max_steps=4)
    run(processor, load_records(data), tmp_path / "parts", batch_size=1, max_steps=4, save_steps=2, stop_after=2)
    assert len(json.loads((tmp_path / "parts" / "failures.json").read_text())) == 1
    run(processor, load_records(data), tmp_path / "parts", batch_size=1, max_steps=4, save_steps=2, resume=True)
    whole, parts = by_step(tmp_path / "whole"), by_step(tmp_path / "parts")
    assert sorted(parts) == [1, 2, 3, 4] and all(abs(whole[s] - parts[s]) <= 1e-6 for s in whole)
    failures = json.loads((tmp_path / "parts" / "failures.json").read_text())
    assert failures == json.loads((tmp_path / "whole" / "failures.json").read_text()) and len(failures) == 1


def test_records_that_cannot_teach_are_listed_and_the_run_continues(processor, tmp_path):
    lines = [
        image_record(tmp_path, 0),
        {"id": "question-only", "conversations": [{"from": "human", "value": "Hi"}]},
        "[1, 2, 3]",  # JSON, not an object
        image_record(tmp_path, 1),
        {"id": "no-value", "conversations": [{"from": "human"}, {"from": "gpt", "value": "A."}]},
        "{not json",
        "",  # blank lines are not records and not failures
        {"id": "empty-answer", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": ""}]},
        image_record(tmp_path, 2),
        image_record(tmp_path, 3),
        image_record(tmp_path, 4),
        image_record(tmp_path, 5),
    ]
    data = write_jsonl(tmp_path / "train.jsonl", lines)
    trainer = run(processor, load_records(data), tmp_path / "out", batch_size=1, max_steps=3)
    assert trainer.state.global_step == 3
    failures = json.loads((tmp_path / "out" / "failures.json").read_text())
    assert [(f.get("id"), f["line"]) for f in failures] == [
        ("question-only", 2), (None, 3), ("no-value", 5), (None, 6), ("empty-answer", 8)
    ]  # fmt: skip
    assert all(f["file"] == str(data) for f in failures)
    reasons = [f["reason"] for f in failures]
    assert "no assistant turn" in reasons[0] and "not a JSON object" in reasons[1] and "'value'" in reasons[2]
    assert reasons[3].startswith("not JSON") and "no assistant turn" in reasons[4]


def test_load_annotations_locates_records_and_lists_bad_lines(tmp_path):
    data = write_jsonl(tmp_path / "a.jsonl", [{"id": "a"}, "7", "", "{", {"id": "b"}])
    records = load_annotations(data)
    assert records == [{"id": "a"}, {"id": "b"}]
    assert records.locations == [{"file": str(data), "line": 1}, {"file": str(data), "line": 5}]
    assert [(r["line"], r["reason"][:8]) for r in records.rejected] == [(2, "not a JS"), (4, "not JSON")]
    listed = tmp_path / "b.json"
    listed.write_text(json.dumps([{"id": "a"}, "text", {"id": "b"}]))
    records = load_annotations(listed)
    assert records.locations[1] == {"file": str(listed), "index": 2} and records.rejected[0]["index"] == 1
    pairs = load_records(listed)
    assert [p.location() for p in pairs] == [{"file": str(listed), "index": i} for i in range(3)]
    assert pairs[1].error and pairs[0] == ({"id": "a"}, tmp_path.resolve())
    write_jsonl(tmp_path / "c.jsonl", ["1", "{"])
    with pytest.raises(ValueError, match="no line is a record"):
        load_annotations(tmp_path / "c.jsonl")


def test_a_mixture_names_the_file_of_each_failure(processor, tmp_path):
    corrupt_video(tmp_path, "x")
    first = write_jsonl(tmp_path / "a.jsonl", [image_record(tmp_path, 0), video_record("x")])
    second = write_jsonl(tmp_path / "b.jsonl", ["null", image_record(tmp_path, 1)])
    mixture = tmp_path / "mix.yaml"
    mixture.write_text(f"datasets:\n  - json_path: {first.name}\n  - json_path: {second.name}\n")
    trainer = run(processor, load_records(mixture), tmp_path / "out", batch_size=1, max_steps=2)
    located = {(f["file"], f["line"]) for f in trainer.failures}
    assert located == {(str(first.resolve()), 2), (str(second.resolve()), 1)}


def test_skipping_dataset_replaces_a_failure_by_the_next_usable_sample(processor, tmp_path):
    corrupt_video(tmp_path, "x")
    records = [image_record(tmp_path, 0), video_record("x"), image_record(tmp_path, 1)]
    dataset = SkippingDataset.build(load_records(write_jsonl(tmp_path / "t.jsonl", records)), processor)
    samples = [dataset[i] for i in range(len(dataset))]
    assert all(s is not None for s in samples) and torch.equal(samples[1]["input_ids"], samples[2]["input_ids"])
    assert list(dataset.dataset.skipped) == [1] and len(dataset.failures) == 1
    again = dataset[1]  # a known failure is not decoded again
    assert torch.equal(again["pixel_values"], samples[2]["pixel_values"]) and len(dataset.failures) == 1


def test_too_many_failures_stop_the_run_with_a_clear_error(processor, tmp_path):
    for name in ("x", "y", "z"):
        corrupt_video(tmp_path, name)
    lines = [image_record(tmp_path, 0), video_record("x"), video_record("y"), image_record(tmp_path, 1)]
    data = write_jsonl(tmp_path / "media.jsonl", [*lines, video_record("z")])
    with pytest.raises(TooManyFailuresError, match=r"3 of 5 samples failed \(60%\).*50%") as error:
        run(processor, load_records(data), tmp_path / "media", batch_size=1, max_steps=5, max_failure_share=0.5)
    assert str(tmp_path / "media" / "failures.json") in str(error.value)
    assert len(json.loads((tmp_path / "media" / "failures.json").read_text())) == 3
    # the same data is fine when the allowed share is larger
    trainer = run(processor, load_records(data), tmp_path / "lenient", batch_size=1, max_steps=2, max_failure_share=0.8)
    assert trainer.state.global_step == 2
    # records refused up front stop the run before training starts
    malformed = write_jsonl(tmp_path / "malformed.jsonl", ["1", "2", image_record(tmp_path, 0)])
    with pytest.raises(TooManyFailuresError, match="2 of 3 samples failed"):
        run(processor, load_records(malformed), tmp_path / "early", max_failure_share=0.5)
    assert len(json.loads((tmp_path / "early" / "failures.json").read_text())) == 2
    assert not (tmp_path / "early" / "loss.jsonl").exists()


def test_cli_reports_skipped_samples_and_the_failure_share(tmp_path, capsys):
    from tempflex.cli import build_parser, main
    from tempflex.train.cli import run_training

    corrupt_video(tmp_path, "x")
    lines = [image_record(tmp_path, 0), video_record("x"), "[]", image_record(tmp_path, 1), image_record(tmp_path, 2)]
    data = write_jsonl(tmp_path / "train.jsonl", lines)
    common = ["train", "--stage", "2", "--model", "tiny", "--data", str(data), "--max-steps", "2", "--no-shuffle",
              "--grad-accum", "1"]  # fmt: skip
    assert main([*common, "--output", str(tmp_path / "ok")]) == 0  # the default share (0.5): 2 of 5 may fail
    out = capsys.readouterr().out
    assert "2 steps; 2 samples skipped" in out and str(tmp_path / "ok" / "failures.json") in out
    args = build_parser().parse_args([*common, "--output", str(tmp_path / "strict"), "--max-failure-share", "0.3"])
    message = r"2 of 5 samples failed \(40%\), more than the allowed share of 30%"
    with pytest.raises(TooManyFailuresError, match=message):
        run_training(args)
    assert (tmp_path / "strict" / "failures.json").exists()


def test_worker_processes_report_failures_and_old_checkpoints_are_removed(processor, tmp_path):
    """A corrupt video met inside a DataLoader worker still reaches failures.json (workers hold copies of the
    dataset); --save-total-limit 2 keeps the two newest checkpoints."""
    corrupt_video(tmp_path, "x")
    lines = [image_record(tmp_path, 0), video_record("x"), image_record(tmp_path, 1), image_record(tmp_path, 2)]
    data = write_jsonl(tmp_path / "train.jsonl", lines)
    trainer = run(processor, load_records(data), tmp_path / "out", batch_size=1, max_steps=4, num_workers=1,
                  save_steps=1, save_total_limit=2)  # fmt: skip
    failures = json.loads((tmp_path / "out" / "failures.json").read_text())
    assert [f["line"] for f in failures] == [2] and trainer.failures == failures
    assert sorted(p.name for p in (tmp_path / "out").glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]
