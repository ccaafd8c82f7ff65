"""The synthesis job end to end: real videos, a real local OpenAI-compatible server, faults, kill -9 and resume."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from synth_server import NO_USAGE, ScriptedServer, encode_pattern_video
from tempflex.synth.client import EndpointError
from tempflex.synth.export import export_llava, llava_records
from tempflex.synth.inputs import find_videos, load_metadata
from tempflex.synth.pipeline import SynthConfig, run_synthesis
from tempflex.synth.prompt import PromptSpec
from tempflex.synth.stats import collect_stats, format_stats, plot_stats
from tempflex.synth.store import Store
from tempflex.train.data import load_annotations, to_messages

FAST = {"backoff": 0.01, "max_backoff": 0.05, "timeout": 0.5, "cell_width": 32}


def _videos(folder: Path, count: int, seconds: int = 3) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [encode_pattern_video(folder / f"v{i}.mp4", seed=i, seconds=seconds) for i in range(count)]


def _run(store_path, videos, server, metadata=None, **options):
    config = SynthConfig(base_url=server.base_url, model="test-model", **{**FAST, **options})
    with Store(store_path) as store:
        return run_synthesis(store, videos, metadata or {}, config)


def test_faults_end_with_every_video_done_once(tmp_path):
    videos = _videos(tmp_path / "clips", 6)
    script = ["invalid_json", "wrong_count", ("429", 0.2), "500", ("slow", 1.0), "drop", "unknown_dimension",
              "empty_answer"]  # fmt: skip
    with ScriptedServer(script) as server:
        report = _run(
            tmp_path / "s.db", videos, server, concurrency=3, max_repairs=4, price_input=1.0, price_output=2.0
        )
        log = list(server.log)
    assert report.counts == {"done": 6}
    assert report.sent == 6
    assert len(log) == 6 + len(script) == report.requests
    assert report.prompt_tokens > 0 and report.cost == pytest.approx(
        (report.prompt_tokens + 2 * report.completion_tokens) / 1e6
    )
    with Store(tmp_path / "s.db") as store:
        version = PromptSpec().version
        rows = store.rows(version)
        assert sum(row.requests for row in rows) == len(log)
        records = llava_records(store, version)
    assert len(records) == 6 * 11 and len({r["id"] for r in records}) == len(records)
    with ScriptedServer() as server:  # a rerun sends nothing
        again = _run(tmp_path / "s.db", videos, server)
        assert server.log == [] and again.sent == 0 and again.counts == {"done": 6}


def test_failures_are_recorded_with_reasons_and_retried_by_a_rerun(tmp_path):
    videos = _videos(tmp_path / "clips", 3)
    corrupt = tmp_path / "clips" / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + random.Random(0).randbytes(2000))  # fixed bytes: a stable reason
    missing = tmp_path / "clips" / "missing.mp4"
    doomed: list[str] = []  # the video whose every answer is invalid: the first one asked about

    def script(key, count):
        if not doomed:
            doomed.append(key)
        return "invalid_json" if key == doomed[0] else "valid"

    with ScriptedServer(script) as server:
        report = _run(tmp_path / "s.db", [*videos, corrupt, missing], server, max_repairs=1, concurrency=1)
    assert report.counts == {"done": 2, "failed": 2}
    assert report.skipped_inputs == [f"{missing}: No such file or directory"]
    with Store(tmp_path / "s.db") as store:
        failed = {Path(row.source).name: row for row in store.rows(PromptSpec().version, ("failed",))}
    assert "cannot read video" in failed["corrupt.mp4"].last_error and not failed["corrupt.mp4"].retryable
    invalid = next(row for name, row in failed.items() if name != "corrupt.mp4")
    assert invalid.last_error.startswith("invalid output after 2 tries: the output is not JSON")
    assert invalid.retryable and invalid.requests == 2 and invalid.attempts == 1
    with ScriptedServer() as server:  # the rerun retries the invalid one only (the corrupt file fails for good)
        report = _run(tmp_path / "s.db", [*videos, corrupt], server)
        assert [key for key, _ in server.log] == doomed
    assert report.counts == {"done": 3, "failed": 1}


def test_identical_and_near_duplicate_videos_are_sent_once(tmp_path):
    videos = _videos(tmp_path / "clips", 2)
    copy = tmp_path / "clips" / "copy_of_v0.mp4"
    copy.write_bytes(videos[0].read_bytes())
    reencoded = encode_pattern_video(tmp_path / "clips" / "v1_bigger.mp4", seed=1, size=(60, 80), quality=1)
    with ScriptedServer() as server:
        report = _run(tmp_path / "s.db", find_videos(tmp_path / "clips"), server)
        assert len(server.log) == 2
    assert report.counts == {"done": 2, "duplicate": 1}
    with Store(tmp_path / "s.db") as store:
        (dup,) = store.rows(PromptSpec().version, ("duplicate",))
        assert Path(dup.source) == reencoded and "near-duplicate of" in dup.last_error
        v0 = store.get(store.cached_video_id(str(copy.resolve()), copy.stat().st_size, copy.stat().st_mtime_ns),
                       PromptSpec().version)  # fmt: skip
        assert Path(v0.source) == videos[0].resolve() or Path(v0.source) == copy.resolve()
    with ScriptedServer() as server:  # the check off: the re-encoded video is sent
        report = _run(tmp_path / "t.db", find_videos(tmp_path / "clips"), server, near_dup_threshold=None)
        assert len(server.log) == 3


def test_export_is_read_by_the_training_loader_and_stats(tmp_path):
    videos = _videos(tmp_path / "clips", 2)
    meta = tmp_path / "clips" / "meta.jsonl"
    meta.write_text(json.dumps({"video": "v0.mp4", "asr": "spoken words", "source": "vatex"}) + "\n"
                    + json.dumps({"video": "v1.mp4", "title": "A title", "source": "openvid"}) + "\n")  # fmt: skip
    with ScriptedServer() as server:
        _run(tmp_path / "s.db", videos, server, metadata=load_metadata(meta))
    with Store(tmp_path / "s.db") as store:
        counts = export_llava(store, tmp_path / "out" / "synth.jsonl", media_root=tmp_path)
        stats = collect_stats(store, PromptSpec().version, dimensions=PromptSpec().dimensions)
    assert counts == {"videos": 2, "captions": 2, "vqa": 20}
    records = load_annotations(tmp_path / "out" / "synth.jsonl")
    assert records[0]["conversations"][0]["value"] == "<video>\nDescribe this video in detail."
    assert {r["source"] for r in records} == {"vatex", "openvid"}
    messages = to_messages(records[1], tmp_path)  # a VQA sample: <video>, the question; then the answer
    assert [m["role"] for m in messages] == ["user", "assistant"]
    video_part, question = messages[0]["content"]
    assert video_part["type"] == "video" and Path(video_part["video"]).resolve() in {v.resolve() for v in videos}
    assert question["text"] == records[1]["conversations"][0]["value"].removeprefix("<video>\n")
    assert records[1]["dimension"] in PromptSpec().dimensions
    assert sum(stats.dimensions.values()) == 20 and len(stats.dimensions) == 15
    assert stats.sources == {"openvid": {"caption": 1, "vqa": 10}, "vatex": {"caption": 1, "vqa": 10}}
    table = format_stats(stats)
    assert "Temporal Reasoning" in table and "vatex" in table
    assert plot_stats(stats, tmp_path / "stats.png").stat().st_size > 5000


def test_metadata_and_grids_reach_the_request(tmp_path):
    videos = [encode_pattern_video(tmp_path / "v0.mp4", seed=0, seconds=11)]  # 11 frames at 1 fps: 2 grids
    table = {"v0.mp4": {"video": "v0.mp4", "asr": "the words spoken", "objects": ["ball", "cup"]}}
    with ScriptedServer() as server:
        _run(tmp_path / "s.db", videos, server, metadata=table, cell_width=40)
        (body,) = server.bodies
    assert body["model"] == "test-model" and body["messages"][0]["content"] == PromptSpec().system_text()
    text, *images = body["messages"][1]["content"]
    assert "ASR text: the words spoken" in text["text"] and "Objects / Props: ball, cup" in text["text"]
    assert len(images) == 2 and all(i["image_url"]["url"].startswith("data:image/jpeg;base64,") for i in images)
    with Store(tmp_path / "s.db") as store:
        (row,) = store.rows(PromptSpec().version)
    assert row.metadata == {"asr": "the words spoken", "objects": ["ball", "cup"]}


def test_grid_cap_spreads_frames_and_says_when(tmp_path):
    videos = [encode_pattern_video(tmp_path / "v0.mp4", seed=0, seconds=20)]
    with ScriptedServer() as server:
        _run(tmp_path / "s.db", videos, server, max_grids=1)
        (body,) = server.bodies
    text, *images = body["messages"][1]["content"]
    assert len(images) == 1 and "taken at these seconds" in text["text"]


def test_endpoint_refusal_stops_the_job_and_leaves_videos_pending(tmp_path):
    videos = _videos(tmp_path / "clips", 3)
    with ScriptedServer(["401"] * 10) as server, pytest.raises(EndpointError, match="401"):
        _run(tmp_path / "s.db", videos, server, concurrency=1)
    with Store(tmp_path / "s.db") as store:
        assert store.counts(PromptSpec().version) == {"pending": 3}


def _done(store_path: Path) -> int:
    with sqlite3.connect(store_path) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM videos WHERE status = 'done'").fetchone()[0]
        except sqlite3.OperationalError:  # not created yet
            return 0


def test_kill_9_and_rerun_gives_the_same_export(tmp_path):
    videos = _videos(tmp_path / "clips", 10, seconds=2)
    with ScriptedServer(latency=0.15) as server:
        _run(tmp_path / "whole.db", videos, server, concurrency=2)
        with Store(tmp_path / "whole.db") as store:
            export_llava(store, tmp_path / "whole.jsonl")
        server.log.clear()
        command = [sys.executable, "-m", "tempflex.cli", "synth", "run", "--videos", str(tmp_path / "clips"),
                   "--store", str(tmp_path / "killed.db"), "--base-url", server.base_url, "--model", "test-model",
                   "--concurrency", "2", "--cell-width", "32", "--quiet"]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while _done(tmp_path / "killed.db") < 3 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
        done_before = _done(tmp_path / "killed.db")
        assert 3 <= done_before < 10
        with Store(tmp_path / "killed.db") as store:
            done_keys = {row.video_id for row in store.rows(PromptSpec().version, ("done",))}
        asked_before = len(server.log)
        server.log.clear()
        stale = json.loads((tmp_path / "killed.db.lock").read_text())  # the dead run's lock: taken over at once
        assert stale["pid"] == process.pid
        report = _run(tmp_path / "killed.db", videos, server, concurrency=2)
        assert report.counts == {"done": 10}
        assert report.sent == 10 - done_before  # nothing done is redone
        assert len(server.log) == report.sent and asked_before >= done_before
    with Store(tmp_path / "killed.db") as store:
        export_llava(store, tmp_path / "killed.jsonl")
        assert all(store.get(key, PromptSpec().version).requests == 1 for key in done_keys)
    assert (tmp_path / "killed.jsonl").read_bytes() == (tmp_path / "whole.jsonl").read_bytes()


def test_cli_export_stats_and_errors(tmp_path, capsys):
    from tempflex.cli import main

    videos = _videos(tmp_path / "clips", 2)
    with ScriptedServer() as server:
        _run(tmp_path / "s.db", videos, server)
    assert main(["synth", "export", "--store", str(tmp_path / "s.db"), "--format", "llava",
                 "--out", str(tmp_path / "x.jsonl")]) == 0  # fmt: skip
    assert "wrote 22 samples (2 captions, 20 VQA) from 2 videos" in capsys.readouterr().out
    assert len(load_annotations(tmp_path / "x.jsonl")) == 22
    assert main(["synth", "stats", "--store", str(tmp_path / "s.db"), "--png", str(tmp_path / "f.png")]) == 0
    out = capsys.readouterr().out
    assert "status: done 2" in out and "Scene Description" in out and (tmp_path / "f.png").is_file()
    assert main(["synth", "export", "--store", str(tmp_path / "none.db"), "--out", str(tmp_path / "y")]) == 2
    assert "none.db" in capsys.readouterr().err
    assert main(["synth", "run", "--videos", str(tmp_path / "nowhere"), "--store", str(tmp_path / "t.db"),
                 "--model", "m", "--quiet"]) == 2  # fmt: skip
    assert "nowhere" in capsys.readouterr().err
    assert main(["synth", "export", "--store", str(tmp_path / "s.db"), "--out", str(tmp_path / "y"),
                 "--prompt-version", "v9"]) == 2  # fmt: skip
    assert "prompt version 'v9' is not in" in capsys.readouterr().err


def test_shards_split_the_videos(tmp_path):
    videos = _videos(tmp_path / "clips", 6, seconds=1)
    with ScriptedServer() as server:
        for index in range(2):
            _run(tmp_path / f"shard{index}.db", videos, server, shard=(index, 2), near_dup_threshold=None)
    ids = []
    for index in range(2):
        with Store(tmp_path / f"shard{index}.db") as store:
            ids.append({row.video_id for row in store.rows(PromptSpec().version, ("done",))})
    assert ids[0] and ids[1] and not ids[0] & ids[1] and len(ids[0] | ids[1]) == 6
    with pytest.raises(ValueError, match="shard 2/2"):
        SynthConfig(base_url="http://x", model="m", shard=(2, 2))


MALFORMED_USAGE = [
    "n/a", [1, 2], {}, {"prompt_tokens": 10}, {"prompt_tokens": -5, "completion_tokens": 3},
    {"prompt_tokens": "ten", "completion_tokens": "three"}, {"prompt_tokens": True, "completion_tokens": 2},
    {"prompt_tokens": 1e30, "completion_tokens": 1}, None, NO_USAGE,
]  # fmt: skip


def test_malformed_usage_is_recorded_as_unknown_and_never_stops_the_run(tmp_path):
    videos = _videos(tmp_path / "clips", len(MALFORMED_USAGE) + 1, seconds=1)
    forms: dict[str, object] = {}  # video key -> the usage form its replies carry; the last video gets a good one

    def script(key, count):
        if key not in forms:
            forms[key] = MALFORMED_USAGE[len(forms)] if len(forms) < len(MALFORMED_USAGE) else "good"
        return "valid" if forms[key] == "good" else ("bad_usage", forms[key])

    with ScriptedServer(script) as server:
        report = _run(tmp_path / "s.db", videos, server, concurrency=3, near_dup_threshold=None, price_input=1.0,
                      price_output=2.0, tokens_per_minute=1e9)  # fmt: skip
        log = list(server.log)
    assert report.counts == {"done": len(videos)}
    assert len(log) == len(videos) == report.requests  # every video once, no retry for a bad usage
    assert report.unknown_usage == len(MALFORMED_USAGE)
    with Store(tmp_path / "s.db") as store:
        rows = store.rows(PromptSpec().version)
    assert all(row.result is not None for row in rows)
    unknown = [row for row in rows if row.unknown_usage]
    assert len(unknown) == len(MALFORMED_USAGE)
    assert all(row.unknown_usage == 1 and row.prompt_tokens == row.completion_tokens == 0 for row in unknown)
    assert all(row.usage_known is False and row.cost == 0.0 for row in unknown)
    (known,) = [row for row in rows if not row.unknown_usage]
    assert known.usage_known and known.prompt_tokens > 0 and known.completion_tokens > 0
    assert report.prompt_tokens == known.prompt_tokens and report.cost == pytest.approx(known.cost)
    with Store(tmp_path / "s.db") as store:
        stats = collect_stats(store, PromptSpec().version)
    assert stats.unknown_usage == len(MALFORMED_USAGE)
    assert f"{len(MALFORMED_USAGE)} requests of unknown usage" in format_stats(stats)


def _cli_run(store: Path, clips: Path, server: ScriptedServer, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "tempflex.cli", "synth", "run", "--videos", str(clips), "--store", str(store),
               "--base-url", server.base_url, "--model", "test-model", "--concurrency", "2", "--cell-width", "32",
               "--near-dup-threshold", "-1", "--quiet", *extra]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_left(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_two_runs_at_once_on_one_store_never_pay_twice(tmp_path):
    videos = _videos(tmp_path / "clips", 6, seconds=1)
    release = threading.Event()  # the first request waits until one run has exited: the two surely overlap

    def script(key, count):
        release.wait(60)
        return "valid"

    with ScriptedServer(script, latency=0.05) as server:
        processes = [_cli_run(tmp_path / "s.db", tmp_path / "clips", server) for _ in range(2)]
        try:
            deadline = time.monotonic() + 60
            while all(process.poll() is None for process in processes) and time.monotonic() < deadline:
                time.sleep(0.05)
            release.set()
            outputs = [process.communicate(timeout=120) for process in processes]
        finally:
            release.set()
            _kill_left(processes)
        per_video = Counter(key for key, _ in server.log)
    assert len(per_video) == len(videos) and set(per_video.values()) == {1}, per_video
    codes = [process.returncode for process in processes]
    assert sorted(codes) == [0, 4], outputs
    winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
    error = outputs[loser][1]
    assert str(tmp_path / "s.db") in error and f"pid {processes[winner].pid}" in error, error
    assert "--wait-for-lock" in error
    with Store(tmp_path / "s.db") as store:
        assert store.counts(PromptSpec().version) == {"done": 6}


def test_wait_for_lock_runs_after_the_holder_and_sends_nothing_twice(tmp_path):
    videos = _videos(tmp_path / "clips", 4, seconds=1)
    with ScriptedServer(latency=0.1) as server:
        processes: list[subprocess.Popen] = []
        try:
            with Store(tmp_path / "s.db") as store, store.run_lock():  # this test is the holder at first
                for _ in range(2):
                    processes.append(_cli_run(tmp_path / "s.db", tmp_path / "clips", server, "--wait-for-lock"))
                watchdog = threading.Timer(120, _kill_left, (processes,))  # readline below cannot hang for ever
                watchdog.start()
                for process in processes:  # both say they wait, naming this process
                    lines = iter(process.stderr.readline, "")
                    waiting = next((line for line in lines if "waiting" in line), "")
                    assert f"pid {os.getpid()}" in waiting and "s.db" in waiting, waiting
                watchdog.cancel()
                time.sleep(0.5)
                assert server.log == []  # nothing is sent while the lock is held
            outputs = [process.communicate(timeout=120) for process in processes]
        finally:
            _kill_left(processes)
        per_video = Counter(key for key, _ in server.log)
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert len(per_video) == len(videos) and set(per_video.values()) == {1}, per_video
    assert sorted("sent 0 videos" in out for out, _ in outputs) == [False, True], outputs


def test_run_lock_names_the_holder_and_outlives_a_stale_lock_file(tmp_path):
    from tempflex.synth.store import StoreLockedError

    lock_file = tmp_path / "s.db.lock"
    lock_file.write_text('{"pid": 999999999, "host": "gone", "since": 0}')  # left by a dead run: not held
    with Store(tmp_path / "s.db") as first, Store(tmp_path / "s.db") as second:
        with first.run_lock():
            assert json.loads(lock_file.read_text())["pid"] == os.getpid()
            with pytest.raises(StoreLockedError, match=f"pid {os.getpid()}") as caught, second.run_lock():
                pass
            assert str(tmp_path / "s.db") in str(caught.value)
        with second.run_lock():  # released: the other one takes it
            pass
