"""Sweeps beyond one process: shards of one run directory, and Ray workers.

A run directory (``_spec.json`` and one Parquet part per finished instance, each
written atomically) is the unit of both:

* **shards**: ``xtl.sweep(..., shard=(k, n), out=DIR)`` (``xtl sweep --shard k/n``)
  takes the instances whose index ``i`` has ``i % n == k``; ``n`` jobs of a cluster
  scheduler's job array, each with its own ``k``, fill one directory, and
  ``SweepResult.load(DIR)`` reads it whole (or says what is still missing);
* **Ray**: ``xtl.sweep(..., executor="ray")`` (``xtl sweep --ray [ADDRESS]``) runs
  the instances on Ray workers. Each loads the model once, the way it was loaded
  here (:func:`xtl.loading.recipe_of`: a path or hub name, never a pickled model),
  takes batches of instances from the driver, writes each finished instance's part
  into ``out`` (a shared file system on a real cluster) and returns it. A worker
  that dies loses only the instances it had not finished: its batch goes to a new
  worker, less the parts already written.
"""

from __future__ import annotations

import os
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from xtl.components import as_int
from xtl.errors import InputError
from xtl.fingerprint import weights_digest
from xtl.loading import Recipe, recipe_of
from xtl.model import HookedModel
from xtl.pairs import Pair, Scorer
from xtl.results import RunError, SweepSpec, read_part, write_part
from xtl.runner import preflight, sweep_instances
from xtl.threads import set_threads

EXECUTORS = ("local", "ray")
#: New workers one batch may get before the sweep gives up.
RETRIES = 3


def parse_shard(shard: Any) -> tuple[int, int] | None:
    """``shard`` as ``(k, n)``: ``None``, a pair of ints, or text ``"k/n"``.

    Raises:
        ValueError: naming the value, unless ``n >= 1`` and ``0 <= k < n``.
    """
    if shard is None:
        return None
    try:
        k, n = shard.split("/") if isinstance(shard, str) else shard
        k, n = (int(k), int(n)) if isinstance(shard, str) else (as_int(k, "shard"), as_int(n, "shard"))
    except (ValueError, TypeError):
        raise InputError(f"shard must be (k, n) or 'k/n' with 0 <= k < n, got {shard!r}") from None
    if n < 1 or not 0 <= k < n:
        raise InputError(f"shard {k}/{n} is out of range: n must be >= 1 and 0 <= k < n (k = 0..{max(n - 1, 0)})")
    return k, n


def in_shard(instances: Sequence[int], shard: tuple[int, int] | None) -> list[int]:
    """The instances of shard ``(k, n)``: those whose index ``i`` has ``i % n == k``."""
    return list(instances) if shard is None else [i for i in instances if i % shard[1] == shard[0]]


def require_ray() -> Any:
    """The ``ray`` module.

    Raises:
        ImportError: Ray is not installed (names the extra that brings it).
    """
    try:
        import ray
    except ImportError:
        raise ImportError(
            "executor='ray' needs Ray, an optional dependency: pip install 'xtransplant[distributed]'"
        ) from None
    return ray


class Worker:
    """One Ray worker (an actor): the model, loaded once, and the sweep's items and spec."""

    def __init__(
        self, recipe: Recipe, pairs: list[Pair], spec: SweepSpec, scorer: Scorer, out: str | None, threads: int
    ) -> None:
        set_threads(threads)
        self.model = recipe.load()
        if weights_digest(self.model) != spec.weights:
            raise RuntimeError(
                f"the worker loaded {recipe} with other weights than the driver's model "
                f"(digest {weights_digest(self.model)}, expected {spec.weights})"
            )
        with warnings.catch_warnings():  # the driver has said them
            warnings.simplefilter("ignore")
            self.prepared = preflight(self.model, pairs, spec.max_new_tokens, spec.prepend_bos)
        self.pairs, self.spec, self.scorer, self.out = pairs, spec, scorer, out

    def pid(self) -> int:
        """This worker's process id."""
        return os.getpid()

    def run(self, instances: list[int], chunk: int, written: Sequence[int] = ()) -> dict[int, pd.DataFrame]:
        """Sweep a batch of instances; each finished one is written to ``out`` at once, then all returned.

        ``written``: instances of the batch already written by a worker that died: they run again
        (an instance's numbers depend on the batch it shares, so the batch is the one the dead
        worker ran) but are neither written nor returned again.
        """
        frames = {}
        for k, frame in sweep_instances(
            self.model, instances, self.pairs, self.spec, self.scorer, self.prepared, chunk
        ):
            if k in written:
                continue
            if self.out is not None:
                write_part(Path(self.out), self.spec, k, frame)
            frames[k] = frame
        return frames


def _written(out: Path | None, spec: SweepSpec, instances: list[int]) -> dict[int, pd.DataFrame]:
    """The parts of ``instances`` already in ``out`` (a dead worker's finished instances)."""
    found: dict[int, pd.DataFrame] = {}
    if out is None:
        return found
    for k in instances:
        try:
            found[k] = read_part(out / f"part-{k:06d}.parquet", spec, older=False)[1]
        except RunError:  # not written, or not whole
            pass
    return found


def ray_sweep(
    model: HookedModel,
    batches: list[tuple[list[int], int]],
    pairs: list[Pair],
    spec: SweepSpec,
    scorer: Scorer,
    out: Path | None,
    workers: int | None,
    address: str | None,
    gpus_per_worker: float,
) -> Iterator[tuple[int, pd.DataFrame]]:
    """Run ``batches`` (``(instances, chunk)``, as :func:`xtl.runner.packs` makes them) on Ray workers;
    yields ``(instance, frame)`` as batches finish. With no Ray running, starts a local one (and
    stops it at the end); ``address`` joins a cluster (``"auto"``: the one this machine belongs to).

    Raises:
        ImportError: Ray is not installed.
        ValueError: a model that cannot be loaded again (see :func:`xtl.loading.recipe_of`).
        RuntimeError: a batch whose workers died :data:`RETRIES` + 1 times.
    """
    ray = require_ray()
    recipe = recipe_of(model)
    if not batches:  # nothing left to do: no Ray to start
        return
    started = not ray.is_initialized()
    if started:
        local = {} if address else {"num_cpus": max(os.cpu_count() or 1, workers or 1)}
        ray.init(address=address, include_dashboard=False, log_to_driver=False, **local)
    try:
        resources = ray.cluster_resources()
        cpus = 1
        if workers is None:
            workers = int(resources.get("GPU", 0) // gpus_per_worker) if gpus_per_worker else int(resources["CPU"])
        workers = max(1, min(workers, len(batches)))
        actor = ray.remote(num_cpus=cpus, num_gpus=gpus_per_worker, max_restarts=0)(Worker)
        args = (recipe, ray.put(pairs), spec, scorer, None if out is None else str(out), cpus)
        idle = [actor.remote(*args) for _ in range(workers)]
        queue: deque[tuple[list[int], int, tuple[int, ...]]] = deque((k, chunk, ()) for k, chunk in batches)
        running: dict[Any, tuple[Any, list[int], int, tuple[int, ...]]] = {}
        deaths: dict[int, int] = {}
        while queue or running:
            while queue and idle:
                worker, (instances, chunk, written) = idle.pop(), queue.popleft()
                running[worker.run.remote(instances, chunk, written)] = (worker, instances, chunk, written)
            (ref,), _ = ray.wait(list(running), num_returns=1)
            worker, instances, chunk, written = running.pop(ref)
            try:
                frames = ray.get(ref)
            except ray.exceptions.RayActorError as err:
                kept = _written(out, spec, [k for k in instances if k not in written])
                left = [k for k in instances if k not in kept and k not in written]
                deaths.update({k: deaths.get(k, 0) + 1 for k in left})
                if any(deaths[k] > RETRIES for k in left):
                    raise RuntimeError(
                        f"Ray workers died {RETRIES + 1} times while sweeping instances {left}; the last time: {err}"
                    ) from None
                warnings.warn(
                    f"a Ray worker died while sweeping instances {instances} ({type(err).__name__}); "
                    f"finished before: {sorted(kept)}; {left} go to a new worker, in the same batch",
                    RuntimeWarning,
                    stacklevel=4,
                )
                yield from sorted(kept.items())
                if left:  # the whole batch again: the instances left get the numbers they would have got
                    queue.appendleft((instances, chunk, (*written, *kept)))
                idle.append(actor.remote(*args))
                continue
            except ray.exceptions.RayTaskError as err:
                raise err.as_instanceof_cause() from None
            idle.append(worker)
            yield from sorted(frames.items())
    finally:
        if started:
            ray.shutdown()
