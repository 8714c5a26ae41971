"""Writing clips: H.264 mp4, mov or mkv (10-bit HEVC for a deep clip, in its own form), VP9 webm, animated
GIF, folders of PNG or OpenEXR frames, and the side-by-side previews; each file written whole or not at all."""

from __future__ import annotations

import collections
import itertools
import os
import re
import struct
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from videop2p.config import DEFAULT_FPS, OptionError, as_argument, check_number, plain_number, plain_path, unusable_path
from videop2p.io.exr import encode_exr, read_header, read_linear
from videop2p.io.hdr import HLG, PQ, linear_to_pq, pq_to_linear
from videop2p.io.video import (
    BT709,
    BT2020,
    CHROMATICITY_UNITS,
    GIF_MIN_DELAY,
    LIGHT_UNITS,
    LIMITED_RANGE,
    PNG_SIGNATURE,
    AudioSpan,
    DeepSignal,
    VideoError,
    uint8_frames,
)
from videop2p.store.files import atomic_path

VARIABLE_RATE_CLOCK = Fraction(1, 90000)  # s: the time base of an mp4 whose frames keep their own times (MPEG's)
MP4_OPTIONS = {"crf": "16", "threads": "1", "bf": "0"}  # x264's, for `write_mp4`: one thread, no B-frames
# libvpx's, for a .webm: constant quality (no target bitrate; crf 12: the PSNR of x264's crf 16 on the rabbit
# clip), one thread without row threading, as x264's
VP9_OPTIONS = {"crf": "12", "b": "0", "threads": "1", "row-mt": "0", "deadline": "good", "cpu-used": "2"}
CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}  # `write_mp4`'s: FFmpeg's muxer
VIDEO_OUTPUTS = (*CONTAINERS, ".gif")  # the files `write_video` writes, by suffix
RANDOM_ID_MUXERS = ("matroska", "webm")  # muxers that give each file a random segment id, unless told to be bitexact
X265_OPTIONS = "log-level=error:info=0:bframes=0:frame-threads=1:pools=none:repeat-headers=1"  # x265's: one thread ...
X265_TRANSFERS = {PQ: "smpte2084", HLG: "arib-std-b67", BT709: "bt709"}  # x265's names of the transfers
X265_CUTREE_MIN_WIDTH = 64  # pixels, one of x265's largest coding units: narrower frames are written without
# its CU-tree, whose lookahead writes past its buffers on frames 48 wide or narrower (`x265_params`)
CICP_RGB, CICP_FULL_RANGE = 0, 1  # ITU-T H.273: "identity" (R'G'B', no matrix) and full range, as PNG stores
PREVIEW_MIN_WIDTH = 128  # pixels: a narrower tile of a preview (side by side, mask overlay) is enlarged


def mastering_units(mastering: tuple[float, ...]) -> list[int]:
    """An ST 2086 mastering display (`DeepSignal.mastering`) in HDR10's integer units, as files store it: x, y
    in 0.00002, light in 0.0001 cd/m2."""
    return [round(v * CHROMATICITY_UNITS) for v in mastering[:8]] + [round(v * LIGHT_UNITS) for v in mastering[8:]]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk: length, type, data, CRC-32 of type and data (PNG specification, section 5.3)."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def deep_png(frame: np.ndarray, deep: DeepSignal) -> bytes:
    """A lossless 16-bit PNG of a deep frame's own R'G'B' (H, W, 3) uint16, saying its form as PNG's 3rd
    edition does: cICP (its primaries, BT.2020 for HDR, BT.709 for SDR; its transfer; no matrix; full
    range), and mDCv and cLLi where its file said HDR10 metadata (chromaticities in 0.00002, light in
    0.0001 cd/m2)."""
    height, width = frame.shape[:2]
    codec = av.codec.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "rgb48be"
    rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb48le").reformat(format="rgb48be")
    png = b"".join(bytes(packet) for packet in [*codec.encode(rgb), *codec.encode(None)])
    primaries = BT2020 if deep.hdr else BT709
    said = _png_chunk(b"cICP", bytes([primaries, deep.transfer, CICP_RGB, CICP_FULL_RANGE]))
    if deep.mastering is not None:
        said += _png_chunk(b"mDCv", struct.pack(">8HII", *mastering_units(deep.mastering)))
    if deep.light_level is not None:
        said += _png_chunk(b"cLLi", struct.pack(">II", *(round(v * LIGHT_UNITS) for v in deep.light_level)))
    after_header = len(PNG_SIGNATURE) + 8 + 13 + 4  # the signature, then IHDR: length, type, 13 bytes, CRC
    return png[:after_header] + said + png[after_header:]


def frame_rate(fps: float) -> Fraction:
    """A frame rate as the fraction containers store: 30000/1001 for 29.97, 25 for 25.0."""
    return Fraction(fps).limit_denominator(1001)


def deep_writable() -> bool:
    """Whether this FFmpeg can write 10-bit video (`write_mp4`'s HEVC: x265), HDR or deep SDR."""
    return "libx265" in av.codecs_available


def x265_params(deep: DeepSignal, width: int) -> str:
    """x265's parameters for 10-bit video `width` pixels wide in `deep`'s form: its colours (HDR: BT.2020;
    SDR: BT.709), its transfer, limited range, and the HDR10 metadata its file said (ST 2086's mastering
    display in x265's units, chromaticities in 0.00002 and light in 0.0001 cd/m2, green, blue, red, white;
    CTA-861.3's MaxCLL, MaxFALL). Below X265_CUTREE_MIN_WIDTH without its CU-tree rate control: on frames
    48 pixels wide or narrower its `Lookahead::cuTree` writes past its buffers (valgrind; 50 and wider
    clean), which corrupted the process's heap and crashed it later, at random."""
    colours = "colorprim=bt2020:colormatrix=bt2020nc" if deep.hdr else "colorprim=bt709:colormatrix=bt709"
    said = [  # ... no thread pool: x265's lookahead on its pool's threads crashed in flushing now and then
        # (x265 issue #684; bench/x265_pool.py: 5 of 15 processes) or spun for ever; one thread is also the
        # same file on any machine. Without x265's note of its settings (it names the CPU)
        X265_OPTIONS,
        f"{colours}:transfer={X265_TRANSFERS[deep.transfer]}:range=limited",
    ]
    if width < X265_CUTREE_MIN_WIDTH:
        said.append("cutree=0")
    if deep.mastering is not None:
        *xy, peak, black = mastering_units(deep.mastering)  # R, G, B, white: x, y each
        said.append(
            f"master-display=G({xy[2]},{xy[3]})B({xy[4]},{xy[5]})R({xy[0]},{xy[1]})WP({xy[6]},{xy[7]})L({peak},{black})"
        )
    if deep.light_level is not None:
        said.append(f"max-cll={deep.light_level[0]},{deep.light_level[1]}")
    return ":".join(said)


def write_mp4(
    frames: np.ndarray | Iterable[np.ndarray],
    path: str | os.PathLike,
    fps: float = DEFAULT_FPS,
    audio: AudioSpan | None = None,
    times: np.ndarray | None = None,
    deep: DeepSignal | None = None,
) -> Path:
    """Write H.264 / yuv420p at `fps` (kept exactly, as a fraction), or each frame at its own time when
    `times` says them ((F + 1,) s, as `Video.times`), with `audio` as AAC when given;
    odd sides are padded by one pixel (the codec needs even sizes). The colours are BT.709 and the
    file says so (untagged, players guess: most take an HD file for BT.709, FFmpeg's converter for
    BT.601, and the two differ by up to 26 levels in a saturated green). `frames` may be an iterable of
    (H, W, 3) frames, encoded as they come (one frame in memory).

    x264 runs on one thread (its output depends on the thread count) and without B-frames (planning
    them, its macroblock-tree rate control reads memory it has not set, so the file depended on what
    the process had allocated before). Its macroblock tree can still make a file depend on the
    process's history (at times, after the process decoded another video); turning it off costs more
    than that is worth (docs/long_clips.md, "The same mp4 from the same frames").

    With `deep`, the frames are a deep clip's own R'G'B' (H, W, 3) uint16 (HDR: BT.2020, its transfer;
    SDR: BT.709), written as 10-bit HEVC (x265, `x265_params`: no B-frames, one frame at a time on one
    thread, so the file is the same on any machine) in that form, with the HDR10 metadata its file said,
    so that players show them as they show the clip. A .mov or .mkv path holds the same streams in that
    container (QuickTime's, Matroska's); a .webm path holds VP9 (libvpx, `VP9_OPTIONS`, on one thread) and
    Opus sound, as browsers play it (8-bit: not `deep`)."""
    path = Path(path)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise VideoError(f"Cannot write {path}: no frames.")
    h, w, _ = first.shape
    muxer = CONTAINERS.get(path.suffix.lower(), "mp4")
    vp9 = muxer == "webm"  # VP9 and Opus, 8-bit; else H.264 (HEVC for `deep`) and AAC
    ph, pw = (h, w) if vp9 else (h + h % 2, w + w % 2)  # VP9 keeps odd sides, H.264 and HEVC do not
    rgb_format, pix_fmt = ("rgb24", "yuv420p") if deep is None else ("rgb48le", "yuv420p10le")
    matrix = BT2020 if deep is not None and deep.hdr else BT709
    if vp9 and deep is not None:
        raise VideoError(
            f"Cannot write {path}: a .webm holds 8-bit VP9 here, not 10-bit {deep.name} video; write an .mp4."
        )
    codec, sound_codec = ("libvpx-vp9", "libopus") if vp9 else ("libx264", "aac")
    same = {"fflags": "+bitexact"} if muxer in RANDOM_ID_MUXERS else {}  # else a random id in each file
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format=muxer, options=same) as container:
        stream = container.add_stream(codec if deep is None else "libx265", rate=frame_rate(fps))
        stream.width, stream.height, stream.pix_fmt = pw, ph, pix_fmt
        if deep is not None:
            stream.options = {"crf": MP4_OPTIONS["crf"], "x265-params": x265_params(deep, pw)}
        else:
            stream.options = dict(VP9_OPTIONS if vp9 else MP4_OPTIONS)
        video = stream.codec_context  # said in the file, so every player shows the colours written
        if deep is None:
            video.colorspace = video.color_primaries = video.color_trc = BT709
        else:
            if muxer != "matroska":  # Matroska names the codec itself
                stream.codec_tag = "hvc1"  # HEVC as Apple's players take it in an mp4 or mov
            video.colorspace = video.color_primaries = matrix
            video.color_trc = deep.transfer
        video.color_range = LIMITED_RANGE
        if times is not None:  # each frame at its own time, in a clock fine enough for any of them
            video.time_base = VARIABLE_RATE_CLOCK
        sound = None
        if audio is not None:  # every stream is added before the first packet is written
            rate, layout = _audio_format(audio)
            sound = container.add_stream(sound_codec, rate=encoder_rate(sound_codec, rate), layout=layout)  # resampled
        for k, fr in enumerate(itertools.chain([first], frames)):
            if (ph, pw) != (h, w):
                fr = np.pad(fr, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
            rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(fr), format=rgb_format)
            yuv = rgb.reformat(format=pix_fmt, dst_colorspace=matrix, dst_color_range=LIMITED_RANGE)
            if times is not None:
                yuv.pts, yuv.time_base = round(times[k] / VARIABLE_RATE_CLOCK), VARIABLE_RATE_CLOCK
            container.mux(stream.encode(yuv))
        container.mux(stream.encode())
        if sound is not None:
            for frame in _audio_span(audio, rate, layout):
                container.mux(sound.encode(frame))
            container.mux(sound.encode())
    return path


def encoder_rate(codec: str, rate: int) -> int:
    """The sample rate `codec`'s encoder writes `rate` at: `rate` itself when it takes it, else the
    nearest it takes above (nothing lost), else its highest (AAC stops at 96 kHz: a 192 kHz track)."""
    rates = av.codec.Codec(codec, "w").audio_rates
    if not rates or rate in rates:
        return rate
    above = [r for r in rates if r >= rate]
    return min(above) if above else max(rates)


def _audio_format(audio: AudioSpan) -> tuple[int, str]:
    """Sample rate and channel layout of the span's audio stream (a layout of unnamed channels, as PCM
    in Matroska has, read as FFmpeg's usual one for that many, "Nc": an encoder takes no "2 channels")."""
    with av.open(audio.path) as source:
        src = source.streams.audio[0]
        channels = len(src.layout.channels)
        layout = av.AudioLayout(f"{channels}c").name if src.layout.name == f"{channels} channels" else src.layout.name
        return src.rate or src.codec_context.sample_rate, layout


def _audio_span(audio: AudioSpan, rate: int, layout: str) -> Iterator[av.AudioFrame]:
    """The decoded audio frames of the span, cut to it sample-exactly, numbered from 0."""
    first, last = round(audio.start * rate), round(audio.end * rate)
    written = 0
    with av.open(audio.path) as source:
        for frame in source.decode(source.streams.audio[0]):
            channels = len(frame.layout.channels)
            samples = frame.to_ndarray()  # (channels, n) planar, (1, n * channels) packed
            step = 1 if frame.format.is_planar else channels
            at = round(frame.time * rate) if frame.time is not None else first + written
            lo, hi = max(first - at, 0), min(last - at, samples.shape[1] // step)
            if at >= last:
                break
            if hi <= lo:
                continue
            cut = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples[:, lo * step : hi * step]), format=frame.format.name, layout=layout
            )
            cut.sample_rate, cut.pts, cut.time_base = rate, written, Fraction(1, rate)
            written += hi - lo
            yield cut


def _paletted(frame: np.ndarray) -> Image.Image:
    """An (H, W, 3) frame as a GIF's 8-bit frame: Pillow's adaptive (median-cut) palette, what its GIF
    writer itself makes of an RGB frame (Heckbert 1982, "Color image quantization for frame buffer display")."""
    return Image.fromarray(frame).convert("P", palette=Image.Palette.ADAPTIVE)


def paletted_frames(frames: Iterable[np.ndarray], workers: int = 1) -> Iterator[Image.Image]:
    """`_paletted` of each frame, in order, `workers` frames at a time in threads (Pillow's quantizer
    releases the GIL), reading at most 2 x `workers` frames ahead of the one returned."""
    workers = max(1, workers)
    with ThreadPoolExecutor(workers) as pool:
        pending: collections.deque[Future[Image.Image]] = collections.deque()
        for frame in frames:
            pending.append(pool.submit(_paletted, frame))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _centiseconds(times: Iterable[float]) -> list[int]:
    """Times in s as a GIF's whole centiseconds, each the nearest."""
    return [round(100 * float(t)) for t in times]


def _far_enough(starts: Iterable[int]) -> Iterator[bool]:
    """For frames starting at `starts` (cs), whether each starts `GIF_MIN_DELAY` or more after the last one
    kept (the first is kept): the frames a GIF may show, told as they come, before its end is known."""
    last = None
    for at in starts:
        keep = last is None or at - last >= GIF_MIN_DELAY
        last = at if keep else last
        yield keep


@dataclass
class _GifSelection:
    """The frames `write_gif` makes palettes for, told as the frames come: those `_far_enough` keeps."""

    kept: list[int] = field(default_factory=list)  # their indices
    count: int = 0  # how many frames came

    def frames(self, frames: Iterable[np.ndarray], starts: Iterable[int]) -> Iterator[np.ndarray]:
        for i, (frame, keep) in enumerate(zip(frames, _far_enough(starts), strict=False)):  # starts: F + 1 or more
            self.count = i + 1
            if keep:
                self.kept.append(i)
                yield frame


def gif_frames(times: np.ndarray) -> tuple[list[int], list[int]]:
    """Which frames a GIF shows, and for how long (ms, whole centiseconds), for frames shown at
    `times` ((F + 1,) s: each frame's start and the last one's end): each frame from the centisecond
    nearest its start to the next shown frame's, so the GIF keeps the clip's time (at 30 fps: 3, 4, 3,
    3, 4, ... cs, where one delay of 3 cs played 11% fast); a frame that would start under
    `GIF_MIN_DELAY` cs after the one shown before it is left out (browsers would show that one for
    10 cs: above 50 fps, some frames are)."""
    at = _centiseconds(times)
    shown = [i for i, keep in enumerate(_far_enough(at[:-1])) if keep]
    if len(shown) > 1 and at[-1] - at[shown[-1]] < GIF_MIN_DELAY:
        shown.pop()  # the last would be too short: the frame before it lasts to the end
    ends = [at[i] for i in shown[1:]] + [at[-1]]
    return shown, [10 * max(GIF_MIN_DELAY, end - at[i]) for i, end in zip(shown, ends, strict=True)]


def write_gif(
    frames: np.ndarray | Iterable[np.ndarray],
    path: str | os.PathLike,
    fps: float = DEFAULT_FPS,
    workers: int = 1,
    times: np.ndarray | None = None,
) -> Path:
    """Write an animated GIF (an adaptive palette per frame) that plays at the clip's speed, its frames
    at `fps` or at their own `times` ((F + 1,) s, as `Video.times`; `gif_frames`). `frames` may be an
    iterable of (H, W, 3) frames: each is turned into the GIF's 8-bit frame as it comes, so the clip's
    RGB frames are never held whole (the 8-bit frames, a third of their size, are kept until the file
    is written, as Pillow's encoder keeps them). The palettes, most of the writing time, are made on
    `workers` threads, only for the frames the GIF may show (above 50 fps some are left out); the file
    is the same for any number."""
    path = Path(path)
    starts = _centiseconds(times) if times is not None else (round(100 * i / fps) for i in itertools.count())
    selection = _GifSelection()
    images = list(paletted_frames(selection.frames(frames, starts), workers))
    if not images:
        raise VideoError(f"Cannot write {path}: no frames.")
    shown, delays = gif_frames(np.arange(selection.count + 1) / fps if times is None else times)
    position = {i: k for k, i in enumerate(selection.kept)}  # shown is kept, less at most its last
    images = [images[position[i]] for i in shown]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=delays, loop=0)
    return path


def frame_name(k: int, suffix: str = "png") -> str:
    """The name of frame k (from 1) in a folder of frames this writes (read back in natural order)."""
    return f"{k}.{suffix}"


WRITTEN_FRAME = re.compile(r"[1-9]\d*\.(png|exr)")  # the names `frame_name` gives


def saving_frames(
    frames: Iterable[np.ndarray], directory: Path, deep: DeepSignal | None = None
) -> Iterator[np.ndarray]:
    """`frames` as they come, each also saved into `directory` as a PNG named by `frame_name` (with
    `deep`, a deep frame's own 16-bit values, `deep_png`)."""
    for k, frame in enumerate(frames, start=1):
        if deep is None:
            Image.fromarray(frame).save(directory / frame_name(k))
        else:
            (directory / frame_name(k)).write_bytes(deep_png(frame, deep))
        yield frame


def saving_exr_frames(frames: Iterable[np.ndarray], directory: Path, plate: Iterable[Path]) -> Iterator[np.ndarray]:
    """`frames` as they come (an OpenEXR plate's frames with an edit pasted in, in their PQ form:
    `io.video._exr_frame`), each also saved into `directory` as OpenEXR (`frame_name`'s numbers): the `plate` frame's
    own stored light wherever the pasted frame keeps its PQ values, where nothing is pasted, and the pasted
    light elsewhere (`hdr.pq_to_linear`), in the plate frame's float width and primaries."""
    for k, (frame, path) in enumerate(zip(frames, plate, strict=True), start=1):  # (H, W, 3) uint16; its file
        header, light = read_header(path), read_linear(path)  # (H, W, 3) float16 or float32
        pasted = (frame != linear_to_pq(light, header.primaries)).any(axis=-1)  # (H, W)
        light[pasted] = pq_to_linear(frame[pasted], header.primaries).astype(light.dtype)
        (directory / frame_name(k, "exr")).write_bytes(encode_exr(light, header.chromaticities))
        yield frame


def write_frames(
    frames: np.ndarray | Iterable[np.ndarray], directory: str | os.PathLike, deep: DeepSignal | None = None
) -> Path:
    """Write frames as 1.png, 2.png, ... into a folder (created atomically), one at a time (`deep`:
    deep frames in their own 16-bit form, `deep_png`)."""
    with atomic_path(directory, directory=True) as tmp:
        for _ in saving_frames(frames, tmp, deep):  # each frame saved as it passes
            pass
    return Path(directory)


def write_video(
    frames: np.ndarray | Iterable[np.ndarray],
    path: str | os.PathLike,
    fps: float = DEFAULT_FPS,
    audio: AudioSpan | None = None,
    workers: int = 1,
    times: np.ndarray | None = None,
    deep: DeepSignal | None = None,
) -> Path:
    """Write by suffix: .mp4 (.mov, .mkv: the same in those containers; .webm: VP9 and Opus; with `audio` when
    given), .gif, or a folder of PNGs for a path without suffix. `frames` may be an iterable of (H, W, 3)
    frames; every writer takes them as they come.
    The videos show them at `fps`, or at their own `times` ((F + 1,) s, as `Video.times`).
    `workers`: threads that make a GIF's palettes (the file is the same for any number). `deep`: the
    frames are a deep stream's own 16-bit values, written in its form (a video or PNGs, not a GIF). A frame
    of another shape or type, a frame rate or times that are no finite, increasing numbers, are refused
    (VideoError, ConfigError), and nothing is written."""
    if said := unusable_path("Output", plain_path(path), f"give a local {', '.join(VIDEO_OUTPUTS)} or folder to write"):
        raise VideoError(said)
    suffix = Path(path).suffix.lower()
    if deep is not None and suffix == ".gif":
        raise VideoError(
            f"Cannot write {path}: a GIF holds 8-bit colours, not 10-bit {deep.name} video; write an .mp4."
        )
    if suffix not in (*VIDEO_OUTPUTS, ""):
        raise VideoError(
            f"Cannot write {path}: supported outputs are {', '.join(VIDEO_OUTPUTS)} or a folder (no suffix)."
        )
    fps = plain_number(fps)
    try:
        check_number(None, "fps", fps, 0.0, above=True)
    except OptionError as e:  # this function's `fps`, not a clip's `video.fps`
        raise as_argument(e) from None
    if times is not None:
        _check_times(times)
    frames = _checked(frames, path, np.uint16 if deep is not None else np.uint8, times)
    if suffix in CONTAINERS:
        return write_mp4(frames, path, fps, audio, times, deep)
    if suffix == ".gif":
        return write_gif(frames, path, fps, workers, times)
    return write_frames(frames, path, deep)


def _check_times(times: object) -> None:
    """Refuse frame times (`Video.times`: (F + 1,) s, each frame's start and the last one's end) that are
    not a 1-D array of finite, increasing numbers (OptionError)."""
    arr = np.asarray(times)
    shown = np.array2string(arr.ravel()[:4], precision=3) + ("..." if arr.size > 4 else "")
    kind = arr.dtype.kind in "iuf" and arr.ndim == 1 and arr.size >= 2
    if not (kind and np.isfinite(arr).all() and (np.diff(arr) > 0).all()):
        raise OptionError(
            "times", f"{shown} is not valid; expected increasing finite seconds, one more than the frames."
        )


def _checked(
    frames: np.ndarray | Iterable[np.ndarray], path: str | os.PathLike, dtype: type, times: np.ndarray | None
) -> Iterator[np.ndarray]:
    """`frames` as a writer takes them, one at a time, each refused (VideoError, naming `path`) unless
    it is an (H, W, 3) array of `dtype` (for uint8, floats in 0-1 too: `uint8_frames`) and the first one's
    size, and as many as `times` has frames for: a writer's file is written whole or not at all, so nothing is
    left of it."""
    eight = dtype == np.uint8
    if isinstance(frames, np.ndarray) and (
        frames.ndim != 4 or frames.shape[-1] != 3 or (frames.dtype != dtype and not eight)
    ):
        raise VideoError(
            f"Cannot write {path}: frames of shape {tuple(frames.shape)} and dtype {frames.dtype} are not "
            f"(F, H, W, 3) {np.dtype(dtype).name}."
        )
    first: tuple[int, ...] | None = None
    k = 0
    for k, frame in enumerate(frames, 1):
        array = isinstance(frame, np.ndarray)
        if array and eight and frame.dtype != dtype and frame.ndim == 3 and frame.shape[-1] == 3:
            frame = uint8_frames(frame, f"Cannot write {path}: frame {k}")
        first = first or (frame.shape if array else None)
        if not array or frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != dtype or frame.shape != first:
            what = f"{frame.shape} {frame.dtype}" if array else f"a {type(frame).__name__}"
            size = f" ({first})" if array and first != frame.shape else ""
            raise VideoError(
                f"Cannot write {path}: frame {k} is {what}; the frames are (H, W, 3) {np.dtype(dtype).name} "
                f"arrays of one size{size}."
            )
        if times is not None and k >= len(times):
            raise VideoError(
                f"Cannot write {path}: more frames than its {len(times)} times are for ({len(times) - 1})."
            )
        yield frame
    if times is not None and k and k != len(times) - 1:
        raise VideoError(f"Cannot write {path}: {k} frames, where its {len(times)} times are for {len(times) - 1}.")


def preview_factor(width: int, min_width: int = PREVIEW_MIN_WIDTH) -> int:
    """The whole number by which a tile `width` pixels wide is enlarged in a preview so that it is at
    least `min_width` wide (1 when it already is): a 64-pixel working size is shown at 128."""
    return max(1, -(-min_width // max(1, width)))


def enlarge(frame: np.ndarray, factor: int) -> np.ndarray:
    """(H, W, C) -> (H * factor, W * factor, C), every pixel a factor x factor block (nearest
    neighbour: a preview shows the pixels the model made, none invented between them)."""
    if factor == 1:
        return frame
    return frame.repeat(factor, axis=0).repeat(factor, axis=1)


def side_by_side_frames(
    videos: list[np.ndarray], labels: list[str], label_height: int | None = None, min_width: int = PREVIEW_MIN_WIDTH
) -> Iterator[np.ndarray]:
    """Videos of equal frame count placed side by side with a text label above each, one (H', W', 3)
    frame at a time (a long clip's grid is never held whole); the videos are checked at the call.
    Tiles narrower than `min_width` are all enlarged by one whole factor (`preview_factor`), so that
    a small working size stays readable and its labels fit."""
    if len(videos) != len(labels):
        raise ValueError(f"got {len(videos)} videos but {len(labels)} labels.")
    n_frames = {v.shape[0] for v in videos}
    if len(n_frames) != 1:
        raise ValueError(f"videos have different frame counts {sorted(n_frames)}.")
    factor = preview_factor(min(v.shape[2] for v in videos), min_width)
    h = max(v.shape[1] for v in videos) * factor
    label_height = label_height or max(12, h // 8)
    heads = [_label(label, v.shape[2] * factor, label_height) for v, label in zip(videos, labels, strict=True)]
    return _grid_frames(videos, heads, h, factor)


def _label(label: str, width: int, height: int) -> np.ndarray:
    """A white (height, width, 3) header with `label` in it, its letters about 0.6 of the header's
    height (10 pixels at least), cut with an ellipsis to fit."""
    header = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(header)
    font = ImageFont.load_default(size=max(10, round(0.6 * height)))
    text = label
    while text and draw.textlength(text, font=font) > width - 4:
        text = text[:-2] + "…" if len(text) > 2 else ""
    top, bottom = font.getbbox("Ag")[1::2]  # the line's ink, so that every label sits at one height
    draw.text((2, (height - (bottom - top)) // 2 - top), text, fill=(0, 0, 0), font=font)
    return np.asarray(header)


def _grid_frames(videos: list[np.ndarray], heads: list[np.ndarray], h: int, factor: int) -> Iterator[np.ndarray]:
    for f in range(videos[0].shape[0]):
        tiles = []
        for v, head in zip(videos, heads, strict=True):
            tile = enlarge(v[f], factor)
            body = np.zeros((h, tile.shape[1], 3), dtype=np.uint8)
            body[: tile.shape[0]] = tile
            tiles.append(np.concatenate([head, body], axis=0))
        yield np.concatenate(tiles, axis=1)
