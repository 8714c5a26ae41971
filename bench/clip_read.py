"""Time of reading a large clip for a working size (`read_video` with the resize `VideoP2P.load_clip` does).

Writes a clip of `--frames` frames at `--size` (a diagonal gradient with noise): a lossless FFV1 video,
8-bit or 10-bit BT.709 SDR, 10-bit BT.2020 HLG as phones record HDR, a folder of JPEG frames (quality 92),
a folder of PNG frames, a folder of JPEG frames with a Display P3 or an sRGB ICC profile (converted to sRGB, or found to need
no conversion), a folder of OpenEXR frames (half floats, ZIP in blocks of 16 lines, as a VFX plate's; read as HDR), or
ProRes 4444 in a MOV with an alpha plane or without (read composited over black, or as it is), then reads it for `--work` two ways: each frame converted to RGB whole (and tone-mapped whole, for HLG)
and then resized, and with `small` (each video frame converted, and tone-mapped, at the size that
covers the working size; each JPEG decoded at 1/2, 1/4 or 1/8 where that covers it; then resized).
Prints the seconds per frame of each (median of `--repeats` reads), the decoding alone, and how far
apart the two reads' frames are.

    python bench/clip_read.py --size 3840x2160 --work 512x512 --frames 8 --kind hlg
    python bench/clip_read.py --size 3840x2160 --kind jpeg
    python bench/clip_read.py --size 3840x2160 --kind sdr10    # 10-bit SDR: read at 16 bits, then rounded
    python bench/clip_read.py --size 3840x2160 --kind exr      # scene light: carried to PQ, then tone-mapped
    python bench/clip_read.py --size 1920x1080 --kind prores-alpha   # against --kind prores: the alpha's cost
    python bench/clip_read.py --size 1920x1080 --kind jpeg-p3   # against --kind jpeg: colour management's cost
    python bench/clip_read.py --size 1920x1080 --kind jpeg-camera   # a camera's sRGB profile: read as plain JPEGs
    python bench/clip_read.py --size 1920x1080 --kind png --frames 30   # its size from the headers alone
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageCms

from videop2p.io.exr import encode_exr
from videop2p.io.hdr import HLG
from videop2p.io.video import probe_video, read_video, resize_frames
from videop2p.testing import DISPLAY_P3, icc_profile

TRANSFERS = {
    "sdr": (8, 1, "yuv420p"),
    "sdr10": (10, 1, "yuv420p10le"),
    "hlg": (10, HLG, "yuv420p10le"),
}  # bits, FFmpeg's transfer, pixel format
JPEGS = {"jpeg": None, "jpeg-p3": "p3", "jpeg-srgb": "srgb", "jpeg-camera": "camera"}  # JPEG frames, ICC profiles
CAMERA_PROFILE = "../shared/data/videop2p-clips/car/1.jpg"  # its sRGB IEC61966-2.1 profile, as cameras embed it
PNG = "png"  # a folder of PNG frames (no EXIF: Pillow would decode each whole to look for its orientation)
PRORES = {"prores": "yuv444p10le", "prores-alpha": "yuva444p10le"}  # ProRes 4444 without and with alpha


def write_clip(path: Path, width: int, height: int, frames: int, transfer: str) -> None:
    """A lossless FFV1 clip: a diagonal gradient of luma with noise, tagged BT.709 (SDR, 8 or 10 bits) or
    BT.2020 HLG."""
    bits, trc, pix_fmt = TRANSFERS[transfer]
    scale = 2 ** (bits - 8)  # 10-bit codes are 4x the 8-bit ones
    rng = np.random.default_rng(0)
    luma = np.add.outer(np.linspace(16, 175, height), np.linspace(0, 60, width)) * scale  # (H, W)
    primaries = 9 if transfer == "hlg" else 1
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=30)
        s.width, s.height, s.pix_fmt = width, height, pix_fmt
        s.codec_context.color_primaries, s.codec_context.color_trc, s.codec_context.colorspace = (
            primaries,
            trc,
            primaries,
        )
        dtype = np.uint16 if bits > 8 else np.uint8
        for i in range(frames):
            frame = av.VideoFrame(width, height, pix_fmt)
            frame.pts = i
            y = np.clip(luma + rng.normal(0, 2 * scale, luma.shape), 16 * scale, 235 * scale).astype(dtype)
            chroma = np.full((height // 2, width // 2), 128 * scale, dtype)
            for plane, values in zip(frame.planes, (y, chroma, chroma + 10 * scale), strict=True):
                rows = np.zeros((values.shape[0], plane.line_size // values.itemsize), dtype)  # (H, padded W)
                rows[:, : values.shape[1]] = values
                plane.update(rows.astype(rows.dtype.newbyteorder("<")).tobytes())
            c.mux(s.encode(frame))
        c.mux(s.encode())


def write_jpegs(folder: Path, width: int, height: int, frames: int, profile: str | None = None) -> None:
    """A folder of JPEG frames (quality 92): the gradient of `write_clip` in grey, with noise; with a Display
    P3 or an sRGB ICC profile embedded where `profile` says (`camera`: the one cameras embed, from the
    authors' clip at CAMERA_PROFILE, which LittleCMS's transform moves a level in a few colours)."""
    rng = np.random.default_rng(0)
    luma = np.add.outer(np.linspace(16, 175, height), np.linspace(0, 60, width))  # (H, W)
    icc = {None: None, "p3": icc_profile(*DISPLAY_P3)}.get(profile)
    if profile == "srgb":
        icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    if profile == "camera":
        icc = Image.open(CAMERA_PROFILE).info["icc_profile"]
    folder.mkdir()
    for i in range(frames):
        grey = np.clip(luma + rng.normal(0, 2, luma.shape), 0, 255).astype(np.uint8)
        picture = Image.fromarray(np.repeat(grey[..., None], 3, axis=-1))
        picture.save(folder / f"{i + 1}.jpg", quality=92, **({"icc_profile": icc} if icc else {}))


def write_pngs(folder: Path, width: int, height: int, frames: int) -> None:
    """A folder of PNG frames (zlib level 1): the gradient of `write_clip` in grey, with noise."""
    rng = np.random.default_rng(0)
    luma = np.add.outer(np.linspace(16, 175, height), np.linspace(0, 60, width))  # (H, W)
    folder.mkdir()
    for i in range(frames):
        grey = np.clip(luma + rng.normal(0, 2, luma.shape), 0, 255).astype(np.uint8)
        Image.fromarray(np.repeat(grey[..., None], 3, axis=-1)).save(folder / f"{i + 1}.png", compress_level=1)


def write_exrs(folder: Path, width: int, height: int, frames: int) -> None:
    """A folder of OpenEXR frames (half floats, ZIP16): the gradient of `write_clip` as scene light, 0 to 2."""
    rng = np.random.default_rng(0)
    light = np.add.outer(np.linspace(0.0, 1.5, height), np.linspace(0.0, 0.5, width))  # (H, W)
    folder.mkdir()
    for i in range(frames):
        rgb = np.repeat(np.maximum(light + rng.normal(0, 0.01, light.shape), 0)[..., None], 3, -1) * (1.0, 0.9, 0.8)
        (folder / f"{i + 1}.exr").write_bytes(encode_exr(rgb.astype(np.float16)))  # as a run writes them back


def write_prores(path: Path, width: int, height: int, frames: int, pix_fmt: str) -> None:
    """ProRes 4444 in a MOV: the gradient of `write_clip` in grey, with noise; with alpha, an alpha rising
    from 0 at the left to opaque at the right."""
    rng = np.random.default_rng(0)
    luma = np.add.outer(np.linspace(16, 175, height), np.linspace(0, 60, width))  # (H, W)
    alpha = np.broadcast_to(np.linspace(0, 255, width).astype(np.uint8), (height, width))
    with av.open(str(path), "w") as c:
        s = c.add_stream("prores_ks", rate=30)
        s.width, s.height, s.pix_fmt = width, height, pix_fmt
        for _ in range(frames):
            grey = np.clip(luma + rng.normal(0, 2, luma.shape), 0, 255).astype(np.uint8)
            rgba = np.dstack([grey, grey, grey, alpha])  # (H, W, 4)
            c.mux(s.encode(av.VideoFrame.from_ndarray(rgba, format="rgba")))
        c.mux(s.encode())


def _median_read(fn, repeats: int) -> float:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="3840x2160")
    parser.add_argument("--work", default="512x512")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--kind", choices=[*TRANSFERS, *JPEGS, PNG, "exr", *PRORES], default="hlg")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    work = tuple(int(v) for v in args.work.split("x"))

    def resize(frame):
        return resize_frames(frame[None], *work)[0]

    with tempfile.TemporaryDirectory() as tmp:
        if args.kind in JPEGS:
            path = Path(tmp) / "frames"
            write_jpegs(path, width, height, args.frames, JPEGS[args.kind])
        elif args.kind in ("exr", PNG):
            path = Path(tmp) / "frames"
            (write_exrs if args.kind == "exr" else write_pngs)(path, width, height, args.frames)
        elif args.kind in PRORES:
            path = Path(tmp) / "clip.mov"
            write_prores(path, width, height, args.frames, PRORES[args.kind])
        else:
            path = Path(tmp) / "clip.mkv"
            write_clip(path, width, height, args.frames, args.kind)

        def decode() -> None:
            if args.kind in JPEGS or args.kind == PNG:
                for frame in sorted(path.iterdir()):
                    with Image.open(frame) as img:
                        img.load()
                return
            if args.kind == "exr":
                for frame in sorted(path.iterdir()):
                    with av.open(str(frame)) as container:
                        next(container.decode(video=0))
                return
            with av.open(str(path)) as container:
                for _ in container.decode(video=0):
                    pass

        got, seconds = {}, {"decoding alone": _median_read(decode, args.repeats)}
        seconds["its size (probe_video)"] = _median_read(lambda: probe_video(path), args.repeats)
        for name, small in (("whole, then resized", None), ("small", work)):
            seconds[name] = _median_read(
                lambda small=small, name=name: got.__setitem__(
                    name, read_video(path, transform=resize, small=small).frames
                ),
                args.repeats,
            )
    apart = np.abs(got["small"].astype(int) - got["whole, then resized"].astype(int))
    print(
        f"{args.size} {args.kind.upper()} clip read for {args.work} ({args.frames} frames, medians of {args.repeats}):"
    )
    for name, s in seconds.items():
        print(f"  {name}: {s / args.frames:.3f} s per frame")
    print(f"  the two reads' frames: mean {apart.mean():.2f} levels apart, at most {apart.max()}")


if __name__ == "__main__":
    main()
