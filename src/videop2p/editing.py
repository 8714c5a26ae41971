"""Stage 3: decoupled-guidance sampling of source and target branches under attention control."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from videop2p import progress
from videop2p.config import (
    PAIRS_PER_TARGET,
    PER_TARGET_THRESHOLDS,
    Bounds,
    EditConfig,
    OptionError,
    WordPair,
    brief_repr,
    check_edit,
    check_subtract,
    target_label,
    target_pairs,
    target_thresholds,
    target_windows,
    window_bounds,
)
from videop2p.control.controller import (
    ControlPlan,
    EditController,
    Layout,
    MaskNorm,
    TargetEdit,
    TargetWords,
    controlled_processor,
    map_size,
)
from videop2p.control.prompts import (
    EditMode,
    WordNotInPrompt,
    asks_no_change,
    changed_words,
    check_prompts_fit,
    choose_mode,
    equalizer,
    refinement_mapper,
    replacement_mapper,
    shown,
    token_count,
    tokenize,
    word_indices,
)
from videop2p.inversion import InversionMethod, InversionResult
from videop2p.latents import encode_prompts
from videop2p.models.loading import AttentionLayer, SDComponents
from videop2p.models.t2s import T2SModel, video_key
from videop2p.progress import StepHook
from videop2p.sampling import EvalCounter, cfg, check_finite, ddim_schedule, denoise_step, half_hint, predict
from videop2p.store.codec import CorruptFileError, load_tensors, read_meta, save_tensors
from videop2p.windows import WindowPlan

logger = logging.getLogger(__name__)
# A blend mask covering this share of the frames leaves local blending nothing to keep. A background word's
# mask rightly covers all but the object, grown by the 3x3 max-pool (95% around the demo's circle), so the
# warning is for a mask that covers the whole frame, as a flat map's does.
FULL_MASK = 0.99
# A changed word with less than this share of its attention inside its target's blend mask, and a
# density there under CONCENTRATED times the density outside, is changed mostly where blending keeps the source.
INSIDE_SHARE = 0.5
CONCENTRATED = 2.0

OFFICIAL_MASK_SIDE = 16  # the official code builds masks from 16x16 maps (512 px, SD 1.5)


@dataclass
class EditResult:
    """Latents and maps from one editing pass."""

    latents: torch.Tensor  # (1 + K, F, C, h, w): reconstruction then each target
    masks: torch.Tensor | None  # (K, F, h, w) bool local-blend masks at the last step
    attention: torch.Tensor | None  # (1 + K, F, y, x, L') step-averaged cross-attention maps per prompt token
    tokens: list[list[str]]  # decoded tokens of every prompt (start token first)
    counts: dict[str, int]  # UNet evaluations per phase
    modes: list[str]  # edit mode per target
    warnings: list[str] = field(default_factory=list)  # what the edit warned about (kept with it, for the report)

    __repr__ = brief_repr


def cross_alpha(tokenizer, target: str, steps: int, default: Bounds, per_word: dict[str, Bounds]) -> torch.Tensor:
    """(T + 1, L) replacement schedule per token, as the official `get_time_words_attention_alpha`."""
    alpha = torch.zeros(steps + 1, tokenizer.model_max_length)
    s, e = window_bounds(default)
    alpha[int(s * (steps + 1)) : int(e * (steps + 1))] = 1.0
    for word, bounds in per_word.items():
        s, e = window_bounds(bounds)
        try:
            inds = word_indices(tokenizer, target, word)
        except WordNotInPrompt:  # a word of another target's (`_in_some_target` checks each is in one)
            continue
        alpha[:, inds] = 0.0
        alpha[int(s * (steps + 1)) : int(e * (steps + 1)), inds] = 1.0
    return alpha


def mask_layers(
    layers: tuple[AttentionLayer, ...], latent_hw: tuple[int, int], side: int | None
) -> tuple[set[str], int]:
    """Cross-attention layers whose map side is closest to `side` (default: the official 16)."""
    target = side or OFFICIAL_MASK_SIDE
    sides = {layer.downsample: latent_hw[0] // layer.downsample for layer in layers if layer.cross}
    if not sides:
        raise ValueError("the model has no cross-attention layers to build masks from")
    best = min(sides, key=lambda d: (abs(sides[d] - target), -sides[d]))
    return {layer.name for layer in layers if layer.cross and layer.downsample == best}, sides[best]


def repeated_targets(targets: list[str], c: EditConfig) -> list[tuple[int, int]]:
    """(k, j) for each target k (from 0) that is an earlier target j again with the same per-target settings
    (blend and subtract words, windows, threshold): its edit is j's, at the cost of one more branch each step."""
    n = len(targets)
    per_target = zip(
        targets,
        target_pairs("blend", c.blend, n),
        target_pairs("subtract", c.subtract, n),
        target_windows(c.cross_replace, n, "cross_replace"),
        target_windows(c.self_replace, n, "self_replace"),
        target_thresholds(c.threshold, n),
        strict=True,
    )
    first: dict[tuple, int] = {}
    repeats = []
    for k, settings in enumerate(per_target):
        if settings in first:
            repeats.append((k, first[settings]))
        else:
            first[settings] = k
    return repeats


def build_plan(
    components: SDComponents, source: str, targets: list[str], c: EditConfig, steps: int, latent_hw: tuple[int, int]
) -> tuple[ControlPlan, list[str]]:
    """Check the prompts and settings, and turn them into the controller's plan."""
    check_edit(c)
    tok = components.tokenizer
    for what, p in [("source", source), *((f"target {i}", t) for i, t in enumerate(targets, 1))]:
        if not p.strip():
            raise ValueError(f"The {what} prompt {p!r} is empty; a prompt needs at least one word.")
    check_prompts_fit(tok, source, targets)
    for p in [source, *targets]:
        word_indices(tok, p, 0)  # validates tokenisation word by word
    crosses, selves = (target_windows(getattr(c, w), len(targets), w) for w in ("cross_replace", "self_replace"))
    thresholds = target_thresholds(c.threshold, len(targets))
    blends, subtracts = (target_pairs(what, getattr(c, what), len(targets)) for what in ("blend", "subtract"))
    check_subtract(blends, subtracts)
    edits, modes = [], []
    reweights = _reweights(tok, targets, c.reweight)
    _in_some_target(tok, targets, c.cross_replace_words, "cross_replace_word")
    for t, factors, cross, (s0, s1) in zip(targets, reweights, crosses, selves, strict=True):
        mode = choose_mode(source, t, c.mode)
        eq = equalizer(tok, t, factors) if factors else None
        alpha = cross_alpha(tok, t, steps, cross, c.cross_replace_words)
        self_window = (int(steps * s0), int(steps * s1))
        if mode is EditMode.SWAP:
            edits.append(TargetEdit("swap", replacement_mapper(tok, source, t), None, eq, alpha, self_window, factors))
        else:
            index, alphas = refinement_mapper(tok, source, t)
            edits.append(TargetEdit("refine", index, alphas, eq, alpha, self_window, factors))
        modes.append(mode.value)
    store, _ = mask_layers(components.info.attention_layers, latent_hw, c.mask_side)
    plan = ControlPlan(
        targets=edits,
        store_layers={video_key(n) for n in store},
        map_tokens=max(token_count(tok, p) for p in [source, *targets]),
        blend_start=int(c.blend_start * steps),
        threshold=thresholds,
        mask_norm=MaskNorm(c.mask_norm),
        materialize_all=c.materialize_all,
        control_frame_attention=c.control_frame_attention,
    )
    plan.blend = _target_words(tok, source, targets, blends, "blend")
    plan.subtract = _target_words(tok, source, targets, subtracts, "subtract")
    return plan, modes


def _reweights(tok, targets: list[str], factors: dict[str, float]) -> list[dict[str, float]]:
    """Each target's reweighting factors: those of the words its prompt has. A word in no target is an
    error (a misspelt word is not skipped)."""
    return [
        {w: f for w, f in factors.items() if w in words} for words in _in_some_target(tok, targets, factors, "reweight")
    ]


def _in_some_target(tok, targets: list[str], words: Iterable[str], option: str) -> list[set[str]]:
    """Which of `words` (a per-word setting: reweighting, cross-attention windows) each target's prompt has; a
    word in no target is an OptionError of `option` (a misspelt word is not skipped)."""
    has: list[set[str]] = [set() for _ in targets]
    for word in words:
        missing = []
        for k, t in enumerate(targets):
            try:
                word_indices(tok, t, word)
            except WordNotInPrompt as e:
                missing.append(e)
                continue
            has[k].add(word)
        if targets and len(missing) == len(targets):
            several = " (nor in any other target)" if len(targets) > 1 else ""
            raise OptionError(option, _not_in(missing[0], _target_prompt(1, len(targets)), several))
    return has


def _not_in(e: WordNotInPrompt, prompt: str, hint: str = "") -> str:
    """A word setting's reason for a word its prompt lacks, `prompt` naming which ("the source prompt")."""
    return f"{e.word!r} is not in {prompt} {e.prompt!r}; its words are {e.words}{hint}."


def _target_prompt(k: int, targets: int) -> str:
    """How a message names target `k`'s (from 1) prompt of `targets`: "target 2's prompt", or "the target prompt"."""
    return f"target {k}'s prompt" if targets > 1 else "the target prompt"


def _target_words(tok, source: str, targets: list[str], pairs: list[WordPair | None], what: str) -> TargetWords | None:
    """The blend (or subtract) words of each target as token rows; None when no target has words."""
    if all(pair is None for pair in pairs):
        return None
    shared = len(pairs) > 1 and len(set(pairs)) == 1  # one pair for every target: said when a target lacks its word
    source_rows, target_rows = (torch.zeros(len(targets), tok.model_max_length) for _ in range(2))
    for k, (t, pair) in enumerate(zip(targets, pairs, strict=True)):
        if pair is None:
            continue
        for rows, prompt, word, in_target in ((source_rows, source, pair[0], False), (target_rows, t, pair[1], True)):
            try:
                rows[k, word_indices(tok, prompt, word)] = 1.0
            except WordNotInPrompt as e:
                hint = ""
                if in_target and shared:
                    hint = f" (one {what} pair applies to every target; give {PAIRS_PER_TARGET.format(what=what)})"
                which = _target_prompt(k + 1, len(targets)) if in_target else "the source prompt"
                raise OptionError(what, _not_in(e, which, hint)) from None
    return TargetWords(source_rows, target_rows, torch.tensor([pair is not None for pair in pairs]))


def _source_uncond(inv: InversionResult, i: int, empty: torch.Tensor, cond_src: torch.Tensor) -> torch.Tensor | None:
    """The source branch's unconditional embedding at step i, or None when it runs without guidance."""
    if inv.method is InversionMethod.NULL_TEXT:
        return inv.uncond_embeddings[i]
    if inv.method is InversionMethod.DIRECT:
        return empty
    return None  # fast: guidance 1; negative-prompt: uncond = cond, so the guided output is the conditional one


def _target_uncond(
    inv: InversionResult, i: int, empty: torch.Tensor, cond_src: torch.Tensor, decoupled: bool
) -> torch.Tensor | None:
    if inv.method is InversionMethod.NEGATIVE_PROMPT:
        return cond_src
    if decoupled:
        return empty
    return _source_uncond(inv, i, empty, cond_src)


@dataclass
class StepInfo:
    """Payload of the per-step callback."""

    step: int  # index of the step just taken
    timestep: int  # its diffusion timestep
    latents: torch.Tensor  # (1 + K, F, C, h, w) after blending
    mask: torch.Tensor | None  # (K, F, 1, h, w) bool blend mask applied at this step, if any


def check_inputs(inv: InversionResult, sched_timesteps: list[int], guidance: float) -> None:
    """Refuse an inversion that cannot be edited: non-finite noise, another schedule, or null-text
    embeddings fitted to another guidance than the edit's (they reconstruct the clip only at theirs)."""
    if not torch.isfinite(inv.latent_T).all():
        raise ValueError("The inversion's latent contains NaN or infinite values; invert again.")
    if sched_timesteps != inv.timesteps:
        raise ValueError(
            f"the scheduler's timesteps differ from the inversion's ({sched_timesteps[:3]} vs {inv.timesteps[:3]})"
        )
    fitted = inv.meta.get("settings", {}).get("guidance")
    if inv.method is InversionMethod.NULL_TEXT and fitted is not None and fitted != guidance:
        raise ValueError(
            f"The null-text inversion was fitted to guidance {fitted:g} and the edit samples with {guidance:g}; "
            f"edit with guidance {fitted:g}, or invert with InversionConfig(guidance={guidance:g})."
        )


def _divergence_hint(c: EditConfig, dtype: torch.dtype) -> str:
    """What to change when an edit's latents stop being finite."""
    return half_hint(dtype) or f"a lower guidance than {c.guidance:g} or smaller reweighting factors keep it finite"


def _step_text(
    inv: InversionResult, i: int, cond: torch.Tensor, empty: torch.Tensor, targets: int, decoupled: bool
) -> tuple[list[int], torch.Tensor]:
    """Rows of step i that take guidance, and the text embeddings of every UNet row (unconditional first).

    A source branch that follows the inversion's kept path needs no unconditional row: its guided
    prediction would only be replaced; its conditional row still gives the maps the targets read."""
    source = None if inv.trajectory is not None else _source_uncond(inv, i, empty, cond[:1])
    unconds = [source] + [_target_uncond(inv, i, empty, cond[:1], decoupled)] * targets
    guided_rows = [b for b, u in enumerate(unconds) if u is not None]
    text = torch.cat([unconds[b].to(cond) for b in guided_rows] + [cond])  # (G + P, L, D)
    return guided_rows, text


def _averaged_attention(controller: EditController, latent_hw: tuple[int, int]) -> torch.Tensor | None:
    """The stored cross-attention maps averaged over steps and layers, (P, F, y, x, L'), or None.

    L' is the longest prompt's token count: the padding's maps are not kept."""
    mean = controller.averaged_maps()  # (P, F, N, L')
    if mean is None:
        return None
    return mean.reshape(*mean.shape[:2], *map_size(mean.shape[2], latent_hw), mean.shape[-1])


def _full_mask_warnings(
    masks: torch.Tensor | None, pairs: list[WordPair | None], threshold: float | list[float]
) -> list[str]:
    """A warning for each target whose blend mask covers (nearly) every frame; `pairs`: each target's words,
    `threshold`: the threshold (or each target's)."""
    if masks is None:
        return []
    found = []
    many = len(pairs) > 1
    for k, (pair, limit) in enumerate(zip(pairs, target_thresholds(threshold, len(pairs)), strict=True)):
        cover = float(masks[k].float().mean())
        if pair is not None and cover >= FULL_MASK:
            found.append(
                f"Local blending kept nothing of the source{f' in target {k + 1}' if many else ''}: the "
                f"mask of {pair[0]!r}/{pair[1]!r} covers {100 * cover:.0f}% of the frames at threshold {limit}. "
                "This model's attention maps of those words are flat; --mask-norm range or a higher --threshold "
                f"(up to 1{f'; {PER_TARGET_THRESHOLDS}' if many else ''}) narrows the mask (see the mask "
                "overlay)."
            )
    return found


def _unchanged_target_warnings(source: str, targets: list[str], plan: ControlPlan) -> list[str]:
    """A warning for each target that asks for no change: its edit is the clip drawn again by the edited
    branch (with decoupled guidance, by the plain empty prompt's), not an edit, and differs from the
    reconstruction only by that branch's drift (docs/bundled_layout.md measures it)."""
    return [
        f"{target_label(k, len(targets)).capitalize()} {shown(t)} asks for no change (the source "
        "prompt's words, none reweighted): its edit only shows how far the edited branch drifts from the "
        "reconstruction."
        for k, (t, edit) in enumerate(zip(targets, plan.targets, strict=True), start=1)
        if asks_no_change(source, t, edit.factors)
    ]


def _outside_mask_warnings(
    tok,
    attention: torch.Tensor | None,
    masks: torch.Tensor | None,
    source: str,
    targets: list[str],
    pairs: list[WordPair | None],
) -> list[str]:
    """A warning for each word a blended target changes whose attention lies mostly outside its blend
    mask: local blending keeps the source there, so that change may not show (a pair meant for another
    target, or words that do not cover the change).

    attention (1 + K, F, y, x, L') step-averaged maps; masks (K, F, h, w) the last step's blend masks;
    pairs: each target's blend words."""
    if attention is None or masks is None:
        return []
    found = []
    for k, (t, pair) in enumerate(zip(targets, pairs, strict=True)):
        if pair is None:
            continue
        region = F.interpolate(masks[k][:, None].float(), size=attention.shape[2:4], mode="area")[:, 0]  # (F, y, x)
        area = float(region.mean())
        for word in changed_words(source, t):
            cells = attention[k + 1][..., word_indices(tok, t, word)].sum(-1).float()  # (F, y, x)
            share = float((cells * region).sum() / cells.sum().clamp_min(1e-12))
            density = (share / max(area, 1e-12)) / max((1 - share) / max(1 - area, 1e-12), 1e-12)
            if share < INSIDE_SHARE and density < CONCENTRATED:
                found.append(
                    f"Target {k + 1} changes {word!r}, but {100 * (1 - share):.0f}% of that word's attention lies "
                    f"outside its blend mask of {pair[0]!r}/{pair[1]!r}, where local blending keeps the source: the "
                    f"change may not show. Give the target blend words that cover it "
                    f"({PAIRS_PER_TARGET.format(what='blend')})."
                )
    return found


def edit(
    model: T2SModel,
    components: SDComponents,
    inv: InversionResult,
    source: str,
    targets: list[str],
    c: EditConfig,
    counter: EvalCounter | None = None,
    callback: Callable[[StepInfo], None] | None = None,
    on_step: StepHook | None = None,
    windows: WindowPlan | None = None,
) -> EditResult:
    """Sample the source branch and every target together from the inversion's noise (Video-P2P sec. 3.3).

    windows: the window plan of a long clip (None: the whole clip at once); every window's target
    branches follow its source branch, and the stored maps and local-blend masks are per clip frame."""
    counter = counter or EvalCounter()
    # 1. Check the inversion and turn prompts and settings into the controller's plan
    steps, latent_hw = len(inv.timesteps), tuple(inv.latent_T.shape[-2:])
    sched = ddim_schedule(components.scheduler, steps)
    check_inputs(inv, sched.timesteps, c.guidance)
    plan, modes = build_plan(components, source, targets, c, steps, latent_hw)
    unchanged = _unchanged_target_warnings(source, targets, plan)
    for warning in unchanged:  # the prompts alone decide them: said before the sampling starts
        logger.warning(warning)
    # 2. Encode the prompts: conditional rows (P, L, D), the empty prompt (1, L, D)
    prompts = [source, *targets]
    device, dtype = inv.latent_T.device, model.unet.dtype  # an inversion kept in another dtype is cast
    cond = encode_prompts(components, prompts).to(device, dtype)
    empty = encode_prompts(components, [""]).to(device, dtype)
    # 3. Every branch starts from the inverted noise; the controller's processors go in
    z = inv.latent_T.to(dtype).expand(len(prompts), *inv.latent_T.shape[1:]).clone()  # (P, F, C, h, w)
    controller = EditController(plan, num_frames=z.shape[1])
    model.set_processors(lambda name: controlled_processor(controller, name, model.frame_mode, model.query_chunk))
    union = None
    try:
        # 4. Denoise: one UNet call for every row, guidance per branch, DDIM step, local blend
        with torch.no_grad():
            for i, t in enumerate(progress.steps(sched.timesteps, "edit", c.progress, on_step)):
                guided_rows, text = _step_text(inv, i, cond, empty, len(targets), c.decoupled)
                rows = torch.cat([z[guided_rows], z]) if guided_rows else z  # (G + P, F, C, h, w)
                controller.begin_step(i, Layout(cond_start=len(guided_rows), prompts=len(prompts), rows=len(rows)))
                out = predict(model, rows, t, text, counter, "edit", windows, controller.set_window, c.progress)
                guided = out[len(guided_rows) :].clone()
                for r, b in enumerate(guided_rows):
                    guided[b] = cfg(out[r], guided[b], c.guidance)
                z = denoise_step(guided, z, t, sched)
                if inv.trajectory is not None:  # the source's latents are known (null-text, PnP Inversion)
                    z[0] = inv.trajectory[steps - i - 1][0].to(z)
                z, mask = controller.local_blend(z)
                check_finite(z, "The edit", i + 1, steps, "the latent", _divergence_hint(c, dtype))
                union = mask if mask is not None else union
                if callback is not None:
                    callback(StepInfo(i, t, z, mask))
    finally:
        model.set_processors()
    # 5. Maps and masks people look at
    masks = union[:, :, 0] if union is not None else None  # (K, F, h, w)
    attention = _averaged_attention(controller, latent_hw)
    pairs = target_pairs("blend", c.blend, len(targets))  # checked by build_plan
    found = _full_mask_warnings(masks, pairs, plan.threshold)  # each target's, as build_plan read them
    found += _outside_mask_warnings(components.tokenizer, attention, masks, source, targets, pairs)
    for warning in found:
        logger.warning(warning)
    warnings = unchanged + found
    tokens = [components.tokenizer.convert_ids_to_tokens(tokenize(components.tokenizer, p).input_ids) for p in prompts]
    return EditResult(
        latents=z,
        masks=masks,
        attention=attention,
        tokens=tokens,
        counts=dict(counter.counts),
        modes=modes,
        warnings=warnings,
    )


def reconstruct(
    model: T2SModel,
    components: SDComponents,
    inv: InversionResult,
    source: str,
    c: EditConfig | None = None,
    windows: WindowPlan | None = None,
) -> torch.Tensor:
    """The source branch alone: (1, F, C, h, w)."""
    return edit(model, components, inv, source, [], c or EditConfig(progress=False), windows=windows).latents


def save_edit_result(result: EditResult, path: str | os.PathLike) -> Path:
    """Keep an edit's latents, masks and maps."""
    tensors = {"latents": result.latents}
    if result.masks is not None:
        tensors["masks"] = result.masks.to(torch.uint8)
    if result.attention is not None:
        tensors["attention"] = result.attention
    meta = {"tokens": result.tokens, "counts": result.counts, "modes": result.modes, "warnings": result.warnings}
    return save_tensors(path, tensors, meta)


EDIT_META = ("tokens", "counts", "modes")  # what every kept edit's metadata holds


def check_edit_entry(path: str | os.PathLike) -> None:
    """What `load_edit_result` needs of a kept edit before reading its tensors (its header alone): that it
    is whole and holds an edit's metadata. `VideoP2P.dry_run` asks it of an entry it would reuse."""
    missing = [key for key in EDIT_META if key not in read_meta(path)]
    if missing:
        raise CorruptFileError(f"{path} is not a kept edit: its metadata lacks {', '.join(missing)}.")


def load_edit_result(path: str | os.PathLike, device: str | torch.device = "cpu") -> EditResult:
    t, meta = load_tensors(path, device)
    masks = t["masks"].bool() if "masks" in t else None
    warnings = meta.get("warnings", [])  # an edit kept before its warnings were
    return EditResult(t["latents"], masks, t.get("attention"), meta["tokens"], meta["counts"], meta["modes"], warnings)
