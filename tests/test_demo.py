"""`tempflex demo`: the reading task's views and token counts, the verdict rule, and a quick end-to-end run."""

import json

import numpy as np
import pytest

from tempflex.cli import main
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
        mean = float(np.mean(values))
        runs = [{"playback_direction": v, "temporal mean": v} for v in values]
        spread = float(np.std(values))
        return {"seeds": runs, "mean": {"playback_direction": mean, "temporal mean": mean},
                "spread": {"playback_direction": spread, "temporal mean": spread}}  # fmt: skip

    return {"temporal": {"no TFF": summary(none), "full TFF": summary(full)}}


def test_verdict_calls_a_win_only_beyond_the_spread():
    def verdict(full, none):
        lines = verdicts(_results(full, none))
        return {k: v for k, v in lines.items() if k in ("playback_direction", "temporal mean")}["playback_direction"]

    assert "ahead" in verdict([0.9, 0.8], [0.5, 0.6]) and "not ahead" not in verdict([0.9, 0.8], [0.5, 0.6])
    assert "not ahead" in verdict([0.9, 0.5], [0.5, 0.6])  # +0.15 against spreads 0.20 + 0.05
    assert "one seed" in verdict([0.9], [0.5])


def test_demo_quick_runs_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--quick"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["temporal"]) == {"no TFF", "full TFF"}
    for summary in results["temporal"].values():
        assert len(summary["seeds"]) == 1
        assert all(0 <= value <= 1 for value in summary["mean"].values())
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
