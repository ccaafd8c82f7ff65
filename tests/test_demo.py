"""`tempflex demo`: the reading task's views and token counts, the verdict rule, and a quick end-to-end run."""

import json
import re
from collections import Counter

import numpy as np
import pytest

from tempflex.cli import main
from tempflex.probe.demo import QUICK
from tempflex.probe.intervals import interval
from tempflex.probe.reading import FONT, glyph, make_reading_sample, strategy_views
from tempflex.probe.report import verdicts


def test_digit_glyphs_are_distinct_and_drawn_where_the_sample_says():
    masks = {digit: glyph(int(digit)) for digit in FONT}
    assert all(mask.shape == (14, 10) for mask in masks.values())
    assert len({mask.tobytes() for mask in masks.values()}) == 10
    sample = make_reading_sample(5)
    ink = np.argwhere(np.all(sample.image == 20, axis=-1))  # [pixels, 2]
    top, left = ink.min(axis=0)
    assert np.array_equal(np.all(sample.image[top : top + 14, left : left + 10] == 20, axis=-1), glyph(sample.digit))
    assert sample.options[ord(sample.answer) - ord("A")] == str(sample.digit) and len(set(sample.options)) == 4


def test_strategy_views_follow_the_tiny_encoders_geometry():
    image = make_reading_sample(0).image
    assert [v.shape for v in strategy_views(image, "native")] == [(256, 256, 3)]
    assert [v.shape for v in strategy_views(image, "fixed")] == [(64, 64, 3)]
    tiled = strategy_views(image, "tiled")  # 256 px at 64-px tiles, at most 9: 3x3 tiles + the global view
    assert len(tiled) == 10 and all(v.shape == (64, 64, 3) for v in tiled)
    with pytest.raises(ValueError, match="unknown encoding strategy 'crop'"):
        strategy_views(image, "crop")


def _results(full: list[float], none: list[float]) -> dict:
    def summary(values):
        result = {"mean": {"playback_direction": float(np.mean(values))}}
        if len(values) > 1:
            result["interval"] = {"playback_direction": list(interval(values))}
        return result

    return {"temporal": {"no TFF": summary(none), "full TFF": summary(full)}}


def test_t_interval_matches_the_textbook_formula_in_float64():
    values = [0.61, 0.55, 0.70, 0.58]
    mean, sd = np.mean(values), np.std(values, ddof=1)
    low, high = interval(values)
    assert low == pytest.approx(mean - 3.182 * sd / 2, abs=1e-12) and high == pytest.approx(mean + 3.182 * sd / 2)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        interval([0.5])


def test_calls_need_separated_intervals_and_call_a_tie_only_when_narrow():
    def verdict(full, none):
        return verdicts(_results(full, none))["playback_direction"].split(",")[0]

    assert verdict([0.90, 0.91, 0.92], [0.50, 0.51, 0.52]) == "ahead"
    assert verdict([0.50, 0.51, 0.52], [0.90, 0.91, 0.92]) == "behind"
    assert verdict([0.50, 0.52, 0.51], [0.51, 0.50, 0.52]) == "tied"  # half-widths 0.025
    assert verdict([0.9, 0.5, 0.7], [0.5, 0.6, 0.55]) == "undecided"  # +0.15, but half-widths 0.50 and 0.12
    assert "one seed" in verdicts(_results([0.9], [0.5]))["playback_direction"]


def test_demo_quick_runs_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--quick"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["temporal"]) == {"no TFF", "full TFF"}
    for summary in results["temporal"].values():  # two seeds, trained in two worker processes
        assert len(summary["seeds"]) == 2
        assert all(0 <= value <= 1 for value in summary["mean"].values())
        assert all(low <= summary["mean"][task] <= high for task, (low, high) in summary["interval"].items())
        assert {"static_colour", "blink_count", "temporal mean"} <= set(summary["mean"])
    reading = results["reading"]  # token counts of the three strategies at the tiny scale: 64, 4, 10 x 4
    assert {s: (r["views"], r["visual_tokens"]) for s, r in reading.items()} == {
        "native": (1, 64), "fixed": (1, 4), "tiled": (10, 40)
    }  # fmt: skip
    markdown = (tmp_path / "results.md").read_text()
    assert "| Local | Memory | Periodic |" in markdown and "| native | 1 | 64 |" in markdown
    assert markdown in capsys.readouterr().out
    assert (tmp_path / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert results["peak_rss_mb"] > 0 and results["wall_seconds"] > 0


def test_a_page_of_copies_prints_the_digit_once_per_chosen_cell_in_varied_darkness():
    sample = make_reading_sample(11, copies=(5, 5))
    ink = np.all(sample.image < 100, axis=-1)  # [256, 256]; the background is 200-245
    cells = ink.reshape(8, 32, 8, 32).any(axis=(1, 3))  # [8, 8]: which 32-px cells hold ink
    assert cells.sum() == 5
    for row, col in np.argwhere(cells):  # each cell holds one whole glyph
        assert ink[row * 32 : (row + 1) * 32, col * 32 : (col + 1) * 32].sum() == glyph(sample.digit).sum()
    assert len({int(v) for v in sample.image[ink][:, 0]}) > 1  # each copy in its own darkness
    with pytest.raises(ValueError, match="do not fit"):
        make_reading_sample(0, copies=(65, 65))


def test_a_filled_cache_serves_every_clip_of_training(tmp_path):
    import shutil

    from tempflex.probe import demo_units
    from tempflex.probe.dataset import generate_probe
    from tempflex.train.run import load_records, train

    generate_probe(tmp_path / "probe", per_task=2, tasks=("blink_count", "static_colour"))
    records = load_records(tmp_path / "probe" / "train.jsonl")
    model, processor = demo_units._model(2, ())
    stage = demo_units._stage("align", dict.fromkeys(demo_units.ALIGN_MODULES, 1e-3), False)
    run = demo_units._run_settings(tmp_path / "run", 2, QUICK, cache={})
    demo_units._fill_cache(records, processor, stage, run)
    assert len(run.cache) == len(records)
    shutil.rmtree(tmp_path / "probe" / "videos")  # training that decoded a clip again would now skip it
    trainer = train(model, processor, stage, records, run)
    assert trainer.failures == [] and len(run.cache) == len(records)


def test_demo_help_states_the_defaults_the_demo_runs_with(capsys):
    from tempflex.probe.demo import DemoSettings

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    defaults = DemoSettings()
    for option, value in [("--seeds", defaults.seeds), ("--steps", defaults.temporal_steps),
                          ("--align-steps", defaults.align_steps), ("--reading-steps", defaults.reading_steps),
                          ("--per-task", defaults.per_task), ("--workers", defaults.workers),
                          ("--frames-to-llm", defaults.frames_to_llm)]:  # fmt: skip
        stated = re.search(re.escape(option) + r" [A-Z_]+ (?:(?! --).)*?\(default (\d+)", text)  # its own help
        assert stated and int(stated.group(1)) == value, (option, value, stated and stated.group(0))


def test_reading_splits_are_balanced_over_the_digits():
    counts = Counter(make_reading_sample(seed).digit for seed in range(800, 1000))  # the demo's test split
    assert sorted(counts.values()) == [50, 50, 50, 50]
