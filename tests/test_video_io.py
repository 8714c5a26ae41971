import io
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from videop2p.config import OptionError
from videop2p.io.video import (
    ResizeMode,
    VideoError,
    check_video,
    declared_frames,
    frames_needed,
    read_video,
    resize_frames,
    resolve_size,
    selected_count,
)
from videop2p.io.writing import (
    _label,
    paletted_frames,
    preview_factor,
    side_by_side_frames,
    write_frames,
    write_gif,
    write_mp4,
    write_video,
)


def _clip(n=10, h=24, w=32):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, size=(1, h // 4, w // 4, 3), dtype=np.uint8)
    frames = np.repeat(np.repeat(base, 4, axis=1), 4, axis=2).repeat(n, axis=0).copy()
    for i in range(n):
        frames[i, :4, :4] = i * 20  # frame index marker
    return frames


def test_frame_directory_in_natural_order(tmp_path):
    frames = _clip(12)
    for i, f in enumerate(frames, start=1):
        Image.fromarray(f).save(tmp_path / f"{i}.png")
    video = read_video(tmp_path)
    assert video.num_frames == 12
    np.testing.assert_array_equal(video.frames, frames)  # 10.png after 9.png, not after 1.png


def test_tiff_files_named_jpg_load(clips_dir):
    for clip in ("rabbit", "car", "motorbike", "penguin_ice"):
        video = read_video(clips_dir / clip)
        assert video.num_frames == 8
        assert video.frames.dtype == np.uint8 and video.frames.shape[-1] == 3
        assert video.frames.std() > 5


@pytest.mark.parametrize(
    "array, suffix",
    [
        (np.arange(0, 65536, 16, dtype=np.uint16).reshape(64, 64), ".png"),  # 16-bit greyscale: mode I;16
        (np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64), ".tif"),  # float greyscale in 0..1: mode F
    ],
)
def test_deep_greyscale_frames_are_scaled_not_clipped(tmp_path, array, suffix):
    for i in range(2):
        Image.fromarray(array).save(tmp_path / f"{i}{suffix}")
    frames = read_video(tmp_path).frames  # (2, 64, 64, 3) uint8
    expected = np.rint(array.astype(np.float64) / array.max() * 255).astype(np.uint8)
    assert frames.dtype == np.uint8 and frames.shape == (2, 64, 64, 3)
    assert np.abs(frames[0, ..., 0].astype(int) - expected).max() <= 1 and (frames[..., 0] == frames[..., 2]).all()


def _encode(frames: np.ndarray, path, codec: str, rate: int) -> None:
    """Frames (F, H, W, 3) into a container of `path`'s kind with `codec`, through PyAV alone."""
    with av.open(str(path), "w") as c:
        stream = c.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv", ".webm", ".avi"])
def test_containers_round_trip(tmp_path, suffix):
    frames = _clip(6, 32, 48)
    path = tmp_path / f"clip{suffix}"
    _encode(frames, path, {".webm": "libvpx-vp9", ".avi": "mpeg4"}.get(suffix, "libx264"), rate=6)
    video = read_video(path)
    assert video.num_frames == 6 and video.size == (48, 32)
    assert abs(video.fps - 6) < 0.5
    assert np.abs(video.frames.astype(float) - frames).mean() < 25


def _set_display_rotation(path, clockwise: int) -> None:
    """Write a rotation into an mp4's track header matrix, as a phone does for a portrait clip."""
    _set_display_matrix(path, *{90: (0, 1, -1, 0), 180: (-1, 0, 0, -1), 270: (0, -1, 1, 0)}[clockwise])


def _set_display_matrix(path, a: int, b: int, c: int, d: int) -> None:
    """Write a track header matrix's a, b, c, d (each -1, 0 or 1) into an mp4, as a phone's editor does to
    turn or mirror a clip without encoding it again."""
    import struct

    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    matrix_at = at + 4 + 4 + (32 if data[at + 4] == 1 else 20) + 16  # version/flags, times and ids, reserved
    a, b, c, d = (v * 0x00010000 for v in (a, b, c, d))  # 16.16 fixed point
    struct.pack_into(">9i", data, matrix_at, a, b, 0, c, d, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("matrix", "orientation"), [((-1, 0, 0, 1), 2), ((1, 0, 0, -1), 4), ((0, 1, 1, 0), 5), ((0, -1, -1, 0), 7)]
)
def test_a_clip_stored_mirrored_by_its_display_matrix_reads_as_players_show_it(tmp_path, matrix, orientation):
    """A display matrix that mirrors (a phone editor's flip, alone or with a quarter turn) is shown
    mirrored, as ffmpeg's autorotate shows it, not read as the nearest turn (a left-right mirror read
    upside down, a top-bottom one not at all)."""
    from videop2p.io.video import ORIENTED, iter_video, video_size

    frames = np.zeros((3, 32, 48, 3), np.uint8)
    frames[:, :, :12] = 255  # the left quarter white
    frames[:, :8] = 128  # the top rows grey
    path = write_mp4(frames, tmp_path / "flipped.mp4", fps=8)
    _set_display_matrix(path, *matrix)
    shown = np.stack([ORIENTED[orientation](f) for f in frames])
    video = read_video(path)
    assert video.frames.shape == shown.shape and video_size(path) == (shown.shape[2], shown.shape[1])
    assert np.abs(video.frames.astype(float) - shown).mean() < 10
    np.testing.assert_array_equal(np.stack(list(iter_video(path, 0, 3))), video.frames)  # the full-size pass too
    _assert_read_small_as_whole(path, (shown.shape[2] // 2, shown.shape[1] // 2))


@pytest.mark.parametrize("clockwise", [90, 180, 270])
def test_a_clip_stored_with_a_display_rotation_reads_upright(tmp_path, clockwise):
    from videop2p.io.video import iter_video, video_size

    frames = np.zeros((3, 32, 48, 3), np.uint8)
    frames[:, :, :24] = 255  # the left half white
    path = write_mp4(frames, tmp_path / "phone.mp4", fps=8)
    _set_display_rotation(path, clockwise)
    video = read_video(path)
    upright = np.rot90(frames, k=-clockwise // 90, axes=(1, 2))  # turned clockwise
    assert video.frames.shape == upright.shape and video_size(path) == (upright.shape[2], upright.shape[1])
    assert np.abs(video.frames.astype(float) - upright).mean() < 10
    np.testing.assert_array_equal(np.stack(list(iter_video(path, 0, 3))), video.frames)  # the full-size pass too
    _assert_read_small_as_whole(path, (upright.shape[2] // 2, upright.shape[1] // 2))


def _assert_read_small_as_whole(path, size: tuple[int, int]) -> None:
    """A clip read for `size` (converted smaller, then resized) shows what it read whole and resized shows."""

    def resize(frame):
        return resize_frames(frame[None], *size)[0]

    small = read_video(path, transform=resize, small=size).frames.astype(float)
    whole = read_video(path, transform=resize).frames.astype(float)
    assert small.shape == whole.shape and np.abs(small - whole).mean() < 6  # the half-white edge, filtered apart


@pytest.mark.parametrize("sar", [Fraction(2, 1), Fraction(3, 4)])
def test_an_anamorphic_clip_reads_in_square_pixels_as_players_show_it(tmp_path, sar):
    from videop2p.io.video import iter_video, video_size

    frames = np.zeros((3, 32, 48, 3), np.uint8)
    frames[:, :, :24] = 255  # the left half white
    path = tmp_path / "anamorphic.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        stream.codec_context.sample_aspect_ratio = sar
        for fr in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(fr, format="rgb24")))
        container.mux(stream.encode())
    width = round(48 * sar)  # the width players show
    video = read_video(path)
    assert video.size == (width, 32) and video_size(path) == (width, 32)
    assert video.frames[:, :, : width // 2 - 2].mean() > 245 and video.frames[:, :, width // 2 + 2 :].mean() < 10
    np.testing.assert_array_equal(np.stack(list(iter_video(path, 0, 3))), video.frames)  # the full-size pass too
    _assert_read_small_as_whole(path, (width // 2, 16))


def test_mp4_writer_round_trip_and_odd_sizes(tmp_path):
    frames = _clip(8, 24, 32)
    video = read_video(write_mp4(frames, tmp_path / "a.mp4", fps=12))
    assert video.num_frames == 8 and video.size == (32, 24) and round(video.fps) == 12
    mse = np.mean((video.frames.astype(float) - frames) ** 2)
    assert 10 * np.log10(255**2 / mse) > 25
    assert (tmp_path / "a.mp4").stat().st_mode & 0o777 == 0o644  # readable by others, like any output
    odd = read_video(write_mp4(frames[:, :23, :31], tmp_path / "odd.mp4"))
    assert odd.size == (32, 24)


def test_gif_and_webp_read_back_exactly(tmp_path):
    frames = _clip(5)
    gif = read_video(write_gif(frames, tmp_path / "a.gif", fps=10))
    assert gif.num_frames == 5 and abs(gif.fps - 10) < 0.5
    imgs = [Image.fromarray(f) for f in frames]
    imgs[0].save(tmp_path / "a.webp", save_all=True, append_images=imgs[1:], lossless=True, duration=100)
    webp = read_video(tmp_path / "a.webp")
    np.testing.assert_array_equal(webp.frames, frames)


def test_png_folder_writer(tmp_path):
    frames = _clip(3)
    out = write_frames(frames, tmp_path / "frames")
    assert sorted(p.name for p in out.iterdir()) == ["1.png", "2.png", "3.png"]
    np.testing.assert_array_equal(read_video(out).frames, frames)


def test_frame_selection_start_count_stride(tmp_path):
    frames = _clip(10)
    write_frames(frames, tmp_path / "f")
    video = read_video(tmp_path / "f", start=1, num_frames=3, stride=3)
    np.testing.assert_array_equal(video.frames, frames[[1, 4, 7]])
    assert video.fps == pytest.approx(8 / 3)


def test_too_few_frames_names_counts(tmp_path):
    write_frames(_clip(5), tmp_path / "f")
    with pytest.raises(VideoError, match=r"has 5 frames.*gives 3.*8 asked"):
        read_video(tmp_path / "f", start=2, num_frames=8)


def test_errors_name_the_bad_value(tmp_path):
    with pytest.raises(VideoError, match="does not exist"):
        read_video(tmp_path / "missing.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoError, match="no image frames"):
        read_video(tmp_path / "empty")
    (tmp_path / "zero.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match="empty"):
        read_video(tmp_path / "zero.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 100)
    with pytest.raises(VideoError, match="not a readable video .*not a video"):
        read_video(tmp_path / "junk.mp4")
    whole = write_mp4(_clip(8, 32, 32), tmp_path / "whole.mp4").read_bytes()
    assert whole.find(b"moov") > whole.find(b"mdat")  # its index (codec and all) after the frames
    (tmp_path / "cut.mp4").write_bytes(whole[: whole.find(b"moov") - 4])  # cut short before it
    with pytest.raises(VideoError) as cut:
        read_video(tmp_path / "cut.mp4")
    assert "cut.mp4 is not a readable video" in str(cut.value) and "cut short" in str(cut.value)
    assert "Errno" not in str(cut.value)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for i, size in enumerate([(8, 8)] * 3 + [(16, 8), (8, 8), (8, 12)]):
        Image.new("RGB", size).save(mixed / f"{i + 1}.png")
    message = r"mixed sizes \(8x8, 16x8, 8x12\): 4.png is 16x8, the first frame 1.png 8x8; all frames must"
    with pytest.raises(VideoError, match=message):  # the first frame of another size named
        read_video(mixed)
    with pytest.raises(VideoError, match=message):  # from the headers alone
        check_video(mixed)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "1.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(VideoError, match="not a readable image"):
        read_video(broken)
    (broken / "1.jpg").write_bytes(b"")  # a copy that never finished
    with pytest.raises(VideoError, match=r"Frame .*1.jpg is empty \(0 bytes\)\.$"):
        check_video(broken)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fps": float("nan")}, "fps: nan is not valid; expected a finite number from 0.01 to 1000"),
        ({"fps": 0}, "fps: 0 is not valid"),
        ({"fps": -8}, "fps: -8 is not valid"),
        ({"fps": "8"}, "fps: '8' is not valid"),
        ({"start": 1.5}, "start: 1.5 is not valid; expected a whole number >= 0"),
        ({"start": -1}, "start: -1 is not valid"),
        ({"num_frames": 0}, "num_frames: 0 is not valid; expected a whole number >= 1"),
        ({"stride": "2"}, "stride: '2' is not valid; expected a whole number >= 1"),
    ],
)
def test_read_video_names_a_bad_selection_or_frame_rate_before_reading(tmp_path, kwargs, message):
    """A folder's frame rate of NaN or 0 was taken (a clip at NaN fps, or the default in silence), and a
    selection of the wrong type ended in Python's TypeError; each is one line naming the argument, from
    `read_video` and from `check_video` alike."""
    folder = write_frames(_clip(4), tmp_path / "four")
    for reader in (read_video, check_video):
        with pytest.raises(ValueError, match=message):
            reader(folder, **kwargs)
    numpy_numbers = read_video(folder, start=np.int64(1), num_frames=np.int32(2), fps=np.float32(12))
    assert numpy_numbers.num_frames == 2 and numpy_numbers.fps == 12.0 and type(numpy_numbers.fps) is float


@pytest.mark.parametrize(
    ("name", "frames", "kwargs", "message"),
    [
        (
            "f.mp4",
            np.full((2, 8, 8, 3), 255.0, np.float32),
            {},
            r"frame 1: values from 255 to 255 \(float32\); give floats in 0-1 .* or integers in 0-255",
        ),
        ("f.gif", np.zeros((2, 8, 8), np.uint8), {}, r"shape \(2, 8, 8\) and dtype uint8"),
        ("f", np.full((2, 8, 8, 3), 256, np.int64), {}, r"values from 256 to 256 \(int64\)"),
        ("f", np.full((2, 8, 8, 3), np.nan, np.float32), {}, r"frame 1: NaN or infinite values \(float32\)"),
        ("f.mp4", np.zeros((2, 8, 8, 3), np.bool_), {}, "bool values are not pixels"),
        (
            "f.mp4",
            [np.zeros((8, 8, 3), np.uint8), np.zeros((4, 8, 3), np.uint8)],
            {},
            r"frame 2 is \(4, 8, 3\) uint8.*one size \(\(8, 8, 3\)\)",
        ),
        ("f.gif", iter([np.zeros((8, 8, 3), np.uint8), "frame"]), {}, "frame 2 is a str"),
        ("f.mp4", np.zeros((2, 8, 8, 3), np.uint8), {"fps": 0}, "^fps: 0 is not valid; expected a finite number > 0"),
        ("f.gif", np.zeros((2, 8, 8, 3), np.uint8), {"fps": float("nan")}, "^fps: nan is not valid"),  # the argument
        (
            "f.mp4",
            np.zeros((2, 8, 8, 3), np.uint8),
            {"times": np.array([0, 0.1])},
            r"more frames than its 2 times are for \(1\)",
        ),
        (
            "f.gif",
            np.zeros((2, 8, 8, 3), np.uint8),
            {"times": np.array([0, 0.1, 0.2, 0.3])},
            "2 frames, where its 4 times are for 3",
        ),
        (
            "f.mp4",
            np.zeros((2, 8, 8, 3), np.uint8),
            {"times": np.array([0, np.nan, 0.2])},
            "times: .* is not valid; expected increasing",
        ),
        ("f", np.zeros((2, 8, 8, 3), np.uint8), {"times": np.array([0, 0.2, 0.1])}, "times: .* is not valid"),
    ],
)
def test_write_video_names_frames_or_times_it_cannot_write_and_writes_nothing(tmp_path, name, frames, kwargs, message):
    """Float frames ended in PyAV's or Pillow's TypeError, a frame rate of 0 wrote an mp4, and times for
    another number of frames were taken; each is one line naming the file and what is wrong, and
    neither the file nor a temporary one is left."""
    with pytest.raises(ValueError, match=message):
        write_video(frames, tmp_path / name, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_frames_held_by_a_torch_tensor_are_a_clip():
    import torch

    from videop2p.io.video import as_frames

    frames = _clip(3)
    np.testing.assert_array_equal(as_frames(torch.from_numpy(frames)), frames)
    with pytest.raises(VideoError, match=r"Frames: values from -1 to 1 \(float32\); give floats in 0-1"):
        as_frames(torch.linspace(-1, 1, 2 * 8 * 8 * 3).reshape(2, 8, 8, 3))  # a VAE's -1..1, not pixels


def test_frames_of_floats_in_0_1_are_read_and_written_as_diffusers_gives_them(tmp_path):
    """Regression: the frames diffusers' pipelines give (`output_type="np"`: float32 in 0-1) were refused by
    `clip_from_frames` and `write_video` ("convert them first"); they are pixels times 255, rounded."""
    from videop2p.io.video import as_frames

    frames = np.linspace(0, 1, 3 * 8 * 6 * 3, dtype=np.float32).reshape(3, 8, 6, 3)
    pixels = np.round(frames * 255).astype(np.uint8)  # diffusers' numpy_to_pil
    np.testing.assert_array_equal(as_frames(frames), pixels)
    half = frames.astype(np.float16)  # a list of (H, W, 3) frames, in half precision
    np.testing.assert_array_equal(as_frames(list(half)), np.round(half.astype(np.float32) * 255).astype(np.uint8))
    np.testing.assert_array_equal(as_frames(pixels.astype(np.int64)), pixels)  # numpy's integers of a list
    write_video(frames, tmp_path / "floats")  # PNGs: lossless
    write_video(iter(list(frames)), tmp_path / "frames")
    for folder in ("floats", "frames"):
        np.testing.assert_array_equal(read_video(tmp_path / folder).frames, pixels)


def test_a_clip_is_refused_as_read_video_refuses_it_without_being_decoded(tmp_path):
    write_frames(_clip(5), tmp_path / "five")
    write_mp4(_clip(5, 32, 32), tmp_path / "five.mp4")
    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 100)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.new("RGB", (8, 8)).save(mixed / "1.png")
    Image.new("RGB", (16, 8)).save(mixed / "2.png")
    bad = [("missing.mp4", 0, 8, 1), ("zero.mp4", 0, 8, 1), ("junk.mp4", 0, 8, 1), ("mixed", 0, 2, 1)]
    bad += [(clip, *sel) for clip in ("five", "five.mp4") for sel in [(2, 8, 1), (5, None, 1), (1, 3, 2)]]
    for name, *selection in bad:  # the same one-line error as reading the clip
        with pytest.raises(VideoError) as read:
            read_video(tmp_path / name, *selection)
        with pytest.raises(VideoError) as checked:
            check_video(tmp_path / name, *selection)
        assert str(checked.value) == str(read.value), name
    for name in ("five", "five.mp4"):
        check_video(tmp_path / name, 1, 2, 2)  # frames 1 and 3: there
    plain = tmp_path / "plain"  # images without a suffix are frames too (by their content)
    plain.mkdir()
    for i, frame in enumerate(_clip(3)):
        Image.fromarray(frame).save(plain / f"frame{i}", format="PNG")
    check_video(plain, 0, 3)
    with pytest.raises(VideoError, match="has 3 frames.*fewer than the 4"):
        check_video(plain, 0, 4)


def test_truncated_mp4_gives_decoded_frames_or_clear_error(tmp_path):
    path = write_mp4(_clip(8, 32, 32), tmp_path / "a.mp4")
    data = path.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    with pytest.raises(VideoError):
        read_video(tmp_path / "cut.mp4", num_frames=8)


def test_a_clip_declares_its_frame_count_without_its_frames_decoded(tmp_path):
    frames = _clip(5, 32, 48)
    write_mp4(frames, tmp_path / "clip.mp4", fps=5)
    write_gif(frames, tmp_path / "clip.gif", fps=5)
    folder = write_frames(frames, tmp_path / "frames")
    (folder / "notes.txt").write_text("not a frame")  # passed over by the reader, not counted
    _encode(frames, tmp_path / "clip.mkv", "ffv1", rate=5)  # Matroska and WebM keep no frame count:
    _encode(frames, tmp_path / "clip.webm", "libvpx-vp9", rate=5)  # their packets are counted
    names = ("clip.mp4", "clip.gif", "frames", "clip.mkv", "clip.webm")
    assert {name: declared_frames(tmp_path / name) for name in names} == dict.fromkeys(names, 5)
    assert read_video(tmp_path / "clip.webm").num_frames == 5
    # a selection from the start of a file whose packets are counted reads only as many as it needs
    assert [declared_frames(tmp_path / "clip.mkv", n) for n in (3, 5, 9)] == [3, 5, 5]
    assert declared_frames(tmp_path / "clip.mp4", 3) == 5  # a count the file says is said whole
    assert frames_needed(0, 3, 1) == 3 and frames_needed(2, 3, 2) == 7 and frames_needed(4, None, 1) is None
    check_video(tmp_path / "clip.mkv", 2, 3, 1)  # frames 2-4 of 5
    with pytest.raises(VideoError, match="has 5 frames; start=2, stride=2 gives 2, fewer than the 3"):
        check_video(tmp_path / "clip.mkv", 2, 3, 2)  # the count is whole where the file holds too few
    (tmp_path / "none.mkv").write_bytes((tmp_path / "clip.mkv").read_bytes()[:200])  # its header, no frame
    assert declared_frames(tmp_path / "none.mkv") is None  # read_video names what is wrong with it
    with pytest.raises(VideoError, match="does not exist"):
        declared_frames(tmp_path / "missing.mp4")
    # the official selection (sample_start_idx, n_sample_frames, sample_frame_rate) over 10 frames
    assert [selected_count(10, *sel) for sel in [(0, None, 1), (3, None, 2), (3, 2, 2), (12, None, 1)]] == [10, 4, 2, 0]


def test_resize_modes():
    frames = np.zeros((2, 20, 40, 3), dtype=np.uint8)
    frames[:, :, 10:30] = 255
    crop = resize_frames(frames, 16, 16, ResizeMode.CROP)
    assert crop.shape == (2, 16, 16, 3) and crop.mean() > 240  # centre crop keeps the white middle
    pad = resize_frames(frames, 16, 16, "pad")
    assert pad.shape == (2, 16, 16, 3) and pad[:, :4].max() == 0  # black bars top and bottom
    stretch = resize_frames(frames, 16, 16, "stretch")
    assert stretch.shape == (2, 16, 16, 3) and stretch[:, :, 0].max() < 60


def test_a_crop_to_another_aspect_ratio_resamples_no_more_than_it_keeps(monkeypatch):
    """Regression: a crop scaled the whole frame to cover the size, then cut it, so 64x64 frames asked for
    at 100000x64 (`--size 100000x64`, even in a dry run) were scaled to 100000x100000 and the process was
    killed for memory. A crop resamples the part it keeps, as scaling whole and cutting shows it."""
    y, x = np.mgrid[0:48, 0:80]
    frame = np.stack([x * 3.0, y * 5.0, 127 + 120 * np.sin(x / 7.0) * np.cos(y / 5.0)], -1).clip(0, 255)
    frames = frame.astype(np.uint8)[None]  # (1, 48, 80, 3): smooth, with detail everywhere
    for width, height in [(40, 40), (64, 24), (24, 64), (200, 16), (36, 92)]:
        s = max(width / 80, height / 48)
        sw, sh = round(80 * s), round(48 * s)
        whole = np.asarray(Image.fromarray(frames[0]).resize((sw, sh), Image.Resampling.BICUBIC)).astype(int)
        x0, y0 = (sw - width) // 2, (sh - height) // 2
        cut = resize_frames(frames, width, height, "crop")[0].astype(int)
        assert np.abs(cut - whole[y0 : y0 + height, x0 : x0 + width]).max() <= 2, (width, height)
    resize = Image.Image.resize

    def kept_only(im, size, *args, **kwargs):  # refused before Pillow allocates it: the old way took 30 GB
        assert size == (100000, 64), f"resampled to {size}, not the 100000x64 it keeps"
        return resize(im, size, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", kept_only)
    assert resize_frames(np.zeros((2, 64, 64, 3), np.uint8), 100000, 64, "crop").shape == (2, 64, 100000, 3)


@pytest.mark.parametrize("mode", ["crop", "pad", "stretch"])
def test_a_video_read_for_a_smaller_size_shows_what_reading_it_whole_and_resizing_shows(tmp_path, mode):
    blocks = np.array([[200, 40, 30], [30, 160, 60], [40, 60, 190], [220, 220, 200]], np.uint8)
    frame = np.repeat(np.repeat(blocks.reshape(1, 4, 3), 64, axis=0), 64, axis=1)  # (64, 256, 3): four blocks
    path = write_mp4(np.stack([frame, frame]), tmp_path / "wide.mp4", 8.0)
    size = (32, 16)  # a quarter of the width: converted at 64x16 (crop), 32x8 (pad) or 32x16 (stretch)

    def resize(f):
        return resize_frames(f[None], *size, mode)[0]

    whole = read_video(path, transform=resize).frames.astype(int)
    small = read_video(path, transform=resize, small=size).frames.astype(int)
    assert small.shape == whole.shape == (2, 16, 32, 3)
    assert np.abs(small - whole).mean() < 3  # the same picture: FFmpeg's area filter and PIL's bicubic differ at edges
    row = whole[:, 8]  # (F, W, 3): the middle row, through every block the size keeps
    flat = [c for c in range(2, size[0] - 2) if np.abs(row[:, c - 2 : c + 3] - row[:, c : c + 1]).max() <= 3]
    assert len(flat) >= 8 and np.abs(small[:, 8, flat] - row[:, flat]).max() <= 4  # inside the blocks


def test_a_folder_of_jpeg_frames_read_for_a_smaller_size_is_decoded_smaller(tmp_path):
    from videop2p.io.video import _draft

    ramp = np.add.outer(np.linspace(20, 220, 128), np.linspace(0, 30, 256))  # (128, 256) a smooth picture
    frame = np.stack([ramp, ramp[::-1], np.full_like(ramp, 90)], axis=-1).astype(np.uint8)
    for i in (1, 2):
        Image.fromarray(frame).save(tmp_path / f"{i}.jpg", quality=95)
    Image.fromarray(frame).save(tmp_path / "frame.png")
    with Image.open(tmp_path / "1.jpg") as img:
        _draft(img, (40, 16))  # 1/4 covers 40x16 (64x32); 1/8 (32x16) would not
        assert img.size == (64, 32)
    with Image.open(tmp_path / "frame.png") as img:
        _draft(img, (40, 16))
        assert img.size == (256, 128)  # another format decodes whole
    (tmp_path / "frame.png").unlink()
    size = (40, 16)

    def resize(f):
        return resize_frames(f[None], *size)[0]

    whole = read_video(tmp_path, transform=resize).frames.astype(int)
    small = read_video(tmp_path, transform=resize, small=size).frames.astype(int)
    assert small.shape == whole.shape == (2, 16, 40, 3) and np.abs(small - whole).max() <= 4


def test_resolve_size_keeps_aspect_and_validates():
    # SD 1.5: sides of any multiple of 8 (the VAE's factor); a size it picks alone, of 64 (every level halves)
    assert resolve_size((640, 360), None, None, base=512, multiple=8, step=64) == (704, 384)
    assert resolve_size((640, 360), None, None, base=512, multiple=8) == (680, 384)
    assert resolve_size((640, 360), 512, None, base=512, multiple=8, step=64) == (512, 288)  # 16:9 kept
    assert resolve_size((360, 640), None, 512, base=512, multiple=8, step=64) == (288, 512)
    assert resolve_size((100, 100), 64, 64, base=512, multiple=8) == (64, 64)
    assert resolve_size((640, 360), 520, 296, base=512, multiple=8, step=64) == (520, 296)
    with pytest.raises(OptionError, match="^video.width: 500 .*multiples of 8.*496 and 504") as e:
        resolve_size((640, 360), 500, 256, base=512, multiple=8, step=64)
    assert e.value.option == "width"  # named by whatever gave it: a flag, a file's key, a field
    with pytest.raises(OptionError, match="height: 0"):
        resolve_size((640, 360), 64, 0, base=512, multiple=8, step=64)


def test_side_by_side_labels_and_layout_one_frame_at_a_time():
    a, b = _clip(3, 24, 32), _clip(3, 16, 40)
    frames = side_by_side_frames([a, b], ["source", "edit"], label_height=12, min_width=32)
    first = next(frames)
    assert first.shape == (36, 72, 3)  # a frame, not the clip
    grid = np.stack([first, *frames])
    assert grid.shape == (3, 36, 72, 3)
    assert (grid[:, :12] < 128).any()  # text drawn in the header
    np.testing.assert_array_equal(grid[:, 12:, :32], a)
    np.testing.assert_array_equal(grid[:, 12:28, 32:], b)
    assert not grid[:, 28:, 32:].any()  # the shorter video is padded below
    with pytest.raises(ValueError, match="different frame counts"):
        side_by_side_frames([a, b[:2]], ["x", "y"])  # refused at the call, before any frame


def test_narrow_tiles_are_enlarged_by_one_whole_factor_so_their_labels_fit():
    a, b = _clip(2, 24, 32), _clip(2, 16, 40)
    grid = np.stack(list(side_by_side_frames([a, b], ["reconstruction", "edit"], min_width=64)))
    # the narrowest tile (32) needs x2 to reach 64; both tiles take it, each pixel a 2x2 block
    head = max(12, 48 // 8)
    assert grid.shape == (2, head + 48, 64 + 80, 3)
    np.testing.assert_array_equal(grid[:, head:, :64], a.repeat(2, axis=1).repeat(2, axis=2))
    np.testing.assert_array_equal(grid[:, head : head + 32, 64:], b.repeat(2, axis=1).repeat(2, axis=2))
    assert not grid[:, head + 32 :, 64:].any()
    assert [preview_factor(w, 128) for w in (64, 100, 128, 512)] == [2, 2, 1, 1]
    # the bundled model's 64-pixel frames, enlarged to 128, hold "reconstruction" whole (its ink runs
    # past 64 pixels); in a 64-pixel tile it is cut to fit, with an ellipsis
    whole, cut = ((_label("reconstruction", w, 16) < 128).any(axis=-1) for w in (128, 64))
    assert 64 < np.flatnonzero(whole.any(axis=0)).max() < 100
    assert np.flatnonzero(cut.any(axis=0)).max() < 62
    assert not np.array_equal(whole[:, :64], cut)


def test_a_gif_written_from_frames_as_they_come_equals_one_written_from_the_array(tmp_path):
    frames = _clip(6, 24, 32)
    whole = write_gif(frames, tmp_path / "whole.gif", fps=10)
    streamed = write_video(iter(list(frames)), tmp_path / "streamed.gif", fps=10)
    assert whole.read_bytes() == streamed.read_bytes()
    assert read_video(streamed).num_frames == 6
    with pytest.raises(VideoError, match="no frames"):
        write_gif(iter([]), tmp_path / "none.gif")
    assert not (tmp_path / "none.gif").exists()


_WRITE_IN_A_NEW_PROCESS = """
import sys
import numpy as np
from videop2p.io.writing import write_mp4
texture = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
write_mp4([texture[2 * t : 2 * t + 64, t : t + 64] for t in range(8)], sys.argv[1], 8.0)  # a pan over it
"""


@pytest.mark.skipif(sys.platform != "linux", reason="MALLOC_PERTURB_ is glibc's")
def test_the_same_frames_give_the_same_mp4_whatever_the_process_allocated_before(tmp_path):
    # glibc fills every allocation with MALLOC_PERTURB_'s byte: a writer that reads memory it has not
    # set (x264 planning B-frames did) writes different files in the two processes.
    files = []
    for byte in ("0", "165"):
        env = {**os.environ, "MALLOC_PERTURB_": byte, "MALLOC_MMAP_THRESHOLD_": str(1 << 30)}
        files.append(tmp_path / f"perturb{byte}.mp4")
        subprocess.run([sys.executable, "-c", _WRITE_IN_A_NEW_PROCESS, str(files[-1])], env=env, check=True)
    assert files[0].read_bytes() == files[1].read_bytes()
    assert read_video(files[0]).num_frames == 8


_READ_AND_REPORT_PEAK = """
import re, sys
from videop2p.io.video import read_video

def peak():  # this process's own high-water mark (ru_maxrss would carry the parent's over from the fork)
    with open("/proc/self/status") as f:
        return int(re.search(r"VmHWM:\\s+(\\d+) kB", f.read()).group(1)) * 1024

before = peak()
frames = read_video(sys.argv[1]).frames
print((peak() - before) / frames.nbytes)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="/proc/self/status is Linux's")
def test_a_long_clip_is_held_about_once_not_twice_while_it_is_read(tmp_path):
    # 96 frames of 512x512: the decoded frames are copied into the clip's array one at a time and each
    # let go of at once; stacking them all at the end held the clip twice (2.2x measured before)
    base = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8).repeat(4, 0).repeat(4, 1)
    write_mp4((base[None] + np.arange(96, dtype=np.uint8)[:, None, None, None]), tmp_path / "long.mp4", fps=24.0)
    run = subprocess.run(
        [sys.executable, "-c", _READ_AND_REPORT_PEAK, str(tmp_path / "long.mp4")],
        check=True,
        capture_output=True,
        text=True,
    )
    assert float(run.stdout) < 1.6  # peak growth of the reader's process over the clip's own bytes


def _many_colours(n: int, h: int = 40, w: int = 48) -> np.ndarray:
    """Frames of noise: far more than a GIF's 256 colours, so each palette is a real median cut."""
    return np.random.default_rng(1).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


def test_a_gif_is_the_file_pillow_writes_for_any_number_of_palette_threads(tmp_path):
    frames = _many_colours(7)
    images = [Image.fromarray(f) for f in frames]
    plain = tmp_path / "pillow.gif"  # Pillow's own GIF of the RGB frames: what the writer wrote before threads
    images[0].save(plain, format="GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    for workers in (1, 2, 3):
        out = write_video(iter(list(frames)), tmp_path / f"w{workers}.gif", fps=10, workers=workers)
        assert out.read_bytes() == plain.read_bytes(), workers
    assert read_video(tmp_path / "w3.gif").num_frames == 7


def _gif_timing(path) -> tuple[list[int], list[int]]:
    """A GIF's frames (read by their first pixel's red, frame index x 10) and their delays (ms)."""
    gif, shown, delays = Image.open(path), [], []
    for i in range(gif.n_frames):
        gif.seek(i)
        delays.append(gif.info["duration"])
        shown.append(int(np.asarray(gif.convert("RGB"))[0, 0, 0]) // 10)
    return shown, delays


@pytest.mark.parametrize("fps", [8, 30000 / 1001, 50, 60, 120])
def test_a_gif_plays_at_the_clips_speed(tmp_path, fps):
    """Regression: every frame was given round(1000 / fps) ms, which GIF's centiseconds cut to 3 cs at
    30 fps (11% fast) and to 1 cs at 60 fps, a delay browsers show as 10 cs (6x slow); 120 fps had none."""
    frames = (np.arange(24)[:, None, None, None] * 10 + np.zeros((24, 8, 8, 3))).astype(np.uint8)
    shown, delays = _gif_timing(write_gif(frames, tmp_path / "clip.gif", fps))
    assert min(delays) >= 20 and all(d % 10 == 0 for d in delays)  # none shown slower by a browser
    starts = np.cumsum([0, *delays[:-1]]) / 1000
    assert np.abs(starts - np.array(shown) / fps).max() <= 0.005 + 1e-9  # each frame at its own time, to the cs
    assert abs(sum(delays) - 1000 * len(frames) / fps) < 10  # the clip's duration, to the centisecond
    assert len(shown) == len(frames) if fps <= 50 else len(shown) < len(frames)  # above 50 fps, some left out


def test_a_gif_makes_palettes_only_for_the_frames_it_shows(tmp_path, monkeypatch):
    """Above 50 fps a GIF leaves frames out; their palettes, most of the writing time, are not made (at
    120 fps more than half of them; at most the last frame's is made and then left out)."""
    import videop2p.io.writing as writing

    made = []
    paletted = writing._paletted
    monkeypatch.setattr(writing, "_paletted", lambda frame: made.append(int(frame[0, 0, 0])) or paletted(frame))
    frames = (np.arange(24)[:, None, None, None] * 10 + np.zeros((24, 8, 8, 3))).astype(np.uint8)
    shown, _ = _gif_timing(write_gif(iter(frames), tmp_path / "clip.gif", 120.0, workers=2))
    assert len(shown) < len(frames) / 2 and sorted(made)[: len(shown)] == [10 * i for i in shown]
    assert len(made) <= len(shown) + 1


def test_uneven_frames_keep_their_own_times_in_a_gif(tmp_path):
    """A GIF of frames shown at their own times (a variable rate) gives each its own delay, read back
    as such; frames under 2 cs apart are left out."""
    frames = (np.arange(6)[:, None, None, None] * 10 + np.zeros((6, 8, 8, 3))).astype(np.uint8)
    times = np.array([0.0, 0.1, 0.3, 0.31, 0.6, 0.7, 1.0])  # the fourth frame starts 1 cs after the third
    shown, delays = _gif_timing(write_gif(frames, tmp_path / "clip.gif", 8.0, times=times))
    assert shown == [0, 1, 2, 4, 5] and delays == [100, 200, 300, 100, 300]
    video = read_video(tmp_path / "clip.gif")
    assert video.times == pytest.approx([0.0, 0.1, 0.3, 0.6, 0.7, 1.0])


@pytest.mark.parametrize(("ms", "fps"), [(0, 10), (10, 10), (20, 50), (40, 25)])
def test_a_gifs_rate_is_read_as_browsers_play_it(tmp_path, ms, fps):
    """A GIF's frames of 0 or 1 cs are shown for 10 cs: read so, the edit lasts as long as the clip seen."""
    images = [Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)) for i in range(4)]
    images[0].save(tmp_path / "a.gif", save_all=True, append_images=images[1:], duration=ms, loop=0)
    assert read_video(tmp_path / "a.gif").fps == pytest.approx(fps)


def test_gif_palettes_are_made_in_order_reading_at_most_twice_the_threads_ahead():
    frames, pulled = _many_colours(20), []

    def source():
        for i, f in enumerate(frames):
            pulled.append(i)
            yield f

    made = paletted_frames(source(), workers=3)
    first = next(made)
    assert len(pulled) == 6  # the first palette is returned once 2 x 3 frames are read, not the clip
    rest = list(made)
    assert len(pulled) == 20 and len(rest) == 19
    for frame, image in zip(frames, [first, *rest], strict=True):
        single = Image.fromarray(frame).convert("P", palette=Image.Palette.ADAPTIVE)
        assert image.mode == "P" and image.tobytes() == single.tobytes()
        assert image.getpalette() == single.getpalette()


def test_a_bad_frame_in_a_threaded_gif_is_the_error_and_nothing_is_written(tmp_path):
    frames = [*_many_colours(5), np.zeros((40, 48, 3), np.float64), *_many_colours(5)]
    with pytest.raises(TypeError):
        write_gif(iter(frames), tmp_path / "bad.gif", workers=2)
    assert list(tmp_path.iterdir()) == []  # neither the GIF nor its temporary


@pytest.mark.parametrize(
    ("target", "label"),
    [
        ("a blue circle moving on the grass", "red > blue"),
        ("a red circle moving on the snow", "grass > snow"),
        ("a big red circle moving on the grass", "+big"),
        ("a circle moving on the grass", "-red"),
        ("A Red Circle moving on the grass", "same prompt"),
        ("a red circle moving on the grass.", "same prompt"),  # as prompt-to-prompt compares words
        ("a red  circle moving on the  snow", "grass > snow"),  # a double space is no word
        ("a blue square moving on the grass in the evening light", "red circle > blue square, +in the evening light"),
    ],
)
def test_an_edit_is_labelled_by_what_it_changes_so_long_prompts_stay_apart(target, label):
    from videop2p.outputs import edit_label

    assert edit_label("a red circle moving on the grass", target) == label


def test_too_few_frames_names_the_count_in_words_that_read(tmp_path):
    from videop2p.io.video import VideoError, read_video

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "one.gif")
    with pytest.raises(VideoError, match=r"has 1 frame; start=0, stride=1 gives 1, .*at most 1 frame \(--frames 1;"):
        read_video(tmp_path / "one.gif", num_frames=8)
    assert read_video(tmp_path / "one.gif", num_frames=1).frames.shape[0] == 1  # one frame is a clip too


def test_the_full_size_pass_over_a_folder_of_frames_decodes_one_frame_at_a_time(tmp_path, monkeypatch):
    import videop2p.io.video as video_io

    frames = _clip(8)
    folder = write_frames(frames, tmp_path / "frames")
    (folder / "notes.txt").write_text("not a frame")
    decoded = []
    to_rgb = video_io._to_rgb
    monkeypatch.setattr(video_io, "_to_rgb", lambda img, *cache: decoded.append(1) or to_rgb(img, *cache))
    passing = video_io.iter_video(folder, 1, 3, stride=2)
    first = next(passing)
    assert len(decoded) == 1  # only the first selected frame is decoded yet
    rest = list(passing)
    assert len(decoded) == 3  # frames 1, 3 and 5 only; none after the last
    np.testing.assert_array_equal(np.stack([first, *rest]), read_video(folder, 1, 3, stride=2).frames)
    np.testing.assert_array_equal(np.stack([first, *rest]), frames[1:7:2])


def test_mask_overlays_one_frame_at_a_time_tint_exactly_the_upsampled_masks():
    import torch

    from videop2p.outputs import overlay_frames

    frames = _clip(3, 24, 32)
    masks = torch.zeros(3, 6, 8, dtype=torch.bool)  # working-size masks, a quarter of the frame's side
    masks[1, 2:4, 3:5] = True
    masks[2] = True
    out = list(overlay_frames(frames, masks, min_width=32))
    assert len(out) == 3 and out[0].shape == frames.shape[1:]
    enlarged = list(overlay_frames(frames, masks, min_width=64))  # a preview of narrow frames, x2
    for small, large in zip(out, enlarged, strict=True):
        np.testing.assert_array_equal(large, small.repeat(2, axis=0).repeat(2, axis=1))
    np.testing.assert_array_equal(out[0], frames[0])  # an empty mask tints nothing
    inside = np.zeros((24, 32), dtype=bool)
    inside[8:16, 12:20] = True  # the mask's cells, scaled by 4 (nearest)
    tinted = np.round(0.5 * frames[1].astype(np.float32) + 0.5 * np.array([255, 40, 40], np.float32))
    np.testing.assert_array_equal(out[1][inside], tinted[inside].astype(np.uint8))
    np.testing.assert_array_equal(out[1][~inside], frames[1][~inside])
    assert (out[2] != frames[2]).any(axis=-1).mean() > 0.9  # a full mask tints the whole frame


GREEN = (30, 200, 40)  # where BT.601 and BT.709 differ most: read with the other matrix it is (17, 172, 34)


def _one_colour_mp4(path, width: int, height: int, matrix: int, said: bool):
    """A lossless H.264 frame of GREEN, its YUV made with `matrix` (FFmpeg's number: 1 BT.709, 5 BT.601),
    which the file says when `said`."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=8)
        s.width, s.height, s.pix_fmt, s.options = width, height, "yuv420p", {"crf": "0"}
        if said:
            s.codec_context.colorspace = matrix
        rgb = np.full((height, width, 3), GREEN, np.uint8)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        c.mux(s.encode(frame.reformat(format="yuv420p", dst_colorspace=matrix, dst_color_range=1)))
        c.mux(s.encode())
    return path


@pytest.mark.parametrize(
    ("size", "matrix", "said"),
    [((1280, 720), 1, False), ((640, 480), 5, False), ((1280, 720), 5, True), ((640, 480), 1, True)],
)
def test_colours_are_read_with_the_matrix_the_file_says_else_the_one_players_take(tmp_path, size, matrix, said):
    """Unsaid, players take BT.709 for HD and BT.601 below; what the file says is read as it says."""
    frame = read_video(_one_colour_mp4(tmp_path / "a.mp4", *size, matrix, said)).frames[0]
    assert np.abs(frame[size[1] // 2, size[0] // 2].astype(int) - GREEN).max() <= 3


def test_written_mp4s_say_their_colours_so_players_show_them_as_written(tmp_path):
    """Regression: the file was BT.601 without saying so, and players that take an unsaid HD file for
    BT.709 (most) showed its greens 26 levels darker, the kept background of an edit included."""
    frames = np.full((2, 720, 1280, 3), GREEN, np.uint8)
    with av.open(str(write_mp4(frames, tmp_path / "a.mp4", 8.0))) as c:
        video = c.streams.video[0].codec_context
        assert (video.colorspace, video.color_primaries, video.color_trc, video.color_range) == (1, 1, 1, 1)
        shown = next(c.decode(video=0)).to_ndarray(format="rgb24", src_colorspace=1)  # as a BT.709 player
    assert np.abs(shown[360, 640].astype(int) - GREEN).max() <= 3


def _fields_clip(path, interlaced: bool, frames: int = 6, height: int = 64, width: int = 96) -> None:
    """A bright box moving right on a dark ground, coded as interlaced fields (top field first, the bottom
    field taken half a frame later, 6 pixels further, as a camcorder takes them) or as progressive frames."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"crf": "10", **({"x264-params": "tff=1"} if interlaced else {})}
        for k in range(frames):
            frame = np.full((height, width, 3), 40, np.uint8)
            for field, dx in ((0, 0), (1, 6 if interlaced else 0)):
                frame[field::2][10:22, 10 + 12 * k + dx : 30 + 12 * k + dx] = 220  # (H/2, W, 3) view of one field
            c.mux(s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        c.mux(s.encode())


def _combing(frames: np.ndarray) -> float:
    """Mean difference of each even row from the odd row below it: fields from two moments comb."""
    grey = frames.astype(float).mean(-1)  # (F, H, W)
    return float(np.abs(grey[:, 0:-1:2] - grey[:, 1::2]).mean())


def test_an_interlaced_clip_is_deinterlaced_as_it_is_read(tmp_path):
    from videop2p.io.video import iter_video, probe_video

    _fields_clip(tmp_path / "fields.mp4", interlaced=True)
    _fields_clip(tmp_path / "frames.mp4", interlaced=False)
    with av.open(str(tmp_path / "fields.mp4")) as c:
        stored = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])  # (F, H, W, 3) as stored
    fields, frames = read_video(tmp_path / "fields.mp4"), read_video(tmp_path / "frames.mp4")
    assert _combing(stored) > 6 and _combing(fields.frames) < 1.5 < _combing(stored) / 4  # the combs are gone
    assert len(fields.frames) == len(stored) == 6 and fields.fps == frames.fps == 25  # one frame per frame
    assert fields.times is None and frames.times is None  # each at its own time, evenly spaced
    pasted = np.stack(list(iter_video(tmp_path / "fields.mp4", 1, 4, 1)))  # the pasted writers' reading too
    assert np.array_equal(pasted, fields.frames[1:5])
    assert np.array_equal(read_video(tmp_path / "fields.mp4", 2, 2).frames, fields.frames[2:4])
    with av.open(str(tmp_path / "frames.mp4")) as c:  # a progressive clip is not filtered
        assert np.array_equal(frames.frames, np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]))
    (said,) = probe_video(tmp_path / "fields.mp4").conversions
    assert "is interlaced (two fields in each frame): it is deinterlaced as it is read" in said
    assert probe_video(tmp_path / "frames.mp4").conversions == ()


def test_a_stream_joined_from_parts_of_two_sizes_is_read_at_its_first_size_evenly_timed(tmp_path, caplog):
    """Two MPEG-TS files of different sizes joined byte for byte (a recorder's or a stream's parts): the
    second part's frames are scaled to the first's size, as FFmpeg does, said once; its timestamps start
    again, so the frames are timed evenly (their times would not increase) and an mp4 of them is written."""
    import logging

    from videop2p.io.video import iter_video, probe_video

    parts = []
    for k, (w, h) in enumerate(((48, 32), (64, 48))):
        path = tmp_path / f"{k}.ts"
        with av.open(str(path), "w", format="mpegts") as c:
            s = c.add_stream("libx264", rate=8)
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            for i in range(3):
                frame = np.full((h, w, 3), 40 + 60 * k + 10 * i, np.uint8)
                c.mux(s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            c.mux(s.encode())
        parts.append(path.read_bytes())
    joined = tmp_path / "joined.ts"
    joined.write_bytes(b"".join(parts))
    with caplog.at_level(logging.WARNING, logger="videop2p.io.video"):
        video = read_video(joined)
    assert video.frames.shape == (6, 32, 48, 3) and video.times is None and probe_video(joined).size == (48, 32)
    assert [r.getMessage() for r in caplog.records] == [
        f"{joined} changes its frame size at frame 3 (48x32 to 64x48): its frames are read at 48x32, the first "
        "frame's, as FFmpeg scales them"
    ]
    assert np.abs(video.frames[4].astype(int) - 110).max() <= 3  # the second part's second frame, scaled
    assert [f.shape for f in iter_video(joined, 0, 6)] == [(32, 48, 3)] * 6  # as pasting reads them
    back = read_video(write_mp4(video.frames, tmp_path / "out.mp4", video.fps, times=video.times))
    assert back.frames.shape == (6, 32, 48, 3)


def test_a_stream_without_an_average_rate_keeps_its_own_rate(tmp_path):
    """An IVF file (AV1's or VP9's raw container) says no average frame rate: a 12 fps clip was read at
    8 fps (the default for a folder of frames), its last frame lasting 1/8 s; its rate is FFmpeg's guess
    from the stream's own rate and time base, as its frames' times are."""
    from fractions import Fraction

    from videop2p.io.video import probe_video

    frames = _clip(6, 48, 64)
    with av.open(str(tmp_path / "clip.ivf"), "w", format="ivf") as container:
        stream = container.add_stream("libvpx", rate=Fraction(12))
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")))
        container.mux(stream.encode())
    with av.open(str(tmp_path / "clip.ivf")) as container:
        assert not container.streams.video[0].average_rate  # what the file says (PyAV 18: None; 19: 0/0)
    video = read_video(tmp_path / "clip.ivf")
    assert video.fps == probe_video(tmp_path / "clip.ivf").fps == 12.0
    assert video.times is None and video.num_frames == 6  # evenly spaced at its rate


def test_a_folder_of_frames_is_given_its_frame_rate_and_a_video_keeps_its_own(tmp_path):
    """A folder of frames has no rate: 8 frames a second (the authors' outputs'), or the one given, divided by
    the stride as a video's is; a video or an animated image keeps its own, and giving one is refused
    before anything is decoded."""
    from videop2p.config import DEFAULT_FPS
    from videop2p.io.video import check_video

    folder = write_frames(_clip(6), tmp_path / "frames")
    assert read_video(folder).fps == DEFAULT_FPS == 8.0
    assert read_video(folder, fps=24.0).fps == 24.0 and read_video(folder, 0, 3, 2, fps=24.0).fps == 12.0
    check_video(folder, fps=24.0)
    video = write_mp4(_clip(6), tmp_path / "clip.mp4", 30.0)
    for check in (lambda: read_video(video, fps=24.0), lambda: check_video(video, fps=24.0)):
        with pytest.raises(VideoError, match="clip.mp4 keeps its own frame rate; a frame rate .24 fps. is given to a"):
            check()
    with pytest.raises(VideoError, match="does not exist"):  # what is missing is named as missing
        check_video(tmp_path / "missing.mp4", fps=24.0)


def _rgba_clip(n: int = 4, h: int = 32, w: int = 48) -> np.ndarray:
    """(F, H, W, 4) frames: a red square, opaque, with a half-transparent edge, over green that is wholly
    transparent (the colour a transparent clip keeps under its alpha is no part of the picture)."""
    frames = np.zeros((n, h, w, 4), dtype=np.uint8)
    frames[..., 1] = 200  # green, alpha 0
    for i in range(n):
        frames[i, 8:24, 8 + 2 * i : 24 + 2 * i] = (220, 30, 0, 255)
        frames[i, 8:24, 20 + 2 * i : 24 + 2 * i, 3] = 128
    return frames


def _encode_rgba(frames: np.ndarray, path, codec: str, pix_fmt: str) -> None:
    with av.open(str(path), "w") as c:
        stream = c.add_stream(codec, rate=8)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgba")):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)


def test_over_black_is_what_pillow_makes_of_a_picture_with_alpha():
    from videop2p.io.video import over_black

    rgba = np.random.default_rng(0).integers(0, 256, size=(16, 16, 4), dtype=np.uint8)
    pillow = Image.alpha_composite(Image.new("RGBA", (16, 16), (0, 0, 0, 255)), Image.fromarray(rgba))
    assert np.array_equal(over_black(rgba), np.asarray(pillow.convert("RGB")))
    deep = over_black(rgba.astype(np.uint16) * 257)  # the same picture at 16 bits, finer
    assert deep.dtype == np.uint16 and np.abs(np.rint(deep / 257) - over_black(rgba)).max() <= 1
    assert over_black(np.array([[[65535, 1000, 0, 65535]]], dtype=np.uint16)).tolist() == [[[65535, 1000, 0]]]
    wide = np.random.default_rng(1).integers(0, 65536, size=(64, 64, 4), dtype=np.uint16)
    product = wide[..., :3].astype(np.int64) * wide[..., 3:]
    assert np.array_equal(over_black(wide), (2 * product + 65535) // (2 * 65535))  # rounded, halves up


@pytest.mark.parametrize(
    ("name", "codec", "pix_fmt", "exact"),
    [
        ("lossless.mov", "png", "rgba", True),  # PNG in a MOV: what a folder of the same PNGs reads, to the bit
        ("alpha.mkv", "ffv1", "yuva420p", False),
        ("alpha.webm", "libvpx-vp9", "yuva420p", False),  # FFmpeg's VP9 decoder leaves its alpha out
        ("prores4444.mov", "prores_ks", "yuva444p10le", False),  # deep: read at 16 bits, then rounded
    ],
)
def test_a_video_with_alpha_reads_composited_over_black_as_pictures_with_alpha_do(
    tmp_path, name, codec, pix_fmt, exact
):
    from videop2p.io.video import probe_video

    rgba = _rgba_clip()
    _encode_rgba(rgba, tmp_path / name, codec, pix_fmt)
    (tmp_path / "pngs").mkdir()
    for k, frame in enumerate(rgba, start=1):
        Image.fromarray(frame).save(tmp_path / "pngs" / f"{k}.png")
    pictures = read_video(tmp_path / "pngs").frames
    assert pictures[:, 0, 0].max() == 0  # the transparent green is black, as Pillow composites it
    video = read_video(tmp_path / name).frames
    if exact:
        assert np.array_equal(video, pictures)
    else:  # a lossy or chroma-subsampled codec: within its own error, and never the green it stored
        assert np.abs(video.astype(int) - pictures).mean() < 3 and video[..., 1].max() < 60
    (note,) = probe_video(tmp_path / name).conversions
    assert "alpha channel" in note and "composited over black" in note and "opaque" in note


def _tiff16(path, rgb, orientation):
    """An uncompressed TIFF of three 16-bit samples a pixel (a VFX plate's) with an Orientation tag, as a
    scanner or an image tool writes it (TIFF 6.0: an 8-byte header, one IFD, the bit sizes, the strip)."""
    import struct

    height, width, _ = rgb.shape
    data = np.ascontiguousarray(rgb, dtype="<u2").tobytes()
    entries = 11
    bits_at = 8 + 2 + entries * 12 + 4
    tags = [  # tag, type (3 SHORT, 4 LONG), count, value or offset
        (256, 3, 1, width),
        (257, 3, 1, height),
        (258, 3, 3, bits_at),
        (259, 3, 1, 1),  # no compression
        (262, 3, 1, 2),  # RGB
        (273, 4, 1, bits_at + 6),
        (274, 3, 1, orientation),
        (277, 3, 1, 3),
        (278, 3, 1, height),
        (279, 4, 1, len(data)),
        (284, 3, 1, 1),  # chunky
    ]
    ifd = struct.pack("<H", entries) + b"".join(
        struct.pack("<HHIHH", t, k, n, v, 0) if k == 3 and n == 1 else struct.pack("<HHII", t, k, n, v)
        for t, k, n, v in tags
    )
    path.write_bytes(
        b"II*\0" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + struct.pack("<3H", 16, 16, 16) + data
    )


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("suffix", ["jpg", "png", "tif", "webp"])
def test_pictures_stored_turned_are_read_upright_as_viewers_show_them(tmp_path, suffix, orientation):
    """A phone's portrait photos are stored sideways with an EXIF Orientation that viewers turn them by: a
    folder of them, or one of them, is read (and its size said, and its frames read again for pasting)
    as Pillow's `exif_transpose` shows it, for each of the eight orientations."""
    from PIL import ImageOps

    from videop2p.io.video import iter_video, probe_video

    stored = _clip(2, 24, 40)
    exif = Image.Exif()
    exif[0x0112] = orientation
    options = {"jpg": {"quality": 100}, "webp": {"lossless": True}}.get(suffix, {})
    for k, frame in enumerate(stored, start=1):
        Image.fromarray(frame).save(tmp_path / f"{k}.{suffix}", exif=exif, **options)
    with Image.open(tmp_path / f"1.{suffix}") as img:
        shown = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    turned = orientation >= 5
    assert shown.shape[:2] == ((40, 24) if turned else (24, 40))  # the check itself turns what it should
    assert probe_video(tmp_path).size == probe_video(tmp_path / f"1.{suffix}").size == (shown.shape[1], shown.shape[0])
    np.testing.assert_array_equal(read_video(tmp_path).frames[0], shown)
    np.testing.assert_array_equal(read_video(tmp_path / f"1.{suffix}").frames[0], shown)
    np.testing.assert_array_equal(next(iter_video(tmp_path, 0, 1)), shown)


@pytest.mark.parametrize("orientation", [3, 6, 7])
def test_a_16_bit_tiff_stored_turned_is_read_upright_at_its_own_depth(tmp_path, orientation):
    """FFmpeg, which reads 16-bit TIFFs at their depth, leaves their pixels as stored; they are turned as
    the Orientation tag says, as Pillow turns an 8-bit TIFF, in the 8-bit frames and the 16-bit signal."""
    from videop2p.io.video import ORIENTED, iter_video, probe_video, sixteen_to_eight

    y, x = np.mgrid[0:24, 0:40]
    rgb = np.stack([x * 1000 + 7, y * 1300, (x + 2 * y) * 500], -1).astype(np.uint16)  # no symmetry
    _tiff16(tmp_path / "1.tif", rgb, orientation)
    shown = np.ascontiguousarray(ORIENTED[orientation](rgb))
    with Image.open(tmp_path / "1.tif") as img:  # Pillow's own reading (cut to 8 bits) turns it the same way
        assert np.array_equal(np.asarray(img.convert("RGB")), ORIENTED[orientation](rgb >> 8))
    assert probe_video(tmp_path).size == (shown.shape[1], shown.shape[0])
    np.testing.assert_array_equal(read_video(tmp_path).frames[0], sixteen_to_eight(shown))
    np.testing.assert_array_equal(next(iter_video(tmp_path, 0, 1, signal=True)), shown)


def test_a_turned_jpeg_decoded_smaller_is_the_upright_one_decoded_smaller(tmp_path):
    """A JPEG decoded at a fraction of its size for a small working size (`_draft`) is asked for the
    fraction that covers the turned size: the same pixels as the same photo stored upright."""
    from PIL import ImageOps

    upright, turned = tmp_path / "upright", tmp_path / "turned"
    upright.mkdir()
    turned.mkdir()
    y, x = np.mgrid[0:320, 0:192]
    photo = np.stack([x % 64 * 4, y % 80 * 3, (x + y) % 256], -1).astype(np.uint8)  # 192x320, portrait
    Image.fromarray(photo).save(upright / "1.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 320x192, shown turned a quarter clockwise
    Image.fromarray(np.rot90(photo, k=1)).save(turned / "1.jpg", quality=95, exif=exif)
    with Image.open(turned / "1.jpg") as img:
        assert ImageOps.exif_transpose(img).size == (192, 320)

    def small(frame):
        return np.asarray(Image.fromarray(frame).resize((24, 40), Image.Resampling.BOX))

    a = read_video(upright, transform=small, small=(24, 40)).frames
    b = read_video(turned, transform=small, small=(24, 40)).frames
    assert a.shape == b.shape == (1, 40, 24, 3)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 2  # the two JPEGs' own losses


def test_avif_and_jfif_frames_are_counted_and_read_and_heif_pictures_are_refused_by_name(tmp_path):
    """AVIF (which Pillow reads) and .jfif (a browser's JPEG) frames are a folder's frames as JPEGs are:
    counted before reading, read, and a damaged one named; a phone's HEIC picture, which Pillow cannot
    open (and FFmpeg would read one tile of as a video), is refused by name, in a folder or alone."""
    from videop2p.io.video import probe_video

    frames = _clip(3, 32, 48)
    avif, jfif = tmp_path / "avif", tmp_path / "jfif"
    avif.mkdir()
    jfif.mkdir()
    for k, frame in enumerate(frames, start=1):
        Image.fromarray(frame).save(avif / f"{k}.avif", quality=95)
        Image.fromarray(frame).save(jfif / f"{k}.jfif", format="JPEG", quality=95)
    for folder in (avif, jfif):
        assert declared_frames(folder) == 3
        decoded = [np.asarray(Image.open(f).convert("RGB")) for f in sorted(folder.iterdir())]
        np.testing.assert_array_equal(read_video(folder).frames, np.stack(decoded))
    (avif / "4.avif").write_bytes(b"\0\0\0\x1cftypavif" + b"\0" * 40)
    with pytest.raises(VideoError, match=r"4.avif is not a readable image"):
        read_video(avif)

    heic = tmp_path / "IMG_0001.heic"
    write_video(frames, tmp_path / "clip.mp4")
    heic.write_bytes((tmp_path / "clip.mp4").read_bytes())  # an ISO-BMFF file FFmpeg opens
    with pytest.raises(VideoError, match=r"IMG_0001.heic is a HEIC/HEIF picture, which is not read here"):
        read_video(heic)
    shots = tmp_path / "shots"
    shots.mkdir()
    Image.fromarray(frames[0]).save(shots / "1.jpg")
    (shots / "2.HEIC").write_bytes(heic.read_bytes())
    with pytest.raises(VideoError, match=r"2.HEIC is a HEIC/HEIF picture.*give it as JPEG, PNG or AVIF"):
        probe_video(shots)


def _with_cover(path, video_frames=None):
    """An mp4 (.m4a without `video_frames`) of sound with a cover picture, as a music file or a downloaded
    video holds one: FFmpeg lists it as a one-frame video stream marked `attached_pic`."""
    cover_rgb = np.full((32, 32, 3), (200, 30, 30), np.uint8)
    with av.open(str(path), "w", format="mp4") as c:
        cover = c.add_stream("mjpeg")
        cover.width, cover.height, cover.pix_fmt = 32, 32, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        sound = c.add_stream("aac", rate=44100)
        video = None
        if video_frames is not None:
            video = c.add_stream("libx264", rate=8)
            video.height, video.width = video_frames.shape[1:3]
            video.pix_fmt = "yuv420p"
        for packet in [*cover.encode(av.VideoFrame.from_ndarray(cover_rgb, format="rgb24")), *cover.encode()]:
            c.mux(packet)
        silence = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        silence.sample_rate = 44100
        for k in range(10):
            silence.pts = k * 1024
            c.mux(sound.encode(silence))
        c.mux(sound.encode())
        for frame in video_frames if video_frames is not None else []:
            c.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        if video is not None:
            c.mux(video.encode())


def test_a_cover_picture_is_not_read_as_the_clip(tmp_path):
    """An audio file's album art is not a one-frame clip: it is refused as having no video; a video with a
    cover picture is read from its moving stream."""
    song = tmp_path / "song.m4a"
    _with_cover(song)
    with av.open(str(song)) as c:  # the cover is the file's only video stream
        assert [s.disposition & av.stream.Disposition.attached_pic for s in c.streams.video] == [
            av.stream.Disposition.attached_pic
        ]
    with pytest.raises(VideoError, match=r"song.m4a has no video stream \(only a cover picture\); give a video"):
        read_video(song)
    assert declared_frames(song) is None
    frames = _clip(6, 24, 32)
    _with_cover(tmp_path / "clip.mp4", frames)
    video = read_video(tmp_path / "clip.mp4")
    assert video.frames.shape == (6, 24, 32, 3) and declared_frames(tmp_path / "clip.mp4") == 6


def test_pictures_with_an_icc_profile_are_read_in_srgb_as_colour_managed_viewers_show_them(tmp_path, clips_dir):
    """A phone photo's Display P3 (or any RGB ICC profile) is converted to sRGB as viewers draw it, in a
    folder of frames, a single picture and an RGBA frame (before its transparency goes over black); an sRGB
    profile changes nothing, and a damaged profile is passed over (the pixels taken as sRGB). A camera's
    sRGB profile (the authors' clips carry one), which LittleCMS moves a level in a few colours, is sRGB:
    it was converted, and its clip's loading said it carried a colour profile it was read through."""
    from PIL import ImageCms

    from videop2p.io.video import iter_video, probe_video
    from videop2p.testing import DISPLAY_P3, icc_profile

    p3 = icc_profile(*DISPLAY_P3)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    camera = Image.open(clips_dir / "car" / "1.jpg").info["icc_profile"]  # sRGB IEC61966-2.1, as cameras write it
    y, x = np.mgrid[0:24, 0:40]
    stored = np.stack([60 + x * 4, 40 + y * 6, np.full_like(x, 90)], -1).astype(np.uint8)  # in P3's gamut and sRGB's
    reference = ImageCms.profileToProfile(
        Image.fromarray(stored), ImageCms.ImageCmsProfile(io.BytesIO(p3)), ImageCms.createProfile("sRGB")
    )
    shown = np.asarray(reference)
    assert np.abs(shown.astype(int) - stored).mean() > 2  # the profile does change the colours
    folders = {name: tmp_path / name for name in ("p3", "srgb", "camera", "damaged", "alpha")}
    for folder in folders.values():
        folder.mkdir()
    for k in (1, 2):
        Image.fromarray(stored).save(folders["p3"] / f"{k}.png", icc_profile=p3)
        Image.fromarray(stored).save(folders["srgb"] / f"{k}.png", icc_profile=srgb)
        Image.fromarray(stored).save(folders["camera"] / f"{k}.png", icc_profile=camera)
        Image.fromarray(stored).save(folders["damaged"] / f"{k}.png", icc_profile=b"not a profile at all")
        rgba = np.concatenate([stored, np.full_like(stored[..., :1], 128)], -1)
        Image.fromarray(rgba, "RGBA").save(folders["alpha"] / f"{k}.png", icc_profile=p3)
    np.testing.assert_array_equal(read_video(folders["p3"]).frames[1], shown)
    np.testing.assert_array_equal(read_video(folders["p3"] / "1.png").frames[0], shown)
    np.testing.assert_array_equal(next(iter_video(folders["p3"], 0, 1)), shown)  # as the pasting writer reads it
    np.testing.assert_array_equal(read_video(folders["srgb"]).frames[0], stored)
    np.testing.assert_array_equal(read_video(folders["camera"]).frames[0], stored)
    np.testing.assert_array_equal(read_video(folders["damaged"]).frames[0], stored)
    said = "pictures carry a colour profile (a test profile): they are read in sRGB, as colour-managed viewers"
    for clip in (folders["p3"], folders["p3"] / "2.png", folders["alpha"]):  # what loading and `info` say
        assert [note for note in probe_video(clip).conversions if said in note] == [
            f"{clip}'s {said} show them, and the edits are sRGB."
        ]
    assert probe_video(folders["srgb"]).conversions == probe_video(folders["damaged"]).conversions == ()
    assert probe_video(folders["camera"]).conversions == probe_video(clips_dir / "car").conversions == ()
    over_black = (shown.astype(np.uint32) * 128 + 127) // 255  # Pillow's alpha_composite of alpha 128 over black
    assert np.abs(read_video(folders["alpha"]).frames[0].astype(int) - over_black).max() <= 1


def test_a_png_frames_orientation_is_read_without_decoding_it_wherever_its_exif_chunk_is(tmp_path, monkeypatch):
    """Pillow decodes a PNG whole to look for an eXIf chunk after its image data (where a PNG with no EXIF
    has none either); the frames' sizes (and the frames not selected) are read from their headers alone,
    and an eXIf chunk after the data still turns the frame."""
    import struct

    from PIL import ImageOps, PngImagePlugin

    from videop2p.io.video import probe_video

    frames = _clip(5, 24, 40)
    exif = Image.Exif()
    exif[0x0112] = 6
    for k, frame in enumerate(frames, start=1):  # the first with an orientation, the others with no EXIF
        Image.fromarray(frame if k == 1 else np.ascontiguousarray(np.rot90(frame, -1))).save(
            tmp_path / f"{k}.png", **({"exif": exif} if k == 1 else {})
        )
    data, chunks, at = (tmp_path / "1.png").read_bytes(), [], 8
    while at < len(data):  # the file's chunks: length, type, data, CRC
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        chunks.append((kind, data[at : at + 12 + length]))
        at += 12 + length
    order = [kind for kind, _ in chunks]
    assert order.index(b"eXIf") < order.index(b"IDAT")  # Pillow writes it first; moved after the data:
    late = [c for kind, c in chunks if kind not in (b"eXIf", b"IEND")] + [
        chunks[order.index(b"eXIf")][1],
        chunks[-1][1],
    ]
    (tmp_path / "1.png").write_bytes(data[:8] + b"".join(late))
    with Image.open(tmp_path / "1.png") as img:
        shown = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    assert shown.shape == (40, 24, 3)
    loads = []
    load = PngImagePlugin.PngImageFile.load
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", lambda self: loads.append(self.filename) or load(self))
    assert probe_video(tmp_path).size == (24, 40)
    assert len(set(loads)) <= 1  # the first frame's pixels at most, not the folder's
    loads.clear()
    video = read_video(tmp_path, start=0, num_frames=2)
    assert sorted({Path(f).name for f in loads}) == ["1.png", "2.png"]
    np.testing.assert_array_equal(video.frames[0], shown)


def test_pil_images_held_in_memory_are_read_as_their_files_are(tmp_path):
    """Frames given as PIL images opened from files (`clip_from_frames`) are the frames those files read
    as: turned upright and colour-managed; an image Pillow's `exif_transpose` turned already is not
    turned again."""
    from PIL import ImageOps

    from videop2p.io.video import as_frames
    from videop2p.testing import DISPLAY_P3, icc_profile

    exif = Image.Exif()
    exif[0x0112] = 8
    for k, frame in enumerate(_clip(3, 24, 40), start=1):
        Image.fromarray(frame).save(tmp_path / f"{k}.jpg", quality=95, exif=exif, icc_profile=icc_profile(*DISPLAY_P3))
    files = sorted(tmp_path.iterdir())
    from_files = read_video(tmp_path).frames
    assert from_files.shape == (3, 40, 24, 3)
    np.testing.assert_array_equal(as_frames([Image.open(f) for f in files]), from_files)
    np.testing.assert_array_equal(as_frames([ImageOps.exif_transpose(Image.open(f)) for f in files]), from_files)


def test_a_folder_of_portrait_and_landscape_pictures_says_so(tmp_path):
    """Mixed sizes that are each other turned (a phone's portrait and landscape shots) are named as such."""
    Image.fromarray(np.zeros((24, 40, 3), np.uint8)).save(tmp_path / "1.png")
    Image.fromarray(np.zeros((40, 24, 3), np.uint8)).save(tmp_path / "2.png")
    with pytest.raises(
        VideoError, match=r"mixed sizes \(40x24, 24x40\): .*; some are portrait and some landscape: turn"
    ):
        read_video(tmp_path)
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "2.png")
    with pytest.raises(
        VideoError, match=r"mixed sizes \(40x24, 40x40\): 2.png is 40x40, the first frame 1.png 40x24; all"
    ):
        read_video(tmp_path)


def test_a_folder_holding_a_video_but_no_frames_names_the_video(tmp_path):
    """The folder a video sits in, given for the video (or the folder above a folder of frames): the error
    names the file (or folder) to give instead."""
    write_video(_clip(2), tmp_path / "holiday.mp4")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(VideoError, match=r"contains no image frames; .*; it holds holiday.mp4: give that file, not"):
        read_video(tmp_path)
    (tmp_path / "holiday.mp4").unlink()
    with pytest.raises(VideoError, match=r"contains no image frames; expected files such as 1.jpg, 2.jpg, ...$"):
        read_video(tmp_path)
    write_frames(_clip(2), tmp_path / "frames")  # the frames one folder down
    with pytest.raises(VideoError, match=r"contains no image frames; .*; it holds a folder of frames, frames: give"):
        read_video(tmp_path)
