"""Time and memory of loading a packaged real model: the first load into an empty cache (assemble
or find the GGUF, dequantize, save, convert to TransformerLens) and a cached load, in one process.

    python benchmarks/load_time.py                       # gemma3-270m
    python benchmarks/load_time.py --model smollm2-135m  # any packaged name
    python benchmarks/load_time.py --threads 2           # torch threads (default 1)

The cache is a fresh temporary folder (``XTL_CACHE``), removed at the end; nothing is downloaded.
Peak memory is the process's peak resident set size (``resource.getrusage``), so it covers both
loads and the Hugging Face model the conversion builds.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    import xtl

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="xtl-load-") as cache:
        os.environ["XTL_CACHE"] = cache
        start = time.perf_counter()
        xtl.load_model(args.model)
        first = time.perf_counter() - start
        start = time.perf_counter()
        model = xtl.load_model(args.model)
        cached = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    print(
        f"{args.model}: first load {first:.1f} s, cached load {cached:.1f} s, peak RSS {peak:.2f} GiB "
        f"({args.threads} thread(s), {model.cfg.n_layers} layers, d_model {model.cfg.d_model})"
    )


if __name__ == "__main__":
    main()
