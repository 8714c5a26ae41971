"""Build transformers-format CLIP tokenizer files from open_clip's BPE file.

Usage: python tools/build_clip_tokenizer.py path/to/bpe_simple_vocab_16e6.txt.gz [path/to/open_clip/tokenizer.py]

Writes vocab.json, merges.txt and tokenizer_config.json into src/videop2p/data/clip_tokenizer,
and, when open_clip's tokenizer.py is given, the reference ids of tests/fixtures/tokenizer_ids.json.
"""

import gzip
import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "videop2p" / "data" / "clip_tokenizer"
PROMPTS = [
    "a man is driving a motorbike in the forest",
    "a Spider-Man is driving a motorbike in the forest",
    "a rabbit is jumping on the grass",
    "an origami rabbit is jumping on the grass",
    "a car is driving on the road",
    "a car is driving on the railway",
    "a bird flying in the forest",
    "children drawing of a bird flying in the forest",
    "A RED circle, moving on the GRASS!",
    "motorbike, motorbike; motorbike: motorbike.",
    "café crème brûlée à la mode, naïve façade",
    "it's 3:45pm & the dog's bowl is 100% full?!",
    "  extra   spaces\tand\ttabs  ",
    "",
    " ".join(["a purple triangle bouncing on the snow"] * 14),
]


def bytes_to_unicode() -> dict[int, str]:
    """The byte-to-unicode table of OpenAI's CLIP BPE."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def main() -> None:
    bpe_path = Path(sys.argv[1])
    with gzip.open(bpe_path) as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
    with open(OUT / "merges.txt", "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for m in merges:
            f.write(" ".join(m) + "\n")
    config = {
        "model_max_length": 77,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "tokenizer_class": "CLIPTokenizer",
        "do_lower_case": True,
    }
    (OUT / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    if len(sys.argv) > 2:
        spec = importlib.util.spec_from_file_location("oc_tok", sys.argv[2])
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        tok = mod.SimpleTokenizer(str(bpe_path))
        ref = {}
        for p in PROMPTS:
            ids = [tok.encoder["<start_of_text>"]] + tok.encode(p) + [tok.encoder["<end_of_text>"]]
            ref[p] = ids
        fixture = ROOT / "tests" / "fixtures" / "tokenizer_ids.json"
        fixture.write_text(
            json.dumps({"source": "open_clip_torch 3.3.0 SimpleTokenizer", "ids": ref}, indent=1, ensure_ascii=False)
        )
    print(f"vocab {len(vocab)}, merges {len(merges)}")


if __name__ == "__main__":
    main()
