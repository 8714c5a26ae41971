"""LyCORIS adapters (Yeh et al. 2024, "Navigating Text-To-Image Customization: From LyCORIS Fine-Tuning to
Model Evaluation") fused into a loaded model's layers, in the kohya-ss key layout civitai's files hold
(`lora_unet_..._to_q.hada_w1_a`, `lora_te_text_model_..._q_proj.lokr_w1`), which diffusers (0.42) does not
read for Stable Diffusion 1.x/2.x:

- LoHa (Hyeon-Woo et al. 2022, "FedPara"): W += (alpha / r) * (w1_a w1_b) * (w2_a w2_b), a Hadamard product of
  two low-rank products, each a Tucker product for a convolution that has cores `hada_t1`, `hada_t2`;
- LoKr (Edalati et al. 2022, "KronA"): W += (alpha / r) * w1 (x) w2, a Kronecker product whose factors are
  full (`lokr_w1`) or low-rank (`lokr_w1_a` `lokr_w1_b`); r is the low-rank factor's, and a LoKr of full
  factors alone is not scaled (LyCORIS's rule, as ComfyUI and the web UI read it);
- LoCon's Tucker layers (a convolution's LoRA with a core, `lora_mid`): W += (alpha / r) * the Tucker product of
  `lora_mid` with `lora_up` and `lora_down` (its plain LoRA layers are diffusers' to read);
- full differences (LyCORIS's "full" algorithm, a layer fine-tuned whole): W += diff, and its bias += diff_b;
- (IA)^3 (Liu et al. 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than In-Context
  Learning"): W *= 1 + scale * weight, one factor per output, or per input where `on_input` (`ia3_weight`);
- DoRA (Liu et al. 2024, "DoRA: Weight-Decomposed Low-Rank Adaptation"; LyCORIS's `weight_decompose`): a LoCon,
  LoHa or LoKr layer with a trained magnitude `dora_scale` is W + delta with each output's (or input's) norm set
  to that magnitude (`dora_weight`); its plain LoCon layers too, of which diffusers drops the magnitude;
- OFT (Qiu et al. 2023, "Controlling Text-to-Image Diffusion by Orthogonal Finetuning"; LyCORIS's diag-oft and
  kohya-ss's OFT, `oft_unet_...` keys, which compute it alike): W's outputs rotated block by block by the Cayley
  transform of the trained `oft_blocks` (`oft_weight`), or in LyCORIS 2.0's files by the stored rotation
  `oft_diag`; BOFT (Liu et al. 2024, "Parameter-Efficient Orthogonal Finetuning via Butterfly Factorization"):
  `oft_blocks` of four axes, a product of such rotations between butterfly permutations (`boft_weight`);
- GLoRA (Chavan et al. 2023, "One-for-All: Generalized LoRA for Parameter-Efficient Fine-tuning"): W += (alpha / r)
  (W A + B), A and B low-rank products (`glora_delta`), in the layout of LyCORIS 3.0 on or of the 2.x before it,
  told apart by the file's shapes (`glora_layout`);
- trained normalisation layers (LyCORIS's `train_norm`, beside any of these): a GroupNorm's or LayerNorm's weight
  and bias += scale * `w_norm`, `b_norm`.

LoHa and LoKr are computed as peft's LoHa and LoKr layers compute them (the same formulas, ported from LyCORIS).
"""

from __future__ import annotations

import math

import torch

from videop2p.models.weights import named_keys

LOCON_NAMES = ("lora_up.weight", "lora_down.weight", "lora_mid.weight")  # a LoCon layer's, with a Tucker core
DORA_NAME = "dora_scale"  # a DoRA layer's magnitude, beside its LoCon, LoHa or LoKr weights
IA3_NAMES = ("weight", "on_input")  # an (IA)^3 layer's factors and whether they scale its inputs
OFT_NAMES = ("oft_blocks", "oft_diag", "rescale")  # an OFT layer's: skew parts (or rotations), output scales
NORM_NAMES = ("w_norm", "b_norm")  # a normalisation layer's weight and bias differences (LyCORIS's train_norm)
GLORA_NAMES = ("a1.weight", "a2.weight", "b1.weight", "b2.weight", "bm.weight")  # A's, B's factors, B's core
GLORA_LAYOUTS = ("LyCORIS 3.0 on", "LyCORIS 2.x")  # GLoRA's layouts: factors transposed and named apart
KOHYA_OFT_PREFIX = "oft_unet_"  # kohya-ss's OFT names a UNet layer as its LoRAs do under lora_unet_
TEXT_PREFIX = "lora_te_"  # kohya-ss's name of a text encoder layer begins so


class LycorisError(ValueError):
    """LyCORIS weights that do not fit the model's layers, or are incomplete."""


def kind_of(names) -> str | None:
    """The LyCORIS adapter a layer whose weights are `names` (kohya-ss's, after LAYER.) belongs to: "LoHa",
    "LoKr", "LoCon" (with a Tucker core or a DoRA magnitude), "Full" (a whole difference), "IA3", "OFT" (BOFT
    too: their shapes tell them apart), "GLoRA", "Norm" (a normalisation layer's), or None (a LoRA layer, or
    none)."""
    names = set(names)
    for mark, kind in (("hada_", "LoHa"), ("lokr_", "LoKr")):
        if any(name.startswith(mark) for name in names):
            return kind
    if "diff" in names:
        return "Full"
    if set(IA3_NAMES) <= names:
        return "IA3"
    if names & {"oft_blocks", "oft_diag"}:
        return "OFT"
    if "a1.weight" in names:
        return "GLoRA"
    if "w_norm" in names:
        return "Norm"
    locon = "lora_mid.weight" in names or (DORA_NAME in names and "lora_up.weight" in names)
    return "LoCon" if locon else None


def layer_label(w: dict[str, torch.Tensor]) -> str:
    """A LyCORIS layer's kind as a user knows it: `kind_of`'s, BOFT for OFT blocks of four axes, and "DoRA" after
    it where the layer has a magnitude (a DoRA LoCon: "LoCon DoRA")."""
    kind = kind_of(w)
    if kind == "OFT" and "oft_blocks" in w and w["oft_blocks"].ndim == 4:
        kind = "BOFT"
    return f"{kind} DoRA" if DORA_NAME in w else str(kind)


def _layers(keys) -> dict[str, set[str]]:
    """kohya-ss keys LAYER.NAME grouped: {layer: its names}."""
    layers: dict[str, set[str]] = {}
    for key in keys:
        layer, _, name = str(key).partition(".")
        layers.setdefault(layer, set()).add(name)
    return layers


def is_lycoris(keys) -> bool:
    """Whether a weights file's `keys` hold a LyCORIS layer (`kind_of`)."""
    return any(kind_of(names) for names in _layers(keys).values())


def split_lycoris(state: dict[str, torch.Tensor]) -> tuple[dict[str, dict[str, torch.Tensor]], dict]:
    """({layer: {weight name: tensor}} of the LyCORIS layers (`kind_of`), with all their names, alpha too; the
    rest of `state`): the rest (LoRA layers, lora_up/lora_down, as LyCORIS's LoCon writes them too) is for
    diffusers' LoRA loader."""
    lycoris_layers = {layer for layer, names in _layers(state).items() if kind_of(names)}
    lycoris: dict[str, dict[str, torch.Tensor]] = {}
    rest = {}
    for key, tensor in state.items():
        layer, _, name = key.partition(".")
        if layer in lycoris_layers:
            lycoris.setdefault(layer, {})[name] = tensor
        else:
            rest[key] = tensor
    return lycoris, rest


def kohya_layers(unet: torch.nn.Module, text_encoder: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """The model's Linear, Conv2d and normalisation layers by their kohya-ss names: the part's prefix and the layer's
    path with '_' for '.' (the text encoder's under `text_model_`, as CLIPTextModel's checkpoints name it; the
    UNet's also under kohya-ss's OFT prefix)."""
    names = {}
    for prefixes, part in ((("lora_unet_", KOHYA_OFT_PREFIX), unet), ((TEXT_PREFIX,), text_encoder)):  # kohya-ss's
        for name, layer in part.named_modules():
            if isinstance(layer, torch.nn.Linear | torch.nn.Conv2d | torch.nn.GroupNorm | torch.nn.LayerNorm):
                flat = name.replace(".", "_")
                for prefix in prefixes:
                    names[prefix + flat] = layer
                if part is text_encoder and not flat.startswith("text_model_"):
                    names[f"{TEXT_PREFIX}text_model_{flat}"] = layer
    return names


def tucker(core: torch.Tensor, out_factor: torch.Tensor, in_factor: torch.Tensor) -> torch.Tensor:
    """(out, in, kh, kw) from a Tucker core (r, r, kh, kw) and its factors (r, out), (r, in) (LyCORIS's
    `rebuild_tucker`)."""
    return torch.einsum("i j k l, i p, j r -> p r k l", core, out_factor, in_factor)


def loha_delta(w: dict[str, torch.Tensor]) -> torch.Tensor:
    """LoHa's weight difference before its alpha / r: (w1_a w1_b) * (w2_a w2_b), or of Tucker products."""
    if "hada_t1" in w:
        first, second = (tucker(w[f"hada_t{i}"], w[f"hada_w{i}_a"], w[f"hada_w{i}_b"]) for i in (1, 2))
        return first * second
    return (w["hada_w1_a"] @ w["hada_w1_b"]) * (w["hada_w2_a"] @ w["hada_w2_b"])


def lokr_delta(w: dict[str, torch.Tensor]) -> torch.Tensor:
    """LoKr's weight difference before its alpha / r: w1 (x) w2, each factor full or a low-rank product (w2 of a
    convolution also a Tucker product)."""
    w1 = w["lokr_w1"] if "lokr_w1" in w else w["lokr_w1_a"] @ w["lokr_w1_b"]
    if "lokr_w2" in w:
        w2 = w["lokr_w2"]
    elif "lokr_t2" in w:
        w2 = tucker(w["lokr_t2"], w["lokr_w2_a"], w["lokr_w2_b"])
    else:
        w2 = w["lokr_w2_a"] @ w["lokr_w2_b"]
    if w2.ndim == 4:  # (out_k, in_n, kh, kw): w1 is a 1x1 kernel's
        w1 = w1[:, :, None, None]
    return torch.kron(w1.contiguous(), w2.contiguous())  # kron views its inputs


def locon_delta(w: dict[str, torch.Tensor]) -> torch.Tensor:
    """A LoCon layer's weight difference before its alpha / r: `lora_up` (out, r) times `lora_down` (r, in, ...),
    or of a Tucker layer, its core `lora_mid` (r, r, kh, kw) between `lora_up` (out, r, 1, 1) and `lora_down`
    (r, in, 1, 1), as the three convolutions in a row compute."""
    up, down = w["lora_up.weight"], w["lora_down.weight"]
    if "lora_mid.weight" not in w:
        return up.reshape(up.shape[0], -1) @ down.reshape(down.shape[0], -1)  # (out, in * kh * kw)
    return tucker(w["lora_mid.weight"], up.reshape(up.shape[0], -1).T, down.reshape(down.shape[0], -1))


def full_delta(w: dict[str, torch.Tensor]) -> torch.Tensor:
    """A full difference's weight difference: `diff` itself (no alpha)."""
    return w["diff"]


def norm_delta(w: dict[str, torch.Tensor]) -> torch.Tensor:
    """A normalisation layer's weight difference: `w_norm` itself (no alpha), as LyCORIS's NormModule merges it."""
    return w["w_norm"]


def rank_of(w: dict[str, torch.Tensor]) -> int | None:
    """The rank r its alpha is divided by: LoHa's, LoCon's, LoKr's low-rank factor's (w2's, else w1's); None for
    a LoKr of full factors alone, which is not scaled."""
    for name in ("hada_w1_b", "lora_down.weight", "lokr_w2_b", "lokr_w1_b"):
        if name in w:
            return w[name].shape[0]
    return None


def _check_names(layer: str, w: dict[str, torch.Tensor], kind: str) -> None:
    """A LycorisError where the layer `layer` of kind `kind` (`kind_of`) holds names of no weight of its kind."""
    marks = {
        "LoHa": ("hada_",),
        "LoKr": ("lokr_",),
        "LoCon": LOCON_NAMES,
        "Full": ("diff",),
        "IA3": IA3_NAMES,
        "OFT": OFT_NAMES,
        "GLoRA": GLORA_NAMES,
        "Norm": NORM_NAMES,
    }[kind]
    allowed = {"alpha"} | ({DORA_NAME} if kind in ("LoHa", "LoKr", "LoCon") else set())  # of these, DoRA's
    extra = sorted(name for name in w if name not in allowed and not name.startswith(marks))
    if extra:
        raise LycorisError(f"its layer {layer} holds {named_keys(extra)} beside {kind} weights, which are not fused")


def layer_delta(layer: str, w: dict[str, torch.Tensor], shape: torch.Size, kind: str | None = None) -> torch.Tensor:
    """The weight difference (alpha / r) * delta of the LyCORIS layer `layer` (its weights `w`; of `kind`, else the
    kind its names say), float32, in the shape `shape` of the model's layer; a LycorisError names what does not
    fit."""
    kind = kind or kind_of(w)
    _check_names(layer, w, kind)
    w = {name: t.float() for name, t in w.items()}
    try:
        deltas = {"LoHa": loha_delta, "LoKr": lokr_delta, "LoCon": locon_delta, "Full": full_delta, "Norm": norm_delta}
        delta = deltas[kind](w)
    except KeyError as e:
        raise LycorisError(f"its {kind} layer {layer} lacks {e.args[0]} (it is incomplete or damaged)") from None
    except RuntimeError:
        raise LycorisError(f"its {kind} layer {layer}'s weights do not multiply (it is damaged)") from None
    if delta.numel() != shape.numel():
        raise LycorisError(
            f"its {kind} layer {layer} is {tuple(delta.shape)} but the model's is {tuple(shape)} (an adapter of "
            "another architecture?)"
        )
    rank = rank_of(w)
    alpha = float(w["alpha"]) if "alpha" in w and rank is not None else float(rank or 1)
    return delta.reshape(shape) * (alpha / (rank or 1))


def bias_delta(layer: str, w: dict[str, torch.Tensor], bias: torch.Tensor | None) -> torch.Tensor | None:
    """A full difference's bias difference `diff_b` or a normalisation layer's `b_norm` (float32), None where it has
    none; a LycorisError where the model's layer has no bias or one of another size."""
    name = next((name for name in ("diff_b", "b_norm") if name in w), None)
    if name is None:
        return None
    diff_b = w[name].float()
    if bias is None or diff_b.numel() != bias.numel():
        held = "no bias" if bias is None else f"a bias of {tuple(bias.shape)}"
        raise LycorisError(f"its layer {layer}'s {name} is {tuple(diff_b.shape)} but the model's layer has {held}")
    return diff_b.reshape(bias.shape)


def dora_axis(magnitude: torch.Size, weight: torch.Size) -> int | None:
    """The axis a DoRA magnitude of shape `magnitude` norms a weight of shape `weight` along: 0, one per output
    ((out, 1, ...), LyCORIS's default and peft's DoRA), 1, one per input ((1, in, ...)); None for neither."""
    if math.prod(magnitude) == weight[0] and magnitude[:1] in ((weight[0],), ()):
        return 0
    if math.prod(magnitude) == weight[1] and len(magnitude) >= 2 and magnitude[1] == weight[1]:
        return 1
    return None


def dora_weight(weight: torch.Tensor, delta: torch.Tensor, magnitude: torch.Tensor, multiplier: float) -> torch.Tensor:
    """DoRA's weight, as LyCORIS merges it (`apply_weight_decompose`): W' = W + delta, each output's row (or
    input's column, `dora_axis`) rescaled to the trained magnitude's norm, the rescaling taken `multiplier` of the
    way, W' * (1 + multiplier * (magnitude / ||W'|| - 1)). A ValueError where the magnitude fits neither axis."""
    merged = weight + delta  # (out, in, ...)
    axis = dora_axis(magnitude.shape, merged.shape)
    if axis is None:
        raise ValueError(f"a magnitude of {tuple(magnitude.shape)} fits no axis of a weight of {tuple(merged.shape)}")
    other = tuple(d for d in range(merged.ndim) if d != axis)
    norm = torch.linalg.vector_norm(merged, dim=other, keepdim=True)  # (out, 1, ...) or (1, in, ...)
    ratio = magnitude.reshape(norm.shape) / (norm + torch.finfo(merged.dtype).eps)
    return merged * (1 + multiplier * (ratio - 1))


def ia3_weight(weight: torch.Tensor, factors: torch.Tensor, on_input: bool, multiplier: float) -> torch.Tensor:
    """(IA)^3's weight, as LyCORIS merges it (`IA3Module.make_weight`): each output's row of `weight` (each input's
    column where `on_input`) times 1 + multiplier * its factor."""
    axis = 1 if on_input else 0
    shape = [weight.shape[d] if d == axis else 1 for d in range(weight.ndim)]  # (out, 1, ...) or (1, in, ...)
    return weight * (1 + multiplier * factors.reshape(shape))


def ia3_factors(layer: str, w: dict[str, torch.Tensor], shape: torch.Size) -> tuple[torch.Tensor, bool]:
    """(the factors, float32, whether they scale the inputs) of the (IA)^3 layer `layer` (its weights `w`) for the
    model's layer of shape `shape`; a LycorisError names what does not fit."""
    _check_names(layer, w, "IA3")
    on_input, factors = bool(w["on_input"].any()), w["weight"].float()
    side, count = ("inputs", shape[1]) if on_input else ("outputs", shape[0])
    if factors.numel() != count:
        raise LycorisError(
            f"its IA3 layer {layer} has {factors.numel()} factors but the model's layer has {count} {side} (an "
            "adapter of another architecture?)"
        )
    return factors, on_input


def cayley(blocks: torch.Tensor, constraint: float) -> torch.Tensor:
    """OFT's rotations (..., n, n) from trained blocks (..., n, n) (Qiu et al. 2023, the Cayley transform):
    Q = B - B^T, scaled down to the Frobenius norm `constraint` over all blocks where it is above it (COFT; 0: no
    constraint), R = (I + Q)(I - Q)^-1, as LyCORIS's `get_r` and kohya-ss's `get_weight` compute it."""
    q = blocks - blocks.transpose(-1, -2)
    norm = torch.linalg.vector_norm(q) + 1e-8
    if 0 < constraint < norm:
        q = q * (constraint / norm)
    eye = torch.eye(q.shape[-1], dtype=q.dtype)
    return (eye + q) @ torch.linalg.inv(eye - q)


def _partway(rotations: torch.Tensor, multiplier: float) -> torch.Tensor:
    """Rotations (..., n, n) taken `multiplier` of the way from the identity: multiplier (R - I) + I, as LyCORIS and
    kohya-ss scale an OFT or BOFT layer."""
    eye = torch.eye(rotations.shape[-1], dtype=rotations.dtype)
    return multiplier * (rotations - eye) + eye


def oft_weight(weight: torch.Tensor, rotations: torch.Tensor, multiplier: float) -> torch.Tensor:
    """OFT's weight, as LyCORIS (`DiagOFTModule.make_weight`) and kohya-ss (`OFTInfModule.merge_to`) merge it:
    the outputs of `weight` (out, ...) in k blocks of n, each block's rows mixed by its rotation (k, n, n), taken
    `multiplier` of the way, W'_k = (multiplier (R_k - I) + I)^T W_k."""
    k, n, _ = rotations.shape
    blocks = weight.reshape(k, n, -1)  # (k, n, in * kh * kw)
    return torch.einsum("k n m, k n r -> k m r", _partway(rotations, multiplier), blocks).reshape(weight.shape)


def boft_weight(weight: torch.Tensor, rotations: torch.Tensor, multiplier: float) -> torch.Tensor:
    """BOFT's weight, as LyCORIS merges it (`ButterflyOFTModule.make_weight`; Liu et al. 2024): for each
    of the m butterfly factors i of `rotations` (m, k, b, b), the outputs of `weight` (out, ...) permuted so
    that rows 2^i b/2 apart pair up, each run of b rows multiplied by its rotation (taken `multiplier` of the
    way), and permuted back."""
    m, _, b, _ = rotations.shape
    rows = weight
    for i, mixing in enumerate(_partway(rotations, multiplier)):  # (k, b, b) each
        stride = 2**i * (b // 2)
        rows = rows.unflatten(0, (-1, 2, stride)).transpose(1, 2).flatten(0, 2).unflatten(0, (-1, b))
        rows = torch.einsum("k i j, k j ... -> k i ...", mixing, rows)
        rows = rows.flatten(0, 1).unflatten(0, (-1, stride, 2)).transpose(1, 2).flatten(0, 2)
    return rows


def oft_rotations(
    layer: str, w: dict[str, torch.Tensor], shape: torch.Size
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(the rotations (k, n, n), or for BOFT (m, k, b, b), float32; the output scales `rescale`, or None) of the
    OFT layer `layer` (its weights `w`) for the model's layer of shape `shape`: `oft_diag` as stored, else the
    Cayley transform of `oft_blocks` under the constraint alpha * outputs (LyCORIS's and kohya-ss's COFT); a
    LycorisError names what does not fit."""
    _check_names(layer, w, "OFT")
    stored = "oft_diag" in w
    blocks = (w["oft_diag"] if stored else w["oft_blocks"]).float()
    outputs = shape[0]
    if blocks.ndim == 3 and blocks.shape[1] == blocks.shape[2]:
        fits, layout = blocks.shape[0] * blocks.shape[1] == outputs, f"{blocks.shape[0]} blocks of {blocks.shape[1]}"
    elif blocks.ndim == 4 and not stored and blocks.shape[2] == blocks.shape[3]:
        m, k, b = blocks.shape[:3]
        fits = k * b == outputs and b % 2 == 0 and outputs % (2 ** (m - 1) * b) == 0
        layout = f"{m} butterfly factors of {k} blocks of {b}"
    else:
        raise LycorisError(
            f"its OFT layer {layer}'s {'oft_diag' if stored else 'oft_blocks'} is "
            f"{tuple(blocks.shape)}, no blocks of square rotations (it is damaged)"
        )
    if not fits:
        raise LycorisError(
            f"its OFT layer {layer} is {layout} but the model's layer has {outputs} outputs (an adapter of another "
            "architecture?)"
        )
    rescale = w["rescale"].float() if "rescale" in w else None
    if rescale is not None and rescale.numel() != outputs:
        raise LycorisError(
            f"its OFT layer {layer}'s rescale is {tuple(rescale.shape)} but the model's layer has {outputs} outputs"
        )
    constraint = float(w["alpha"]) * outputs if "alpha" in w else 0.0
    return (blocks if stored else cayley(blocks, constraint)), rescale


def _flat(t: torch.Tensor) -> torch.Tensor:
    """A factor (rows, ...) as a matrix (rows, the rest): a convolution's kernel as one axis."""
    return t.reshape(t.shape[0], -1)


def glora_fits(w: dict[str, torch.Tensor], shape: torch.Size) -> set[str]:
    """The GLoRA layouts (`GLORA_LAYOUTS`) whose shapes a layer's weights `w` have for a model layer of shape
    `shape` (out, in, ...): LyCORIS 3.0 on, a1 (in, r), a2 (r, in), b1 (out, r), b2 (r, in, kh, kw) or, with a
    core bm (r, r, kh, kw), b2 (r, in); LyCORIS 2.x, a1 (r, in), a2 (in, r), b1 (r, in), b2 (out, r), a Linear or
    1x1 convolution's (the 1x1 kernels as one axis). Both where r = in = out; none for another model's layer."""
    out, inputs, kernel = shape[0], shape[1], math.prod(shape[2:])
    a1, a2, b1, b2 = (tuple(_flat(w[name]).shape) for name in GLORA_NAMES[:4])
    r = a2[0]
    fits = set()
    if "bm.weight" in w:
        b_fits = b2 == (r, inputs) and tuple(w["bm.weight"].shape) == (r, r, *shape[2:])
    else:
        b_fits = b2 == (r, inputs * kernel)
    if a1 == (inputs, r) and a2 == (r, inputs) and b1 == (out, r) and b_fits:
        fits.add(GLORA_LAYOUTS[0])
    r = a1[0]
    if kernel == 1 and "bm.weight" not in w and (a1, a2, b1, b2) == ((r, inputs), (inputs, r), (r, inputs), (out, r)):
        fits.add(GLORA_LAYOUTS[1])
    return fits


def glora_layout(glora: dict[str, dict[str, torch.Tensor]], shapes: dict[str, torch.Size]) -> str:
    """The one layout (`GLORA_LAYOUTS`) of a file's GLoRA layers `glora` ({layer: its weights}) on the model's
    layers of `shapes`: a file is written by one LyCORIS, so its layers that fit one layout alone say which
    (`glora_fits`; one fits both only at full rank on a square layer). A LycorisError where a layer is
    incomplete or fits neither, where layers fit different layouts alone, or where every layer fits both."""
    alone = {}
    for layer, w in glora.items():
        _check_names(layer, w, "GLoRA")
        lacking = [name for name in GLORA_NAMES[:4] if name not in w]
        if lacking:
            raise LycorisError(f"its GLoRA layer {layer} lacks {lacking[0]} (it is incomplete or damaged)")
        fits = glora_fits(w, shapes[layer])
        if not fits:
            held = ", ".join(f"{name.split('.')[0]} {tuple(w[name].shape)}" for name in GLORA_NAMES if name in w)
            raise LycorisError(
                f"its GLoRA layer {layer} ({held}) fits neither of LyCORIS's GLoRA layouts for the model's layer of "
                f"{tuple(shapes[layer])} (an adapter of another architecture?)"
            )
        if len(fits) == 1:
            alone.setdefault(fits.pop(), layer)
    if len(alone) > 1:
        said = " and ".join(f"{layer} {layout}'s" for layout, layer in alone.items())
        raise LycorisError(f"its GLoRA layers are of two layouts ({said}); it is damaged")
    if not alone:
        raise LycorisError(
            "every GLoRA layer of it is of full rank on a square layer, whose shapes are the same in LyCORIS 2.x's "
            "layout and 3.0's, which merge differently: which wrote it cannot be told"
        )
    return next(iter(alone))


def glora_delta(weight: torch.Tensor, w: dict[str, torch.Tensor], layout: str) -> torch.Tensor:
    """GLoRA's weight difference (alpha / r) (W A + B) for the model's weight `weight` (out, in, ...), as LyCORIS
    merges it (Chavan et al. 2023): in its 3.0 layout, W a1 a2 (W's inputs mixed, at each kernel position) plus
    b1 b2 (or the Tucker product of bm with b1 and b2), r = a2's rows; in 2.x's, W a2 a1 + b2 b1, r = a1's rows.
    LyCORIS 2.x's own layer scaled by (alpha / r)^2 in training but merged at alpha / r, as ComfyUI reads it."""
    a1, a2, b1, b2 = (_flat(w[name]) for name in GLORA_NAMES[:4])
    if layout == GLORA_LAYOUTS[1]:
        rank = a1.shape[0]
        delta = _flat(weight) @ a2 @ a1 + b2 @ b1  # (out, in)
    else:
        rank = a2.shape[0]
        mixed = torch.einsum("o i ..., i r, r j -> o j ...", weight, a1, a2)  # (out, in, ...)
        b = tucker(w["bm.weight"], b1.T, b2) if "bm.weight" in w else b1 @ b2
        delta = mixed + b.reshape(weight.shape)
    alpha = float(w["alpha"]) if "alpha" in w else float(rank)
    return delta.reshape(weight.shape) * (alpha / rank)


def fuse_lycoris(
    lycoris: dict[str, dict[str, torch.Tensor]],
    layers: dict[str, torch.nn.Module],
    scales: tuple[float, float],
    plain: bool = False,
) -> None:
    """Add `scale` times each LyCORIS layer's weight difference (`layer_delta`, GLoRA's `glora_delta`) to the model's
    layer of its name (`layers`, `kohya_layers`), or set a DoRA, (IA)^3 or OFT layer's weight to `dora_weight`,
    `ia3_weight`, `oft_weight` or `boft_weight` at `scale` (these and GLoRA act on the weight as the LyCORIS layers
    before them left it), in place, one layer at a time. A layer the model lacks, or GLoRA layers of no one layout
    (`glora_layout`), is a LycorisError before any is changed; one that does not fit, or NaN or infinite values,
    stops it part-way (the caller discards the model). `scale` is the first of `scales` for the UNet's layers, the
    second for the text encoder's (`TEXT_PREFIX`). With `plain`, a layer of no LyCORIS kind is a LoRA's
    (`lora_up`, `lora_down`, `alpha`), fused by the same rule as LoCon's."""
    missing = sorted(name for name in lycoris if name not in layers)
    if missing:
        raise LycorisError(
            f"the layers it names are not this model's ({named_keys(missing)}; an adapter of another architecture?)"
        )
    glora = {name: w for name, w in lycoris.items() if kind_of(w) == "GLoRA"}
    layout = glora_layout(glora, {name: layers[name].weight.shape for name in glora}) if glora else None
    for name, w in lycoris.items():
        weight, bias = layers[name].weight, layers[name].bias
        if weight is None:  # a normalisation layer without its affine weights
            raise LycorisError(f"its layer {name} adapts a layer of the model that has no weights to change")
        factors = delta = delta_b = magnitude = rotations = rescale = None
        kind, scale = kind_of(w) or ("LoCon" if plain else None), scales[name.startswith(TEXT_PREFIX)]
        if kind == "IA3":  # a product with the weight, not a difference added to it
            factors, on_input = ia3_factors(name, w, weight.shape)
        elif kind == "OFT":  # a rotation of the weight's outputs
            rotations, rescale = oft_rotations(name, w, weight.shape)
        elif kind == "GLoRA":  # a difference that is partly a product with the weight
            delta = glora_delta(weight.float(), {key: t.float() for key, t in w.items()}, layout)
        else:
            delta, delta_b = layer_delta(name, w, weight.shape, kind), bias_delta(name, w, bias)
            magnitude = w[DORA_NAME].float() if DORA_NAME in w else None
            if magnitude is not None and dora_axis(magnitude.shape, weight.shape) is None:
                raise LycorisError(
                    f"its layer {name}'s {DORA_NAME} is {tuple(magnitude.shape)}, neither one per output "
                    f"({weight.shape[0]}) nor one per input ({weight.shape[1]}) of the model's layer"
                )
        computed = (factors, delta, delta_b, magnitude, rotations, rescale)
        if not all(bool(torch.isfinite(d).all()) for d in computed if d is not None):
            raise LycorisError(f"it holds NaN or infinite values (its layer {name}); it is damaged (download it again)")
        with torch.no_grad():
            if factors is not None:
                weight.copy_(ia3_weight(weight.float(), factors, on_input, scale).to(weight.dtype))
            elif rotations is not None:
                merged = (oft_weight if rotations.ndim == 3 else boft_weight)(weight.float(), rotations, scale)
                if rescale is not None:  # LyCORIS's output scales, not taken `scale` of the way (as it merges)
                    merged = merged * rescale.reshape(-1, *[1] * (weight.ndim - 1))
                weight.copy_(merged.to(weight.dtype))
            elif magnitude is not None:
                weight.copy_(dora_weight(weight.float(), delta, magnitude, scale).to(weight.dtype))
            else:
                weight.add_((scale * delta).to(weight.dtype))
            if delta_b is not None:
                bias.add_((scale * delta_b).to(bias.dtype))
