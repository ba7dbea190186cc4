"""Thread counts: xtl picks one for its own computations and keeps a user's choice, made before or
after; ``import xtl`` and ``xtl --help`` load no torch."""

import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

import xtl
from xtl import cli, threads

SMALL = SimpleNamespace(cfg=SimpleNamespace(d_model=64))
LARGE = SimpleNamespace(cfg=SimpleNamespace(d_model=4096))


@pytest.fixture
def fresh(monkeypatch):
    """torch at its default count, no thread variables in the environment, xtl's setting 'auto'."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(threads.torch_default())
    monkeypatch.setattr(threads, "_setting", "auto")
    monkeypatch.setattr(threads, "_applied", None)
    yield threads.torch_default()
    torch.set_num_threads(before)


def fake_cpu(monkeypatch, others: float, cores: int = 2):
    """``/proc/stat`` as if other processes used ``others`` cores and this one nothing, on ``cores`` CPUs."""
    clock = {"t": 100.0}

    def sample():
        clock["t"] += 1.0
        return clock["t"], others * clock["t"], 0.0

    monkeypatch.setattr(threads, "_cpu_seconds", sample)
    monkeypatch.setattr(threads, "_sample", None)
    monkeypatch.setattr(threads, "_usable", lambda: set(range(cores)))
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)


def test_auto_gives_small_models_one_thread_and_knows_it_set_it(fresh, monkeypatch):
    monkeypatch.setattr(threads, "torch_default", lambda: 2)
    torch.set_num_threads(2)
    with xtl.using_threads(SMALL) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == 1 and not threads.user_chosen()  # left in place, known as xtl's own
    fake_cpu(monkeypatch, others=0.0)
    with xtl.using_threads(LARGE) as n:  # a larger model on an idle machine gets torch's count back
        assert n == 2 and torch.get_num_threads() == 2


@pytest.mark.parametrize("others, want", [(0.0, 2), (0.2, 2), (0.5, 1), (1.0, 1), (1.9, 1)])
def test_auto_leaves_cores_that_other_processes_use(fresh, monkeypatch, others, want):
    torch.set_num_threads(2)
    monkeypatch.setattr(threads, "torch_default", lambda: 2)
    fake_cpu(monkeypatch, others)
    assert xtl.get_threads(LARGE) == want


def test_busy_cpus_are_measured_from_proc_stat():
    if threads._cpu_seconds() is None:
        pytest.skip("no /proc/stat on this system: the load average is used instead")
    burn = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        threads._sample = None
        busy = threads.others_busy()
    finally:
        burn.kill()
        burn.wait()
    assert 0.5 <= busy <= len(threads._usable()) + 0.1


def test_a_users_own_count_is_kept(fresh, monkeypatch):
    if fresh < 2:
        pytest.skip("torch starts with one thread here: no other count to choose")
    other = fresh - 1 if fresh > 2 else 3
    torch.set_num_threads(other)  # before xtl set any: not torch's default, so the user's
    assert threads.user_chosen() and xtl.get_threads(SMALL) == other
    torch.set_num_threads(fresh)
    with xtl.using_threads(SMALL):
        pass
    assert torch.get_num_threads() == 1
    torch.set_num_threads(fresh)  # after xtl set 1: the user's, even though it is torch's default
    assert threads.user_chosen() and xtl.get_threads(SMALL) == fresh
    with xtl.using_threads(SMALL) as n:
        assert n == fresh
    monkeypatch.setattr(threads, "_applied", None)
    monkeypatch.setenv("OMP_NUM_THREADS", str(fresh))
    assert threads.user_chosen() and xtl.get_threads(SMALL) == fresh


def test_set_threads_and_none(fresh):
    try:
        xtl.set_threads(3)
        assert xtl.get_threads(SMALL) == 3
        xtl.set_threads(None)
        assert xtl.get_threads(SMALL) == fresh
    finally:
        xtl.set_threads("auto")
    for bad in (0, -1, 1.5, True, "many"):
        with pytest.raises(ValueError, match="positive integer"):
            xtl.set_threads(bad)


def test_xtl_calls_run_on_the_chosen_count_and_nest(fresh):
    toy_model = xtl.toy.load_toy_model()
    if fresh < 2:
        pytest.skip("torch starts with one thread here: auto cannot differ from it")
    seen = []
    hook = toy_model.blocks[0].hook_resid_pre.register_forward_hook(lambda *a: seen.append(torch.get_num_threads()))
    try:
        xtl.transplant(toy_model, "the capital of gezemi is", "the capital of gezemi is", 0, 0, max_new_tokens=1)
        assert seen and set(seen) == {1}
        seen.clear()
        torch.set_num_threads(fresh)
        threads._applied = None  # as in a fresh process
        item = xtl.tasks.get("toy-culture").items("sw")[0]
        xtl.sweep(
            toy_model, [item], components="mlp", source_layers=[0], target_layers=[0], max_new_tokens=1, progress=False
        )
        assert seen and set(seen) == {1}
        seen.clear()
        xtl.set_threads(2)
        with xtl.using_threads(toy_model):  # the outer choice holds inside
            xtl.set_threads("auto")
            xtl.transplant(toy_model, "the capital of gezemi is", "the capital of gezemi is", 0, 0, max_new_tokens=1)
        assert set(seen) == {2}
    finally:
        hook.remove()
        xtl.set_threads("auto")


def test_cli_threads_option(capsys, fresh):
    assert (
        cli.main(
            [
                "transplant",
                "--model",
                "toy",
                "--source",
                "a",
                "--target",
                "b",
                "--source-layer",
                "0",
                "--target-layer",
                "0",
                "--max-new-tokens",
                "1",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    assert threads._setting == 1
    threads.set_threads("auto")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sweep", "--model", "toy", "--task", "toy-culture", "--out", "x", "--threads", "0"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "--threads must be 'auto', 'torch'" in err
    assert threads.parse("torch") is None and threads.parse(" Auto ") == "auto" and threads.parse("4") == 4


def test_import_and_help_load_no_torch():
    code = (
        "import sys, xtl, xtl.cli\nxtl.cli.parser().format_help()\n"
        "assert 'torch' not in sys.modules and 'transformer_lens' not in sys.modules, 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    bad = subprocess.run(
        [sys.executable, "-c", "import xtl.threads"],
        env={"XTL_THREADS": "lots", "PATH": ""},
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "XTL_THREADS must be 'auto', 'torch' or a positive integer, got 'lots'" in bad.stderr
