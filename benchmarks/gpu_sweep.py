"""A full layer-pair sweep of a 7B-shaped model on a GPU: xtl.sweep against TransformerLens per cell.

The model is a random 32-layer Llama of Llama-2-7B's shape (d_model 4096, 32 heads,
d_mlp 11008, vocabulary 32,000), built directly on the device in bfloat16 (nothing is
downloaded; random weights cost the same as trained ones). One instance, attention
and MLP, every (source, target) pair: 2 x 32 x 32 = 2,048 cells, 20 new tokens each
(no EOS: every cell generates all 20).

* **xtl**: ``xtl.sweep`` (memory budget: half the free GPU memory, its default).
* **TransformerLens per cell**: the source value from ``run_with_cache`` (stopped after the
  source layer), then ``model.generate`` under a hook that patches the prompt pass, one
  call per cell, the way TransformerLens users write it; timed on the first
  ``--cells`` cells and scaled to all 2,048 (said in the output).

Prints both times, the ratio, peak GPU memory of each, and how many of the timed cells
give the same tokens.

    python benchmarks/gpu_sweep.py                   # on CUDA
    python benchmarks/gpu_sweep.py --tiny --device cpu   # a small model of the same build, to try the script
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformer_lens import HookedTransformer, HookedTransformerConfig  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

import xtl  # noqa: E402
from xtl.loading import forward_layout  # noqa: E402
from xtl.model import VocabularyWarning  # noqa: E402
from xtl.testing import CORPUS, tokenizer  # noqa: E402

SHAPES = {
    "7b": dict(n_layers=32, d_model=4096, n_heads=32, d_head=128, d_mlp=11008, d_vocab=32000),
    "tiny": dict(n_layers=4, d_model=128, n_heads=4, d_head=32, d_mlp=344, d_vocab=512),
}


def build(shape: str, device: str, dtype: torch.dtype) -> HookedTransformer:
    """A random Llama-shaped HookedTransformer created on ``device`` (no copy through the CPU)."""
    cfg = HookedTransformerConfig(
        **SHAPES[shape],
        n_ctx=4096,
        act_fn="silu",
        normalization_type="RMS",
        positional_embedding_type="rotary",
        rotary_dim=SHAPES[shape]["d_head"],
        gated_mlp=True,
        final_rms=True,
        original_architecture="LlamaForCausalLM",
        dtype=dtype,
        device=device,
        default_prepend_bos=True,
        seed=0,
    )
    with tempfile.TemporaryDirectory() as tmp, torch.device(device):
        tokenizer().save_pretrained(tmp)  # TransformerLens reloads the tokenizer from its path
        model = HookedTransformer(cfg, tokenizer=AutoTokenizer.from_pretrained(tmp), move_to_device=False)
    return forward_layout(model).eval()  # what xtl.load_model does to a loaded model


def text(model, length: int, offset: int) -> str:
    words, out, i = " ".join(CORPUS).split(), "", offset
    while len(model.tokenizer.encode(out, add_special_tokens=False)) < length:
        out += words[i % len(words)] + " "
        i += 3
    return out.strip()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak(device: str) -> str:
    if device.startswith("cuda"):
        return f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"
    return "peak GPU memory: n/a (CPU)"


def per_cell(model, pair, cells, new):
    out = {}
    target = model.to_tokens(pair.target)
    for c, s, t in cells:
        name = f"blocks.{s}.hook_{c}_out"  # TransformerLens alone: its cache, stopped after layer s
        value = model.run_with_cache(pair.source, names_filter=name, stop_at_layer=s + 1)[1][name][0, -1]

        def patch(act, hook, value=value, n=target.shape[1]):
            if act.shape[1] == n:  # the prompt pass; later passes are cached single tokens
                act[:, -1] = value
            return act

        with model.hooks([(f"blocks.{t}.hook_{c}_out", patch)]):
            gen = model.generate(
                target, max_new_tokens=new, do_sample=False, stop_at_eos=False, verbose=False, use_past_kv_cache=True
            )
        out[c, s, t] = gen[0, target.shape[1] :].tolist()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    p.add_argument("--tiny", action="store_true", help="a 4-layer model of the same build (to try the script)")
    p.add_argument("--new", type=int, default=20, help="new tokens per cell (default: %(default)s)")
    p.add_argument("--cells", type=int, default=16, help="cells timed one call each (default: %(default)s)")
    p.add_argument("--prompt", type=int, default=60, help="prompt tokens (default: %(default)s)")
    args = p.parse_args()
    # the test tokenizer (400 ids) stands in for Llama's 32,000: ids are random text either way
    warnings.filterwarnings("ignore", category=VocabularyWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # HookedTransformer's 4.0 notice
    device, dtype = args.device, getattr(torch, args.dtype)
    t0 = time.perf_counter()
    model = build("tiny" if args.tiny else "7b", device, dtype)
    sync(device)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "CPU"
    n = model.cfg.n_layers
    pair = xtl.Pair(text(model, args.prompt, 0), text(model, args.prompt, 1), "Assistant")
    print(
        f"{name}; random Llama, {n} layers, d_model {model.cfg.d_model}, {args.dtype}, built in "
        f"{time.perf_counter() - t0:.1f} s; prompts {args.prompt} tokens, {args.new} new tokens, "
        f"{2 * n * n} cells"
    )
    xtl.sweep(
        model, [pair], source_layers=[0], target_layers=[0], max_new_tokens=2, eos_token_id=[], progress=False
    )  # warm-up (kernels, allocator)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    t0 = time.perf_counter()
    res = xtl.sweep(model, [pair], max_new_tokens=args.new, eos_token_id=[], progress=False)
    sync(device)
    t_xtl = time.perf_counter() - t0
    print(f"xtl.sweep                : {t_xtl:8.1f} s  ({2 * n * n / t_xtl:.1f} cells/s)  {peak(device)}")
    cells = [(c, s, t) for c in ("attn", "mlp") for s in range(n) for t in range(n)]
    step = max(1, len(cells) // args.cells)
    timed = cells[::step][: args.cells]
    per_cell(model, pair, timed[:1], 2)  # warm-up (TransformerLens' own kernels)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    got = per_cell(model, pair, timed, args.new)
    sync(device)
    t_cell = (time.perf_counter() - t0) / len(timed) * len(cells)
    same = sum(got[cell] == res.tokens_array[(0, *res.index(*cell))] for cell in timed)
    first = sum(got[cell][0] == res.tokens_array[(0, *res.index(*cell))][0] for cell in timed)
    print(
        f"TransformerLens per cell : {t_cell:8.1f} s  (measured on {len(timed)} cells, scaled to "
        f"{len(cells)})  {peak(device)}"
    )
    print(
        f"speed ratio              : {t_cell / t_xtl:.1f}x; {same}/{len(timed)} timed cells token-identical "
        f"({first}/{len(timed)} in their first token)"
    )


if __name__ == "__main__":
    main()
