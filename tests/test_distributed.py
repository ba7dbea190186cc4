"""Sweeps split over shards and Ray workers give one process's result, bit for bit; dead workers
and an interrupted driver lose only unfinished instances."""

import os
import signal
import subprocess
import sys
import time
import warnings

import pytest
import torch

import xtl
from xtl import cli
from xtl.distributed import parse_shard
from xtl.results import RunWarning

TASK = xtl.tasks.get("toy-culture")
ITEMS = [item for lang in TASK.languages for item in TASK.items(lang)[:2]]  # 8 items, 4 languages
STEPS = 3


@pytest.fixture(scope="module")
def model():
    return xtl.toy.load_toy_model()


@pytest.fixture(scope="module")
def reference(model):
    return xtl.sweep(model, ITEMS, max_new_tokens=STEPS, scorer=TASK.scorer, progress=False)


def assert_same(got: xtl.SweepResult, want: xtl.SweepResult, spec: bool = True) -> None:
    """Equal arrays (NaN where NaN), texts, tokens and untouched rows: not close, the same (and the
    same spec, unless ``spec=False``: another scorer that gives the same verdicts)."""
    assert got.instances == want.instances and (not spec or got.spec.digest() == want.spec.digest())
    for name in ("correct", "gold_logprob", "logit_diff", "option_logprob"):
        torch.testing.assert_close(getattr(got, name), getattr(want, name), atol=0, rtol=0, equal_nan=True)
    assert (got.texts_array == want.texts_array).all()
    assert all(a == b for a, b in zip(got.tokens_array.flat, want.tokens_array.flat))
    assert got.baseline[["text", "correct", "gold_logprob"]].equals(want.baseline[["text", "correct", "gold_logprob"]])


@pytest.mark.parametrize("threads", [1, 2])
def test_an_instance_gets_the_same_bits_in_any_batch(model, threads):
    """Alone, packed with others, or split in chunks of a few rows: the same numbers. (Products of
    fewer than 16 rows round differently on x86 MKL; xtl runs none.)"""
    with xtl.using_threads(threads):
        packed = xtl.sweep(model, ITEMS, max_new_tokens=STEPS, scorer=TASK.scorer, progress=False)
        for k, max_batch in ((3, None), (3, 5), (0, 2), (6, 73)):
            alone = xtl.sweep(
                model, [ITEMS[k]], max_new_tokens=STEPS, scorer=TASK.scorer, max_batch=max_batch, progress=False
            )
            for name in ("gold_logprob", "logit_diff", "option_logprob"):
                torch.testing.assert_close(
                    getattr(alone, name)[0],
                    getattr(packed, name)[k],
                    atol=0,
                    rtol=0,
                    equal_nan=True,
                    msg=f"instance {k}, max_batch {max_batch}",
                )
            assert (alone.texts_array[0] == packed.texts_array[k]).all()


def test_shards_fill_one_run_that_equals_one_process(model, reference, tmp_path):
    out = tmp_path / "run"
    first = xtl.sweep(model, ITEMS, max_new_tokens=STEPS, scorer=TASK.scorer, out=out, shard=(0, 3), progress=False)
    assert first.instances == [0, 3, 6] and first.missing == [1, 2, 4, 5, 7]
    with pytest.warns(RunWarning, match=r"partial: 3 of 8 instances finished; missing \[1, 2, 4, 5, 7\]"):
        assert xtl.SweepResult.load(out).missing == [1, 2, 4, 5, 7]
    for k in (1, 2):
        xtl.sweep(model, ITEMS, max_new_tokens=STEPS, scorer=TASK.scorer, out=out, shard=f"{k}/3", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RunWarning)
        whole = xtl.SweepResult.load(out)
    assert whole.complete
    assert_same(whole, reference)


@pytest.mark.slow
def test_concurrent_shard_jobs_write_one_run(model, reference, tmp_path):
    """Two `xtl sweep --shard` processes at once, as a job array would start them, into one fresh
    directory (both create its spec)."""
    out = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "xtl.cli",
        "sweep",
        "--model",
        "toy",
        "--task",
        "toy-culture",
        "--limit",
        "2",
        "--max-new-tokens",
        str(STEPS),
        "--out",
        str(out),
        "--quiet",
    ]
    jobs = [
        subprocess.Popen([*args, "--shard", f"{k}/2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for k in range(2)
    ]
    for job in jobs:
        _, err = job.communicate(timeout=300)
        assert job.returncode == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["_spec.json", *(f"part-{k:06d}.parquet" for k in range(8))]
    assert_same(xtl.SweepResult.load(out), reference)


@pytest.mark.parametrize(
    "shard, message",
    [
        ((2, 2), "shard 2/2 is out of range"),
        ("1", r"shard must be \(k, n\) or 'k/n'"),
        ((0, 0), "out of range"),
        ("a/b", "shard must be"),
        ((1.0, 2), "shard must be"),
        ((-1, 2), "out of range"),
    ],
)
def test_bad_shards_are_refused(shard, message):
    with pytest.raises(ValueError, match=message):
        parse_shard(shard)


def test_an_empty_shard_says_so(model):
    with pytest.raises(ValueError, match="shard 3/4 of 3 instances holds none"):
        xtl.sweep(model, ITEMS[:3], max_new_tokens=1, shard=(3, 4), progress=False)


def test_sweep_refuses_unknown_executor_and_bad_workers(model):
    with pytest.raises(ValueError, match=r"unknown executor 'dask'; valid: \['local', 'ray'\]"):
        xtl.sweep(model, ITEMS[:1], executor="dask", progress=False)
    with pytest.raises(ValueError, match="workers must be an int >= 1, got 0"):
        xtl.sweep(model, ITEMS[:1], executor="ray", workers=0, progress=False)


def test_ray_missing_names_the_extra(model, monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'xtransplant\[distributed\]'"):
        xtl.sweep(model, ITEMS[:1], max_new_tokens=1, executor="ray", progress=False)
    assert (
        cli.main(
            [
                "sweep",
                "--model",
                "toy",
                "--task",
                "toy-culture",
                "--limit",
                "1",
                "--ray",
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 2
    )
    assert "xtransplant[distributed]" in capsys.readouterr().err


def test_a_model_ray_cannot_load_again_is_refused(checkpoints):
    from transformers import AutoModelForCausalLM

    from xtl.loading import recipe_of
    from xtl.testing import tokenizer

    hf_model = AutoModelForCausalLM.from_pretrained(checkpoints["gpt2"], local_files_only=True)
    built = xtl.load_model(hf_model, tokenizer=tokenizer())
    with pytest.raises(ValueError, match="was not loaded by xtl.load_model from a path or hub name"):
        recipe_of(built)
    assert recipe_of(xtl.load_model(checkpoints["gpt2"], dtype="float64")).load().cfg.dtype == torch.float64


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray for the tests below (2 CPUs, as this machine has); xtl uses a running Ray."""
    ray = pytest.importorskip("ray", reason="Ray is in the test extra; install it with pip install -e '.[test]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_workers_give_the_one_process_result(ray_cluster, model, reference, tmp_path):
    out = tmp_path / "run"
    res = xtl.sweep(
        model, ITEMS, max_new_tokens=STEPS, scorer=TASK.scorer, out=out, executor="ray", workers=2, progress=False
    )
    assert_same(res, reference)
    assert_same(xtl.SweepResult.load(out), reference)  # the workers wrote the parts
    assert ray_cluster.is_initialized()  # a Ray that xtl did not start is left running


@pytest.mark.slow
def test_a_killed_worker_loses_only_its_unfinished_instance(ray_cluster, model, tmp_path):
    """The scorer kills its worker's process once, while scoring instance 3 (the second of the
    batch [2, 3]); instance 2, already written, is kept as written, and 3 is computed on a new
    worker in the same batch (2 runs again there, unwritten), so its numbers are those of a run
    without the death: one process with the same batches, on one thread as Ray's workers run."""
    marker, log, out = tmp_path / "killed", tmp_path / "calls.log", tmp_path / "run"
    victim, rule = ITEMS[3].id, TASK.scorer

    def score_and_die_once(text, pair):
        with open(log, "a") as f:
            f.write(f"{pair.id} {os.getpid()}\n")
        if pair.id == victim and not marker.exists():
            marker.write_text(str((out / "part-000002.parquet").stat().st_ino))  # instance 2 is written
            os.kill(os.getpid(), signal.SIGKILL)
        return rule(text, pair)

    with pytest.warns(
        RuntimeWarning,
        match=r"a Ray worker died while sweeping instances \[2, 3\].*\[3\] go to a new "
        r"worker, in the same batch",
    ):
        res = xtl.sweep(
            model,
            ITEMS,
            max_new_tokens=STEPS,
            scorer=score_and_die_once,
            out=out,
            executor="ray",
            workers=2,
            max_batch=2 * 73,
            progress=False,
        )
    pids: dict[str, list] = {}
    for line in log.read_text().split("\n")[:-1]:
        name, pid = line.split()
        pids.setdefault(name, []).append(pid)
    calls = len(res.spec.components) * len(res.spec.source_layers) * len(res.spec.target_layers) + 1
    assert len(set(pids[victim])) == 2 and len(set(pids[ITEMS[2].id])) == 2  # the batch ran again, whole
    assert all(len(set(pids[item.id])) == 1 and len(pids[item.id]) == calls for item in ITEMS[4:] + ITEMS[:2])
    # part 2 is the file written before the death, not one the new worker wrote (a new file, another inode)
    assert (out / "part-000002.parquet").stat().st_ino == int(marker.read_text())
    with xtl.using_threads(1):  # the scorer no longer kills: the marker exists
        same_batches = xtl.sweep(
            model, ITEMS, max_new_tokens=STEPS, scorer=score_and_die_once, max_batch=2 * 73, progress=False
        )
    assert_same(res, same_batches)
    assert_same(xtl.SweepResult.load(out), same_batches)


DRIVER = """
import faulthandler, pathlib, signal, sys, time
import xtl

faulthandler.register(signal.SIGUSR1, all_threads=True)

GATE, OUT = pathlib.Path(sys.argv[1]), sys.argv[2]
TASK = xtl.tasks.get("toy-culture")
ITEMS = [item for lang in TASK.languages for item in TASK.items(lang)[:2]]


def gated(text, pair):  # instance 1 waits, once instance 0 is written, until the gate opens
    if pair.id == ITEMS[1].id and not (GATE / "open").exists():
        (GATE / "waiting").touch()
        while not (GATE / "open").exists():
            time.sleep(0.05)
    return TASK.scorer(text, pair)


xtl.sweep(xtl.toy.load_toy_model(), ITEMS, max_new_tokens=STEPS, scorer=gated, out=OUT, executor="ray",
          workers=1, max_batch=73, progress=False)
"""


@pytest.mark.slow
def test_an_interrupted_ray_driver_resumes(reference, tmp_path):
    """A driver interrupted (Ctrl-C) while its one worker holds instance 1, instance 0 written (one
    item per batch); run again, it keeps instance 0's part and finishes the rest. The interrupt
    waits for the worker to say it is at instance 1, so it never comes too early or too late."""
    out, gate, script = tmp_path / "run", tmp_path / "gate", tmp_path / "driver.py"
    gate.mkdir()
    script.write_text(DRIVER.replace("STEPS", str(STEPS)))
    # The driver's output goes to files; a driver that does not exit after the interrupt is made to
    # print its threads' stacks (faulthandler, on SIGUSR1) before it is killed, and the failure shows them.
    first, second = tmp_path / "first.err", tmp_path / "second.err"
    with first.open("w") as err:
        job = subprocess.Popen([sys.executable, str(script), str(gate), str(out)], stdout=err, stderr=err)
        deadline = time.monotonic() + 300  # a guard against a hang only; the interrupt waits on the event
        while not (gate / "waiting").exists() and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (gate / "waiting").exists(), first.read_text() if job.poll() is not None else "no event"
        job.send_signal(signal.SIGINT)
        try:
            job.wait(timeout=120)
        except subprocess.TimeoutExpired:
            job.send_signal(signal.SIGUSR1)
            time.sleep(5)
            job.kill()
            pytest.fail(f"the interrupted driver did not exit in 120 s; its output:\n{first.read_text()}")
    assert job.returncode != 0 and "KeyboardInterrupt" in first.read_text(), first.read_text()
    kept = {p.name: p.stat().st_ino for p in out.glob("part-*.parquet")}
    assert list(kept) == ["part-000000.parquet"]
    (gate / "open").touch()
    with second.open("w") as err:
        again = subprocess.run([sys.executable, str(script), str(gate), str(out)], stdout=err, stderr=err, timeout=300)
    assert again.returncode == 0, second.read_text()
    assert (out / "part-000000.parquet").stat().st_ino == kept["part-000000.parquet"]  # not written again
    assert_same(xtl.SweepResult.load(out), reference, spec=False)
    assert sorted(int(p.stem[5:]) for p in out.glob("part-*.parquet")) == list(range(8))


@pytest.mark.slow
def test_ray_from_the_command_line(ray_cluster, reference, tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        cli.main(
            [
                "sweep",
                "--model",
                "toy",
                "--task",
                "toy-culture",
                "--limit",
                "2",
                "--max-new-tokens",
                str(STEPS),
                "--out",
                str(out),
                "--quiet",
                "--ray",
                "--workers",
                "2",
            ]
        )
        == 0
    )
    assert_same(xtl.SweepResult.load(out), reference)
    assert "xtl sweep: 8 instances in" in capsys.readouterr().out
