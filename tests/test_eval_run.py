"""``tempflex eval`` end to end on the tiny model over the probe: results files, and an interrupted run resumes
without recomputing finished items."""

import json

import pytest

from tempflex.cli import main
from tempflex.evaluation.runner import read_predictions, run_benchmark
from tempflex.loading import load


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    from tempflex.probe.dataset import generate_probe

    out = tmp_path_factory.mktemp("probe")
    generate_probe(out, per_task=4)  # 8 test clips, one per task
    return out


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_eval_cli_interrupt_and_resume(probe, tmp_path):
    out = tmp_path / "eval"
    args = ["eval", "--model", "tiny", "--benchmark", "probe", "--data", str(probe), "--output", str(out)]
    assert main([*args, "--limit", "3", "--no-progress"]) == 0
    assert [e["id"] for e in lines(out / "predictions.jsonl")] == ["motion_direction_3", "playback_direction_3",
                                                                    "blink_count_3"]  # fmt: skip

    model, processor = load("tiny")
    seen = []

    def interrupt_after_two(item_id):
        seen.append(item_id)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_benchmark(model, processor, "probe", probe, out, on_item=interrupt_after_two, progress=False)
    assert len(lines(out / "predictions.jsonl")) == 5
    with (out / "predictions.jsonl").open("a") as handle:
        handle.write('{"id": "half a li')  # a write cut off by a kill
    computed = []
    results = run_benchmark(model, processor, "probe", probe, out, on_item=computed.append, progress=False)
    entries = lines(out / "predictions.jsonl")
    assert computed == ["speed_change_3", "appear_disappear_3", "static_colour_3"]  # only the unfinished ones
    assert len(entries) == len({e["id"] for e in entries}) == 8
    assert results["metrics"]["count"] == 8 and set(results["metrics"]["by_task"]) == {e["id"][:-2] for e in entries}
    written = json.loads((out / "results.json").read_text())
    first_run = json.loads(json.dumps(written))
    assert written["versions"]["torch"] and written["settings"]["seed"] == 0
    assert "probe" in (out / "results.md").read_text()
    assert first_run["metrics"]["overall"] == pytest.approx(100 * sum(e["score"] for e in entries) / 8, abs=0.01)


def test_cli_records_the_command(probe, tmp_path):
    out = tmp_path / "logits"
    argv = ["eval", "--model", "tiny", "--benchmark", "probe", "--data", str(probe), "--output", str(out),
            "--rule", "logits", "--limit", "2", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["command"] == (
        f"tempflex eval --model tiny --benchmark probe --data {probe} --output {out} --rule logits --seed 0 --limit 2"
    )
    assert all(e["choice"] in "ABCDEF" and len(e["reply"]) == 1 for e in lines(out / "predictions.jsonl"))


def test_bad_media_fails_the_item_not_the_run(probe, tmp_path):
    broken = tmp_path / "probe"
    broken.mkdir()
    records = [json.loads(line) for line in (probe / "test.jsonl").read_text().splitlines()][:2]
    records[0]["video"] = "videos/missing.mp4"
    records[1]["video"] = str(probe / records[1]["video"])
    (broken / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    model, processor = load("tiny")
    results = run_benchmark(model, processor, "probe", broken, tmp_path / "out", progress=False)
    assert [f["id"] for f in results["failures"]] == [records[0]["id"]]
    assert "missing.mp4" in results["failures"][0]["error"]
    assert results["metrics"]["count"] == 2


def test_read_predictions_drops_a_cut_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "score": 1.0}\n{"id": "b", "sc')
    assert list(read_predictions(path)) == ["a"]
    assert path.read_text() == '{"id": "a", "score": 1.0}\n'
