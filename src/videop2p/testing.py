"""Test support: tiny random Stable Diffusion components built in code (diffusers'
`get_dummy_components` pattern), for the test suite, the benchmarks and users' own tests.

Not used by the product itself; nothing here is downloaded."""

from __future__ import annotations

import os
import struct
from fractions import Fraction

import av
import numpy as np
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from videop2p.models.loading import SDComponents, model_info
from videop2p.models.schedulers import make_scheduler
from videop2p.models.tokenizer import bundled_tokenizer


def dummy_components(
    prediction_type: str = "epsilon",
    cross_attention_dim: int = 32,
    sample_size: int = 8,
    snr_shift: float = 1.0,
    zero_terminal_snr: bool = False,
    timestep_spacing: str = "leading",
    unet_overrides: dict | None = None,
) -> SDComponents:
    """Tiny SD components: UNet channels (32, 64), VAE downsampling 2, CLIP text width 32, real tokenizer;
    Stable Diffusion's DDIM schedule unless the schedule arguments (`make_scheduler`'s) say otherwise.
    `unet_overrides` changes the UNet's config (another architecture's, for the loader's checks)."""
    torch.manual_seed(0)
    unet_config = {
        "block_out_channels": (32, 64),
        "layers_per_block": 1,
        "sample_size": sample_size,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
        "cross_attention_dim": cross_attention_dim,
        "attention_head_dim": (2, 4),
        "use_linear_projection": True,
        "norm_num_groups": 8,
    }
    unet = UNet2DConditionModel(**{**unet_config, **(unet_overrides or {})})
    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=(16, 32),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=8,
        sample_size=sample_size * 2,
    )
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
            hidden_size=cross_attention_dim,
            intermediate_size=37,
            layer_norm_eps=1e-05,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=49408,
            max_position_embeddings=77,
        )
    )
    scheduler = make_scheduler(prediction_type, snr_shift, zero_terminal_snr, timestep_spacing)
    tokenizer = bundled_tokenizer()
    for m in (unet, vae, text_encoder):
        m.eval()
        m.requires_grad_(False)
    info = model_info(
        tokenizer,
        text_encoder,
        vae,
        unet,
        scheduler,
        source=f"dummy-{prediction_type}-{scheduler.config.timestep_spacing}",
    )
    return SDComponents(tokenizer, text_encoder, vae, unet, scheduler, info)


def write_mp4_with_tone(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: Fraction | float,
    rate: int = 44100,
    hz: float = 440.0,
    codec: str = "aac",
    video_start: int = 0,
    pts: list[int] | None = None,
) -> None:
    """An H.264 clip (F, H, W, 3) with a stereo sine tone as long as its frames, in AAC (or `codec`, as
    16-bit PCM in a Matroska file when `codec` is a PCM one): a test input with sound. `video_start`:
    frame periods of silence before the first frame is shown and the tone starts (the sound from 0);
    `pts`: each frame's time in frame periods (a variable rate), instead of one after the other."""
    fps = Fraction(fps).limit_denominator(1001)
    pcm16 = codec.startswith("pcm_s16")
    with av.open(str(path), "w", format="matroska" if pcm16 else "mp4") as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        v.options = {"crf": "10", "bf": "0"}
        a = c.add_stream(codec, rate=rate, layout="stereo")
        for i, fr in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(fr), format="rgb24")
            frame.pts, frame.time_base = video_start + (pts[i] if pts else i), 1 / fps
            c.mux(v.encode(frame))
        c.mux(v.encode())
        periods = pts[-1] + 1 if pts else len(frames)
        silence, n = int(video_start / fps * rate), int((video_start + periods) / fps * rate)
        tone = (0.3 * np.sin(2 * np.pi * hz * np.arange(n) / rate) * (np.arange(n) >= silence)).astype(np.float32)
        pcm = np.stack([tone, tone])  # (2, n) planar
        for i in range(0, n, 1024):
            chunk = np.ascontiguousarray(pcm[:, i : i + 1024])
            if pcm16:  # packed: (1, 2 * samples), channels interleaved
                chunk, fmt = np.ascontiguousarray((chunk.T.reshape(1, -1) * 32767).astype(np.int16)), "s16"
            else:
                fmt = "fltp"
            f = av.AudioFrame.from_ndarray(chunk, format=fmt, layout="stereo")
            f.sample_rate, f.pts = rate, i
            c.mux(a.encode(f))
        c.mux(a.encode())


def assert_one_line_error(result, *needles: str) -> None:
    """A command-line result (typer's CliRunner) that failed with exit code 2 in one `error: ...` line,
    no traceback, holding every needle."""
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output and all(n in lines[0] for n in needles), lines[0]


XYZ = tuple[float, float, float]  # a colour's CIE XYZ


def icc_profile(red: XYZ, green: XYZ, blue: XYZ, gamma: float = 2.2) -> bytes:
    """A minimal ICC v2 display profile (ICC.1:2001-04): RGB colorants in D50 XYZ, D50 white, one gamma for
    every channel, as a picture embeds one (`DISPLAY_P3`: a phone photo's colours)."""

    def s15(v):
        return struct.pack(">i", round(v * 65536))

    def xyz(v):
        return b"XYZ " + bytes(4) + b"".join(s15(c) for c in v)

    d50 = (0.9642, 1.0, 0.8249)
    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)
    text = b"a test profile\0"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(8 + 2 + 1 + 67)
    tags = [(b"desc", desc), (b"wtpt", xyz(d50)), (b"rXYZ", xyz(red)), (b"gXYZ", xyz(green)), (b"bXYZ", xyz(blue))]
    tags += [(b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    start = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        data += bytes(-(start + len(data)) % 4)
        table += sig + struct.pack(">II", start + len(data), len(body))
        data += body
    header = struct.pack(">I", start + len(data)) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
    header += bytes(12) + b"acsp" + bytes(24) + struct.pack(">I", 0) + b"".join(s15(c) for c in d50) + bytes(48)
    return header + struct.pack(">I", len(tags)) + table + data


DISPLAY_P3: tuple[XYZ, XYZ, XYZ] = (
    (0.5151, 0.2412, -0.0011),
    (0.2920, 0.6922, 0.0419),
    (0.1571, 0.0666, 0.7841),
)  # D50-adapted
