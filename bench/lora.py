"""What fusing a LoRA file costs at load time on the Stable Diffusion 1.5 architecture (`--lora`).

Builds SD 1.5's UNet, VAE and text encoder with random weights (no download), writes a kohya-ss
LoRA of the given rank over every attention projection of the UNet (attn1 and attn2: to_q, to_k,
to_v, to_out.0) and of the text encoder (q, k, v, out_proj), as style LoRAs are trained, and times
`models.lora.fuse_loras` on it: reading, converting, injecting, fusing and removing the adapters.
`--kind loha` or `lokr` writes LyCORIS's LoHa (two rank-r pairs) or LoKr (a full factor of the
`--factor`'s side, a rank-r one) over the same layers instead, fused by `models.lycoris`; `--kind dora`
a LoRA whose layers carry a DoRA magnitude (`dora_scale`, one per output, as LyCORIS writes it); `--kind ia3`
LyCORIS's (IA)^3, a factor per output; `--kind oft` LyCORIS's diag-OFT, blocks of `--rank` outputs, and `--kind
boft` its BOFT, butterfly factors of such blocks (as many as the outputs allow, up to 4); `--kind glora`
LyCORIS 3.0's GLoRA, two rank-r pairs (A mixing the inputs, B added), in the layout LyCORIS writes now;
`--kind peft-lora` or `peft-oft` a PEFT adapter folder (`save_pretrained`) of the UNet's attention projections,
LoRA of rank r or OFT of blocks of r, fused by PEFT (the OFT checked by the rows' norms it keeps).
Prints the seconds (median of the repeats, each on fresh weights), the file's size and the layers
it adapts, and checks one fused layer against its formula.

    python bench/lora.py                    # rank 32, float32 on the CPU
    python bench/lora.py --rank 128 --repeats 3
    python bench/lora.py --rank 128 --file bin   # a pickled file, as diffusers' trainers write it
    python bench/lora.py --kind loha --rank 16
    python bench/lora.py --kind dora
    python bench/lora.py --kind ia3
    python bench/lora.py --kind oft --rank 8
    python bench/lora.py --kind boft --rank 8
    python bench/lora.py --kind glora --rank 16
    python bench/lora.py --kind peft-lora --rank 32
    python bench/lora.py --kind peft-oft --rank 32
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from sd15 import sd15_components  # bench/ is on the path when run as a script

from videop2p.models.loading import image_pipeline
from videop2p.models.lora import fuse_loras

UNET_ENDS = ("to_q", "to_k", "to_v", "to_out.0")
RANK_WORDS = {
    "ia3": "",
    "oft": " blocks of {}",
    "peft-oft": " blocks of {}",
    "boft": " butterflies of blocks of {}",
}  # what --rank is
TEXT_ENDS = ("q_proj", "k_proj", "v_proj", "out_proj")


def kohya_lora(comps, rank: int, kind: str = "lora", factor: int = 8) -> dict[str, torch.Tensor]:
    """A kohya-ss LoRA (or LyCORIS LoHa, LoKr, DoRA, IA3, OFT, BOFT or GLoRA, `kind`) of `rank` over every attention projection, alpha =
    rank / 2; DoRA's magnitudes near the layers' own row norms."""
    g, sd = torch.Generator().manual_seed(0), {}
    for part, prefix, ends in (("unet", "lora_unet_", UNET_ENDS), ("text_encoder", "lora_te_text_model_", TEXT_ENDS)):
        for name, layer in getattr(comps, part).named_modules():
            if isinstance(layer, torch.nn.Linear) and name.endswith(ends) and ("attn" in name or "self_attn" in name):
                stem = prefix + name.replace(".", "_")
                out_features, in_features = layer.weight.shape
                if kind in ("lora", "dora"):
                    sd[f"{stem}.lora_down.weight"] = torch.randn(rank, in_features, generator=g) * 0.01
                    sd[f"{stem}.lora_up.weight"] = torch.randn(out_features, rank, generator=g) * 0.01
                    if kind == "dora":  # (out, 1)
                        norms = layer.weight.detach().norm(dim=1, keepdim=True)
                        sd[f"{stem}.dora_scale"] = norms * (1 + 0.1 * torch.rand(out_features, 1, generator=g))
                elif kind in ("oft", "boft"):  # blocks of `rank` outputs; alpha: the constraint, per output
                    factors = butterfly_factors(out_features, rank) if kind == "boft" else 1
                    shape = (factors,) * (kind == "boft") + (out_features // rank, rank, rank)
                    sd[f"{stem}.oft_blocks"] = torch.randn(*shape, generator=g) * 0.01
                    sd[f"{stem}.alpha"] = torch.tensor(1e-3)
                    continue
                elif kind == "glora":  # LyCORIS 3.0's: a1 (in, r), a2 (r, in), b1 (out, r), b2 (r, in)
                    for name, shape in (("a1", (in_features, rank)), ("a2", (rank, in_features))):
                        sd[f"{stem}.{name}.weight"] = torch.randn(*shape, generator=g) * 0.01
                    for name, shape in (("b1", (out_features, rank)), ("b2", (rank, in_features))):
                        sd[f"{stem}.{name}.weight"] = torch.randn(*shape, generator=g) * 0.01
                elif kind == "ia3":  # no rank: one factor per output
                    sd[f"{stem}.weight"] = torch.randn(out_features, generator=g) * 0.1
                    sd[f"{stem}.on_input"] = torch.tensor(0)
                elif kind == "loha":
                    for i in (1, 2):
                        sd[f"{stem}.hada_w{i}_a"] = torch.randn(out_features, rank, generator=g) * 0.1
                        sd[f"{stem}.hada_w{i}_b"] = torch.randn(rank, in_features, generator=g) * 0.1
                else:  # LoKr: w1 (factor, factor) full, w2 (out / factor, in / factor) of rank `rank`
                    sd[f"{stem}.lokr_w1"] = torch.randn(factor, factor, generator=g) * 0.1
                    sd[f"{stem}.lokr_w2_a"] = torch.randn(out_features // factor, rank, generator=g) * 0.1
                    sd[f"{stem}.lokr_w2_b"] = torch.randn(rank, in_features // factor, generator=g) * 0.1
                sd[f"{stem}.alpha"] = torch.tensor(rank / 2)
    return sd


def butterfly_factors(outputs: int, block: int, most: int = 4) -> int:
    """How many butterfly factors of blocks of `block` the outputs allow: m with 2^(m-1) block dividing them."""
    m = 1
    while m < most and outputs % (2**m * block) == 0:
        m += 1
    return m


def cayley(blocks: torch.Tensor, constraint: float) -> torch.Tensor:
    """(I + Q)(I - Q)^-1 of Q = B - B^T, Q scaled to the norm `constraint` where above it, solved, not inverted."""
    q = blocks - blocks.mT
    q = q * min(1.0, constraint / float(q.norm()))
    eye = torch.eye(q.shape[-1])
    return torch.linalg.solve((eye - q).mT, (eye + q).mT).mT


def butterfly(rows: int, block: int, factor: int) -> torch.Tensor:
    """The permutation matrix P of factor `factor`: (P W)[2 s + j] = W[j 2^i b/2 + s] within each run of 2^i b."""
    stride, order = 2**factor * block // 2, []
    for run in range(rows // (2 * stride)):
        order += [run * 2 * stride + j * stride + s for s in range(stride) for j in (0, 1)]
    return torch.eye(rows)[order]


def layer_formula(lora: dict[str, torch.Tensor], stem: str, kind: str, before: torch.Tensor) -> torch.Tensor:
    """The layer `stem`'s fused weight from its weight `before`, by its kind's formula written out here: before +
    (alpha / r) * ..., of DoRA that with each row's norm set to its magnitude."""
    w = {key.removeprefix(f"{stem}."): t for key, t in lora.items() if key.startswith(f"{stem}.")}
    if kind in ("lora", "dora"):
        merged = before + (w["alpha"] / w["lora_down.weight"].shape[0]) * w["lora_up.weight"] @ w["lora_down.weight"]
        return merged if kind == "lora" else merged * w["dora_scale"] / merged.norm(dim=1, keepdim=True)
    if kind == "ia3":
        return before * (1 + w["weight"][:, None])
    if kind in ("oft", "boft"):  # the outputs rotated: block-diagonal R^T (OFT), or P^T D P per butterfly factor
        rotations = cayley(w["oft_blocks"], float(w["alpha"]) * before.shape[0])
        if kind == "oft":
            return torch.block_diag(*rotations).T @ before
        for i, factor in enumerate(rotations):
            permute = butterfly(before.shape[0], factor.shape[-1], i)
            before = permute.T @ torch.block_diag(*factor) @ permute @ before
        return before
    if kind == "glora":  # W + (alpha / r) (W A + B), A = a1 a2, B = b1 b2
        a, b = w["a1.weight"] @ w["a2.weight"], w["b1.weight"] @ w["b2.weight"]
        return before + (w["alpha"] / w["a2.weight"].shape[0]) * (before @ a + b)
    if kind == "loha":
        rank = w["hada_w1_b"].shape[0]
        return before + (w["alpha"] / rank) * (w["hada_w1_a"] @ w["hada_w1_b"]) * (w["hada_w2_a"] @ w["hada_w2_b"])
    return before + (w["alpha"] / w["lokr_w2_b"].shape[0]) * torch.kron(w["lokr_w1"], w["lokr_w2_a"] @ w["lokr_w2_b"])


def peft_adapter(comps, rank: int, kind: str, folder: Path) -> dict[str, torch.Tensor]:
    """A PEFT adapter (LoRA of `rank`, alpha = rank / 2, or OFT of blocks of `rank`) over the UNet's attention
    projections, its weights set at random, saved to `folder` as PEFT saves it; its weights by key."""
    from peft import LoraConfig, OFTConfig, get_peft_model

    targets = list(UNET_ENDS)
    if kind == "peft-lora":
        config = LoraConfig(r=rank, lora_alpha=rank / 2, target_modules=targets, init_lora_weights=False)
    else:
        config = OFTConfig(r=0, oft_block_size=rank, target_modules=targets)
    model = get_peft_model(comps.unet, config)  # wraps the UNet in place; unloaded below, unmerged
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _, weight in model.named_parameters():
            if weight.requires_grad:  # the adapter's own
                weight.copy_(0.01 * torch.randn(weight.shape, generator=g))
    model.save_pretrained(str(folder))
    model.unload()
    from safetensors.torch import load_file

    return load_file(folder / "adapter_model.safetensors")


def peft_error(adapter: dict[str, torch.Tensor], probe: str, kind: str, before: torch.Tensor, after: torch.Tensor):
    """The largest difference of the fused probe layer from its formula: W + (alpha / r) B A (LoRA), or for OFT, a
    rotation of its inputs, the difference of each row's norm from the norm before."""
    if kind == "peft-lora":
        up, down = (adapter[f"base_model.model.{probe}.lora_{ab}.weight"] for ab in "BA")
        return (after - (before + 0.5 * up @ down)).abs().max().item()
    return (after.norm(dim=1) - before.norm(dim=1)).abs().max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rank", type=int, default=32, help="the LoRA's rank; OFT's and BOFT's block size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--kind",
        choices=("lora", "loha", "lokr", "dora", "ia3", "oft", "boft", "glora", "peft-lora", "peft-oft"),
        default="lora",
    )
    parser.add_argument("--factor", type=int, default=8, help="LoKr's full factor's side")
    parser.add_argument("--file", choices=("safetensors", "bin"), default="safetensors", help="the file's format")
    args = parser.parse_args()
    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        peft = args.kind.startswith("peft-")
        path = Path(tmp) / ("adapter" if peft else f"style.{args.file}")
        for i in range(args.repeats):
            comps = sd15_components(seed=i)
            if i == 0 and peft:
                lora = peft_adapter(comps, args.rank, args.kind, path)
                layers = len({key.split(".lora_")[0].split(".oft_")[0] for key in lora})
            elif i == 0:
                lora = kohya_lora(comps, args.rank, args.kind, args.factor)
                if args.file == "safetensors":
                    save_file(lora, path)
                else:
                    torch.save(lora, path)
                layers = sum(k.endswith(".alpha") for k in lora)
            probe = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"
            before = comps.unet.get_submodule(probe).weight.clone()
            parts = (comps.tokenizer, comps.text_encoder, comps.vae, comps.unet, comps.scheduler)
            start = time.perf_counter()
            fuse_loras(image_pipeline(*parts), {str(path): 1.0}, "sd15")
            seconds.append(time.perf_counter() - start)
            after = comps.unet.get_submodule(probe).weight
            if peft:
                error = peft_error(lora, probe, args.kind, before, after)
            else:
                want = layer_formula(lora, "lora_unet_" + probe.replace(".", "_"), args.kind, before)
                error = (after - want).abs().max().item()
        size = sum(f.stat().st_size for f in ([*path.iterdir()] if peft else [path])) / 2**20
    print(
        f"SD 1.5 architecture, {args.kind}{RANK_WORDS.get(args.kind, ' rank {}').format(args.rank)} over {layers} layers ({size:.1f} MiB, .{args.file}): fused in "
        f"{statistics.median(seconds):.2f} s (median of {args.repeats}: "
        f"{', '.join(f'{s:.2f}' for s in seconds)}); one layer against the formula: max error {error:.1e}"
    )


if __name__ == "__main__":
    main()
