import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from videop2p.config import RunConfig, VideoConfig
from videop2p.editing import EditResult
from videop2p.io.video import read_video
from videop2p.io.writing import write_mp4, write_video
from videop2p.outputs import PASTED_WRITER_BYTES_PER_PIXEL, _until, run_writers, write_run_outputs, writer_count
from videop2p.pipeline import Clip, EditOutput


def _run(tmp_path: Path, targets: int = 2) -> tuple[RunConfig, Clip, EditOutput]:
    """A run's decoded results for a 6-frame input of 96x72 edited at 32x32 (its centre, cropped):
    each target's edit a flat colour of its own, its mask the middle of the frame."""
    y, x = np.mgrid[0:72, 0:96]
    frames = [
        np.stack([(x * 2 + t * 9) % 256, (y * 3) % 256, (x + y + t) % 256], -1).astype(np.uint8) for t in range(6)
    ]
    video = write_mp4(frames, tmp_path / "input.mp4", 8.0)
    source = np.stack([f[4:68, 16:80][::2, ::2] for f in frames])  # (6, 32, 32, 3)
    edits = [np.full_like(source, (60 * k, 200 - 60 * k, 90)) for k in range(1, targets + 1)]
    masks = torch.zeros(targets, 6, 4, 4, dtype=torch.bool)
    masks[:, :, 1:3, 1:3] = True
    tokens = [["<start>", "a", "word"]] * (1 + targets)
    result = EditResult(
        torch.zeros(1 + targets, 6, 4, 4, 4), masks, torch.rand(1 + targets, 6, 4, 4, 3), tokens, {}, ["swap"] * targets
    )
    clip = Clip(source, 8.0, "synthetic", video=VideoConfig(path=str(video), frames=6), full_size=(96, 72))
    cfg = RunConfig(source="a red circle", targets=[f"a {c} circle" for c in ("blue", "green")[:targets]])
    cfg.edit.blend = ("circle", "circle")  # the masks' words: every target blends
    return cfg, clip, EditOutput(source.copy(), edits, result)


def test_a_runs_files_are_the_same_written_side_by_side_or_one_at_a_time(tmp_path):
    cfg, clip, out = _run(tmp_path)
    info = SimpleNamespace(identity="synthetic", vae_scale_factor=8)
    folders = []
    for workers in (1, 4):
        cfg.out = str(tmp_path / f"workers{workers}")
        manifest = write_run_outputs(cfg, clip, out, [], info, workers=workers)
        folders.append(Path(cfg.out))
    one, many = folders
    names = sorted(p.name for p in one.iterdir())
    assert names == sorted(p.name for p in many.iterdir())
    assert manifest["outputs"]["edits"] == ["edit_1.mp4", "edit_2.mp4"] and manifest["output_size"] == [96, 72]
    # x264 does not always write the same bytes for the same frames (docs/long_clips.md), so two
    # writes of an mp4 may differ by the codec's own error: how far it takes the source's frames
    codec = np.abs(read_video(one / "source.mp4").frames.astype(int) - clip.frames).mean()
    assert 0 < codec < 4
    for name in names:
        if name.endswith((".gif", ".png")):  # Pillow's files are the same byte for byte
            assert (one / name).read_bytes() == (many / name).read_bytes(), name
        elif name.endswith(".mp4"):  # each is its own clip, the same frames up to the codec
            a, b = read_video(one / name).frames, read_video(many / name).frames
            assert a.shape == b.shape and np.abs(a.astype(int) - b).mean() < 1.5 * codec, name
    for k, colour in ((1, (60, 140, 90)), (2, (120, 80, 90))):  # each edit's own colour, pasted at full size
        pasted = read_video(many / f"edit_{k}.mp4").frames
        assert pasted.shape == (6, 72, 96, 3)
        assert np.abs(pasted[:, 34:38, 46:50].astype(int) - colour).max() <= 6


def test_png_frames_are_the_pasted_edit_without_the_codecs_loss(tmp_path):
    """`png_frames`: each edit's frames also as lossless PNGs at the mp4's size, read back as a clip:
    the input's own pixels where nothing is pasted, the edit's colour exactly where it is."""
    cfg, clip, out = _run(tmp_path)
    cfg.out, cfg.png_frames = str(tmp_path / "out"), True
    info = SimpleNamespace(identity="synthetic", vae_scale_factor=8)
    manifest = write_run_outputs(cfg, clip, out, [], info, workers=2)
    assert manifest["outputs"]["edits_png"] == ["edit_1", "edit_2"]
    inputs = read_video(clip.video.path).frames.astype(int)
    for k, colour in ((1, (60, 140, 90)), (2, (120, 80, 90))):
        folder = Path(cfg.out) / f"edit_{k}"
        assert sorted(p.name for p in folder.iterdir()) == [f"{i}.png" for i in range(1, 7)]
        frames = read_video(folder).frames.astype(int)
        mp4 = read_video(Path(cfg.out) / f"edit_{k}.mp4").frames.astype(int)
        assert frames.shape == mp4.shape == (6, 72, 96, 3)
        assert (frames[:, 34:38, 46:50] == colour).all()  # the mp4 is within 6 of it, the PNGs exact
        assert (frames[:, :, :8] == inputs[:, :, :8]).all()  # left of the crop: the input's pixels
        assert np.abs(mp4[:, :, :8] - inputs[:, :, :8]).max() > 0  # which the mp4 re-encodes
    cfg.png_frames = False
    assert write_run_outputs(cfg, clip, out, [], info)["outputs"]["edits_png"] == []


def test_a_clip_of_uneven_frames_gives_every_video_its_frames_own_times(tmp_path):
    """A variable-rate clip's frames keep their times in every video a run writes, pasted edits included."""
    import av

    cfg, clip, out = _run(tmp_path)
    cfg.out, clip.times = str(tmp_path / "out"), np.array([0.0, 0.125, 0.25, 0.5, 0.75, 0.875, 1.0])
    write_run_outputs(cfg, clip, out, [], SimpleNamespace(identity="synthetic", vae_scale_factor=8), workers=2)
    for name in ("source", "edit_1", "side_by_side", "mask_2"):
        with av.open(str(Path(cfg.out) / f"{name}.mp4")) as c:
            assert [f.time for f in c.decode(c.streams.video[0])] == pytest.approx(clip.times[:-1], abs=1e-3), name
        if name != "edit_1":  # one flat colour: its GIF is one frame (Pillow merges equal frames)
            gif = read_video(Path(cfg.out) / f"{name}.gif")
            assert gif.times == pytest.approx(clip.times, abs=0.0051), name  # to the centisecond


def test_writers_run_side_by_side_and_give_their_files_in_order():
    running, most = [], []
    lock = threading.Lock()

    def writer(k: int, seconds: float):
        def write(stop) -> Path:
            with lock:
                running.append(k)
                most.append(len(running))
            time.sleep(seconds)
            with lock:
                running.remove(k)
            return Path(f"{k}.mp4")

        return write

    writers = [writer(k, 0.05 * (4 - k)) for k in range(4)]  # the first ones take longest
    assert run_writers(writers, 2) == [Path(f"{k}.mp4") for k in range(4)]
    assert max(most) == 2
    assert run_writers(writers, 1) == [Path(f"{k}.mp4") for k in range(4)] and max(most[4:]) == 1


def test_a_failing_writer_stops_the_others_at_their_next_frame_and_its_error_is_raised(tmp_path):
    started, written = [], []

    def frames():  # a long clip's frames, made slowly
        for _ in range(100):
            written.append(1)
            time.sleep(0.01)
            yield np.zeros((16, 16, 3), np.uint8)

    def long(stop) -> Path:
        return write_video(_until(frames(), stop), tmp_path / "long.mp4", 8.0)

    def fail(stop) -> Path:
        time.sleep(0.1)
        raise OSError("No space left on device")

    def later(k: int):
        def write(stop) -> Path:
            started.append(k)
            time.sleep(0.1)
            return Path(str(k))

        return write

    with pytest.raises(OSError, match="No space left"):  # the cause, not the writer it stopped
        run_writers([long, fail, *(later(k) for k in range(10))], 2)
    assert len(written) < 50  # the long writer stopped at a frame soon after the failure
    assert not (tmp_path / "long.mp4").exists()  # and wrote nothing
    assert len(started) <= 1  # at most the one the freed thread took before the rest were dropped
    assert run_writers([long], 2) == [tmp_path / "long.mp4"] and len(written) >= 100  # alone, it ends


def test_edits_pasted_at_the_inputs_size_are_written_side_by_side_only_as_far_as_memory_allows(tmp_path):
    cfg, clip, _ = _run(tmp_path)
    clip.full_size = (1920, 1080)
    one = PASTED_WRITER_BYTES_PER_PIXEL * 1920 * 1080  # what one such writer holds at its peak
    assert writer_count(cfg, clip, threads=8, free=3 * one + one // 2) == 3
    assert writer_count(cfg, clip, threads=2, free=100 * one) == 2
    assert writer_count(cfg, clip, threads=8, free=one // 2) == 1  # one at a time, however little is free
    cfg.composite = "off"  # the working size only: one file per thread
    assert writer_count(cfg, clip, threads=8, free=one // 2) == 8
    clip.full_size, cfg.composite = None, "auto"
    assert writer_count(cfg, clip, threads=4, free=0) == 4


def slowly(frame: np.ndarray, count: int = 20):
    """`count` copies of `frame`, 10 ms apart (a writer that takes a while)."""
    for _ in range(count):
        time.sleep(0.01)
        yield frame


@pytest.mark.parametrize("workers", [1, 3])
def test_each_file_written_is_heard_of_and_the_hook_can_stop_the_rest(tmp_path, workers):
    def clip_writer(k: int):
        def write(stop) -> Path:
            return write_video(_until(slowly(np.full((16, 16, 3), 40 * k, np.uint8)), stop), tmp_path / f"{k}.gif", 8.0)

        return write

    heard = []
    paths = run_writers([clip_writer(k) for k in range(5)], workers, lambda *a: heard.append(a))
    assert paths == [tmp_path / f"{k}.gif" for k in range(5)]
    assert heard == [("write", done, 5) for done in range(6)]  # none yet, then each file

    def stop_after_two(stage: str, done: int, total: int) -> None:
        if done == 2:
            raise RuntimeError("stop asked for")

    for gif in tmp_path.glob("*.gif"):
        gif.unlink()
    with pytest.raises(RuntimeError, match="stop asked for"):
        run_writers([clip_writer(k) for k in range(5)], workers, stop_after_two)
    assert len(list(tmp_path.glob("*.gif"))) < 5 and not list(tmp_path.glob(".*"))  # no half-written file


def test_a_videos_psnr_summed_a_frame_at_a_time_is_the_psnr_of_all_its_pixels():
    from videop2p.metrics import psnr, video_psnr

    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (5, 16, 24, 3), dtype=np.uint8) for _ in range(2))
    assert video_psnr(a, b) == pytest.approx(psnr(a, b), rel=1e-12)
    near = a.copy()
    near[2, 3, 4, 1] ^= 1  # one level, one value
    assert video_psnr(a, near) == pytest.approx(10 * np.log10(255.0**2 * a.size), rel=1e-12)
    with pytest.raises(ValueError):  # another frame count is no comparison
        video_psnr(a, a[:4])
