"""Edits at the input's resolution, frame rate and sound."""

import copy
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from videop2p.compositing import composite, working_boxes
from videop2p.config import ResizeMode
from videop2p.io.video import read_video, resize_frames, timing_drift
from videop2p.io.writing import write_frames, write_mp4
from videop2p.testing import write_mp4_with_tone


@pytest.mark.parametrize("mode", list(ResizeMode))
@pytest.mark.parametrize(("source", "work"), [((96, 64), (32, 32)), ((50, 120), (24, 40)), ((64, 64), (32, 32))])
def test_pasted_edits_keep_every_input_pixel_outside_the_mask(mode, source, work):
    rng = np.random.default_rng(0)
    original = rng.integers(0, 255, (3, source[1], source[0], 3), dtype=np.uint8)
    edited = np.full((3, work[1], work[0], 3), (0, 0, 255), dtype=np.uint8)  # the edit: all blue
    masks = torch.zeros(3, work[1] // 4, work[0] // 4, dtype=torch.bool)
    masks[:, 2:4, 2:4] = True  # a patch of mask cells of 4 working pixels
    out = np.stack(list(composite(original, edited, masks, mode, cell=4)))
    assert out.shape == original.shape and out.dtype == np.uint8
    changed = (out != original).any(-1)
    src, dst = working_boxes(source, work, mode)
    sx, sy = (src[2] - src[0]) / (dst[2] - dst[0]), (src[3] - src[1]) / (dst[3] - dst[1])
    grow = 2 * np.ceil(4 * max(sx, sy) / 2)  # the feathering: two radii of half a cell (in input pixels)
    x0, x1 = src[0] + (8 - dst[0]) * sx - grow, src[0] + (16 - dst[0]) * sx + grow
    y0, y1 = src[1] + (8 - dst[1]) * sy - grow, src[1] + (16 - dst[1]) * sy + grow
    ys, xs = np.nonzero(changed.any(0))
    assert xs.min() >= np.floor(x0) - 1 and xs.max() <= np.ceil(x1) + 1, (xs.min(), xs.max(), x0, x1)
    assert ys.min() >= np.floor(y0) - 1 and ys.max() <= np.ceil(y1) + 1
    cy, cx = int(src[1] + (12 - dst[1]) * sy), int(src[0] + (12 - dst[0]) * sx)
    assert (out[:, cy, cx] == (0, 0, 255)).all()  # the middle of the mask is the edit
    whole = np.stack(list(composite(original, edited, None, mode)))  # no mask: the edit over everything it covers
    assert (whole[:, src[1] : src[3], src[0] : src[2]] == (0, 0, 255)).all()


def test_a_large_input_is_feathered_over_as_many_pixels_and_keeps_every_pixel_outside(tmp_path):
    from videop2p.compositing import FEATHER_RADIUS, paste_weights

    source, work, cell = (1280, 720), (88, 48), 4  # an edit at the bundled model's size over a 720p frame
    masks = torch.zeros(1, 12, 22, dtype=torch.bool)
    masks[:, 4:8, 7:14] = True  # mask cells 7-13 across, 4-7 down
    weight = paste_weights(masks, source, work, "crop", cell)[0]
    src, dst = working_boxes(source, work, "crop")
    sx = (src[2] - src[0]) / (dst[2] - dst[0])
    radius = int(np.ceil(cell * sx / 2))
    assert radius > 4 * FEATHER_RADIUS  # the coarse-grid path
    x_in, x_out = src[0] + 7 * cell * sx, src[0] + 14 * cell * sx  # the mask's edges in input pixels
    row = weight[int(src[1] + 6 * cell * sx)]  # a row through the mask
    assert (row[int(x_in) + 1 : int(x_out) - 1] == 1).all()  # 1 on the mask
    ramp = row[int(x_out) : int(x_out + 2 * radius)]
    assert (ramp[1:] <= ramp[:-1] + 1e-6).all() and (ramp > 0.02).sum() >= 1.5 * radius  # a gradual ramp
    grown = 2 * radius + 3 * (radius // FEATHER_RADIUS) + 1  # two radii, and up to three coarse cells
    assert (row[int(x_out) + grown :] == 0).all() and (row[: int(x_in) - grown] == 0).all()
    original = np.random.default_rng(0).integers(0, 255, (1, source[1], source[0], 3), dtype=np.uint8)
    edited = np.full((1, work[1], work[0], 3), (0, 0, 255), dtype=np.uint8)
    out = next(composite(original, edited, masks, "crop", cell))
    changed = (out != original[0]).any(-1)
    assert not changed[weight.numpy() == 0].any() and changed[weight.numpy() > 0.99].all()


def test_working_boxes_match_resize_frames():
    y, x = np.mgrid[0:60, 0:100]
    smooth = np.stack([x * 2.5, y * 4.0, 127 + 120 * np.sin(x / 9.0) * np.cos(y / 7.0)], -1)
    original = smooth.clip(0, 255).astype(np.uint8)[None]  # where a misplaced box shows
    for mode in ResizeMode:
        work = resize_frames(original, 40, 40, mode)
        src, dst = working_boxes((100, 60), (40, 40), mode)
        back = resize_frames(original[:, src[1] : src[3], src[0] : src[2]], dst[2] - dst[0], dst[3] - dst[1], "stretch")
        diff = np.abs(back.astype(int) - work[:, dst[1] : dst[3], dst[0] : dst[2]].astype(int)).mean()
        assert diff < 6, (mode, diff)  # the same content, up to resampling


def test_selected_frames_keep_the_frame_rate_and_the_sound_of_their_span(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (40, 32, 48, 3), dtype=np.uint8)
    write_mp4_with_tone(tmp_path / "in.mp4", frames, Fraction(30000, 1001))
    video = read_video(tmp_path / "in.mp4", start=4, num_frames=12, stride=2)
    assert video.fps == pytest.approx(30000 / 1001 / 2)
    assert video.audio.start == pytest.approx(4 * 1001 / 30000) and video.audio.end == pytest.approx(28 * 1001 / 30000)
    write_mp4(video.frames, tmp_path / "out.mp4", video.fps, video.audio)
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert c.streams.video[0].average_rate == Fraction(15000, 1001)
        assert c.streams.audio and c.streams.audio[0].rate == 44100
        samples = sum(f.samples for f in c.decode(c.streams.audio[0]))
    span = round(video.audio.end * 44100) - round(video.audio.start * 44100)  # cut at the samples nearest its ends
    assert span <= samples <= span + 2048  # the span, plus the AAC encoder's priming (PyAV 19's FFmpeg 9 drops it)


def test_a_mov_or_mkv_holds_what_an_mp4_holds_sound_and_10_bit_video_too(tmp_path):
    """`write_video` by suffix: .mov and .mkv hold the same H.264 (or 10-bit HEVC) frames and AAC sound as an
    .mp4, in QuickTime's and Matroska's containers, read back as the same clip."""
    from videop2p.io.video import DEEP_SDR, probe_video
    from videop2p.io.writing import write_video

    frames = np.random.default_rng(0).integers(0, 255, (6, 32, 48, 3), dtype=np.uint8)
    write_mp4_with_tone(tmp_path / "in.mp4", frames, 8)
    video = read_video(tmp_path / "in.mp4")
    deep = (frames.astype(np.uint16) << 8) | 0x80
    read = {}
    for suffix, muxer in ((".mp4", "mp4"), (".mov", "mov"), (".mkv", "matroska")):
        path = write_video(video.frames, tmp_path / f"out{suffix}", video.fps, video.audio)
        with av.open(str(path)) as c:
            assert muxer in c.format.name.split(",") and c.streams.audio and c.streams.video[0].codec.name == "h264"
        read[suffix] = read_video(path)
        assert read[suffix].fps == 8 and read[suffix].audio is not None
        ten = write_video(deep, tmp_path / f"ten{suffix}", 8, deep=DEEP_SDR)
        assert probe_video(ten).deep == DEEP_SDR, suffix
    for suffix in (".mov", ".mkv"):
        np.testing.assert_array_equal(read[suffix].frames, read[".mp4"].frames)


def test_a_webm_holds_vp9_at_the_frames_own_size_and_opus_sound_and_a_matroska_file_is_the_same_each_time(tmp_path):
    """`write_video` to a .webm: VP9 and Opus, as browsers play them, at the frames' own odd size (H.264 pads it
    by a pixel), the sound at Opus's 48 kHz, read back as the clip; a 10-bit clip is refused (VP9 is 8-bit
    here), nothing written. Matroska's muxer gave each .mkv and .webm a random id: the same frames now give
    the same file."""
    from videop2p.io.video import DEEP_SDR, VideoError
    from videop2p.io.writing import write_video

    frames = np.zeros((6, 33, 47, 3), np.uint8)
    frames[:, 8:24, 8:40] = [200, 30, 30]  # a red box on black: the colours a player shows, not noise
    write_mp4_with_tone(tmp_path / "in.mp4", frames[:, :32, :46], 8)
    video = read_video(tmp_path / "in.mp4")
    path = write_video(frames, tmp_path / "out.webm", 8, video.audio)
    with av.open(str(path)) as c:
        assert "webm" in c.format.name.split(",")
        assert [s.codec_context.name for s in c.streams] == ["vp9", "opus"] and c.streams.audio[0].rate == 48000
    read = read_video(path)
    assert read.frames.shape == frames.shape and read.fps == 8 and read.audio.end == pytest.approx(6 / 8)
    error = np.abs(read.frames.astype(float) - frames)  # (F, H, W, 3)
    assert error[:, 10:22, 10:38].mean() < 2 and error.mean() < 5  # the box's colour; ringing at its sharp edges
    for suffix in (".webm", ".mkv"):
        again = [write_video(frames, tmp_path / f"{k}{suffix}", 8, video.audio).read_bytes() for k in range(2)]
        assert again[0] == again[1], suffix
    with pytest.raises(VideoError, match=r"ten.webm: a .webm holds 8-bit VP9 here, not 10-bit SDR video"):
        write_video((frames.astype(np.uint16) << 8), tmp_path / "ten.webm", 8, deep=DEEP_SDR)
    assert not list(tmp_path.glob("ten*"))


def test_the_sound_is_cut_from_where_the_first_frame_is_shown(tmp_path):
    """Regression: the sound was cut from frame index / frame rate, so a video stream that starts after
    its sound (here by 4 frames, 0.5 s) gave an edit whose sound came 0.5 s late."""
    frames = np.random.default_rng(0).integers(0, 255, (16, 32, 48, 3), dtype=np.uint8)
    write_mp4_with_tone(tmp_path / "in.mp4", frames, 8, video_start=4)  # silent until the first frame
    for start in (0, 4):
        video = read_video(tmp_path / "in.mp4", start=start, num_frames=8)
        assert video.audio.start == pytest.approx((4 + start) / 8) and video.audio.end == pytest.approx(
            (12 + start) / 8
        )
        write_mp4(video.frames, tmp_path / "out.mp4", video.fps, video.audio)
        with av.open(str(tmp_path / "out.mp4")) as c:
            sound = np.concatenate([f.to_ndarray()[0] for f in c.decode(c.streams.audio[0])])
        assert np.argmax(np.abs(sound) > 0.1) / 44100 < 1 / 8  # the tone from the first frame on, not 0.5 s later


def test_a_variable_frame_rate_keeps_each_frames_time_and_the_sound_in_step(tmp_path):
    """Regression: frames not evenly spaced were written at their average rate, so the edit's sound
    drifted from them (0.31 s here); each frame now keeps its own time, and the sound its span."""
    frames = np.random.default_rng(0).integers(0, 255, (16, 32, 48, 3), dtype=np.uint8)
    write_mp4_with_tone(tmp_path / "even.mp4", frames, 8)
    assert read_video(tmp_path / "even.mp4", num_frames=16).times is None  # a constant rate stays one
    pts = [0, 1, 2, 3, 5, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23]  # frames 4-11 twice as far apart
    write_mp4_with_tone(tmp_path / "vfr.mp4", frames, 8, pts=pts)
    for start, stride in ((0, 1), (2, 2)):
        video = read_video(tmp_path / "vfr.mp4", start=start, num_frames=6, stride=stride)
        picked = pts[start : start + 6 * stride : stride]
        assert video.times[:-1] == pytest.approx(np.subtract(picked, picked[0]) / 8)  # each frame's own time
        assert video.audio.start == pytest.approx(picked[0] / 8)
        assert video.audio.end - video.audio.start == pytest.approx(video.times[-1])  # the sound: their span
        write_mp4(video.frames, tmp_path / "out.mp4", video.fps, video.audio, video.times)
        with av.open(str(tmp_path / "out.mp4")) as c:
            shown = [f.time for f in c.decode(c.streams.video[0])]
        assert shown == pytest.approx(video.times[:-1], abs=1e-3)
    assert timing_drift([0.0, 0.125, None, 0.375], 0.125) == 0.0 and timing_drift([0.0, 0.2], 0.125) == pytest.approx(
        0.075
    )


def test_sound_at_a_rate_aac_does_not_take_is_written_at_one_it_does(tmp_path):
    """AAC stops at 96 kHz: a clip with a 192 kHz track failed to write after the whole run."""
    frames = np.random.default_rng(0).integers(0, 255, (8, 32, 48, 3), dtype=np.uint8)
    write_mp4_with_tone(tmp_path / "in.mkv", frames, 8, rate=192000, codec="pcm_s16le")
    video = read_video(tmp_path / "in.mkv", start=2, num_frames=4)
    write_mp4(video.frames, tmp_path / "out.mp4", video.fps, video.audio)
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert c.streams.audio[0].codec_context.name == "aac" and c.streams.audio[0].rate == 96000
        samples = sum(f.samples for f in c.decode(c.streams.audio[0]))
    span = (video.audio.end - video.audio.start) * 96000
    assert span - 64 <= samples <= span + 2048  # the span (resampled), plus the AAC encoder's priming


def _quick_run(video, frames: int, source: str, target: str, out, edit=None):
    """A run of the tiny model at the smallest budget (one tuning step, fast inversion)."""
    from videop2p.config import EditConfig, InversionConfig, RunConfig, TuneConfig, VideoConfig

    return RunConfig(
        video=VideoConfig(path=str(video), frames=frames),
        source=source,
        targets=[target],
        out=str(out),
        tune=TuneConfig(steps=1, progress=False),
        inversion=InversionConfig(method="fast", steps=3, progress=False),
        edit=edit or EditConfig(progress=False),
    )


def test_a_run_on_a_larger_clip_with_sound_writes_the_edit_at_its_size_rate_and_sound(tmp_path, tiny):
    from videop2p.config import EditConfig
    from videop2p.pipeline import VideoP2P

    frames = np.zeros((6, 48, 64, 3), dtype=np.uint8)
    frames[..., 1] = 120  # green ground
    frames[:, 16:32, 24:40, 0] = 220  # a red square
    write_mp4_with_tone(tmp_path / "in.mp4", frames, Fraction(25))
    blend = EditConfig(blend=("square", "square"), blend_start=0.0, threshold=0.6, progress=False)
    src, tgt = "a red square moving on the grass", "a blue square moving on the grass"
    cfg = _quick_run(tmp_path / "in.mp4", 6, src, tgt, tmp_path / "out", blend)
    given = copy.deepcopy(cfg)
    manifest = VideoP2P(tiny).run(cfg)
    assert cfg == given  # the run works on its own copy of the settings
    assert manifest["output_size"] == [64, 48] and manifest["audio"] and manifest["fps"] == 25
    with av.open(str(tmp_path / "out" / "edit_1.mp4")) as c:
        v = c.streams.video[0]
        assert (v.width, v.height, v.average_rate) == (64, 48, 25)
        assert c.streams.audio
    with av.open(str(tmp_path / "out" / "source.mp4")) as c:  # the working-size clip stays as it was
        assert c.streams.video[0].width < 64
    cfg.composite, cfg.out = "off", str(tmp_path / "off")
    assert VideoP2P(tiny).run(cfg)["output_size"] is None
    with av.open(str(tmp_path / "off" / "edit_1.mp4")) as c:
        assert c.streams.video[0].width < 64


def test_a_clip_smaller_than_the_working_size_gets_its_edits_at_its_own_size(tmp_path, tiny):
    from videop2p.pipeline import VideoP2P

    frames = np.zeros((2, 10, 14, 3), dtype=np.uint8)  # smaller than the tiny model's 16-pixel working frames
    frames[..., 1] = 120
    write_frames(frames, tmp_path / "small")
    manifest = VideoP2P(tiny).run(_quick_run(tmp_path / "small", 2, "a green field", "a red field", tmp_path / "out"))
    assert manifest["output_size"] == [14, 10] and manifest["size"] != [14, 10]
    assert read_video(tmp_path / "out" / "edit_1.gif").frames.shape[1:3] != (10, 14)  # the previews: working size
    with av.open(str(tmp_path / "out" / "edit_1.mp4")) as c:  # mp4 sides are even: 14 x 10 as it is
        assert (c.streams.video[0].width, c.streams.video[0].height) == (14, 10)
