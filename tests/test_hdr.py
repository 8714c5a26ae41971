"""HDR video (BT.2100 PQ and HLG) read as an SDR screen shows it: the standards' own values, and clips
made from known colours read back as those colours."""

import os
from dataclasses import dataclass

import av
import numpy as np
import pytest

from videop2p.io.hdr import (
    BT2020_TO_BT709,
    HDR_PEAK,
    HLG,
    HLG_A,
    HLG_B,
    HLG_C,
    PQ,
    REFERENCE_WHITE,
    SDR_GAMMA,
    bt2390_eetf,
    content_peak,
    hdr_to_sdr,
    hlg_inverse_oetf,
    hlg_ootf,
    hlg_system_gamma,
    pq_eotf,
    pq_inverse_eotf,
    sdr_to_hdr,
)
from videop2p.io.video import DEEP_SDR, DeepSignal, probe_video, read_video
from videop2p.io.writing import write_mp4


def _rgb_to_xyz(primaries: list[tuple[float, float]], white=(0.3127, 0.3290)) -> np.ndarray:
    """RGB -> XYZ of a set of xy primaries and a white point (SMPTE RP 177), computed here from the
    chromaticities alone, to check the module's matrix independently."""
    p = np.array([[x / y for x, y in primaries], [1, 1, 1], [(1 - x - y) / y for x, y in primaries]])
    w = np.array([white[0] / white[1], 1, (1 - white[0] - white[1]) / white[1]])
    return p * np.linalg.solve(p, w)


BT709_XY = [(0.640, 0.330), (0.300, 0.600), (0.150, 0.060)]
BT2020_XY = [(0.708, 0.292), (0.170, 0.797), (0.131, 0.046)]


def test_the_transfer_curves_give_the_standards_values():
    # BT.2408 Table 1: 100 cd/m2 is PQ 51%, 203 (HDR reference white) 58%, 1000 75%
    assert pq_inverse_eotf(np.array([100.0, 203.0, 1000.0])) == pytest.approx([0.5081, 0.5807, 0.7518], abs=2e-4)
    light = np.array([0.0, 0.01, 1.0, 203.0, 4000.0, 10000.0])
    assert pq_eotf(pq_inverse_eotf(light)) == pytest.approx(light, rel=1e-6, abs=1e-9)
    assert hlg_inverse_oetf(np.array([0.0, 0.5, 1.0])) == pytest.approx([0.0, 1 / 12, 1.0], abs=1e-6)
    assert hlg_system_gamma(1000.0) == pytest.approx(1.2) and hlg_system_gamma(2000.0) > 1.2
    # BT.2408: HLG's reference white, 75% signal, is 203 cd/m2 on the nominal 1000 cd/m2 display
    white = hlg_ootf(np.full((1, 3), hlg_inverse_oetf(np.array(0.75))), HDR_PEAK)
    assert white == pytest.approx(np.full((1, 3), 203.0), abs=0.5)
    assert float(hlg_ootf(np.ones((1, 3)), HDR_PEAK)[0, 0]) == pytest.approx(HDR_PEAK)  # signal 1 is the peak


def test_the_gamut_matrix_is_bt2087s_from_the_primaries():
    expected = np.linalg.solve(_rgb_to_xyz(BT709_XY), _rgb_to_xyz(BT2020_XY))  # BT.2020 RGB -> BT.709 RGB
    assert pytest.approx(expected, abs=1e-9) == BT2020_TO_BT709
    assert BT2020_TO_BT709.sum(axis=1) == pytest.approx(np.ones(3), abs=1e-9)  # white stays white, neutral


def test_the_eetf_keeps_what_is_below_its_knee_and_rolls_off_to_the_screens_peak():
    light = np.linspace(0.0, HDR_PEAK, 2001)
    out = bt2390_eetf(light, HDR_PEAK, REFERENCE_WHITE)
    assert out[-1] == pytest.approx(REFERENCE_WHITE, rel=1e-6) and out.max() <= REFERENCE_WHITE * (1 + 1e-6)
    assert np.all(np.diff(out) >= -1e-9)  # monotone: brighter stays brighter
    kept = np.isclose(out, light, rtol=1e-6)
    knee = light[~kept][0]  # identity up to the knee, then below it, without a jump
    assert kept[light < knee].all() and 80 < knee < REFERENCE_WHITE / 2 and not kept[light > knee].any()
    assert np.abs(np.diff(out)).max() < 2 * (light[1] - light[0])
    assert bt2390_eetf(light, HDR_PEAK, 2 * HDR_PEAK) == pytest.approx(light)  # a brighter screen: nothing to do
    assert bt2390_eetf(np.array([5000.0]), HDR_PEAK, REFERENCE_WHITE) == pytest.approx([REFERENCE_WHITE])  # clipped


def _hlg_oetf(scene: np.ndarray) -> np.ndarray:
    """BT.2100's HLG OETF (scene light [0, 1] -> signal), the inverse the module does not need."""
    scene = np.clip(scene, 0.0, 1.0)
    return np.where(scene <= 1 / 12, np.sqrt(3 * scene), HLG_A * np.log(np.maximum(12 * scene - HLG_B, 1e-12)) + HLG_C)


def _hdr_signal(display: np.ndarray, transfer: int) -> np.ndarray:
    """The HDR signal (BT.2020) of BT.709 display light `display` (..., 3), relative to reference white."""
    nits = display @ np.linalg.inv(BT2020_TO_BT709).T * REFERENCE_WHITE  # (..., 3) cd/m2, BT.2020
    if transfer == PQ:
        return pq_inverse_eotf(nits)
    luminance = (nits / HDR_PEAK) @ np.array([0.2627, 0.6780, 0.0593])  # display, then the OOTF undone
    scene_luminance = np.maximum(np.power(luminance, 1 / 1.2), 1e-12)  # black stays black
    return _hlg_oetf(nits / (HDR_PEAK * np.power(scene_luminance, 0.2))[..., None])


def _ycbcr_10bit(rgb: np.ndarray) -> list[np.ndarray]:
    """R'G'B' (H, W, 3) [0, 1] -> 10-bit limited-range Y', Cb, Cr planes (H, W) uint16 with BT.2020's matrix
    (BT.2020 Table 4, Kr 0.2627, Kb 0.0593), made here so that no converter's defaults enter the test."""
    kr, kb = 0.2627, 0.0593
    y = rgb @ np.array([kr, 1 - kr - kb, kb])
    cb, cr = (rgb[..., 2] - y) / (2 * (1 - kb)), (rgb[..., 0] - y) / (2 * (1 - kr))
    return [np.round(64 + 876 * y), np.round(512 + 896 * cb), np.round(512 + 896 * cr)]


def _write_hdr_clip(path, patches: np.ndarray, transfer: int, matrix: int = 9, x265: str | None = None) -> None:
    """A clip of flat 16-pixel patches of HDR signal, 10-bit BT.2020 Y'CbCr as a phone's HDR clip is, tagged
    with `transfer` and the matrix `matrix` (2 says none; the pixels are always BT.2020's); lossless (FFV1,
    or with `x265` HEVC as phones write it, those x265 parameters added: one thread and no B-frames, as
    x265's frame threads made muxing fail now and then), so that what is checked is the reading, not a
    codec's loss."""
    height, width = 32, 16 * len(patches)
    rgb = np.repeat(np.repeat(patches[None, :, None, :], 16, axis=2).reshape(1, width, 3), height, axis=0)
    planes = _ycbcr_10bit(np.clip(rgb, 0.0, 1.0))  # 3 x (H, W)
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1" if x265 is None else "libx265", rate=8)
        s.width, s.height, s.pix_fmt = width, height, "yuv444p10le"
        if x265 is not None:
            steady = "log-level=error:lossless=1:bframes=0:frame-threads=1:pools=none"
            s.options = {"x265-params": ":".join(filter(None, [steady, x265]))}
        s.codec_context.color_primaries, s.codec_context.color_trc, s.codec_context.colorspace = 9, transfer, matrix
        s.codec_context.color_range = 1  # limited
        for i in range(2):
            frame = av.VideoFrame(width, height, "yuv444p10le")
            frame.pts = i
            for plane, values in zip(frame.planes, planes, strict=True):
                rows = np.zeros((height, plane.line_size // 2), np.uint16)  # (H, padded W) little-endian words
                rows[:, :width] = values
                plane.update(rows.astype("<u2").tobytes())
            c.mux(s.encode(frame))
        c.mux(s.encode())


# BT.709 display light relative to reference white: skin, a saturated red, mid grey, a dark green, black,
# all below the roll-off's knee; reference white; then highlights at 2x and 4.9x reference white (1000 cd/m2)
BELOW_KNEE = np.array([[0.40, 0.25, 0.18], [0.42, 0.03, 0.02], [0.18, 0.18, 0.18], [0.02, 0.12, 0.03], [0, 0, 0]])
BRIGHT = np.array([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [HDR_PEAK / REFERENCE_WHITE] * 3, [2.0, 0.4, 0.2]])


@pytest.mark.parametrize("transfer", [PQ, HLG])
@pytest.mark.parametrize("matrix", [9, 2])
def test_an_hdr_clip_reads_as_an_sdr_screen_shows_it(tmp_path, transfer, matrix):
    patches = np.concatenate([BELOW_KNEE, BRIGHT])
    path = tmp_path / "hdr.mkv"
    _write_hdr_clip(path, _hdr_signal(patches, transfer), transfer, matrix)
    frame = read_video(path).frames[0]  # (32, W, 3) uint8
    seen = frame[16, 8::16].astype(int)  # each patch's centre
    want = np.round(255 * np.power(BELOW_KNEE, 1 / SDR_GAMMA)).astype(int)  # as gamma 2.4 shows that light
    assert np.abs(seen[: len(BELOW_KNEE)] - want).max() <= 3  # 10-bit codes: within 3 levels
    white, twice, peak, orange = seen[len(BELOW_KNEE) :]
    assert max(np.ptp(white), np.ptp(twice), np.ptp(peak)) <= 2  # neutral stays neutral
    assert 215 <= white[0] < twice[0] < peak[0] <= 255  # brighter stays brighter, rolled off below clipping
    assert orange[0] > orange[1] > orange[2]  # a bright orange keeps its hue's order, not clipped to white
    as_stored = hdr_to_sdr(np.round(_hdr_signal(patches, transfer) * 65535).astype(np.uint16)[None], transfer)[0]
    assert np.abs(seen - as_stored.astype(int)).max() <= 3  # the reader is the module's conversion


def test_an_sdr_clip_is_not_tone_mapped(tmp_path):
    from videop2p.io.writing import write_mp4

    frames = np.full((2, 32, 32, 3), 180, np.uint8)
    frames[:, :, 16:] = (200, 40, 30)
    back = read_video(write_mp4(frames, tmp_path / "sdr.mp4", 8.0)).frames
    assert np.abs(back[0, 16, [8, 24]].astype(int) - [[180] * 3, [200, 40, 30]]).max() <= 3


def test_the_peak_a_file_says_is_its_content_light_bounded_by_its_mastering_display():
    assert content_peak(600, 1000) == 600 and content_peak(4000, 1000) == 1000  # MaxCLL, at most the display's
    assert content_peak(None, 4000) == 4000 and content_peak(1500, None) == 1500  # whichever is said
    assert content_peak(None, None) is None and content_peak(0, None) is None  # 0: unknown (CTA-861.3)
    assert content_peak(float("nan"), 20000) is None  # nonsense says nothing


def test_highlights_roll_off_from_the_peak_given():
    light = np.array([[[500.0] * 3, [1000.0] * 3, [2000.0] * 3, [4000.0] * 3]])  # (1, 4, 3) cd/m2, neutral
    codes = np.round(pq_inverse_eotf(light @ np.linalg.inv(BT2020_TO_BT709).T) * 65535).astype(np.uint16)
    at_1000, at_4000 = hdr_to_sdr(codes, PQ)[0, :, 0].astype(int), hdr_to_sdr(codes, PQ, 4000.0)[0, :, 0].astype(int)
    assert at_1000[1] == at_1000[2] == at_1000[3] == 255  # above the default peak: clipped alike
    assert at_4000[0] < at_4000[1] < at_4000[2] < at_4000[3] == 255  # from 4000: every step shows, 4000 is white
    assert at_4000[1] < at_1000[1]  # the screen's white goes to the brighter light


# the mastering display of HDR10 grades (BT.2020 primaries, D65; 4000 cd/m2 peak) and content up to 4000 cd/m2
HDR10_4000 = "master-display=G(8500,39850)B(6550,2300)R(35400,14600)WP(15635,16450)L(40000000,50):max-cll=4000,400"


@pytest.mark.parametrize("said", [HDR10_4000, None])
def test_a_pq_clip_is_tone_mapped_from_the_peak_its_file_says(tmp_path, said):
    patches = np.array([[100.0] * 3, [500.0] * 3, [1000.0] * 3, [2000.0] * 3]) / REFERENCE_WHITE  # cd/m2, neutral
    path = tmp_path / "hdr10.mkv"
    _write_hdr_clip(path, _hdr_signal(patches, PQ), PQ, x265=said or "")  # HEVC, as a phone writes HDR10
    seen = read_video(path).frames[0][16, 8::16, 0].astype(int)[2:]  # the 1000 and 2000 cd/m2 patches' centres
    (conversion,) = probe_video(path).conversions
    if said:  # the highlights roll off from 4000 cd/m2: both patches seen, apart
        assert seen[0] < seen[1] < 255 and "rolled off from 4000 cd/m2, as the file says" in conversion
    else:  # 1000 cd/m2 assumed, the usual grade: both at or above it, clipped alike
        assert seen[0] == seen[1] == 255 and "1000 cd/m2, assumed" in conversion


def test_the_gamma_encoding_table_is_the_power_law_to_the_rounding():
    from videop2p.io.hdr import _gamma_encoded, _gamma_table

    light = np.concatenate([np.geomspace(1e-9, 1.0, 200_000), np.linspace(0.0, 1.2, 200_000)]).astype(np.float32)
    exact = 255 * np.power(np.minimum(light.astype(np.float64), 1.0), 1 / SDR_GAMMA)  # (N,) in levels
    got = _gamma_encoded(light.copy(), _gamma_table()).astype(int)
    off = got != np.round(exact)
    assert np.abs(got - np.round(exact)).max() <= 1 and off.mean() < 0.01
    assert np.abs(exact[off] % 1 - 0.5).max() < 0.03  # off by one only within 0.03 of a level's edge


@dataclass
class _Frame:
    """What `_read_size` reads of a decoded frame."""

    width: int
    height: int


def test_an_hdr_frame_is_read_at_the_size_that_covers_its_working_size():
    from fractions import Fraction

    from videop2p.io.video import _read_size, _Showing

    area = {"interpolation": "AREA"}
    assert _read_size(_Frame(3840, 2160), _Showing(), (512, 512)) == {"width": 911, "height": 512, **area}
    assert _read_size(_Frame(3840, 2160), _Showing(orientation=6), (512, 512)) == {
        "width": 911,
        "height": 512,
        **area,
    }  # a square working size: the same either way
    assert _read_size(_Frame(3840, 2160), _Showing(orientation=8), (288, 512)) == {
        "width": 512,
        "height": 288,
        **area,
    }  # shown 2160x3840 for 288x512: covered at 288x512 shown, 512x288 as stored
    anamorphic = _Showing(sar=Fraction(4, 3))  # 1440x1080 shown at 1920x1080
    assert _read_size(_Frame(1440, 1080), anamorphic, (480, 270)) == {"width": 360, "height": 270, **area}
    assert _read_size(_Frame(1920, 1080), _Showing(), (1920, 1080)) == {}  # not larger: whole
    assert _read_size(_Frame(1920, 1080), _Showing(), None) == {}


@pytest.mark.parametrize("transfer", [PQ, HLG])
def test_an_hdr_clip_read_small_shows_what_reading_it_whole_and_resizing_shows(tmp_path, transfer):
    from videop2p.io.video import resize_frames

    patches = np.concatenate([BELOW_KNEE, BRIGHT])  # 9 patches of 16x32: 144x32
    path = tmp_path / "hdr.mkv"
    _write_hdr_clip(path, _hdr_signal(patches, transfer), transfer)
    size = (36, 8)  # a quarter: read at that size, then resized (a crop of nothing)

    def resize(frame):
        return resize_frames(frame[None], *size)[0]

    whole = read_video(path, transform=resize).frames[0].astype(int)  # (8, 36, 3)
    small = read_video(path, transform=resize, small=size).frames[0].astype(int)
    assert small.shape == whole.shape
    centres = np.s_[4, 2::4]  # each 4-pixel patch's centre
    assert np.abs(small[centres] - whole[centres]).max() <= 3


@pytest.mark.parametrize("transfer", [PQ, HLG])
def test_a_frame_tone_mapped_in_bands_on_threads_is_the_frame_tone_mapped_whole(transfer):
    codes = np.random.default_rng(1).integers(0, 65536, (300, 48, 3), dtype=np.uint16)  # (H, W, 3): 4 bands
    whole = hdr_to_sdr(codes, transfer, 2000.0, workers=1)
    assert np.array_equal(hdr_to_sdr(codes, transfer, 2000.0, workers=3), whole)
    assert np.array_equal(hdr_to_sdr(codes[:50], transfer, 2000.0, workers=3), whole[:50])  # one band: no threads


@pytest.mark.parametrize(("transfer", "peak"), [(PQ, HDR_PEAK), (PQ, 4000.0), (HLG, HDR_PEAK)])
def test_sdr_to_hdr_gives_values_that_an_sdr_screen_shows_as_the_colours_it_was_given(transfer, peak):
    """Every 8-bit colour on a grid (and every grey) made HDR and tone-mapped again: within a level but where a
    channel near black sits beside a bright one (BT.2020's matrix then weighs the 16-bit values' rounding);
    colours under the roll-off's knee within a level everywhere."""
    levels = np.arange(0, 256, 5, dtype=np.uint8)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 1, 3)  # (52^3, 1, 3)
    greys = np.repeat(np.arange(256, dtype=np.uint8)[:, None, None], 3, axis=2)
    colours = np.concatenate([grid, greys])
    hdr = sdr_to_hdr(colours, transfer, peak, workers=1)
    assert hdr.dtype == np.uint16
    off = np.abs(hdr_to_sdr(hdr, transfer, peak, workers=1).astype(int) - colours)
    assert off.max() <= 5 and (off > 1).mean() < 0.004
    assert off[-256:].max() <= 1  # the greys
    known = np.round(255 * np.power(np.clip(BELOW_KNEE, 0, 1), 1 / SDR_GAMMA)).astype(np.uint8)[None]  # (1, 5, 3)
    again = hdr_to_sdr(sdr_to_hdr(known, transfer, peak, workers=1), transfer, peak, workers=1)
    assert np.abs(again.astype(int) - known).max() <= 1
    assert np.array_equal(sdr_to_hdr(colours[:300], transfer, peak, workers=3), hdr[:300])  # bands on threads


def test_sdr_to_hdr_names_a_transfer_that_is_not_hdrs():
    with pytest.raises(ValueError, match="transfer 1 is not an HDR transfer"):
        sdr_to_hdr(np.zeros((2, 2, 3), np.uint8), 1)


MASTERING = (0.708, 0.292, 0.170, 0.797, 0.131, 0.046, 0.3127, 0.3290, 4000.0, 0.005)  # BT.2020, D65, 4000 cd/m2


def _hdr_run(tmp_path, transfer: int, size: tuple[int, int], composite: str, png: bool = False):
    """A run of one edit on an HDR input (10-bit SDR for BT709) of `size` (width, height) edited at 32x32 (its
    centre, cropped; 64x64 at its own size):
    the input smooth gradients of mid colours (a channel near black beside a bright one is where 10-bit
    BT.2020 values, encoded twice, shift most as an SDR screen shows them), the edit a flat colour, its
    mask the middle of the frame; written with `composite`."""
    from types import SimpleNamespace

    import torch

    from videop2p.config import RunConfig, VideoConfig
    from videop2p.editing import EditResult
    from videop2p.io.video import BT709, DEEP_SDR, DeepSignal
    from videop2p.io.writing import write_mp4
    from videop2p.outputs import write_run_outputs
    from videop2p.pipeline import Clip, EditOutput

    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    sdr = [np.stack([60 + x + 5 * t, 60 + 2 * y, 60 + (x + y) // 2 + t], -1).astype(np.uint8) for t in range(4)]
    if transfer == BT709:  # 10-bit SDR: smooth ramps between 8-bit levels (x 257: the same values at 16 bits)
        said = DEEP_SDR
        ramps = [np.stack([60 + 0.4 * x + 5 * t, 60 + 0.7 * y, 60 + 0.3 * (x + y) + t], -1) for t in range(4)]
        frames = [np.round(r * 257).astype(np.uint16) for r in ramps]
    else:
        said = DeepSignal(transfer, MASTERING, (1500, 400)) if transfer == PQ else DeepSignal(transfer)
        frames = [sdr_to_hdr(f, transfer, said.peak) for f in sdr]
    video = write_mp4(frames, tmp_path / "input.mp4", 8.0, deep=said)
    probe = probe_video(video)
    assert probe.deep == said  # the written file says what it was given
    top, left = (height - min(size)) // 2, (width - min(size)) // 2
    step = 1 if size == (64, 64) else min(size) // 32  # 64x64: edited at its own size
    seen = read_video(video).frames
    source = seen[:, top : top + min(size), left : left + min(size)][:, ::step, ::step]  # (4, h, w, 3)
    edit = np.full_like(source, (40, 90, 160))
    masks = torch.zeros(1, 4, 4, 4, dtype=torch.bool)
    masks[:, :, 1:3, 1:3] = True
    result = EditResult(torch.zeros(2, 4, 4, 4, 4), masks, torch.rand(2, 4, 4, 4, 3), [["a"]] * 2, {}, ["swap"])
    full = size if step > 1 else None
    clip = Clip(source, 8.0, "hdr", video=VideoConfig(path=str(video), frames=4), full_size=full, deep=probe.deep)
    cfg = RunConfig(source="a red circle", targets=["a blue circle"], out=str(tmp_path / composite))
    cfg.composite, cfg.png_frames = composite, png
    info = SimpleNamespace(identity="synthetic", vae_scale_factor=8)
    return write_run_outputs(cfg, clip, EditOutput(source.copy(), [edit], result), [], info, workers=2), video


@pytest.mark.parametrize(("transfer", "size"), [(PQ, (96, 64)), (HLG, (64, 64))])
def test_an_hdr_clips_edits_stay_hdr_video_with_its_metadata_and_its_own_pixels(tmp_path, transfer, size):
    """The edit pasted into the HDR input's own frames (at the working size too), written as 10-bit HEVC
    in its transfer with its HDR10 metadata: the input's signal where nothing is pasted (the PNG frames to
    the bit, the mp4 to the codec), the edit's colour where it is, as an SDR screen shows both."""
    from videop2p.io.video import iter_video

    manifest, video = _hdr_run(tmp_path, transfer, size, "auto", png=True)
    out = tmp_path / "auto"
    assert manifest["hdr"] == ("PQ" if transfer == PQ else "HLG") and manifest["output_size"] == list(size)
    assert probe_video(out / "edit_1.mp4").deep == probe_video(video).deep  # transfer, mastering, light level
    with av.open(str(out / "edit_1.mp4")) as c:
        codec = c.streams.video[0].codec_context
        assert (codec.name, codec.pix_fmt, codec.color_primaries, codec.colorspace) == ("hevc", "yuv420p10le", 9, 9)
    width, height = size
    inside = np.s_[:, height // 2 - 2 : height // 2 + 2, width // 2 - 2 : width // 2 + 2]
    outside = np.s_[:, :, :4]  # left of the mask's box (feathered over half a cell)
    signal = np.stack(list(iter_video(video, 0, 4, signal=True))).astype(int)  # (4, H, W, 3) uint16 values
    pngs = np.stack(list(iter_video(out / "edit_1", 0, 4, signal=True))).astype(int)
    mp4 = np.stack(list(iter_video(out / "edit_1.mp4", 0, 4, signal=True))).astype(int)
    assert np.array_equal(pngs[outside], signal[outside])  # lossless: the input's own values
    assert np.abs(mp4[outside] - signal[outside]).mean() < 0.01 * 65535  # 10-bit HEVC's loss
    assert probe_video(out / "edit_1").deep == probe_video(video).deep  # the PNGs say it too (cICP, mDCv, cLLi)
    for shown in (read_video(out / "edit_1").frames, read_video(out / "edit_1.mp4").frames):  # tone-mapped
        assert np.abs(shown[inside].astype(int) - (40, 90, 160)).max() <= 4
    assert (
        np.abs(read_video(out / "edit_1.mp4").frames[outside].astype(int) - read_video(video).frames[outside]).mean()
        < 2
    )
    assert probe_video(out / "edit_1.gif").deep is None  # previews are SDR


@pytest.mark.parametrize("size", [(96, 64), (64, 64)])
def test_a_10_bit_sdr_clips_edits_stay_10_bit_video_with_its_own_pixels(tmp_path, size, caplog):
    """A 10-bit SDR input (a camera's, an editor's export) is seen by the model at 8 bits; its edit is pasted
    into its own 16-bit frames (at the working size too) and written as 10-bit HEVC in BT.709: the input's
    values where nothing is pasted (the PNG frames to the bit, the mp4 finer than 8 bits could hold them)."""
    import logging

    from videop2p.io.video import BT709, DEEP_SDR, iter_video, sixteen_to_eight

    with caplog.at_level(logging.INFO, logger="videop2p.outputs"):
        manifest, video = _hdr_run(tmp_path, BT709, size, "auto", png=True)
    assert [r.getMessage() for r in caplog.records] == [
        f"{video} is 10-bit video: the edits' mp4s are pasted into its own frames as 10-bit HEVC (--composite sdr: "
        "8-bit H.264)"
    ]
    out = tmp_path / "auto"
    probe = probe_video(video)
    assert probe.deep == DEEP_SDR and probe.deep.name == "SDR" and probe.conversions == ()  # nothing converted
    assert manifest["hdr"] is None and manifest["bits"] == 10 and manifest["output_size"] == list(size)
    with av.open(str(out / "edit_1.mp4")) as c:
        codec = c.streams.video[0].codec_context
        said = (codec.name, codec.pix_fmt, codec.color_primaries, codec.color_trc, codec.colorspace)
        assert said == ("hevc", "yuv420p10le", BT709, BT709, BT709)
    assert probe_video(out / "edit_1.mp4").deep == DEEP_SDR and probe_video(out / "edit_1").deep == DEEP_SDR
    assert probe_video(out / "edit_1.gif").deep is None  # previews are 8-bit
    width, height = size
    inside = np.s_[:, height // 2 - 2 : height // 2 + 2, width // 2 - 2 : width // 2 + 2]
    outside = np.s_[:, :, :4]  # left of the mask's box (feathered over half a cell)
    signal = np.stack(list(iter_video(video, 0, 4, signal=True))).astype(int)  # (4, H, W, 3) uint16 values
    assert len(np.unique(signal[0, 0, :, 0] % 257)) > 4  # values between 8-bit levels
    seen = read_video(video).frames.astype(int)  # the model's 8 bits
    assert np.abs(seen - sixteen_to_eight(signal)).max() <= 1
    pngs = np.stack(list(iter_video(out / "edit_1", 0, 4, signal=True))).astype(int)
    mp4 = np.stack(list(iter_video(out / "edit_1.mp4", 0, 4, signal=True))).astype(int)
    assert np.array_equal(pngs[outside], signal[outside])  # lossless: the input's own values
    assert np.abs(mp4[outside] - signal[outside]).mean() < 0.01 * 65535  # 10-bit HEVC's loss (8 bits': next test)
    assert np.array_equal(read_video(out / "edit_1").frames, sixteen_to_eight(pngs).astype(np.uint8))  # rounded
    for shown in (read_video(out / "edit_1").frames, read_video(out / "edit_1.mp4").frames):
        assert np.abs(shown[inside].astype(int) - (40, 90, 160)).max() <= 4


def test_a_10_bit_sdr_clips_edits_are_8_bit_when_asked_or_without_x265(tmp_path, monkeypatch, caplog):
    """`composite: sdr` writes a 10-bit SDR input's edits as 8-bit H.264, with nearly four times the 10-bit edit's
    loss where nothing is pasted; so does an FFmpeg without x265, which the log says."""
    import logging

    import videop2p.outputs
    from videop2p.io.video import BT709, iter_video

    manifest, video = _hdr_run(tmp_path, BT709, (96, 64), "sdr")
    assert manifest["bits"] == 8 and manifest["output_size"] == [96, 64]
    with av.open(str(tmp_path / "sdr" / "edit_1.mp4")) as c:
        assert (c.streams.video[0].codec_context.name, c.streams.video[0].codec_context.pix_fmt) == ("h264", "yuv420p")
    _hdr_run(tmp_path, BT709, (96, 64), "auto")
    outside = np.s_[:, :, :4]  # left of the mask's box
    signal = np.stack(list(iter_video(video, 0, 4, signal=True)))[outside].astype(int)  # 16-bit values
    eight = np.stack(list(iter_video(tmp_path / "sdr" / "edit_1.mp4", 0, 4)))[outside].astype(int) * 257
    ten = np.stack(list(iter_video(tmp_path / "auto" / "edit_1.mp4", 0, 4, signal=True)))[outside].astype(int)
    assert np.abs(ten - signal).mean() * 3 < np.abs(eight - signal).mean()  # measured: 85 against 331
    monkeypatch.setattr(videop2p.outputs, "deep_writable", lambda: False)
    with caplog.at_level(logging.WARNING, logger="videop2p.outputs"):
        manifest, _ = _hdr_run(tmp_path / "no-x265", BT709, (64, 64), "auto")
    assert manifest["bits"] == 8 and manifest["output_size"] is None  # at the working size: nothing to paste
    assert [r.getMessage() for r in caplog.records] == [
        "this FFmpeg has no x265 encoder: the edits of a 10-bit clip are written as 8-bit SDR video"
    ]


@pytest.mark.parametrize("composite", ["sdr", "off"])
def test_an_hdr_clips_edits_are_sdr_video_when_asked(tmp_path, composite):
    """`composite: sdr` pastes into the input's frames as an SDR screen shows them; `off` writes the
    working size: both SDR video (H.264, BT.709)."""
    manifest, video = _hdr_run(tmp_path, PQ, (96, 64), composite)
    edit = tmp_path / composite / "edit_1.mp4"
    assert manifest["hdr"] is None and probe_video(edit).deep is None
    with av.open(str(edit)) as c:
        assert (c.streams.video[0].codec_context.name, c.streams.video[0].codec_context.color_trc) == ("h264", 1)
    shown = read_video(edit).frames
    assert shown.shape[1:3] == ((64, 96) if composite == "sdr" else (32, 32))
    assert np.abs(shown[:, shown.shape[1] // 2, shown.shape[2] // 2].astype(int) - (40, 90, 160)).max() <= 4
    if composite == "sdr":  # the input as it was seen, where nothing is pasted
        assert np.abs(shown[:, :, :4].astype(int) - read_video(video).frames[:, :, :4]).mean() < 2


def test_an_anamorphic_hdr_frame_is_resampled_to_square_pixels_in_its_own_16_bits():
    """An HDR frame read in its own form (pasting into it) is widened to square pixels as its 8-bit reading
    is: the same bicubic resampling, at 16 bits."""
    from videop2p.io.video import _resampled

    y, x = np.mgrid[0:24, 0:30]
    levels = np.stack([x * 8, y * 10, (x + y) * 4], -1).astype(np.uint8)  # (24, 30, 3) smooth ramps
    wide8 = _resampled(levels, (40, 24)).astype(int)
    wide16 = _resampled(levels.astype(np.uint16) * 257, (40, 24))
    assert wide16.dtype == np.uint16 and wide16.shape == (24, 40, 3)
    assert np.abs(wide16 / 257 - wide8).max() <= 1  # Pillow's 8-bit resampling rounds each pass


def test_without_an_hevc_encoder_an_hdr_clips_edits_are_sdr_video_and_the_log_says_so(tmp_path, monkeypatch, caplog):
    import logging

    import videop2p.outputs

    monkeypatch.setattr(videop2p.outputs, "deep_writable", lambda: False)  # an FFmpeg built without x265
    with caplog.at_level(logging.WARNING, logger="videop2p.outputs"):
        manifest, _ = _hdr_run(tmp_path, PQ, (96, 64), "auto")
    assert manifest["hdr"] is None and probe_video(tmp_path / "auto" / "edit_1.mp4").deep is None
    assert [r.getMessage() for r in caplog.records] == [
        "this FFmpeg has no x265 encoder: the edits of an HDR clip are written as 8-bit SDR video"
    ]


def test_x265_runs_without_a_thread_pool_and_writes_the_same_file_on_any_number_of_threads(tmp_path):
    """x265 on a thread pool of torch's threads crashed now and then in flushing its lookahead (a segfault
    in `Lookahead::getDecidedPicture`, x265 issue #684: it stopped the test suite once, and 5 of 15
    processes writing 200 short 10-bit files in bench/x265_pool.py) or spun for ever. It is given no
    pool: while it encodes, the process has as many threads more on one torch thread as on two (a pool
    of each had one and two), and the file is the same."""
    import psutil
    import torch

    y, x = np.mgrid[0:144, 0:256]  # three rows of x265's 64-pixel blocks
    ramps = [np.stack([x * 200 + 900 * t, y * 300, (x + y) * 100], -1).astype(np.uint16) for t in range(6)]
    process, threads = psutil.Process(), torch.get_num_threads()
    extra, files = {}, {}

    def frames(n):
        for k, frame in enumerate(ramps):
            if k == 3:  # x265 has taken the first frames: its threads are running
                extra[n] = process.num_threads() - before
            yield frame

    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            before = process.num_threads()
            path = write_mp4(frames(n), tmp_path / f"{n}.mp4", 8.0, deep=DeepSignal(PQ))
            with av.open(str(path)) as c:
                files[n] = b"".join(bytes(p) for p in c.demux(video=0))
    finally:
        torch.set_num_threads(threads)
    assert extra[1] == extra[2] and files[1] == files[2] and len(files[1]) > 500


def test_info_says_whether_hdr_clips_edits_can_be_hdr_video(monkeypatch):
    from typer.testing import CliRunner

    import videop2p.io.writing
    from videop2p.cli import app

    said = []
    for writable in (True, False):
        monkeypatch.setattr(videop2p.io.writing, "deep_writable", lambda writable=writable: writable)
        result = CliRunner().invoke(app, ["info"])
        assert result.exit_code == 0, result.output
        said.append(next(line for line in result.output.splitlines() if line.startswith("video: PyAV")))
    assert said[0].endswith("HDR and 10-bit clips' edits as 10-bit video (x265)")
    assert said[1].endswith("HDR and 10-bit clips' edits as 8-bit SDR (this FFmpeg has no x265)")


def _png16(rgb: np.ndarray) -> bytes:
    """A 16-bit RGB PNG of (H, W, 3) uint16 with no colour chunk, as image libraries write them."""
    codec = av.codec.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = rgb.shape[1], rgb.shape[0], "rgb48be"
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le").reformat(format="rgb48be")
    return b"".join(bytes(packet) for packet in [*codec.encode(frame), *codec.encode(None)])


def test_a_folder_of_16_bit_pngs_is_10_bit_sdr_its_8_bit_frames_rounded_and_made_16_bit_among_them(tmp_path):
    """16-bit PNGs without a colour chunk are deep SDR: the model sees them rounded to 8 bits (Pillow would
    cut them), pasting reads their own values, and an 8-bit frame among them is read at 16 bits there."""
    from PIL import Image

    from videop2p.io.video import DEEP_SDR, iter_video, sixteen_to_eight

    rgb = np.stack(np.meshgrid(np.arange(0, 65535, 2000), np.arange(0, 65535, 4000)), -1)[..., [0, 1, 0]]
    rgb = rgb.astype(np.uint16)  # (17, 33, 3): values between 8-bit levels
    (tmp_path / "1.png").write_bytes(_png16(rgb))
    Image.fromarray(sixteen_to_eight(rgb)).save(tmp_path / "2.png")
    assert probe_video(tmp_path).deep == DEEP_SDR
    seen = read_video(tmp_path).frames
    assert np.array_equal(seen[0], sixteen_to_eight(rgb)) and np.array_equal(seen[1], sixteen_to_eight(rgb))
    first, second = iter_video(tmp_path, 0, 2, signal=True)
    assert np.array_equal(first, rgb) and second.dtype == np.uint16
    assert np.array_equal(second, sixteen_to_eight(rgb).astype(np.uint16) * 257)


def test_a_folder_of_16_bit_tiffs_is_10_bit_sdr_whatever_the_files_are_named(tmp_path):
    """A VFX plate's 16-bit RGB TIFFs (one named .jpg, as some sample clips' frames are) are deep SDR: seen
    rounded to 8 bits, pasted into at their own 16 bits; an 8-bit TIFF stays 8-bit."""
    from PIL import Image

    from videop2p.io.video import DEEP_SDR, iter_video, sixteen_to_eight

    y, x = np.mgrid[0:24, 0:40]
    frames = [np.stack([x * 1000 + 50 * k, y * 1300, (x + y) * 500], -1).astype(np.uint16) for k in range(2)]
    for name, rgb in zip(("1.tif", "2.jpg"), frames, strict=True):
        codec = av.codec.CodecContext.create("tiff", "w")
        codec.width, codec.height, codec.pix_fmt = 40, 24, "rgb48le"
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le")
        (tmp_path / name).write_bytes(b"".join(bytes(p) for p in [*codec.encode(frame), *codec.encode(None)]))
    assert probe_video(tmp_path).deep == DEEP_SDR
    assert np.array_equal(read_video(tmp_path).frames, sixteen_to_eight(np.stack(frames)))  # Pillow cuts: 3.9 -> 3
    assert all(np.array_equal(a, b) for a, b in zip(iter_video(tmp_path, 0, 2, signal=True), frames, strict=True))
    eight = tmp_path / "eight"
    eight.mkdir()
    Image.fromarray(sixteen_to_eight(frames[0])).save(eight / "1.tif")
    assert probe_video(eight).deep is None


@pytest.mark.parametrize(("transfer", "name"), [(1, "SDR"), (PQ, "PQ")])
def test_deep_frames_are_not_written_as_a_gif(tmp_path, transfer, name):
    from videop2p.io.video import DeepSignal, VideoError
    from videop2p.io.writing import write_video

    with pytest.raises(VideoError, match=f"a GIF holds 8-bit colours, not 10-bit {name} video; write an .mp4"):
        write_video(np.zeros((2, 8, 8, 3), np.uint16), tmp_path / "x.gif", deep=DeepSignal(transfer))
    assert not (tmp_path / "x.gif").exists()


def test_a_folder_of_10_bit_dpx_scans_is_read_by_ffmpeg_as_10_bit_sdr(tmp_path):
    """A film scan's DPX frames (which Pillow cannot open; one named .jpg, found by content) are 10-bit
    SDR: seen rounded to 8 bits, pasted into at 16 bits; a damaged one is named."""
    from videop2p.io.video import DEEP_SDR, VideoError, declared_frames, iter_video, sixteen_to_eight

    y, x = np.mgrid[0:24, 0:40]
    for k, name in enumerate(("shot.1001.dpx", "shot.1002.dpx", "shot.1003.jpg")):
        rgb = np.stack([x * 900 + 300 * k, y * 1200, (x + y) * 500], -1).astype(np.uint16)
        codec = av.codec.CodecContext.create("dpx", "w")
        codec.width, codec.height, codec.pix_fmt = 40, 24, "gbrp10le"
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le").reformat(format="gbrp10le")
        (tmp_path / name).write_bytes(b"".join(bytes(p) for p in [*codec.encode(frame), *codec.encode(None)]))
    own = []
    for name in ("shot.1001.dpx", "shot.1002.dpx", "shot.1003.jpg"):
        with av.open(str(tmp_path / name)) as c:  # FFmpeg's reading of each, alone
            own.append(next(c.decode(video=0)).to_ndarray(format="rgb48le"))
    assert probe_video(tmp_path).deep == DEEP_SDR and declared_frames(tmp_path) == 3
    assert np.array_equal(read_video(tmp_path).frames, sixteen_to_eight(np.stack(own)))
    assert all(np.array_equal(a, b) for a, b in zip(iter_video(tmp_path, 0, 3, signal=True), own, strict=True))
    import videop2p.io.video as video

    opened = []
    real_open = video.av.open
    with pytest.MonkeyPatch.context() as patch:  # the size and depth are read from the headers: one frame decoded
        patch.setattr(video.av, "open", lambda path, *a, **k: opened.append(path) or real_open(path, *a, **k))
        assert probe_video(tmp_path).size == (40, 24) and len(opened) == 1
    data = (tmp_path / "shot.1002.dpx").read_bytes()
    (tmp_path / "shot.1002.dpx").write_bytes(data[:100])  # its header cut short
    with pytest.raises(VideoError, match="shot.1002.dpx is not a readable image"):
        read_video(tmp_path)


def test_info_describes_a_clip_as_it_is_read_and_the_size_the_model_works_it_at(tmp_path):
    """`videop2p info CLIP`: its size, rate, length and sound, its form (8-bit, 10-bit, HDR), what reading it
    converts, the working size and what a run takes of it; a clip that cannot be read is one line, before
    the model is loaded."""
    from typer.testing import CliRunner

    from videop2p.cli import app
    from videop2p.io.video import DEEP_SDR, DeepSignal
    from videop2p.io.writing import write_mp4

    y, x = np.mgrid[0:64, 0:96]
    frames = [np.stack([x * 500, y * 700, (x + y) * 300], -1).astype(np.uint16) for _ in range(12)]
    clips = {
        "8-bit SDR": str(write_mp4([(f >> 8).astype(np.uint8) for f in frames], tmp_path / "sdr.mp4", 24.0)),
        "SDR of more than 8 bits": str(write_mp4(frames, tmp_path / "ten.mp4", 24.0, deep=DEEP_SDR)),
        "HDR video (HLG)": str(write_mp4(frames[:4], tmp_path / "hlg.mp4", 24.0, deep=DeepSignal(HLG))),
    }
    for form, path in clips.items():
        result = CliRunner().invoke(app, ["info", path])
        assert result.exit_code == 0, result.output
        said = result.output.split(f"clip: {path}\n")[1].splitlines()
        count = 4 if "HLG" in form else 12
        assert said[0] == f"  96x64 as shown, 24 fps, {count} frames, {count / 24:.2f} s, no sound"
        assert said[1].startswith(f"  {form}")
        assert any(line.startswith("  worked at 80x56 by this model") for line in said)  # the toy model's area
        assert ("a run edits its first 8 frames" in result.output) == (count > 8)
        short = "a run needs --frames 4 or fewer (the default takes 8; --frames 0: every frame)"
        assert (short in result.output) == (count < 8)  # said before a run refuses it
        assert ("is HDR video (HLG, ARIB STD-B67)" in result.output) == ("HLG" in form)  # its conversion said
    result = CliRunner().invoke(app, ["info", str(tmp_path / "missing.mp4")])
    assert result.exit_code == 2 and result.output.strip().splitlines() == [
        f"error: Video path '{tmp_path / 'missing.mp4'}' does not exist; give a video file, an animated image or a "
        "folder of frames."
    ]


def test_a_frame_with_side_data_pyav_does_not_know_reads_as_saying_no_hdr_metadata(tmp_path):
    """FFmpeg 8 attaches kinds of side data that PyAV 18.1.0's enum lacks (a picture's EXIF, MV-HEVC's view
    ids), which makes it refuse to list any (18.1.1 lists them as unknown kinds); the HDR metadata of such a
    frame is read as unsaid (the default peak), not as an error that stops the read."""
    from PIL import Image

    from videop2p.io.video import _hdr_metadata

    exif = Image.Exif()
    exif[0x0112] = 1
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "1.jpg", exif=exif)
    with av.open(str(tmp_path / "1.jpg")) as container:
        frame = next(container.decode(video=0))
    assert _hdr_metadata(frame) == (None, None)


NARROW_WRITER = """
import sys
import numpy as np
from videop2p.io.video import DEEP_SDR
from videop2p.io.writing import write_mp4

for height, width in ((24, 40), (64, 48), (32, 16)):
    frames = np.random.default_rng(0).integers(0, 65535, (3, height, width, 3), dtype=np.uint16)
    write_mp4(frames, f"{sys.argv[1]}/{width}.mp4", 8.0, deep=DEEP_SDR)
"""


def test_a_narrow_10bit_mp4_leaves_the_process_heap_whole(tmp_path):
    """x265's CU-tree writes past its buffers on frames 48 pixels wide or narrower (valgrind: invalid writes
    in `Lookahead::cuTree`), which corrupted the heap and crashed the test suite later, at random (a
    segfault in glibc's `_int_malloc`). Under glibc's checking allocator the corruption is found at once,
    on closing the encoder ('free(): invalid pointer'): the process writing such frames ends well, and
    its files read back at their size."""
    import subprocess
    import sys
    from pathlib import Path

    from videop2p.io.writing import X265_CUTREE_MIN_WIDTH, x265_params

    maps = Path("/proc/self/maps").read_text() if Path("/proc/self/maps").is_file() else ""
    libc = next((Path(line.split()[-1]) for line in maps.splitlines() if line.endswith("/libc.so.6")), None)
    checking = libc.parent / "libc_malloc_debug.so.0" if libc is not None else None
    if checking is None or not checking.is_file():
        pytest.skip("glibc's checking allocator (libc_malloc_debug.so.0) is not installed")
    env = {**os.environ, "LD_PRELOAD": str(checking), "MALLOC_CHECK_": "3"}
    done = subprocess.run([sys.executable, "-c", NARROW_WRITER, str(tmp_path)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    for width, height in ((40, 24), (48, 64), (16, 32)):
        assert probe_video(tmp_path / f"{width}.mp4").size == (width, height)
    assert "cutree=0" in x265_params(DEEP_SDR, X265_CUTREE_MIN_WIDTH - 2)
    assert "cutree" not in x265_params(DEEP_SDR, X265_CUTREE_MIN_WIDTH)
