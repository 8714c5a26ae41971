"""OpenEXR frames (scene-linear light) read as HDR video is: their 1 at HDR's reference white, carried to
PQ in BT.2020, shown as an SDR screen shows it; edits pasted into them stay HDR video."""

import struct
from pathlib import Path

import numpy as np
import pytest

from videop2p.io.hdr import BT709_XY, BT2020_TO_BT709, BT2020_XY, PQ, SDR_GAMMA, linear_to_pq, rgb_to_rgb
from videop2p.io.video import EXR_SIGNAL, VideoError, declared_frames, iter_video, probe_video, read_video

AP1_XY = (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767)  # ACEScg's primaries and white (ACES)
# ACEScg -> linear BT.709 with the Bradford adaptation, as the Academy publishes it (to five places)
AP1_TO_BT709 = np.array([[1.70505, -0.62179, -0.08326], [-0.13026, 1.14080, -0.01055], [-0.02400, -0.12897, 1.15297]])


def _attribute(name: str, kind: str, value: bytes) -> bytes:
    return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value


def write_exr(
    path: Path,
    rgb: np.ndarray,
    half: bool = False,
    alpha: np.ndarray | None = None,
    data: tuple[int, int, int, int] | None = None,
    display: tuple[int, int, int, int] | None = None,
    chromaticities: tuple[float, ...] | None = None,
    comments: str | None = None,
) -> Path:
    """An uncompressed scanline OpenEXR file of `rgb` (H, W, 3) light, written here from the file layout's
    specification (FFmpeg's encoder writes neither windows nor chromaticities)."""
    height, width = rgb.shape[:2]
    window = data or (0, 0, width - 1, height - 1)
    channels = {"R": rgb[..., 0], "G": rgb[..., 1], "B": rgb[..., 2], **({"A": alpha} if alpha is not None else {})}
    names = sorted(channels)  # OpenEXR lists and stores channels by name
    kind, dtype = (1, "<f2") if half else (2, "<f4")
    chlist = b"".join(n.encode() + b"\0" + struct.pack("<iB3xii", kind, 0, 1, 1) for n in names) + b"\0"
    head = b"v/1\x01" + struct.pack("<i", 2)
    head += _attribute("channels", "chlist", chlist) + _attribute("compression", "compression", b"\0")
    head += _attribute("dataWindow", "box2i", struct.pack("<4i", *window))
    head += _attribute("displayWindow", "box2i", struct.pack("<4i", *(display or window)))
    head += _attribute("lineOrder", "lineOrder", b"\0") + _attribute("pixelAspectRatio", "float", struct.pack("<f", 1))
    head += _attribute("screenWindowCenter", "v2f", struct.pack("<2f", 0, 0))
    head += _attribute("screenWindowWidth", "float", struct.pack("<f", 1))
    if chromaticities is not None:
        head += _attribute("chromaticities", "chromaticities", struct.pack("<8f", *chromaticities))
    if comments is not None:
        head += _attribute("comments", "string", comments.encode())
    head += b"\0"
    lines = []
    for y in range(height):
        line = b"".join(np.ascontiguousarray(channels[n][y]).astype(dtype).tobytes() for n in names)
        lines.append(struct.pack("<ii", window[1] + y, len(line)) + line)
    offsets = np.cumsum([len(head) + 8 * height] + [len(line) for line in lines[:-1]])
    path.write_bytes(head + struct.pack(f"<{height}Q", *offsets) + b"".join(lines))
    return path


def _scene(t: int = 0) -> np.ndarray:
    """(24, 40, 3) light: an 18% grey card, a red square moving by t, a highlight at 4x diffuse white."""
    light = np.full((24, 40, 3), 0.18, np.float32)
    light[4:10, 4 + t : 10 + t] = (0.6, 0.01, 0.01)
    light[14:20, 26:34] = 4.0
    return light


def test_the_primaries_matrices_are_the_standards():
    """From chromaticities alone: BT.709 -> BT.2020 is BT.2087's matrix, ACEScg -> BT.709 the Academy's."""
    bt2087 = [[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]]  # as tabulated
    np.testing.assert_allclose(rgb_to_rgb(BT709_XY, BT2020_XY), bt2087, atol=1e-4)
    np.testing.assert_allclose(rgb_to_rgb(BT709_XY, BT2020_XY) @ BT2020_TO_BT709, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(rgb_to_rgb(AP1_XY, BT709_XY), AP1_TO_BT709, atol=1e-5)


def test_exr_frames_read_as_an_sdr_screen_shows_scene_light_with_its_white_at_hdrs_reference_white(tmp_path):
    """An 18% grey card is 18% of the screen's white (gamma 2.4: level 125), whatever the frames' float width
    or alpha (premultiplied: the image over black); not-a-number is black, negative light none; the clip
    is HDR (PQ) from scene light, its frames counted and sized from their headers."""
    clip = _folder(tmp_path / "plate")
    for k in range(3):
        light = _scene(k)
        light[0, :3] = np.array([np.nan, -1.0, np.inf])[:, None]  # pixels of each in every channel
        write_exr(
            clip / f"plate.{1001 + k}.exr", light, half=k == 1, alpha=np.ones(light.shape[:2]) if k == 2 else None
        )
    frames = read_video(clip).frames  # (3, 24, 40, 3) uint8
    assert frames.shape == (3, 24, 40, 3) and declared_frames(clip) == 3
    grey = round(255 * 0.18 ** (1 / SDR_GAMMA))
    assert np.abs(frames[:, 20:, :20].astype(int) - grey).max() <= 1
    assert frames[:, 0, 0].max() == 0 and frames[:, 0, 1].max() == 0 and frames[:, 0, 2].min() == 255
    red = frames[1, 6, 8].astype(int)
    assert red[0] > 3 * red[1] and red[0] > 3 * red[2]  # the square is red, and moved by one pixel a frame
    assert np.array_equal(frames[1, 4:10, 5:11], frames[0, 4:10, 4:10])
    assert frames[:, 16, 30].min() >= 250  # the highlight at the screen's white
    probe = probe_video(clip)
    assert probe.deep == EXR_SIGNAL and probe.deep.transfer == PQ and probe.size == (40, 24)
    assert "OpenEXR" in probe.conversions[0] and "203 cd/m2" in probe.conversions[0]
    signal = next(iter_video(clip, 0, 1, signal=True))  # its PQ form, as the pasting writers read it
    assert signal.dtype == np.uint16 and np.array_equal(signal[1:], linear_to_pq(_scene(0))[1:])
    assert signal[0, 0].max() == 0 and signal[0, 2].min() == 65535


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def test_an_exr_frames_primaries_are_read_from_its_chromaticities(tmp_path):
    """The same colours stored as ACEScg light (the Academy's matrix undone) read as the BT.709 frame."""
    light = _scene()
    ap1 = light @ np.linalg.inv(AP1_TO_BT709).T
    write_exr(_folder(tmp_path / "709") / "1.exr", light)
    write_exr(_folder(tmp_path / "ap1") / "1.exr", ap1, chromaticities=AP1_XY)
    a, b = read_video(tmp_path / "709").frames, read_video(tmp_path / "ap1").frames
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert np.abs(a[0, 6, 6].astype(int) - read_video(tmp_path / "ap1").frames[0, 6, 6]).max() <= 1  # the red square
    assert read_video(tmp_path / "709").frames[0, 6, 6, 0] > 3 * read_video(tmp_path / "709").frames[0, 6, 6, 1]


def test_an_exr_frame_is_its_display_window(tmp_path):
    """A plate with overscan (its data window reaching beyond its display window) or one smaller than its
    display window is the display window, as players show it; a display window off the origin, which
    FFmpeg's decoder would shift, is refused naming the frame."""
    light = np.zeros((28, 48, 3), np.float32)
    light[..., 0], light[..., 1] = np.arange(48)[None, :] / 48, np.arange(28)[:, None] / 28  # where each pixel is
    write_exr(_folder(tmp_path / "over") / "1.exr", light, data=(-4, -2, 43, 25), display=(0, 0, 39, 23))
    shown = read_video(tmp_path / "over").frames[0]
    assert probe_video(tmp_path / "over").size == (40, 24) and shown.shape == (24, 40, 3)
    write_exr(_folder(tmp_path / "cut") / "1.exr", light[2:26, 4:44])  # the pixels inside the display window
    assert np.array_equal(shown, read_video(tmp_path / "cut").frames[0])
    write_exr(_folder(tmp_path / "under") / "1.exr", _scene(), data=(4, 2, 43, 25), display=(0, 0, 47, 27))
    frame = read_video(tmp_path / "under").frames[0]
    assert frame.shape == (28, 48, 3) and frame[:2].max() == 0 and frame[:, :4].max() == 0 and frame[22, 10].min() > 100
    write_exr(_folder(tmp_path / "off") / "1.exr", _scene(), data=(0, 0, 39, 23), display=(-4, -2, 43, 25))
    with pytest.raises(
        VideoError, match=r"1.exr is not a readable OpenEXR image \(its display window starts at \(-4, -2\)"
    ):
        read_video(tmp_path / "off")


def test_one_exr_file_is_a_clip_of_one_frame_read_as_the_plate_would_be(tmp_path):
    """FFmpeg alone would read one .exr as a one-frame video, its light clipped at 1 and no curve: read as
    a folder of it is instead."""
    write_exr(_folder(tmp_path / "c") / "1.exr", _scene())
    one = tmp_path / "c" / "1.exr"
    probe, folder = probe_video(one), probe_video(tmp_path / "c")
    assert (probe.size, probe.deep, probe.fps) == (folder.size, folder.deep, folder.fps)
    assert probe.deep == EXR_SIGNAL and str(one) in probe.conversions[0]
    assert np.array_equal(read_video(one).frames, read_video(tmp_path / "c").frames)
    assert np.array_equal(next(iter_video(one, 0, 1, signal=True)), linear_to_pq(_scene()))


def test_an_exr_header_longer_than_its_first_read_is_read_whole(tmp_path):
    """A header holding a large attribute (a long comment here; a preview image in practice) is read on."""
    write_exr(_folder(tmp_path / "c") / "1.exr", _scene(), comments="x" * 100_000)
    assert probe_video(tmp_path / "c").size == (40, 24) and read_video(tmp_path / "c").frames.shape == (1, 24, 40, 3)


@pytest.mark.parametrize("damage", ["header", "cut", "unwritten"])
def test_a_damaged_exr_frame_is_named_before_any_work(tmp_path, damage, capsys):
    """A header cut short, a file cut short, a chunk its writer never wrote (its offset 0; FFmpeg would show
    its lines black without a word): one line naming the frame, before any work, nothing written."""
    from videop2p.cli import main
    from videop2p.io.exr import read_header

    clip = _folder(tmp_path / "plate")
    for k in range(8):  # `run`'s 8 frames
        write_exr(clip / f"{k + 1}.exr", _scene(k))
    bad = clip / "3.exr"
    data = bytearray(bad.read_bytes())
    if damage == "header":
        data = data[:60]
    elif damage == "cut":
        data = data[: len(data) - 100]
    else:
        struct.pack_into("<Q", data, read_header(bad).table_at + 8 * 5, 0)  # the sixth line's chunk never written
    bad.write_bytes(bytes(data))
    with pytest.raises(VideoError, match="3.exr is not a readable OpenEXR image"):
        read_video(clip)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        main(["run", str(clip), "--source", "a red square", "--target", "a blue square", "--out", str(out), "--quiet"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "3.exr" in lines[0], lines
    assert not out.exists()


@pytest.mark.parametrize(("half", "chromaticities"), [(True, AP1_XY), (False, None)])
def test_edits_of_exr_frames_are_pasted_into_them_as_hdr_video_and_openexr_keeping_their_light(
    tmp_path, half, chromaticities
):
    """An edit pasted into the plate's own frames: HDR video (10-bit HEVC, PQ), and with `png_frames`
    OpenEXR frames holding the plate's stored light to the bit wherever nothing is pasted (not-a-number,
    negative light and highlights far above PQ's range included), in its float width and primaries; the
    edit's colour inside, as an SDR screen shows it."""
    from types import SimpleNamespace

    import torch

    from videop2p.config import RunConfig, VideoConfig
    from videop2p.editing import EditResult
    from videop2p.io.exr import read_header, read_linear
    from videop2p.outputs import write_run_outputs
    from videop2p.pipeline import Clip, EditOutput

    plate = _folder(tmp_path / "plate")
    stored = []
    for k in range(4):
        light = _scene(k)
        light[2, :3] = np.array([np.nan, -1.0, 1000.0])[:, None]  # beyond what PQ holds
        write_exr(plate / f"{k + 1}.exr", light, half=half, chromaticities=chromaticities)
        stored.append(read_linear(plate / f"{k + 1}.exr"))
    source = read_video(plate).frames[:, ::3, ::3][:, :8, :12]  # (4, 8, 12, 3) at a working size
    edit = np.full_like(source, (40, 90, 160))
    masks = torch.zeros(1, 4, 4, 6, dtype=torch.bool)
    masks[:, :, 1:3, 2:4] = True
    result = EditResult(torch.zeros(2, 4, 4, 4, 6), masks, torch.rand(2, 4, 4, 6, 3), [["a"]] * 2, {}, ["swap"])
    clip = Clip(source, 8.0, "exr", video=VideoConfig(path=str(plate), frames=4), full_size=(40, 24), deep=EXR_SIGNAL)
    cfg = RunConfig(source="a red square", targets=["a blue square"], out=str(tmp_path / "out"))
    cfg.png_frames = True
    info = SimpleNamespace(identity="synthetic", vae_scale_factor=2)
    manifest = write_run_outputs(cfg, clip, EditOutput(source.copy(), [edit], result), [], info, workers=2)
    out = tmp_path / "out"
    assert manifest["hdr"] == "PQ" and manifest["output_size"] == [40, 24]
    assert probe_video(out / "edit_1.mp4").deep.transfer == PQ and probe_video(out / "edit_1").deep == EXR_SIGNAL
    assert sorted(f.name for f in (out / "edit_1").iterdir()) == ["1.exr", "2.exr", "3.exr", "4.exr"]
    written = [read_linear(out / "edit_1" / f"{k + 1}.exr") for k in range(4)]
    assert all(w.dtype == (np.float16 if half else np.float32) for w in written)
    assert read_header(out / "edit_1" / "1.exr").chromaticities == read_header(plate / "1.exr").chromaticities
    for w, s in zip(written, stored, strict=True):
        assert np.array_equal(w[:, :6], s[:, :6], equal_nan=True)  # left of the edit: the plate's own light
        assert not np.array_equal(w[12, 20], s[12, 20])
    assert np.abs(read_video(out / "edit_1").frames[:, 12, 20].astype(int) - (40, 90, 160)).max() <= 4
    signal = np.stack(list(iter_video(out / "edit_1.mp4", 0, 4, signal=True))).astype(int)
    assert np.abs(signal[:, 12:, :6] - np.stack([linear_to_pq(s) for s in stored])[:, 12:, :6]).mean() < 0.01 * 65535


def test_only_a_folder_of_openexr_files_is_a_plate_written_back_as_openexr(tmp_path):
    """A folder with another image among its OpenEXR frames counts its frames by content, so its edits'
    frames are PNGs (in PQ), not OpenEXR frames that could be paired with the wrong plate frame."""
    from videop2p.io.video import plate_files

    plate = _folder(tmp_path / "plate")
    for k in range(3):
        write_exr(plate / f"{k + 1}.exr", _scene(k))
    (plate / ".DS_Store").write_bytes(b"x")  # hidden: passed over
    assert plate_files(plate) == [plate / "1.exr", plate / "2.exr", plate / "3.exr"]
    assert plate_files(plate / "2.exr") == [plate / "2.exr"] and plate_files(tmp_path / "missing") is None
    from PIL import Image

    Image.new("RGB", (40, 24)).save(plate / "4.png")  # read as a fourth frame
    assert plate_files(plate) is None and len(read_video(plate).frames) == 4


def test_a_run_on_exr_frames_says_how_they_are_read_and_writes_hdr_video(tiny, tmp_path, caplog):
    """The whole run: the loading note says the frames are scene light read as HDR, the edits are HDR video."""
    import logging

    from videop2p.config import InversionMethod, RunConfig, VideoConfig
    from videop2p.pipeline import VideoP2P

    plate = _folder(tmp_path / "plate")
    for k in range(3):
        write_exr(plate / f"{k + 1}.exr", _scene(k))
    cfg = RunConfig(source="a red square moving", targets=["a blue square moving"], out=str(tmp_path / "o"), quiet=True)
    cfg.video = VideoConfig(path=str(plate), frames=3)
    cfg.tune.steps, cfg.inversion.steps, cfg.inversion.method = 1, 2, InversionMethod.FAST
    with caplog.at_level(logging.WARNING, logger="videop2p.pipeline"):
        manifest = VideoP2P(tiny, None).run(cfg)
    assert manifest["hdr"] == "PQ" and manifest["output_size"] == [40, 24]
    assert any("holds OpenEXR frames, scene-linear light" in r.getMessage() for r in caplog.records)
    assert "OpenEXR" in (tmp_path / "o" / "report.md").read_text()
