"""Time a few everyday calls of whichever xtl is imported, to compare two versions on one machine.

Best of two runs each: the toy sweep of 8 Swahili toy-understanding items (4 new tokens),
``xtl.evaluate(toy, "toy-understanding", setting="default")`` over all its items, 20
single transplants with their baseline, and setting (b) of ``sweep_speed.py`` (a random
Qwen2-shaped model, 12 layers, d_model 256, one 100-token item: 20 new tokens and the
first token). To compare with an older commit, run it once in each tree:

    git worktree add /tmp/old c6edac8
    (cd /tmp/old && PYTHONPATH=/tmp/old OMP_NUM_THREADS=1 python /path/to/benchmarks/calls.py)
    OMP_NUM_THREADS=1 python benchmarks/calls.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import xtl  # noqa: E402
from xtl.testing import save_checkpoint  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from sweep_speed import prompts  # noqa: E402


def best(call, runs: int = 2) -> float:
    out = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        out = min(out, time.perf_counter() - t0)
    return out


def main() -> None:
    print(f"xtl from {Path(xtl.__file__).parent}")
    toy = xtl.toy.load_toy_model()
    task = xtl.tasks.get("toy-understanding")
    items = task.items("sw")[:8]
    xtl.sweep(toy, items[:1], source_layers=[0], target_layers=[0], max_new_tokens=2, progress=False)
    n = sum(len(task.items(language)) for language in task.languages)
    one = items[0]
    took = best(lambda: xtl.sweep(toy, items, max_new_tokens=4, progress=False))
    print(f"toy sweep, 8 items               : {took:.2f} s")
    print(
        f"toy evaluate default, {n} items   : "
        f"{best(lambda: xtl.evaluate(toy, task, setting='default', max_new_tokens=4, progress=False)):.2f} s"
    )
    took = best(
        lambda: [xtl.transplant(toy, one.source, one.target, 3, 1, "attn", max_new_tokens=4) for _ in range(20)]
    )
    print(f"20 toy transplants with baseline : {took:.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        path = save_checkpoint("qwen2", Path(tmp) / "b", n_layers=12, d_model=256, n_heads=8, d_mlp=768)
        model = xtl.load_model(path)
    pairs = [xtl.Pair(prompts(model, 1, 100, 0)[0], prompts(model, 1, 100, 1)[0], "Assistant")]
    xtl.sweep(model, pairs, source_layers=[0], target_layers=[0], max_new_tokens=2, progress=False)
    for steps in (20, 1):
        took = best(lambda steps=steps: xtl.sweep(model, pairs, max_new_tokens=steps, progress=False))
        print(f"(b) sweep, {steps:2d} new token(s)        : {took:.2f} s")
    print(f"torch threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
