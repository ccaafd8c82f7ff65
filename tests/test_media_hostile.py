"""Hostile media inputs, each on a real file encoded here: corrupt stretches, file names that look like FFmpeg
protocols, streams that start late, headers that understate the duration, and errors that must name the input."""

import numpy as np
import pytest
from PIL import Image

from tempflex.media import MediaError, available_backends, load_video, select_frames
from video_files import claim_duration, encode_video, frame_index

BACKENDS = available_backends()


def indices(result) -> list[int]:
    return [frame_index(frame) for frame in result.frames]


def _corrupt_middle(path, count: int = 64, seed: int = 0):
    """Overwrite ``count`` bytes in the middle of the file (inside the mp4's media data) with fixed noise."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + count] = np.random.default_rng(seed).bytes(count)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("backend", BACKENDS)
def test_corrupt_stretch_drops_only_its_frames(tmp_path, backend):
    """64 corrupt bytes used to fail all 200 frames; now only the packets that fail are lost (FFmpeg's CLI
    decodes 169-199 of them), the frame before stays on screen, and the clip counts what was dropped."""
    path = _corrupt_middle(encode_video(tmp_path / "corrupt.mp4", 200, fps=10))
    result = load_video(path, fps=10.0, max_frames=None, backend=backend, timeout=60)
    shown = indices(result)
    assert len(shown) == 200 and shown == sorted(shown)  # one per 0.1 s, in order
    assert 1 <= result.metadata.dropped_frames <= 31
    assert len(set(shown)) + result.metadata.dropped_frames == 200  # every frame either shown or counted
    for target, index in enumerate(shown):  # the frame on screen: itself, or the last decoded before it
        assert index == target or (index < target and target not in shown)


@pytest.mark.parametrize("backend", BACKENDS)
def test_corrupt_stretch_in_mkv_keeps_the_rest(tmp_path, backend):
    """In MKV the 64 bytes also hit the container's framing: the demuxer resyncs, and what decodes is kept."""
    path = _corrupt_middle(encode_video(tmp_path / "corrupt.mkv", 200, fps=10))
    result = load_video(path, fps=10.0, max_frames=None, backend=backend, timeout=60)
    assert result.timestamps == sorted(result.timestamps)
    intact = [target for target, index in enumerate(indices(result)) if index == target]  # a damaged frame reads wrong
    assert len(intact) >= 150 and intact[0] == 0


def test_intact_file_drops_nothing(tmp_path):
    path = encode_video(tmp_path / "fine.mp4", 20, fps=10)
    for backend in BACKENDS:
        assert load_video(path, backend=backend, timeout=60).metadata.dropped_frames == 0


def test_file_where_nothing_decodes_names_the_file(tmp_path):
    path = encode_video(tmp_path / "blank.mp4", 20, fps=10)
    data = bytearray(path.read_bytes())
    start = data.find(b"mdat") + 4
    end = data.find(b"moov") - 4
    data[start:end] = bytes(end - start)  # every packet zeroed, the index (moov) intact
    path.write_bytes(bytes(data))
    for backend in BACKENDS:
        with pytest.raises(MediaError, match=r"blank\.mp4.*no decodable frame"):
            load_video(path, backend=backend, timeout=60)


@pytest.mark.parametrize("backend", BACKENDS)
def test_paths_are_files_never_ffmpeg_protocols(tmp_path, monkeypatch, backend):
    """A relative name with a colon used to reach FFmpeg as a URL: ``scene:1.mp4`` failed with "Protocol not
    found" and ``concat:a.mp4|a.mp4`` decoded ``a.mp4`` instead. Each name is now the file it names."""
    monkeypatch.chdir(tmp_path)
    encode_video(tmp_path / "a.mp4", 20)
    encode_video(tmp_path / "scene:1.mp4", 5)
    encode_video(tmp_path / "concat:a.mp4|a.mp4", 7)
    assert indices(load_video("scene:1.mp4", fps=10.0, backend=backend, timeout=60)) == list(range(5))
    assert indices(load_video("concat:a.mp4|a.mp4", fps=10.0, backend=backend, timeout=60)) == list(range(7))
    with pytest.raises(MediaError, match="no such file"):
        load_video("concat:missing.mp4|a.mp4", backend=backend, timeout=60)


@pytest.mark.parametrize(("backend", "suffix"), [(b, s) for b in BACKENDS for s in ("mp4", "mkv")])
def test_start_end_and_times_count_from_the_first_frame(tmp_path, backend, suffix):
    """A stream stamped from 600 s: ``start=2, end=4`` used to return one frame at 601.4 s; now it means 2-4 s
    into the video, and the times are the video's own."""
    times_ms = [600_000 + 100 * i for i in range(60)]  # 6 s at 10 fps, first frame at 600 s
    path = encode_video(tmp_path / f"late.{suffix}", 60, codec="libx264", times_ms=times_ms)
    segment = load_video(path, fps=1.0, start=2.0, end=4.0, backend=backend, timeout=60)
    assert indices(segment) == [20, 30] and segment.timestamps == pytest.approx([2.0, 3.0])
    whole = load_video(path, fps=1.0, backend=backend, timeout=60)
    assert indices(whole) == [0, 10, 20, 30, 40, 50]
    assert whole.timestamps == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_header_shorter_than_the_frames_decodes_to_the_real_end(tmp_path, backend):
    """A VFR mp4 whose header claims 6 s while frames run to 7.65 s: PyAV used to stop at the header's 6 s
    (6 frames at 1 fps, against decord's 8); both now sample to the last frame."""
    gaps_ms = [150, 300, 200, 350, 250] * 7  # irregular: a variable frame rate
    times_ms = [sum(gaps_ms[:i]) for i in range(32)]  # 32 frames, the last at 7.65 s
    path = encode_video(tmp_path / "vfr.mp4", 32, codec="libx264", times_ms=times_ms)
    claim_duration(path, 6)
    result = load_video(path, fps=1.0, backend=backend, timeout=60)
    seconds = [t / 1000 for t in times_ms]
    assert indices(result) == select_frames(seconds, [float(s) for s in range(8)])
    assert result.timestamps == pytest.approx([seconds[i] for i in indices(result)])


def test_mixed_size_frames_folder_names_the_folder_and_frames(tmp_path):
    for index, size in enumerate([(8, 8), (8, 8), (8, 8), (16, 8)]):
        Image.fromarray(np.zeros((*size, 3), np.uint8)).save(tmp_path / f"{index:03d}.png")
    with pytest.raises(MediaError) as error:
        load_video(tmp_path, fps=1.0)
    message = str(error.value)
    assert str(tmp_path) in message and "'000.png'" in message and "'003.png'" in message and "16x8" in message


def test_frame_list_errors_name_the_frame():
    frames = [np.zeros((8, 8, 3), np.uint8)] * 3 + [np.zeros((8, 9, 3), np.uint8)]
    with pytest.raises(MediaError, match=r"list of 4 frames.*frame 1 of 4 is 8x8, frame 4 of 4 is 8x9"):
        load_video(frames, fps=1.0)
    bad = [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.float32)]
    with pytest.raises(MediaError, match=r"list of 2 frames, frame 2 of 2: .*dtype float32"):
        load_video(bad, fps=1.0)


def test_unreadable_image_in_a_folder_names_folder_and_file(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "000.png")
    (tmp_path / "001.png").write_text("not an image")
    with pytest.raises(MediaError, match=r"video folder .*frame 2 of 2 \('001\.png'\)"):
        load_video(tmp_path, fps=1.0)
