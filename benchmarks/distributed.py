"""One process, shards in parallel processes, and Ray workers on the same toy sweep.

    python benchmarks/distributed.py            # 96 toy-understanding items, 4 new tokens
    python benchmarks/distributed.py --items 24

Each way runs the full sweep (attention and MLP, all 36 layer pairs) of the same items into a
fresh run directory and is checked against the one-process result (arrays and texts equal).
Prints wall time and instances per second; for Ray the local cluster's start is timed apart,
while each sweep's own worker start (every worker process imports torch and loads the model) is
included, as it is in every Ray sweep. Torch threads: 1 per process or worker (and one
process with 2 threads).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import xtl  # noqa: E402

TASK = "toy-understanding"
STEPS = 4


def items(n: int):
    task = xtl.tasks.get(TASK)
    per = -(-n // len(task.languages))
    return task, [item for lang in task.languages for item in task.items(lang)[:per]][:n]


def same(a: xtl.SweepResult, b: xtl.SweepResult) -> bool:
    return (
        torch.equal(a.gold_logprob, b.gold_logprob)
        and torch.equal(a.correct, b.correct)
        and bool((a.texts_array == b.texts_array).all())
    )


def shards(n_items: int, n: int, out: Path) -> float:
    """``n`` `xtl sweep --shard k/n` processes at once into ``out``; seconds from start to the last exit."""
    args = [
        sys.executable,
        "-m",
        "xtl.cli",
        "sweep",
        "--model",
        "toy",
        "--task",
        TASK,
        "--max-new-tokens",
        str(STEPS),
        "--out",
        str(out),
        "--quiet",
        "--threads",
        "1",
    ]
    task = xtl.tasks.get(TASK)
    limit = -(-n_items // len(task.languages))
    t0 = time.perf_counter()
    jobs = [
        subprocess.Popen([*args, "--limit", str(limit), "--shard", f"{k}/{n}"], stdout=subprocess.DEVNULL)
        for k in range(n)
    ]
    for job in jobs:
        assert job.wait() == 0
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=96, help="items (split evenly over the task's languages)")
    args = p.parse_args()
    task, chosen = items(args.items)
    model = xtl.toy.load_toy_model()
    xtl.set_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        one = xtl.sweep(model, chosen, max_new_tokens=STEPS, scorer=task.scorer, out=Path(tmp) / "one", progress=False)
        rows.append(("1 process, 1 thread", time.perf_counter() - t0, True))
        xtl.set_threads(2)
        t0 = time.perf_counter()
        two = xtl.sweep(model, chosen, max_new_tokens=STEPS, scorer=task.scorer, out=Path(tmp) / "two", progress=False)
        rows.append(("1 process, 2 threads", time.perf_counter() - t0, same(two, one)))
        xtl.set_threads(1)

        wall = shards(len(chosen), 2, Path(tmp) / "shards")
        rows.append(
            (
                "2 shard processes at once (xtl sweep --shard k/2), process start included",
                wall,
                same(xtl.SweepResult.load(Path(tmp) / "shards"), one),
            )
        )

        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        started = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = xtl.sweep(
            model,
            chosen,
            max_new_tokens=STEPS,
            scorer=task.scorer,
            out=Path(tmp) / "ray",
            executor="ray",
            workers=2,
            progress=False,
        )
        cold = time.perf_counter() - t0
        rows.append(
            (
                f"2 Ray workers (cluster start {started:.1f} s not included; workers start and load the model inside)",
                cold,
                same(res, one),
            )
        )
        t0 = time.perf_counter()
        res = xtl.sweep(
            model,
            chosen,
            max_new_tokens=STEPS,
            scorer=task.scorer,
            out=Path(tmp) / "ray2",
            executor="ray",
            workers=1,
            progress=False,
        )
        rows.append(("1 Ray worker (the same, for comparison)", time.perf_counter() - t0, same(res, one)))
        ray.shutdown()
    print(
        f"\n{len(chosen)} {TASK} items x {2 * 36} cells, {STEPS} new tokens, 1 torch thread per process/worker, "
        f"{os.cpu_count()} CPUs"
    )
    for name, seconds, ok in rows:
        print(f"{name:100s} {seconds:7.1f} s  {len(chosen) / seconds:6.2f} instances/s  identical: {ok}")


if __name__ == "__main__":
    main()
