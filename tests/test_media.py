"""Media input on real files encoded here: exact frame indices and times per backend, and every bad input."""

import base64
import io
import platform

import numpy as np
import pytest
from PIL import Image

from setup_parts import missing
from tempflex.media import MediaError, available_backends, load_image, load_video, sample_times, select_frames
from video_files import claim_duration, encode_audio, encode_video, frame_index

BACKENDS = available_backends()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return encode_video(tmp_path_factory.mktemp("v") / "clip.mp4", num_frames=100, fps=10)  # 10 s


def indices(result) -> list[int]:
    return [frame_index(frame) for frame in result.frames]


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_frame_per_second_by_default(clip, backend):
    result = load_video(clip, backend=backend)
    assert indices(result) == list(range(0, 100, 10))
    assert result.timestamps == pytest.approx([float(s) for s in range(10)])
    assert result.metadata.fps == 10 and (result.metadata.width, result.metadata.height) == (128, 64)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fps_num_frames_segment_and_cap(clip, backend):
    assert indices(load_video(clip, fps=4.0, backend=backend))[:5] == [0, 2, 5, 7, 10]  # 0.25 s apart, on screen
    assert indices(load_video(clip, num_frames=4, backend=backend)) == [12, 37, 62, 87]  # slice centres
    segment = load_video(clip, fps=2.0, start=3.0, end=5.0, backend=backend)
    assert indices(segment) == [30, 35, 40, 45] and segment.timestamps == pytest.approx([3.0, 3.5, 4.0, 4.5])
    capped = load_video(clip, fps=10.0, max_frames=5, backend=backend)
    assert indices(capped) == [0, 25, 50, 74, 99]


def test_backends_give_the_same_frames(clip):
    if len(BACKENDS) < 2:
        if platform.machine() != "x86_64":
            pytest.skip(f"decord publishes no wheel for {platform.machine()}: one backend only")
        missing("decord", "decord (the second video backend)")
    results = [load_video(clip, fps=3.0, backend=backend) for backend in BACKENDS]
    assert indices(results[0]) == indices(results[1])
    assert results[0].timestamps == pytest.approx(results[1].timestamps)
    assert np.abs(results[0].frames.astype(int) - results[1].frames.astype(int)).max() <= 2


def test_fps_and_num_frames_are_exclusive(clip):
    with pytest.raises(ValueError, match="not both"):
        load_video(clip, fps=1.0, num_frames=4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_variable_frame_rate_picks_the_frame_on_screen(tmp_path, backend):
    path = encode_video(tmp_path / "vfr.mkv", 6, codec="libx264", times_ms=[0, 100, 150, 1200, 2100, 2150])
    result = load_video(path, fps=1.0, backend=backend)
    assert indices(result) == [0, 2, 3]  # at 0 s; at 1 s frame 2 (since 0.15 s); at 2 s frame 3 (since 1.2 s)
    assert result.timestamps == pytest.approx([0.0, 0.15, 1.2])


@pytest.mark.parametrize("backend", BACKENDS)
def test_rotation_metadata_is_applied(tmp_path, backend):
    path = encode_video(tmp_path / "rotated.mp4", 3, rotation=90)
    result = load_video(path, backend=backend)
    assert result.frames.shape[1:3] == (128, 64)  # portrait after a 90-degree rotation
    assert frame_index(np.rot90(result.frames[0], k=-1)) == 0


def test_one_frame_video(tmp_path):
    path = encode_video(tmp_path / "one.mp4", 1)
    for backend in BACKENDS:
        result = load_video(path, fps=2.0, backend=backend)
        assert indices(result) == [0] and result.timestamps == [0.0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_header_claiming_hours_with_few_frames(tmp_path, backend):
    path = encode_video(tmp_path / "liar.mp4", 20, fps=10)  # 2 s of frames
    claim_duration(path, 3 * 3600)
    result = load_video(path, fps=1.0, backend=backend)
    assert indices(result) == [0, 10] and result.timestamps == pytest.approx([0.0, 1.0])


def _missing(folder):
    return folder / "missing.mp4"


def _empty(folder):
    (folder / "empty.mp4").write_bytes(b"")
    return folder / "empty.mp4"


def _text(folder):
    (folder / "text.mp4").write_text("this is not a video\n" * 50)
    return folder / "text.mp4"


def _audio(folder):
    return encode_audio(folder / "audio.wav")


@pytest.mark.parametrize(
    ("make", "message"),
    [(_missing, "no such file"), (_empty, "empty"), (_text, "cannot read video"), (_audio, "no video stream")],
    ids=["missing", "zero-bytes", "text-named-mp4", "audio-only"],
)
def test_bad_files_raise_media_error_naming_the_file(tmp_path, make, message):
    path = make(tmp_path)
    for backend in BACKENDS:
        with pytest.raises(MediaError, match=message) as error:
            load_video(path, backend=backend)
        assert path.name in str(error.value)


def test_truncated_mp4(tmp_path):
    path = encode_video(tmp_path / "cut.mp4", 50)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for backend in BACKENDS:
        with pytest.raises(MediaError, match=r"cut\.mp4"):
            load_video(path, backend=backend)


def test_decoding_has_a_timeout(clip):
    with pytest.raises(MediaError, match="timeout"):
        load_video(clip, backend="pyav", timeout=0.0)


def test_folder_and_list_of_frames(tmp_path):
    for index in range(5):
        Image.fromarray(np.full((8, 8, 3), 40 * index, np.uint8)).save(tmp_path / f"{index:03d}.png")
    result = load_video(tmp_path, fps=2.0)
    assert result.frames.shape == (5, 8, 8, 3) and result.timestamps == [0.0, 0.5, 1.0, 1.5, 2.0]
    thinned = load_video([np.full((8, 8, 3), i, np.uint8) for i in range(10)], max_frames=3)
    assert [int(f[0, 0, 0]) for f in thinned.frames] == [0, 4, 9]


def test_sampling_rules():
    assert sample_times(3.0, fps=2.0) == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert len(sample_times(3600.0)) == 64 and len(sample_times(3600.0, max_frames=128)) == 128
    assert sample_times(2.0, min_frames=4) == [0.25, 0.75, 1.25, 1.75]
    assert select_frames([0.0, 0.1, 0.2], [0.05, 0.1, 9.0]) == [0, 1, 2]


# ---- images ---------------------------------------------------------------------------------------------


def test_image_modes_become_rgb_with_alpha_on_white():
    assert load_image(Image.new("RGBA", (2, 2), (255, 0, 0, 0)))[0, 0].tolist() == [255, 255, 255]
    assert load_image(Image.new("RGBA", (2, 2), (255, 0, 0, 255)))[0, 0].tolist() == [255, 0, 0]
    assert load_image(Image.new("L", (2, 2), 7))[0, 0].tolist() == [7, 7, 7]
    assert load_image(Image.new("CMYK", (2, 2), (0, 0, 0, 0)))[0, 0].tolist() == [255, 255, 255]
    palette = Image.new("P", (2, 2), 0)
    palette.putpalette([10, 20, 30] * 256)
    assert load_image(palette)[0, 0].tolist() == [10, 20, 30]
    assert load_image(Image.fromarray(np.full((2, 2), 65535, np.uint16)))[0, 0].tolist() == [255, 255, 255]
    assert load_image(np.full((3, 4), 9, np.uint8)).shape == (3, 4, 3)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (4, 2), (0, 0, 0))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image.save(tmp_path / "rotated.jpg", exif=exif)
    assert load_image(tmp_path / "rotated.jpg").shape == (4, 2, 3)


def test_bytes_and_data_uri(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (3, 5), (1, 2, 3)).save(buffer, format="PNG")
    assert load_image(buffer.getvalue()).shape == (5, 3, 3)
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    assert load_image(uri)[0, 0].tolist() == [1, 2, 3]
    with pytest.raises(MediaError, match="invalid base64"):
        load_image("data:image/png;base64,@@@")


def test_bad_images_name_the_cause(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        load_image(tmp_path / "empty.png")
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(MediaError, match=r"cannot read image .*text\.png"):
        load_image(tmp_path / "text.png")
    Image.new("L", (5000, 5000)).save(tmp_path / "big.png")
    with pytest.raises(MediaError, match=r"5000x5000 .* above max_pixels=1000000"):
        load_image(tmp_path / "big.png", max_pixels=1_000_000)


def test_video_bytes_and_data_uri(clip):
    data = clip.read_bytes()
    assert indices(load_video(data, num_frames=2)) == [25, 75]
    uri = "data:video/mp4;base64," + base64.b64encode(data).decode()
    assert indices(load_video(uri, num_frames=2)) == [25, 75]


@pytest.mark.parametrize("backend", BACKENDS)
def test_sparse_targets_seek_over_long_gaps(tmp_path, backend):
    """Targets 10 s apart with keyframes every 10 s: the seek path, which must not loop on a far keyframe."""
    path = encode_video(tmp_path / "sparse.mp4", 400, fps=10, keyframe_every=100)  # 40 s
    result = load_video(path, num_frames=4, backend=backend, timeout=60)
    assert indices(result) == [50, 150, 250, 350]
    assert result.timestamps == pytest.approx([5.0, 15.0, 25.0, 35.0])


def test_frame_lists_follow_the_file_rules():
    frames = [np.full((4, 4, 3), i, np.uint8) for i in range(200)]  # 200 s at the default 1 fps
    assert len(load_video(frames, num_frames=100, max_frames=64).frames) == 64
    segment = load_video(frames, start=50, end=60)
    assert segment.timestamps == [float(t) for t in range(50, 60)] and int(segment.frames[0, 0, 0, 0]) == 50
    with pytest.raises(ValueError, match="must be after"):
        load_video(frames, start=6, end=3)


def test_bad_video_bytes_name_the_bytes():
    with pytest.raises(MediaError, match=r"<900 bytes>"):
        load_video(b"not a video" * 81 + b"!" * 9)
