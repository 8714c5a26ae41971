"""The `videop2p` command line."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Text-driven video editing with Video-P2P.")
toy_app = typer.Typer(no_args_is_help=True, help="The procedural toy world and its bundled model.")
app.add_typer(toy_app, name="toy")

logger = logging.getLogger("videop2p")


def _setup_logging(quiet: bool = False) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "urllib3", "diffusers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@app.command()
def info(model: Annotated[str | None, typer.Option(help="Model id or path (default: bundled toy model).")] = None) -> None:
    """Print the version, torch devices, dtype support and the model that would be used."""
    import torch

    from videop2p import __version__
    from videop2p.models.loading import ModelNotFoundError, bundled_model_path, load_components

    lines = [f"videop2p {__version__}", f"torch {torch.__version__}"]
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    lines.append(f"devices: {', '.join(devices)}")
    dtypes = ["float32", "bfloat16 (CPU)"]
    if torch.cuda.is_available():
        dtypes.append("float16")
        if torch.cuda.is_bf16_supported():
            dtypes.append("bfloat16 (CUDA)")
    lines.append(f"dtypes: {', '.join(dtypes)}")
    lines.append(f"model: {model or f'bundled toy model ({bundled_model_path()})'}")
    try:
        comps = load_components(model)
        for k, v in comps.info.to_dict().items():
            lines.append(f"  {k}: {v}")
    except ModelNotFoundError as e:
        lines.append(f"  not available: {e}")
    typer.echo("\n".join(lines))


@toy_app.command("render")
def toy_render(
    out_dir: Path,
    shape: Annotated[str, typer.Option(help="circle, square or triangle")] = "circle",
    color: Annotated[str, typer.Option(help="red, orange, yellow, green, blue or purple")] = "red",
    background: Annotated[str, typer.Option(help="grass, sand, water or snow")] = "grass",
    motion: Annotated[str, typer.Option(help="linear, bounce or arc")] = "linear",
    object_size: Annotated[str, typer.Option("--object-size", help="small or big")] = "big",
    frames: int = 8,
    size: int = 64,
    seed: int = 0,
) -> None:
    """Render a toy clip: mp4, PNG frames, masks and clip.json."""
    from videop2p.io.video import write_frames, write_mp4
    from videop2p.toy.world import Background, Color, Motion, Shape, Size, ToyClipSpec, ToyObject, parse_enum, render_clip

    _setup_logging()
    try:
        obj = ToyObject(parse_enum(Shape, shape), parse_enum(Color, color), parse_enum(Size, object_size))
        spec = ToyClipSpec([obj], parse_enum(Background, background), parse_enum(Motion, motion), frames, size, seed)
        clip = render_clip(spec)
    except ValueError as e:
        _fail(str(e))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_mp4(clip.frames, out_dir / "clip.mp4")
    write_frames(clip.frames, out_dir / "frames")
    masks = (clip.masks.any(axis=1)[..., None].repeat(3, axis=-1) * 255).astype("uint8")
    write_frames(masks, out_dir / "masks")
    meta = {"caption": clip.caption, "params": spec.to_dict(), "centers": clip.centers.tolist()}
    (out_dir / "clip.json").write_text(json.dumps(meta, indent=2))
    typer.echo(f"wrote {out_dir} ({clip.caption!r})")


@toy_app.command("train")
def toy_train(
    out_dir: Path,
    vae_steps: int = 2500,
    unet_steps: int = 3000,
    dataset_size: int = 20000,
    seed: int = 0,
    threads: int = 0,
) -> None:
    """Train the toy model from scratch (resumes from OUT_DIR/ckpt when interrupted)."""
    from videop2p.toy.train import ToyTrainConfig, train_toy_model

    _setup_logging()
    cfg = ToyTrainConfig(vae_steps=vae_steps, unet_steps=unet_steps, dataset_size=dataset_size, seed=seed, threads=threads)
    path = train_toy_model(out_dir, cfg)
    typer.echo(f"model written to {path}")


def main() -> None:
    app()
