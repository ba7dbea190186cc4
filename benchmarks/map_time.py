"""Time of one full first-token map on a real model: every (source layer, target layer) pair,
attention and MLP, one greedy token, for one ``world-facts`` item, on 1 and on 2 torch threads.

    python benchmarks/map_time.py                       # gemma3-270m, a Swahili item
    python benchmarks/map_time.py --model smollm2-135m  # any name xtl.load_model takes
    python benchmarks/map_time.py --threads 1           # one thread count only
    python benchmarks/map_time.py --threads 1 --repeat 3  # the first run is cold; the later ones warm

The model loads from xtl's cache (``python benchmarks/load_time.py`` times that); nothing is
downloaded. Peak memory is the process's peak resident set size (``resource.getrusage``), the
loaded model included.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--language", default="sw", help="world-facts language of the item (default: sw)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=1, help="maps per thread count (the first is cold)")
    args = parser.parse_args()
    import xtl

    model = xtl.load_model(args.model)
    item = xtl.tasks.get("world-facts").items(args.language)[0]
    layers = model.cfg.n_layers
    for threads in [t for t in args.threads for _ in range(args.repeat)]:
        xtl.set_threads(threads)
        start = time.perf_counter()
        res = xtl.sweep(model, [item], max_new_tokens=1, progress=False)
        seconds = time.perf_counter() - start
        cells = res.correct[0].numel()
        print(
            f"{args.model}: one full first-token map ({layers} x {layers} layer pairs x attn, mlp = {cells} cells, "
            f"1 item, 1 token): {seconds:.1f} s on {threads} thread(s), {cells / seconds:.0f} cells/s"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    print(f"peak RSS {peak:.2f} GiB")


if __name__ == "__main__":
    main()
