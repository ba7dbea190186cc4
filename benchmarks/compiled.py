"""Would a compiled decoding step make ``xtl.sweep`` faster? Two probes, each against xtl as it is.

The sweep of ``peers.py``'s setting (a) (random Qwen2-shaped model, 8 layers, d_model 256,
2 items, every layer pair of attention and MLP, 10 new tokens, one thread) runs with one
part of xtl's own passes replaced by a ``torch.compile``'d function (inductor, dynamic
shapes) that computes the same thing:

* ``tail``: a block after its attention's ``z``: output projection, residual, RMSNorm, gated
  MLP, residual (``xtl.decode._after_attention``, where no hook waits in the block);
* ``attention``: xtl's own decoding attention of one new token per row over its prompt's
  shared prefix and its own tokens (``xtl.decode._attend_one_prompt``), compiled as it is.

The tail probe also runs its replacement uncompiled, so a difference shows what the compiler
adds, not what rewriting does. The variants alternate in one process (the machine's speed
drifts 10-20% over minutes); the first call of a compiled variant (its compile) is timed
apart. Tokens are compared with xtl's.

    python benchmarks/compiled.py [--repeats 6]

This is a probe of xtl's private functions, not part of the package.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from transformer_lens.hook_points import HookPoint  # noqa: E402

import xtl  # noqa: E402
from xtl import decode  # noqa: E402
from xtl.testing import save_checkpoint  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from sweep_speed import prompts  # noqa: E402

EAGER_AFTER, EAGER_ATTEND = decode._after_attention, decode._attend_one_prompt


def tail(x, z, w_o, b_o, w_gate, w_in, b_in, w_out, b_out, eps: float):
    """A pre-norm block with an RMSNorm (folded) and a SiLU-gated MLP, from its attention's ``z``."""
    mid = x + F.linear(z.flatten(-2), w_o, b_o)
    normed = mid / (mid.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    return mid + F.linear(F.silu(F.linear(normed, w_gate)) * F.linear(normed, w_in) + b_in, w_out, b_out)


def after_attention(fn):
    def replacement(block, x, z):
        if any(p._forward_hooks for p in block.modules() if isinstance(p, HookPoint)):
            return EAGER_AFTER(block, x, z)  # the prompt and source passes' hooks must fire
        a, m = block.attn, block.mlp
        return fn(
            x,
            z,
            a.W_O.reshape(-1, a.W_O.shape[-1]).T,
            a.b_O,
            m.W_gate.T,
            m.W_in.T,
            m.b_in,
            m.W_out.T,
            m.b_out,
            float(block.ln2.eps),
        )

    return replacement


def probe(name, run, variants, repeats):
    print(f"\n== {name}")
    first, times, tokens = {}, {k: [] for k in variants}, {}
    for label, (attr, fn) in variants.items():
        setattr(decode, attr, fn)
        t0 = time.perf_counter()
        tokens[label] = str(run().tokens_array.tolist())
        first[label] = time.perf_counter() - t0
    for i in range(repeats):
        for label, (attr, fn) in list(variants.items()) if i % 2 == 0 else list(variants.items())[::-1]:
            setattr(decode, attr, fn)
            t0 = time.perf_counter()
            run()
            times[label].append(time.perf_counter() - t0)
    decode._after_attention, decode._attend_one_prompt = EAGER_AFTER, EAGER_ATTEND
    base = statistics.median(times["xtl"])
    for label, ts in times.items():
        print(
            f"{label:24s}: median {statistics.median(ts):.3f} s ({statistics.median(ts) / base:.3f}x xtl), "
            f"min {min(ts):.3f} s; first call {first[label]:.1f} s; tokens "
            f"{'identical to' if tokens[label] == tokens['xtl'] else 'DIFFER from'} xtl's"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=6, help="timed runs of each variant (default: %(default)s)")
    args = p.parse_args()
    torch.set_num_threads(1)
    xtl.set_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        model = xtl.load_model(
            save_checkpoint("qwen2", Path(tmp) / "peers", n_layers=8, d_model=256, n_heads=8, d_mlp=768)
        )
    pairs = [xtl.Pair(s, t, "Assistant") for s, t in zip(prompts(model, 4, 60, 0), prompts(model, 4, 60, 1))][:2]

    def run():
        return xtl.sweep(model, pairs, max_new_tokens=10, eos_token_id=[], progress=False)

    run()  # warm up
    print(f"setting (a): {torch.__version__}, torch threads {torch.get_num_threads()}")
    probe(
        "block tail after attention",
        run,
        {
            "xtl": ("_after_attention", EAGER_AFTER),
            "tail, uncompiled": ("_after_attention", after_attention(tail)),
            "tail, torch.compile": ("_after_attention", after_attention(torch.compile(tail, dynamic=True))),
        },
        args.repeats,
    )
    probe(
        "decoding attention",
        run,
        {
            "xtl": ("_attend_one_prompt", EAGER_ATTEND),
            "attention, torch.compile": ("_attend_one_prompt", torch.compile(EAGER_ATTEND, dynamic=True)),
        },
        args.repeats,
    )


if __name__ == "__main__":
    main()
