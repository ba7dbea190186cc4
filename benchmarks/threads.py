"""The same xtl work on 1 thread, on torch's default count, and on xtl's "auto" choice, in one process.

    python benchmarks/threads.py                 # the toy model, machine as it is
    python benchmarks/threads.py --busy          # ... with one CPU-bound process beside it (a shared machine)
    python benchmarks/threads.py --model smollm2-135m --busy

Work per setting: ``xtl.sweep`` over 8 items (every layer pair of attention and MLP on the toy,
a 10 x 10 layer subset first-token map of 1 item on a real model) and 5 single ``xtl.transplant``
calls (what each Explorer change runs). Each setting runs twice, alternating, and the faster time
is kept. Prints seconds, the ratio to 1 thread, the thread count auto chose, the other processes'
CPU use xtl measured, and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import xtl  # noqa: E402
from xtl import threads  # noqa: E402


def work(model, items, real: bool):
    """The sweep and the single transplants; returns (sweep seconds, transplant seconds)."""
    layers = range(0, model.cfg.n_layers, max(1, model.cfg.n_layers // 10)) if real else None
    t0 = time.perf_counter()
    xtl.sweep(model, items, source_layers=layers, target_layers=layers, max_new_tokens=1 if real else 4, progress=False)
    t1 = time.perf_counter()
    for _ in range(5):
        xtl.transplant(model, items[0].source, items[0].target, 1, 2, "attn", max_new_tokens=4)
    return t1 - t0, time.perf_counter() - t1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="toy", help="'toy' (default) or a real model, e.g. smollm2-135m")
    p.add_argument("--busy", action="store_true", help="run one CPU-bound process beside the benchmark")
    args = p.parse_args()
    real = args.model != "toy"
    model = xtl.load_model(args.model) if real else xtl.toy.load_toy_model()
    task = xtl.tasks.get("world-facts" if real else "toy-understanding")
    items = task.items("fr" if real else "sw")[: 1 if real else 8]
    default = threads.torch_default()
    print(
        f"{args.model}: d_model {model.cfg.d_model}, {model.cfg.n_layers} layers; {os.cpu_count()} CPUs, "
        f"torch's default {default} threads; busy neighbour: {'yes' if args.busy else 'no'}"
    )
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        time.sleep(1.0 if args.busy else 0.0)
        xtl.set_threads(1)
        work(model, items[:1], real)  # warm-up
        best: dict[str, tuple[float, float]] = {}
        chosen, others = [], []
        for _ in range(2):
            for name, setting in (("1 thread", 1), (f"{default} threads (torch)", default), ("auto", "auto")):
                torch.set_num_threads(default)
                threads._applied = None  # as in a fresh process: torch at its default, set by no one
                xtl.set_threads(setting)
                if setting == "auto":
                    chosen.append(xtl.get_threads(model))
                    others.append(threads.others_busy())
                times = work(model, items, real)
                best[name] = min(best.get(name, times), times, key=sum)
    finally:
        if burner is not None:
            burner.kill()
    one = sum(best["1 thread"])
    for name, (s, t) in best.items():
        print(
            f"{name:22s}: sweep {s:7.2f} s, 5 transplants {t:6.2f} s, total {s + t:7.2f} s "
            f"({(s + t) / one:.2f}x the 1-thread time)"
        )
    print(f"auto chose {chosen} threads; other processes used {', '.join(f'{o:.2f}' for o in others)} cores")
    print(f"peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB")


if __name__ == "__main__":
    main()
