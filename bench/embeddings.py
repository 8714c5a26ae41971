"""What adding a textual-inversion embedding costs on the Stable Diffusion 1.5 architecture (`--embedding`).

Builds SD 1.5's text encoder and tokenizer with random weights (no download), writes an A1111-style
embedding of the given number of vectors, and times `models.embeddings.add_embeddings` on it:
reading the file, checking its tokens, growing the tokenizer and the text encoder's input table.
Also times encoding one prompt that uses the embedding against one that does not (the multi-vector
token written out first), and checks that the encoder reads the file's vectors.

    python bench/embeddings.py                  # 8 vectors, float32 on the CPU
    python bench/embeddings.py --vectors 75 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from sd15 import sd15_components  # bench/ is on the path when run as a script

from videop2p.latents import encode_text
from videop2p.models.embeddings import add_embeddings


def _median_seconds(fn, repeats: int) -> tuple[float, list[float]]:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    adds = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "glossyfx.pt"
        for i in range(args.repeats):
            comps = sd15_components(seed=i)
            width = comps.text_encoder.get_input_embeddings().weight.shape[1]
            vectors = torch.randn(args.vectors, width, generator=torch.Generator().manual_seed(i))
            torch.save({"string_to_param": {"*": vectors}, "name": "glossyfx"}, path)
            start = time.perf_counter()
            add_embeddings(comps.tokenizer, comps.text_encoder, {str(path): None}, "sd15")
            adds.append(time.perf_counter() - start)
        table = comps.text_encoder.get_input_embeddings().weight
        ids = comps.tokenizer.convert_tokens_to_ids(["glossyfx"] + [f"glossyfx_{k}" for k in range(1, args.vectors)])
        exact = torch.equal(table[ids], vectors)
        size = path.stat().st_size / 2**10
    with torch.no_grad():
        plain, plain_runs = _median_seconds(
            lambda: encode_text(comps.tokenizer, comps.text_encoder, ["a rabbit is jumping on the grass"]), 9
        )
        used, used_runs = _median_seconds(
            lambda: encode_text(comps.tokenizer, comps.text_encoder, ["a glossyfx rabbit is jumping on the grass"]), 9
        )
    print(
        f"SD 1.5 architecture, an embedding of {args.vectors} vectors x {width} ({size:.0f} KiB): added in "
        f"{statistics.median(adds):.3f} s (median of {args.repeats}: {', '.join(f'{s:.3f}' for s in adds)}); "
        f"vectors in the table exactly: {exact}; encoding a prompt: {plain * 1e3:.1f} ms without it, "
        f"{used * 1e3:.1f} ms with it (medians of 9)"
    )


if __name__ == "__main__":
    main()
