"""The xtl command line: demo end to end on a reduced setting, sweep, report, transplant, errors."""

import re
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic import GRID, synthetic

import xtl
from xtl import cli, plot

HAS_BROWSER = bool(shutil.which("chromium") or shutil.which("google-chrome"))


def test_help_teaches(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for word in ("demo", "sweep", "report", "transplant", "source", "target", "heatmaps", "examples:"):
        assert word in out


@pytest.mark.slow
def test_demo_end_to_end_reduced(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--limit", "2", "--quiet"] + ([] if HAS_BROWSER else ["--no-png"])
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    rows = re.findall(
        r"(toy-\w+)\s+untouched ([\d.]+) \| paper default ([\d.]+) \| TargetFirst ([\d.]+) \| "
        r"upper bound ([\d.]+)\s+\((\d+) items\)",
        printed,
    )
    assert [r[0] for r in rows] == ["toy-generation", "toy-understanding", "toy-culture"]
    for name, base, default, first, bound, n in rows:
        assert int(n) == 8 and float(bound) >= max(float(base), float(default), float(first))
        result = xtl.SweepResult.load(out / "runs" / f"{name}-limit2")  # the sweep behind the numbers
        table = xtl.compare_settings(result, xtl.tasks.get(name).default).set_index(["language", "setting"])
        assert bound == f"{table.loc[('all', 'upper_bound'), 'accuracy']:.2f}"
        assert base == f"{table.loc[('all', 'baseline'), 'accuracy']:.2f}"
    report = (out / "report.md").read_text()
    for name in ("toy-generation", "toy-understanding", "toy-culture"):
        assert f"## {name}" in report and (out / f"{name}-accuracy.html").is_file()
    assert "## Held-out items" in report and "| toy-culture | sw |" in report
    assert "scored by `toy-generation/paper`, `toy-understanding/lenient`, `toy-culture/lenient`." in report
    assert (out / "plotly.min.js").is_file() and "plotly.min.js" in (out / "tasks.html").read_text()
    assert (out / "toy-culture-gain.png").is_file() == HAS_BROWSER


def test_sweep_report_and_transplant_commands(tmp_path, capsys):
    run = tmp_path / "run"
    args = [
        "sweep",
        "--model",
        "toy",
        "--task",
        "toy-culture",
        "--languages",
        "sw",
        "--limit",
        "2",
        "--components",
        "attn",
        "--max-new-tokens",
        "3",
        "--out",
        str(run),
        "--quiet",
    ]
    assert cli.main(args) == 0
    result = xtl.SweepResult.load(run)
    assert result.spec.task == "toy-culture" and result.spec.components == ("attn",)
    assert len(result.instances) == 2 and set(result.languages) == {"sw"}
    assert cli.main(args) == 0  # resumes: nothing left to do, same result
    assert xtl.SweepResult.load(run).correct.equal(result.correct)
    assert cli.main(["report", str(run), "--out", str(tmp_path / "rep"), "--no-png"]) == 0
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "## toy-culture" in report and "| sw |" in report
    assert "Scored by `toy-culture/lenient`; generation stops at token ids [2]." in report
    capsys.readouterr()
    item = xtl.tasks.get("toy-generation").items("ru")[0]
    assert (
        cli.main(
            [
                "transplant",
                "--model",
                "toy",
                "--source",
                item.source,
                "--target",
                item.target,
                "--source-layer",
                "0",
                "--target-layer",
                "0",
                "--component",
                "mlp",
                "--max-new-tokens",
                "3",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"untouched    : {item.target}") and lines[1].startswith("transplanted :")
    direct = xtl.transplant(xtl.toy.load_toy_model(), item.source, item.target, 0, 0, "mlp", max_new_tokens=3)
    assert lines[1].split("   (")[0] == f"transplanted : {item.target}{direct.text[0]}"


def test_sweep_command_takes_every_head(tmp_path):
    run = tmp_path / "heads"
    assert (
        cli.main(
            [
                "sweep",
                "--model",
                "toy",
                "--task",
                "toy-culture",
                "--languages",
                "sw",
                "--limit",
                "1",
                "--components",
                "head,mlp",
                "--max-new-tokens",
                "1",
                "--out",
                str(run),
                "--quiet",
            ]
        )
        == 0
    )
    result = xtl.SweepResult.load(run)
    n_heads = xtl.toy.load_toy_model().cfg.n_heads
    assert result.spec.components == (*(f"head.{h}" for h in range(n_heads)), "mlp")
    assert result.gold_logprob.shape == (1, n_heads + 1, 6, 6)


@pytest.mark.parametrize("approx", [False, True])
def test_sweep_layer_step_sweeps_every_nth_layer_and_the_last(approx, tmp_path):
    run = tmp_path / "run"
    args = ["sweep", "--model", "toy", "--task", "toy-culture", "--languages", "sw", "--limit", "2"]
    args += ["--layer-step", "4", "--out", str(run), "--quiet"] + (
        ["--approx"] if approx else ["--max-new-tokens", "2"]
    )
    assert cli.main(args) == 0
    result = xtl.SweepResult.load(run)
    assert list(result.spec.source_layers) == list(result.spec.target_layers) == [0, 4, 5]
    items = xtl.tasks.get("toy-culture").items("sw")[:2]
    model = xtl.toy.load_toy_model()
    if approx:
        direct = xtl.attribution_sweep(model, items, source_layers=[0, 4, 5], target_layers=[0, 4, 5], progress=False)
    else:
        direct = xtl.sweep(model, items, source_layers=[0, 4, 5], target_layers=[0, 4, 5], max_new_tokens=2)
    torch.testing.assert_close(result.gold_logprob, direct.gold_logprob)


def test_approximate_sweep_and_lens_commands(tmp_path, capsys):
    run = tmp_path / "approx"
    args = [
        "sweep",
        "--model",
        "toy",
        "--task",
        "toy-culture",
        "--languages",
        "sw",
        "--limit",
        "2",
        "--approx",
        "--out",
        str(run),
        "--quiet",
    ]
    assert cli.main(args) == 0
    result = xtl.SweepResult.load(run)
    assert result.approximate and len(result.instances) == 2
    direct = xtl.attribution_sweep(
        xtl.toy.load_toy_model(), xtl.tasks.get("toy-culture").items("sw")[:2], progress=False
    )
    torch.testing.assert_close(result.gold_logprob, direct.gold_logprob)
    out = capsys.readouterr().out
    assert "approximate (attribution patching): the 10 cells with the largest" in out
    assert cli.main(["report", str(run), "--out", str(tmp_path / "rep"), "--no-png"]) == 0
    # the lens of one task item, untouched and after the task's default transplant
    lens = tmp_path / "lens"
    assert (
        cli.main(
            [
                "lens",
                "--model",
                "toy",
                "--task",
                "toy-generation",
                "--language",
                "sw",
                "--index",
                "1",
                "--transplant",
                "default",
                "--out",
                str(lens),
                "--no-png",
            ]
        )
        == 0
    )
    frame = pd.read_csv(lens / "lens.csv")
    task, item = xtl.tasks.get("toy-generation"), xtl.tasks.get("toy-generation").items("sw")[1]
    want = xtl.lens(
        xtl.toy.load_toy_model(),
        {"target": item.target},
        {"gold": f" {item.gold}"},
        spec=task.default,
        sources={"target": item.source},
    )
    got = frame[frame.prompt_language == "target"].reset_index(drop=True)
    np.testing.assert_allclose(got["prob"], want["prob"], atol=1e-6)
    assert set(frame.condition[frame.prompt_language == "source"]) == {"untouched"}
    assert (lens / "lens.html").is_file() and "xtl lens:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["sweep", "--model", "toy", "--task", "toy-culture", "--approx", "--max-new-tokens", "2", "--out", "x"],
            "--max-new-tokens does not apply to --approx",
        ),
        (["lens", "--model", "toy", "--prompt", "en", "--answer", "x=1"], "--prompt 'en' is not LANGUAGE=TEXT"),
        (
            ["lens", "--model", "toy", "--prompt", "en=a", "--answer", "x=1", "--transplant", "mlp:0"],
            "is not COMPONENT:SOURCE_LAYER:TARGET_LAYER",
        ),
        (
            ["lens", "--model", "toy", "--prompt", "en=a", "--answer", "x=1", "--transplant", "mlp:0:0:1"],
            "is not COMPONENT:SOURCE_LAYER:TARGET_LAYER",
        ),
        (
            ["lens", "--model", "toy", "--prompt", "en=a", "--answer", "x=1", "--transplant", "ffn:0:0"],
            "unknown component 'ffn'",
        ),
        (
            ["lens", "--model", "toy", "--prompt", "fr=a", "--answer", "x=1", "--transplant", "mlp:0:0"],
            "--source 'en' names no prompt; the prompts are ['fr']",
        ),
        (["lens", "--model", "toy", "--task", "toy-culture", "--index", "999"], "--index 999 is out of range"),
        (["lens", "--model", "toy"], "give --prompt LANG=TEXT"),
        (["sweep", "--model", "toy", "--task", "nope", "--out", "x"], "unknown task 'nope'; registered tasks"),
        (
            ["sweep", "--model", "toy", "--task", "toy-culture", "--languages", "de", "--out", "x"],
            "task 'toy-culture' has no language 'de'",
        ),
        (
            [
                "sweep",
                "--model",
                "toy",
                "--task",
                "toy-culture",
                "--languages",
                "sw",
                "--components",
                "attn,ffn",
                "--limit",
                "1",
                "--out",
                "{tmp}/x",
            ],
            "ffn",
        ),
        (["report", "{tmp}/missing", "--out", "{tmp}/r"], "is not a sweep run"),
        (
            ["sweep", "--model", "toy", "--task", "toy-culture", "--layer-step", "-1", "--out", "{tmp}/s"],
            "--layer-step must be",
        ),
        (
            ["select", "--model", "toy", "--task", "toy-generation", "--layer-step", "0", "--out", "{tmp}/s"],
            "--layer-step must be",
        ),
        (["select", "--model", "toy", "--task", "toy-culture", "--languages", "xx", "--out", "{tmp}/s"], "xx"),
        (
            ["sweep", "--model", "toy", "--task", "toy-culture", "--rule", "paper", "--out", "x"],
            "task 'toy-culture' has no scoring rule 'paper'; valid: ['lenient']",
        ),
        (
            [
                "transplant",
                "--model",
                "toy",
                "--source",
                "a",
                "--target",
                "b",
                "--source-layer",
                "9",
                "--target-layer",
                "0",
            ],
            "9",
        ),
    ],
)
def test_bad_arguments_give_one_clear_line_and_status_2(args, message, tmp_path, capsys):
    assert cli.main([a.replace("{tmp}", str(tmp_path)) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"xtl {args[0]}: error:") and message in err


def test_unknown_command_is_an_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sweeep"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'sweeep'" in capsys.readouterr().err


def test_report_without_a_browser_links_html_and_warns(tmp_path, monkeypatch):
    def no_browser(*args, **kwargs):
        raise plot.ExportError("static export needs Chrome or Chromium for kaleido")

    monkeypatch.setattr(plot, "save_images", no_browser)
    with pytest.warns(UserWarning, match="links the HTML figures only"):
        report = xtl.report.write_report({"r": synthetic(GRID)}, tmp_path)
    text = report.read_text()
    assert "[r-accuracy (interactive)](r-accuracy.html)" in text and ".png" not in text
    assert (tmp_path / "r-accuracy.html").is_file()


@pytest.mark.parametrize("task", ["../../evil", "{tmp}/absolute", "a/b\\c d", "tab\tnew\nline\x07", "..", ""])
def test_report_files_stay_inside_out_whatever_the_run_calls_its_task(task, tmp_path):
    run = tmp_path / "runs" / "one"
    synthetic(GRID, task=task.replace("{tmp}", str(tmp_path))).save(run)
    out = tmp_path / "deep" / "report"
    assert cli.main(["report", str(run), "--out", str(out), "--no-png"]) == 0
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and out not in p.parents and run not in p.parents]
    assert outside == []
    figures = sorted(p.name for p in out.glob("*-accuracy.html"))
    assert len(figures) == 1 and re.fullmatch(r"[\w.-]+-accuracy\.html", figures[0])
    assert f"[{figures[0][:-5]} (interactive)]({figures[0]})" in (out / "report.md").read_text()


def test_distinct_names_get_distinct_files(tmp_path):
    results = {"a/b": synthetic(GRID), "a-b": synthetic(GRID), "..": synthetic(GRID)}
    assert xtl.report.file_stems(results) == {"a/b": "a-b", "a-b": "a-b-2", "..": "result"}
    xtl.report.write_report(results, tmp_path, png=False)
    assert {p.name for p in tmp_path.glob("*-accuracy.html")} == {
        "a-b-accuracy.html",
        "a-b-2-accuracy.html",
        "result-accuracy.html",
    }


def test_user_errors_are_one_line_and_status_2_never_a_traceback(tmp_path, capsys, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("x")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text("{")
    run = tmp_path / "run"
    synthetic(GRID).save(run)
    (run / "_spec.json").write_text((run / "_spec.json").read_text().replace('"dtype"', '"new_field": 1, "dtype"'))
    one = ["transplant", "--source", "a", "--target", "b", "--source-layer", "0", "--target-layer", "0"]
    cases = [
        (["sweep", "--model", "toy", "--task", "toy-culture", "--out", str(afile)], "is an existing file"),
        (["demo", "--out", str(afile)], "is an existing file"),
        (["report", str(run), "--out", str(tmp_path / "r")], "fields ['new_field'] are unknown to xtl"),
        (["demo", "--out", str(afile / "sub")], "Not a directory"),
        (one + ["--model", str(corrupt)], f"cannot load model '{corrupt}': OSError: It looks like the config file"),
        (one + ["--model", "gpt2"], "cannot load model 'gpt2': OSError: We couldn't connect"),  # offline
        (one + ["--model", "toy", "--max-new-tokens", "0"], "--max-new-tokens must be an int >= 1, got 0"),
        (
            ["sweep", "--model", "toy", "--task", "toy-culture", "--limit", "-1", "--out", str(tmp_path / "s")],
            "--limit must be an int >= 1, got -1",
        ),
    ]
    for args, message in cases:
        assert cli.main(args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith(f"xtl {args[0]}: error:") and message in err, (args, err)
        assert err.count("\n") == 1 and "Traceback" not in err
    import pathlib

    def read_only(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(pathlib.Path, "mkdir", read_only)
    assert cli.main(["demo", "--out", str(tmp_path / "ro")]) == 2
    err = capsys.readouterr().err
    want = f"cannot create the output directory '{tmp_path / 'ro'}': Permission denied; choose a writable path"
    assert err == f"xtl demo: error: {want}\n"


def test_help_lists_every_component_task_and_dtype(capsys):
    import xtl

    assert set(cli.COMPONENT_NAMES) == set(xtl.COMPONENTS)
    assert set(cli.TASK_NAMES) == set(xtl.tasks.list_tasks())
    with pytest.raises(SystemExit):
        cli.main(["sweep", "--help"])
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines at hyphens
    for name in (*cli.COMPONENT_NAMES, *cli.TASK_NAMES, *cli.DTYPES):
        assert name in text, name
    with pytest.raises(SystemExit) as exit_info:
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
                "--component",
                "ffn",
            ]
        )
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert (
        "xtl transplant: error: argument --component: unknown component 'ffn'; valid: attn, mlp, resid, "
        "attn_as_released or head.N"
    ) in err
    assert "head.N(oneattentionhead)orhead(everyhead)" in text


def test_transplant_takes_one_attention_head(capsys):
    item = xtl.tasks.get("toy-generation").items("ru")[0]
    assert (
        cli.main(
            [
                "transplant",
                "--model",
                "toy",
                "--source",
                item.source,
                "--target",
                item.target,
                "--source-layer",
                "1",
                "--target-layer",
                "1",
                "--component",
                "head.2",
                "--max-new-tokens",
                "3",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    direct = xtl.transplant(xtl.toy.load_toy_model(), item.source, item.target, 1, 1, "head.2", max_new_tokens=3)
    assert lines[1].split("   (")[0] == f"transplanted : {item.target}{direct.text[0]}"
    assert "(head.2, source layer 1 -> target layer 1)" in lines[1]


def test_report_has_a_default_out_and_the_sweep_hint_works(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    synthetic(GRID).save(run)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["report", str(run), "--no-png"]) == 0
    assert (tmp_path / "xtl-report" / "report.md").is_file()


def test_plotlyjs_option_takes_a_mode_or_a_relative_js_path(tmp_path, capsys):
    run = tmp_path / "run"
    synthetic(GRID).save(run)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["report", str(run), "--out", str(tmp_path / "r"), "--plotlyjs", "web"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert "--plotlyjs must be directory, embed, cdn or a path ending in .js, got 'web'" in err
    args = ["report", str(run), "--out", str(tmp_path / "r"), "--no-png", "--plotlyjs", "../plotly.min.js"]
    assert cli.main(args) == 0
    assert '<script src="../plotly.min.js"></script>' in (tmp_path / "r" / "report.html").read_text()


@pytest.mark.slow
def test_select_command_declares_a_primary_on_sample_and_scores_unseen(tmp_path, capsys):
    """`xtl select`: four resumable runs and their probes, and a report whose table is evaluate() on them."""
    from xtl import select
    from xtl.probes import load_probes

    out = tmp_path / "sel"
    args = ["select", "--model", "toy", "--task", "toy-generation", "--languages", "fr,sw", "--limit", "8"]
    args += ["--max-new-tokens", "3", "--out", str(out), "--quiet", "--no-png", "--plotlyjs", "embed"]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "Primary (declared from `sample`): **" in printed and "copy the source" in printed
    runs = {
        name: load_probes(xtl.SweepResult.load(out / "runs" / name), out / "runs" / f"{name}.probes.npz")
        for name in ("sample", "unseen", "sample-control", "unseen-control")
    }  # with the probes saved beside them (None if they were not, or not for these runs)
    assert all(r.complete and len(r.instances) == 16 for r in runs.values())
    assert runs["unseen"].spec.ids == runs["unseen-control"].spec.ids
    assert runs["unseen"].spec.prompt_hashes != runs["unseen-control"].spec.prompt_hashes  # other sources
    primary = re.search(r"Primary \(declared from `sample`\): \*\*(.+?)\*\*", printed).group(1)
    assert primary == str(select.cross_validate(select.candidates(True), runs["sample"]).iloc[0]["selector"])
    again = select.evaluate(
        select.candidates(True),
        runs["sample"],
        runs["unseen"],
        default=xtl.tasks.get("toy-generation").default,
        control=(runs["sample-control"], runs["unseen-control"]),
        primary=primary,
    )
    assert again.claim.split(". But")[0] in (out / "report.md").read_text()
    for row in again.table.to_dict("records"):
        assert f"| {row['selector']} | {row['accuracy']:.3f} |" in printed
    assert all((out / f"{stem}.html").is_file() for stem in ("selectors", "selection-cost", "selector-languages"))
    assert "[selectors](selectors.html)" in (out / "report.md").read_text()
    assert cli.main(args) == 0  # a second run reads the saved runs
