"""The CLIP BPE tokenizer shipped with the package (built from open_clip's BPE file)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from transformers import CLIPTokenizer


def bundled_tokenizer_path() -> Path:
    """Folder with the bundled `vocab.json`, `merges.txt` and `tokenizer_config.json`."""
    return Path(str(resources.files("videop2p") / "data" / "clip_tokenizer"))


def bundled_tokenizer() -> CLIPTokenizer:
    """The CLIP tokenizer of Stable Diffusion 1.x (49,408 tokens, 77 positions), loaded offline."""
    return CLIPTokenizer.from_pretrained(bundled_tokenizer_path())
