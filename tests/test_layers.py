"""The house: layers point one way, configs load without torch, processors keep diffusers' contract."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

import videop2p
from videop2p.models.attention import CrossAttnProcessor, UnsupportedAttentionError

PACKAGE = Path(videop2p.__file__).parent
CORE = ["models", "control", "store", "io", "sampling", "tuning", "inversion", "editing", "latents", "pipeline",
        "config", "outputs", "progress", "metrics", "exporting", "windows", "compositing"]  # fmt: skip
ABOVE = ("videop2p.toy", "videop2p.evaluation", "videop2p.cli", "videop2p.ui", "videop2p.batch", "videop2p.demo")


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _core_files() -> list[Path]:
    files = []
    for name in CORE:
        p = PACKAGE / name
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p.with_suffix(".py")]
    return files


def test_the_core_imports_nothing_from_the_toy_world_the_evaluation_or_the_apps():
    files = _core_files()
    assert len(files) > 15
    bad = {f"{f.relative_to(PACKAGE)} imports {m}" for f in files for m in _imports(f) if m.startswith(ABOVE)}
    assert not bad, sorted(bad)


def test_configs_and_the_package_import_without_torch():
    code = "import sys, videop2p, videop2p.config; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_the_public_api_is_importable_from_the_package():
    from videop2p import EditConfig, InversionConfig, RunConfig, TuneConfig, VideoP2P

    assert VideoP2P.__module__ == "videop2p.pipeline" and RunConfig().tune == TuneConfig()
    assert InversionConfig().steps == 50 and EditConfig().cross_replace == 0.2


def _attention(**kwargs) -> Attention:
    torch.manual_seed(0)
    return Attention(query_dim=16, heads=2, dim_head=8, cross_attention_dim=12, **kwargs).eval()


@pytest.mark.parametrize("options", [{}, {"residual_connection": True, "rescale_output_factor": 2.0}])
def test_processor_honours_the_options_it_supports_like_diffusers(options):
    attn = _attention(**options)
    x, ctx = torch.randn(2, 5, 16), torch.randn(2, 7, 12)
    attn.set_processor(AttnProcessor2_0())
    want = attn(x, ctx)
    attn.set_processor(CrossAttnProcessor())
    assert torch.allclose(attn(x, ctx), want, atol=1e-5)


def test_processor_refuses_what_it_does_not_implement():
    attn = _attention()
    attn.set_processor(CrossAttnProcessor())
    with pytest.raises(UnsupportedAttentionError, match="attention mask"):
        attn(torch.randn(1, 5, 16), torch.randn(1, 7, 12), attention_mask=torch.ones(1, 7))
    grouped = Attention(query_dim=16, heads=2, dim_head=8, norm_num_groups=4)
    grouped.set_processor(CrossAttnProcessor())
    with pytest.raises(UnsupportedAttentionError, match="group norm"):
        grouped(torch.randn(1, 5, 16))
