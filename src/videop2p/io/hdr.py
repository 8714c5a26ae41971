"""HDR video (ITU-R BT.2100: PQ or HLG, BT.2020 colours) shown on an SDR screen, as 8-bit BT.709 RGB.

The model, the edit and every SDR player work in BT.709; read as stored, an HDR frame's code values
look flat and dull. The conversion, in small steps that each cite their standard: the signal to
display light in cd/m2 (BT.2100's PQ EOTF, or HLG's inverse OETF and OOTF on a 1000 cd/m2 display),
BT.2020 to BT.709 primaries in linear light (BT.2087), the highlights rolled off by BT.2390's EETF onto
an SDR screen whose white is HDR's reference white (203 cd/m2, BT.2408), applied to each pixel's
largest component so that hues keep their ratios (as FFmpeg's `tonemap` filter does), and the
result encoded for a BT.1886 (gamma 2.4) display. A PQ clip's highlights roll off from the brightest
light its file says it holds (`content_peak`: its content light level, bounded by its mastering
display's peak); where it says neither, from 1000 cd/m2, the usual grade. HLG is scene light shown on
BT.2100's nominal 1000 cd/m2 display, whatever its file says of its mastering. Light above the peak is
clipped.

The way back (`sdr_to_hdr`) undoes each step, so that an SDR edit pasted into an HDR clip's own frames
shows on an SDR screen as it was made, and the pixels it leaves keep the file's values.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

PQ, HLG = 16, 18  # FFmpeg's numbers of the HDR transfers (SMPTE ST 2084, ARIB STD-B67)
PQ_M1, PQ_M2 = 2610 / 16384, 2523 / 4096 * 128  # BT.2100 Table 4
PQ_C1, PQ_C2, PQ_C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
PQ_MAX = 10000.0  # cd/m2: PQ's signal 1
HLG_A = 0.17883277  # BT.2100 Table 5
HLG_B = 1 - 4 * HLG_A
HLG_C = 0.5 - HLG_A * np.log(4 * HLG_A)
HDR_PEAK = 1000.0  # cd/m2: the display HDR is mastered for (HLG's nominal peak, where its system gamma is 1.2)
REFERENCE_WHITE = 203.0  # cd/m2: HDR's diffuse white (BT.2408), shown as the SDR screen's white
SDR_GAMMA = 2.4  # BT.1886
BT2100_LUMA = np.array([0.2627, 0.6780, 0.0593])  # BT.2020 / BT.2100 luminance weights of R, G, B
BT709_XY = (0.640, 0.330, 0.300, 0.600, 0.150, 0.060, 0.3127, 0.3290)  # BT.709's red, green, blue and D65's x, y
BT2020_XY = (0.708, 0.292, 0.170, 0.797, 0.131, 0.046, 0.3127, 0.3290)  # BT.2020's red, green, blue and D65's x, y
BRADFORD = np.array(
    [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]]
)  # CIE XYZ -> Bradford's cone responses (Lam 1985; ICC.1 v4, Annex E)
CODES = 65536  # 16-bit R'G'B' code values, each channel's transfer a table over them
BAND_ROWS = 64  # rows converted together: a 3840-wide band's float32 light (2.8 MiB) stays in the CPU's caches


def xy_to_xyz(x: float, y: float) -> np.ndarray:
    """CIE xy chromaticity -> XYZ (3,) at luminance Y = 1."""
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def rgb_to_xyz(xy: tuple[float, ...]) -> np.ndarray:
    """(3, 3) linear RGB -> CIE XYZ for primaries and white `xy` (red, green, blue, white: x, y each), white
    at Y = 1: SMPTE RP 177's normalised primary matrix."""
    primaries = np.stack([xy_to_xyz(xy[i], xy[i + 1]) for i in (0, 2, 4)], axis=1)  # (3, 3) columns R, G, B
    return primaries * np.linalg.solve(primaries, xy_to_xyz(xy[6], xy[7]))  # each scaled so R + G + B = white


def adapt_white(source: tuple[float, float], target: tuple[float, float]) -> np.ndarray:
    """(3, 3) XYZ seen under white `source` -> the corresponding XYZ under white `target` (x, y each): von
    Kries scaling of Bradford's cone responses (ICC.1 v4, Annex E)."""
    ratio = (BRADFORD @ xy_to_xyz(*target)) / (BRADFORD @ xy_to_xyz(*source))
    return np.linalg.inv(BRADFORD) @ np.diag(ratio) @ BRADFORD


def rgb_to_rgb(source: tuple[float, ...], target: tuple[float, ...]) -> np.ndarray:
    """(3, 3) linear RGB of primaries and white `source` -> of `target` (`rgb_to_xyz`'s form), the white
    adapted (`adapt_white`): BT.709 to BT.2020 is BT.2087's matrix."""
    return np.linalg.inv(rgb_to_xyz(target)) @ adapt_white(source[6:8], target[6:8]) @ rgb_to_xyz(source)


BT2020_TO_BT709 = rgb_to_rgb(BT2020_XY, BT709_XY)  # BT.2087's matrix (linear light): each row sums to 1
BT709_TO_BT2020 = rgb_to_rgb(BT709_XY, BT2020_XY)  # the way back, the matrix BT.2087 tabulates


def pq_eotf(signal: np.ndarray) -> np.ndarray:
    """PQ signal [0, 1] -> display light in cd/m2 (BT.2100 Table 4, EOTF)."""
    p = np.power(np.clip(signal, 0.0, 1.0), 1 / PQ_M2)
    return PQ_MAX * np.power(np.maximum(p - PQ_C1, 0.0) / (PQ_C2 - PQ_C3 * p), 1 / PQ_M1)


def pq_inverse_eotf(light: np.ndarray) -> np.ndarray:
    """Display light in cd/m2 -> PQ signal [0, 1] (BT.2100 Table 4, inverse EOTF)."""
    y = np.power(np.clip(light / PQ_MAX, 0.0, 1.0), PQ_M1)
    return np.power((PQ_C1 + PQ_C2 * y) / (1 + PQ_C3 * y), PQ_M2)


def hlg_inverse_oetf(signal: np.ndarray) -> np.ndarray:
    """HLG signal [0, 1] -> normalised scene light [0, 1] (BT.2100 Table 5, inverse OETF)."""
    e = np.clip(signal, 0.0, 1.0)
    high = (np.exp((np.maximum(e, 0.5) - HLG_C) / HLG_A) + HLG_B) / 12
    return np.where(e <= 0.5, e * e / 3, high)


def hlg_oetf(scene: np.ndarray) -> np.ndarray:
    """Normalised scene light [0, 1] -> HLG signal [0, 1] (BT.2100 Table 5, OETF)."""
    e = np.clip(scene, 0.0, 1.0)
    high = HLG_A * np.log(np.maximum(12 * e - HLG_B, 1e-12)) + HLG_C
    return np.where(e <= 1 / 12, np.sqrt(3 * e), high)


def hlg_system_gamma(peak: float) -> float:
    """HLG's system gamma for a display of `peak` cd/m2 (BT.2100 Table 5 note: 1.2 at 1000 cd/m2)."""
    return 1.2 + 0.42 * np.log10(peak / 1000.0)


def hlg_ootf(scene: np.ndarray, peak: float = HDR_PEAK) -> np.ndarray:
    """Scene light (..., 3) [0, 1] -> display light in cd/m2 on a `peak` display (BT.2100 Table 5, OOTF)."""
    luminance = scene @ BT2100_LUMA  # (...,)
    return peak * np.power(luminance, hlg_system_gamma(peak) - 1)[..., None] * scene


def bt2390_eetf(light: np.ndarray, source_peak: float, target_peak: float) -> np.ndarray:
    """Light in cd/m2 mastered up to `source_peak`, shown on a `target_peak` display: identity below a knee,
    a Hermite roll-off above it that reaches `target_peak` at `source_peak` (BT.2390 section 5.4.1, black
    level 0). A target at least as bright as the source keeps every value."""
    top = pq_inverse_eotf(np.asarray(source_peak))
    e1 = pq_inverse_eotf(np.minimum(light, source_peak)) / top  # the source's range as [0, 1]
    max_lum = pq_inverse_eotf(np.asarray(target_peak)) / top
    knee = 1.5 * max_lum - 0.5
    if knee >= 1:
        return np.minimum(light, source_peak)
    t = np.clip((e1 - knee) / (1 - knee), 0.0, 1.0)
    spline = (2 * t**3 - 3 * t**2 + 1) * knee + (t**3 - 2 * t**2 + t) * (1 - knee) + (-2 * t**3 + 3 * t**2) * max_lum
    return pq_eotf(np.where(e1 < knee, e1, spline) * top)


def content_peak(max_cll: float | None, mastering_peak: float | None) -> float | None:
    """The brightest light a PQ clip holds, in cd/m2, from what its file says: its content light level
    (MaxCLL, CTA-861.3), bounded by the peak of the display it was mastered on (SMPTE ST 2086), or whichever
    of the two it says; None where it says neither (a value outside (0, PQ_MAX] says nothing)."""
    said = [float(v) for v in (max_cll, mastering_peak) if v is not None and 0 < v <= PQ_MAX]
    return min(said) if said else None


def _channel_light(transfer: int) -> np.ndarray:
    """Each 16-bit code value's light, (65536,) float32: cd/m2 for PQ (its EOTF), scene light [0, 1] for HLG
    (its inverse OETF; the OOTF mixes channels and comes after)."""
    signal = np.arange(CODES, dtype=np.float64) / (CODES - 1)
    if transfer == PQ:
        return pq_eotf(signal).astype(np.float32)
    if transfer == HLG:
        return hlg_inverse_oetf(signal).astype(np.float32)
    raise ValueError(f"transfer {transfer} is not an HDR transfer; expected {PQ} (PQ) or {HLG} (HLG).")


def _gain_table(peak: float) -> np.ndarray:
    """`bt2390_eetf`'s gain from `peak` over [0, peak] in 65536 steps, (65536,) float32 (0.015 cd/m2 a step
    for a 1000 cd/m2 peak; 1 below the knee)."""
    grid = np.linspace(0.0, peak, CODES)
    gain = (bt2390_eetf(grid, peak, REFERENCE_WHITE) / np.maximum(grid, 1e-6)).astype(np.float32)
    gain[0] = 1.0
    return gain


def _gamma_table() -> np.ndarray:
    """8-bit code values for a BT.1886 (gamma 2.4) display over the square root of linear light [0, 1] in
    65536 steps, (65536,) uint8 (finer than 8 bits everywhere: its darkest step is 0.03 of a level)."""
    return np.round(255 * np.power(np.linspace(0.0, 1.0, CODES), 2 / SDR_GAMMA)).astype(np.uint8)


@dataclass(frozen=True)
class _Tables:
    """What `hdr_to_sdr` reads per value, built once per frame: each 16-bit code's light (`_channel_light`),
    the roll-off's gain (`_gain_table`) and the gamma encoding (`_gamma_table`)."""

    light: np.ndarray
    gain: np.ndarray
    gamma: np.ndarray


def _roll_off(largest: np.ndarray, peak: float, gain: np.ndarray) -> np.ndarray:
    """`bt2390_eetf`'s gain from `peak` for each pixel's largest component (cd/m2, float32), read from its
    table `gain` (`_gain_table`; a pixel's own EETF, or `np.interp` on the table, costs ten times as long)."""
    step = np.float32((CODES - 1) / peak)
    return gain[(np.minimum(largest, np.float32(peak)) * step + np.float32(0.5)).astype(np.int32)]


def _to_sdr(rgb: np.ndarray, transfer: int, peak: float, tables: _Tables) -> np.ndarray:
    """`hdr_to_sdr` of a band of rows (H, W, 3) uint16 -> (H, W, 3) uint8, with its tables."""
    light = tables.light[rgb]  # (H, W, 3) float32
    if transfer == HLG:  # scene light to display light: BT.2100's OOTF on a `peak` display
        luminance = light @ BT2100_LUMA.astype(np.float32)  # (H, W)
        light *= (peak * np.power(luminance, np.float32(hlg_system_gamma(peak) - 1)))[..., None]
    light = light @ BT2020_TO_BT709.T.astype(np.float32)  # (H, W, 3) cd/m2, BT.709
    np.maximum(light, 0.0, out=light)
    largest = np.maximum(np.maximum(light[..., 0], light[..., 1]), light[..., 2])  # (H, W)
    gain = _roll_off(largest, peak, tables.gain) * np.float32(1 / REFERENCE_WHITE)  # the largest at most white ...
    light *= gain[..., None]  # ... which is the screen's white, 1
    return _gamma_encoded(light, tables.gamma)


def hdr_to_sdr(rgb: np.ndarray, transfer: int, peak: float = HDR_PEAK, workers: int | None = None) -> np.ndarray:
    """An HDR frame's R'G'B' (H, W, 3) uint16 (BT.2020, PQ or HLG) -> (H, W, 3) uint8 BT.709 RGB as an SDR
    screen shows it: display light (BT.2100; HLG's on a `peak` display), BT.709 primaries (BT.2087;
    out-of-gamut light clipped), the largest component rolled off from `peak` cd/m2 by BT.2390's EETF onto
    reference white (BT.2408), encoded for gamma 2.4. The frame is converted in bands of BAND_ROWS rows,
    whose values stay in the CPU's caches from step to step, on `workers` threads (None: as many as torch
    uses, as the writers do; numpy lets go of the GIL in each step); each pixel is converted alone."""
    return hdr_to_sdr_converter(transfer, peak, workers)(rgb)


def hdr_to_sdr_converter(
    transfer: int, peak: float = HDR_PEAK, workers: int | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """`hdr_to_sdr` of a clip's frames, its tables built once for all of them (a ValueError names a
    transfer that is not HDR's, before any frame)."""
    tables = _Tables(_channel_light(transfer), _gain_table(peak), _gamma_table())
    return lambda rgb: _in_bands(lambda band: _to_sdr(band, transfer, peak, tables), rgb, np.uint8, workers)


def sdr_to_hdr(rgb: np.ndarray, transfer: int, peak: float = HDR_PEAK, workers: int | None = None) -> np.ndarray:
    """`hdr_to_sdr` undone: 8-bit BT.709 RGB (H, W, 3) as an SDR screen shows it -> HDR R'G'B' (H, W, 3)
    uint16 (BT.2020, PQ or HLG) that `hdr_to_sdr` shows as it (within a level for 99% of 8-bit colours, up to
    5 where a channel near black sits beside a bright one: docs/long_clips.md): light for a gamma 2.4
    display (BT.1886), the largest component's roll-off undone (BT.2390's EETF from `peak` onto reference
    white, BT.2408, is monotonic, so its inverse is read from a table), BT.2020 primaries (BT.2087's
    matrix inverted), then the transfer's signal (PQ's inverse EOTF; for HLG, BT.2100's OOTF on a `peak`
    display undone and its OETF). In bands on `workers` threads, as `hdr_to_sdr`."""
    return sdr_to_hdr_converter(transfer, peak, workers)(rgb)


def sdr_to_hdr_converter(
    transfer: int, peak: float = HDR_PEAK, workers: int | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """`sdr_to_hdr` of a clip's frames, its tables built once for all of them (the roll-off's inverse takes
    18 ms to tabulate, more than converting a small edit's pixels)."""
    if transfer not in (PQ, HLG):
        raise ValueError(f"transfer {transfer} is not an HDR transfer; expected {PQ} (PQ) or {HLG} (HLG).")
    tables = _InverseTables(_linear_table(), _ratio_table(peak))
    return lambda rgb: _in_bands(lambda band: _from_sdr(band, transfer, peak, tables), rgb, np.uint16, workers)


def torch_threads() -> int:
    """The threads torch uses, which a user sets: the budget of io's converters and encoders, as of the
    writers (torch is loaded already wherever a clip is read for a model; io imports it only here)."""
    import torch

    return torch.get_num_threads()


def _in_bands(convert, rgb: np.ndarray, dtype, workers: int | None) -> np.ndarray:
    """`convert` of each band of BAND_ROWS rows of `rgb` (H, W, 3) -> (H, W, 3) `dtype`, on `workers` threads
    (None: as many as torch uses)."""
    workers = torch_threads() if workers is None else workers
    edges = np.linspace(0, rgb.shape[0], max(1, rgb.shape[0] // BAND_ROWS) + 1).astype(int)  # bands of rows
    out = np.empty(rgb.shape, dtype)  # (H, W, 3)

    def run(band: int) -> None:
        rows = slice(edges[band], edges[band + 1])
        out[rows] = convert(rgb[rows])

    if workers <= 1 or len(edges) <= 2:
        for band in range(len(edges) - 1):
            run(band)
        return out
    with ThreadPoolExecutor(min(workers, len(edges) - 1)) as pool:
        list(pool.map(run, range(len(edges) - 1)))  # each band's error is raised here
    return out


@dataclass(frozen=True)
class _InverseTables:
    """What `sdr_to_hdr` reads per value: each 8-bit code's linear light (`_linear_table`) and, per largest
    component, the factor that undoes the roll-off (`_ratio_table`)."""

    linear: np.ndarray
    ratio: np.ndarray


def _linear_table() -> np.ndarray:
    """Each 8-bit code value's light on a BT.1886 (gamma 2.4) display, 1 the screen's white, (256,) float32."""
    return np.power(np.arange(256) / 255.0, SDR_GAMMA).astype(np.float32)


def _ratio_table(peak: float) -> np.ndarray:
    """For an SDR pixel whose largest component is s (linear light, 1 the screen's white) over [0, 1] in 65536
    steps: the factor to cd/m2 that undoes `hdr_to_sdr`'s roll-off, L / s where `bt2390_eetf(L)` is
    s x reference white (REFERENCE_WHITE below the knee), (65536,) float32."""
    light = np.linspace(0.0, peak, 4 * CODES)
    shown = bt2390_eetf(light, peak, REFERENCE_WHITE) / REFERENCE_WHITE  # increasing from 0 to 1
    s = np.linspace(0.0, 1.0, CODES)
    ratio = np.interp(s, shown, light) / np.maximum(s, 1e-12)
    ratio[0] = REFERENCE_WHITE
    return ratio.astype(np.float32)


def _from_sdr(rgb: np.ndarray, transfer: int, peak: float, tables: _InverseTables) -> np.ndarray:
    """`sdr_to_hdr` of a band of rows (H, W, 3) uint8 -> (H, W, 3) uint16, with its tables."""
    light = tables.linear[rgb]  # (H, W, 3) float32, 1 the screen's white
    largest = np.maximum(np.maximum(light[..., 0], light[..., 1]), light[..., 2])  # (H, W)
    light *= tables.ratio[(largest * np.float32(CODES - 1) + np.float32(0.5)).astype(np.int32)][..., None]  # cd/m2
    light = light @ BT709_TO_BT2020.T.astype(np.float32)  # (H, W, 3) cd/m2, BT.2020
    np.maximum(light, 0.0, out=light)
    if transfer == PQ:
        signal = pq_inverse_eotf(light)
    else:  # display light to scene light: BT.2100's OOTF on a `peak` display undone, then HLG's OETF
        luminance = np.maximum(light @ BT2100_LUMA.astype(np.float32), np.float32(1e-12)) / np.float32(peak)
        gamma = hlg_system_gamma(peak)
        scene = light / (np.float32(peak) * np.power(luminance, np.float32((gamma - 1) / gamma)))[..., None]
        largest = np.maximum(np.maximum(scene[..., 0], scene[..., 1]), scene[..., 2])  # (H, W)
        scene /= np.maximum(largest, np.float32(1.0))[..., None]  # a colour HLG cannot hold: its hue kept, darker
        signal = hlg_oetf(scene)
    return np.round(signal * (CODES - 1)).astype(np.uint16)


def _gamma_encoded(sdr: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Linear SDR light (..., 3) float32, 1 the screen's white (changed in place) -> 8-bit code values for
    a BT.1886 (gamma 2.4) display, rounded: read from `table` (`_gamma_table`) at the square root of the
    light, in place of a power per value, which costs three times as long."""
    np.minimum(sdr, 1.0, out=sdr)
    np.sqrt(sdr, out=sdr)
    sdr *= np.float32(CODES - 1)
    sdr += np.float32(0.5)
    return table[sdr.astype(np.int32)]


def linear_to_pq(rgb: np.ndarray, primaries: tuple[float, ...] = BT709_XY, workers: int | None = None) -> np.ndarray:
    """Scene-linear RGB (H, W, 3) float, 1 its diffuse white (an OpenEXR plate's), of `primaries` (red, green,
    blue, white: x, y each) -> HDR R'G'B' (H, W, 3) uint16, BT.2020 and PQ: BT.2020 primaries (`rgb_to_rgb`),
    1 at HDR's reference white (BT.2408), PQ's inverse EOTF (BT.2100). Not-a-number is black, light outside
    BT.2020's gamut is clipped to it, light above PQ's 10000 cd/m2 is clipped. In bands on `workers` threads,
    as `hdr_to_sdr`."""
    matrix = (rgb_to_rgb(primaries, BT2020_XY) * REFERENCE_WHITE).T.astype(np.float32)

    def convert(band: np.ndarray) -> np.ndarray:
        light = np.nan_to_num(band.astype(np.float32), nan=0.0, posinf=PQ_MAX, neginf=0.0) @ matrix  # cd/m2
        return np.round(pq_inverse_eotf(np.maximum(light, np.float32(0.0))) * (CODES - 1)).astype(np.uint16)

    return _in_bands(convert, rgb, np.uint16, workers)


def pq_to_linear(rgb: np.ndarray, primaries: tuple[float, ...] = BT709_XY) -> np.ndarray:
    """`linear_to_pq` undone: HDR R'G'B' (..., 3) uint16 (BT.2020, PQ) -> scene-linear RGB (..., 3) float32 of
    `primaries`, 1 at HDR's reference white: PQ's EOTF (BT.2100), the light over reference white (BT.2408),
    then `primaries` (`rgb_to_rgb`)."""
    light = pq_eotf(rgb.astype(np.float64) / (CODES - 1)) / REFERENCE_WHITE
    return (light @ rgb_to_rgb(BT2020_XY, primaries).T).astype(np.float32)
