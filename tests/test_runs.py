"""Run directories prove what they hold: another model's, tokenizer's, BOS setting's or scorer's
numbers are never adopted, foreign or damaged parts are reported by path and recomputed,
concurrent writers never collide, and a partial run says so."""

import shutil
import threading
import warnings

import pandas as pd
import pytest
import torch
from conftest import PROMPTS_EN, PROMPTS_SW

import xtl
from xtl import fingerprint
from xtl.results import RunError, RunWarning, SweepSpec, write_part
from xtl.testing import save_checkpoint

OPTIONS = ("1", "2", "3")
# answers right after the prompt: the tiny test tokenizer has no " 1" token, so " {}" would give all
# options the same first token (" ")
PAIRS = [
    xtl.Pair(PROMPTS_EN[i], PROMPTS_SW[i], OPTIONS[i], OPTIONS, id=f"q{i}", answer_template="{}") for i in range(3)
]
FAST = dict(components=("attn",), source_layers=[0, 2], target_layers=[1], max_new_tokens=2, progress=False)


def score_a(text, pair):
    return pair.gold in text


def score_b(text, pair):
    return pair.gold.strip() in text


def run_of(model, run, pairs=PAIRS, **kwargs):
    return xtl.sweep(model, pairs, out=run, **{**FAST, **kwargs})


def test_same_folder_name_other_weights_is_refused(tmp_path):
    """exp-a/checkpoint and exp-b/checkpoint: same name and architecture, other weights."""
    a = xtl.load_model(save_checkpoint("qwen2", tmp_path / "exp-a" / "checkpoint", seed=0))
    b = xtl.load_model(save_checkpoint("qwen2", tmp_path / "exp-b" / "checkpoint", seed=1))
    assert a.cfg.model_name == b.cfg.model_name == "checkpoint"
    run = tmp_path / "run"
    run_of(a, run)
    with pytest.raises(RunError, match=r"fields \['weights'\] differ"):
        run_of(b, run)
    c = xtl.load_model(tmp_path / "exp-a" / "checkpoint")  # the same weights, loaded again
    assert run_of(c, run).complete


def test_weights_digest_follows_in_place_edits(hooked):
    model = hooked("llama", torch.float64)
    before = fingerprint.weights_digest(model)
    assert fingerprint.weights_digest(model) == before  # cached, and stable
    param = model.blocks[1].mlp.W_out
    with torch.no_grad():
        param[0, 0] += 1.0
    try:
        assert fingerprint.weights_digest(model) != before
    finally:
        with torch.no_grad():
            param[0, 0] -= 1.0
    assert fingerprint.weights_digest(model) == before


def test_prepend_bos_and_tokenizer_are_part_of_the_spec(hooked, tmp_path):
    model = hooked("qwen2")
    run = tmp_path / "run"
    run_of(model, run, prepend_bos=True)
    with pytest.raises(RunError, match=r"fields \['prepend_bos'\] differ"):
        run_of(model, run, prepend_bos=False)
    tok = model.tokenizer
    before = fingerprint.tokenizer_digest(tok)
    grown = type(tok).from_pretrained(tok.name_or_path, local_files_only=True)
    grown.add_tokens(["<extra>"])
    assert fingerprint.tokenizer_digest(grown) != before
    assert fingerprint.tokenizer_digest(type(tok).from_pretrained(tok.name_or_path, local_files_only=True)) == before


def test_scorers_are_told_apart_by_their_code(hooked, tmp_path):
    model = hooked("qwen2")
    run = tmp_path / "named"
    run_of(model, run, scorer=score_a)
    impostor = lambda text, pair: True  # noqa: E731
    impostor.__qualname__, impostor.__module__ = score_a.__qualname__, score_a.__module__
    assert fingerprint.scorer_identity(impostor)[0] == fingerprint.scorer_identity(score_a)[0]
    with pytest.raises(RunError, match=r"scorer_digest"):
        run_of(model, run, scorer=_renamed(score_b, score_a))
    assert run_of(model, run, scorer=score_a).complete  # the same function resumes

    anon = tmp_path / "anonymous"
    with pytest.warns(UserWarning, match="anonymous .* cannot be resumed"):
        run_of(model, anon, scorer=lambda text, pair: True)
    with pytest.raises(RunError, match=r"anonymous scorer .*cannot be\s+resumed"):
        run_of(model, anon, scorer=lambda text, pair: True)


def _renamed(fn, like):
    """``fn`` under ``like``'s module and qualified name (same name, other code)."""

    def wrapper(text, pair):
        return fn(text, pair)

    wrapper.__qualname__, wrapper.__module__ = like.__qualname__, like.__module__
    return wrapper


def test_task_rules_are_fingerprinted():
    paper, lenient = (xtl.tasks.get("xnli", rule=rule).scorer for rule in ("paper", "lenient"))
    name, digest = fingerprint.scorer_identity(paper)
    assert name == "xnli/paper" and len(digest) == 16
    assert fingerprint.scorer_identity(lenient)[1] != digest  # another rule, another digest
    assert fingerprint.scorer_identity(xtl.tasks.get("xnli", rule="paper").scorer) == (name, digest)


def test_foreign_and_damaged_parts_are_reported_and_recomputed(hooked, tmp_path):
    model = hooked("qwen2")
    fresh = xtl.sweep(model, PAIRS, **FAST)
    # parts of a run over six other items, left behind after its _spec.json was deleted
    run = tmp_path / "run"
    others = [
        xtl.Pair(p.source + " ?", p.target, p.gold, OPTIONS, id=f"o{k}", answer_template="{}")
        for k, p in enumerate(PAIRS * 2)
    ]
    run_of(model, run, pairs=others)
    (run / "_spec.json").unlink()
    with pytest.warns(RunWarning) as caught:
        res = run_of(model, run)
    message = str(caught[0].message)
    assert "6 part(s)" in message and "part-000005.parquet" in message
    assert "outside this run's 3 instances" in message and "another spec" in message
    assert res.instances == [0, 1, 2]
    assert (res.texts_array == fresh.texts_array).all()
    assert sorted(p.name for p in run.glob("part-*")) == [f"part-00000{k}.parquet" for k in range(3)]
    assert len(list((run / "_rejected").glob("part-*"))) == 6  # kept for inspection, out of the way
    assert len(pd.read_parquet(run)) == len(res.to_pandas())  # Parquet readers skip _rejected/

    # a part copied in from a run over other items
    other_run = tmp_path / "other"
    run_of(model, other_run, pairs=others[:3])
    shutil.copy(other_run / "part-000001.parquet", run / "part-000001.parquet")
    # a truncated part
    data = (run / "part-000000.parquet").read_bytes()
    (run / "part-000000.parquet").write_bytes(data[: len(data) // 2])
    with pytest.warns(RunWarning) as caught:
        partial = xtl.SweepResult.load(run)
    text = " ".join(str(w.message) for w in caught)
    assert "part-000000.parquet: it cannot be read" in text
    assert "part-000001.parquet: it was computed under another spec" in text
    assert "partial: 1 of 3 instances finished; missing [0, 1]" in text
    assert partial.instances == [2] and partial.missing == [0, 1]
    assert partial.texts_array[0].tolist() == fresh.texts_array[2].tolist()
    # and an empty one
    (run / "part-000002.parquet").write_bytes(b"")
    with pytest.warns(RunWarning, match="3 part\\(s\\)"):
        again = run_of(model, run)
    assert again.complete and (again.texts_array == fresh.texts_array).all()
    torch.testing.assert_close(again.gold_logprob, fresh.gold_logprob)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert xtl.SweepResult.load(run).complete


def test_a_part_with_the_wrong_rows_is_set_aside(hooked, tmp_path):
    model = hooked("qwen2")
    run = tmp_path / "run"
    res = run_of(model, run)
    frame = pd.read_parquet(run / "part-000001.parquet")
    write_part(run, res.spec, 1, frame.iloc[:2])  # stamped right, but rows missing
    shutil.copy(run / "part-000000.parquet", run / "part-0000000.parquet")  # 7 digits: not instance 0
    with pytest.warns(RunWarning) as caught:
        partial = xtl.SweepResult.load(run)
    assert partial.missing == [1]
    set_aside, partial_note = (str(w.message) for w in caught)
    assert "part-000001.parquet: it holds 2 rows, expected 3" in set_aside
    assert "part-0000000.parquet: its name is not that of an instance's part" in set_aside
    assert "partial: 2 of 3 instances finished; missing [1]" in partial_note


def test_concurrent_writers_of_one_part_never_collide(hooked, tmp_path):
    model = hooked("qwen2")
    run = tmp_path / "run"
    res = run_of(model, run, pairs=PAIRS[:1])
    frame = pd.read_parquet(run / "part-000000.parquet")
    errors = []

    def writer():
        try:
            for _ in range(40):
                write_part(run, res.spec, 0, frame)
        except Exception as err:  # noqa: BLE001 - every failure is collected and asserted on
            errors.append(err)

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(p.name for p in run.iterdir()) == ["_spec.json", "part-000000.parquet"]
    assert xtl.SweepResult.load(run).complete


def test_bad_run_directories_and_specs(hooked, tmp_path):
    model = hooked("qwen2")
    with pytest.raises(ValueError, match="out='' names no directory"):
        xtl.sweep(model, PAIRS, out="", **FAST)
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    with pytest.raises(RunError, match="is an existing file"):
        run_of(model, afile)
    run = tmp_path / "run"
    run_of(model, run)
    spec = run / "_spec.json"
    spec.write_text(spec.read_text().replace('"dtype"', '"future_field": 1, "dtype"'))
    with pytest.raises(RunError, match=r"_spec.json' is not a readable sweep spec: fields \['future_field'\]"):
        xtl.SweepResult.load(run)
    spec.write_text("{not json")
    with pytest.raises(RunError, match="not valid JSON"):
        run_of(model, run)


def _rewrite_part(part, edit_table=None, drop=()):
    """Write a part again as somebody might: its rows edited and/or metadata keys dropped."""
    import pyarrow.parquet as pq

    table = pq.read_table(part)
    meta = {k: v for k, v in table.schema.metadata.items() if k not in drop}
    if edit_table is not None:
        table = edit_table(table)
    pq.write_table(table.replace_schema_metadata(meta), part)


def test_a_run_directory_refuses_or_names_what_it_cannot_prove(hooked, tmp_path):
    """Tampering after the parts were written: each part set aside is named with why, nothing
    unproven is returned silently."""
    import json

    import pyarrow as pa
    import pyarrow.compute as pc

    model = hooked("qwen2")
    run = tmp_path / "run"
    fresh = run_of(model, run)

    def edit_logprob(table):  # one number changed in place, the stamp kept
        column = table.column("gold_logprob")
        return table.set_column(
            table.schema.get_field_index("gold_logprob"), "gold_logprob", pc.add(column, pa.scalar(1e-3))
        )

    def duplicate_row(table):
        return pa.concat_tables([table, table.slice(0, 1)])

    cases = {
        "part-000000.parquet": (lambda p: _rewrite_part(p, edit_logprob), "its rows were changed after it was written"),
        "part-000001.parquet": (lambda p: _rewrite_part(p, duplicate_row), "its rows were changed"),
        "part-000002.parquet": (
            lambda p: _rewrite_part(p, drop=(b"xtl.spec", b"xtl.prompt")),
            "it carries no xtl stamp",
        ),
    }
    for name, (tamper, _) in cases.items():
        tamper(run / name)
    with pytest.warns(RunWarning) as caught:
        with pytest.raises(FileNotFoundError, match="holds no finished instance"):
            xtl.SweepResult.load(run)
    text = " ".join(str(w.message) for w in caught)
    for name, (_, why) in cases.items():
        assert f"{name}: {why}" in text

    # the spec edited after the parts were written: a descriptive field, then one that fixes the numbers
    for field, value, why in (
        (
            "direction",
            "x2en",
            r"_spec.json was changed after it was written \(fields "
            r"\['direction'\] differ\)",
        ),
        ("components", ["mlp"], "it was computed under another spec"),
    ):
        again = tmp_path / f"again-{field}"
        run_of(model, again)
        spec = json.loads((again / "_spec.json").read_text())
        spec[field] = value
        (again / "_spec.json").write_text(json.dumps(spec))
        with pytest.warns(RunWarning, match=why), pytest.raises(FileNotFoundError, match="no finished instance"):
            xtl.SweepResult.load(again)

    # a part of an older xtl's format (no hash of its rows): loaded, and said loudly; a resume recomputes it
    older = tmp_path / "older"
    run_of(model, older)
    _rewrite_part(older / "part-000001.parquet", drop=(b"xtl.format", b"xtl.run", b"xtl.content"))
    with pytest.warns(RunWarning, match="part-000001.parquet: written by an older xtl, without a hash of its rows"):
        loaded = xtl.SweepResult.load(older)
    assert loaded.complete and (loaded.texts_array == fresh.texts_array).all()
    with pytest.warns(RunWarning, match="part-000001.parquet: it was written by an older xtl"):
        resumed = run_of(model, older)
    assert resumed.complete and (older / "_rejected" / "part-000001.parquet").is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.testing.assert_close(xtl.SweepResult.load(older).gold_logprob, fresh.gold_logprob, atol=0, rtol=0)

    # parts written by another xtl version than the run's spec names: loaded, and said
    mixed = tmp_path / "mixed"
    run_of(model, mixed)
    spec = json.loads((mixed / "_spec.json").read_text())
    spec["xtl_version"] = "0.0.9"
    (mixed / "_spec.json").write_text(json.dumps(spec))
    with pytest.warns(
        RunWarning,
        match=r"3 part\(s\) .* cannot be fully verified: part-000000.parquet: written by "
        r"xtl_version '",
    ):
        assert xtl.SweepResult.load(mixed).complete


def test_spec_digest_ignores_versions_only():
    spec = SweepSpec(
        model="m",
        n_layers=2,
        components=("attn",),
        source_layers=(0,),
        target_layers=(0,),
        max_new_tokens=1,
        eos_token_id=(),
        scorer="s",
        prompt_hashes=("h",),
        ids=("0",),
        dtype="float32",
        weights="w",
    )
    from dataclasses import replace

    assert replace(spec, xtl_version="9").digest() == spec.digest()
    assert replace(spec, weights="v").digest() != spec.digest()
    assert SweepSpec.from_json(spec.to_json()) == spec


def test_report_of_a_partial_run_says_so(hooked, tmp_path, capsys):
    from xtl import cli

    model = hooked("qwen2")
    run = tmp_path / "run"
    run_of(model, run)
    (run / "part-000001.parquet").unlink()
    assert cli.main(["report", str(run), "--out", str(tmp_path / "rep"), "--no-png"]) == 0
    err = capsys.readouterr().err
    assert "xtl report: warning: run" in err and "partial: 2 of 3 instances finished; missing [1]" in err
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "2 instances (**partial run**: 1 of 3 instances not finished, e.g. [1])" in report


def test_a_run_from_before_fingerprints_loads_unverified_and_is_not_resumed(hooked, tmp_path):
    import json

    import pyarrow.parquet as pq

    model = hooked("qwen2")
    run = tmp_path / "run"
    res = run_of(model, run)
    old = json.loads((run / "_spec.json").read_text())
    for key in ("weights", "config", "tokenizer", "prepend_bos", "scorer_digest"):
        old.pop(key)
    old["xtl_version"] = "0.1.0"
    (run / "_spec.json").write_text(json.dumps(old))
    for part in run.glob("part-*.parquet"):  # as older xtl wrote them: no stamp
        table = pq.read_table(part)
        pq.write_table(
            table.replace_schema_metadata(
                {k: v for k, v in table.schema.metadata.items() if not k.startswith(b"xtl.")}
            ),
            part,
        )
    with pytest.warns(RunWarning, match="written by xtl 0.1.0, before runs recorded model fingerprints"):
        legacy = xtl.SweepResult.load(run)
    assert legacy.complete and (legacy.texts_array == res.texts_array).all()
    with pytest.raises(
        RunError,
        match=r"different spec \(fields \['weights', 'config', 'tokenizer', "
        r"'prepend_bos', 'scorer_digest'\] differ\)",
    ):
        run_of(model, run)


@pytest.mark.filterwarnings("ignore::xtl.results.RunWarning")  # the synthetic run records no model fingerprint
def test_baseline_rows_have_no_layers_not_minus_one(tmp_path):
    """``-1`` means the last layer everywhere else in xtl, so the untouched rows carry missing layers."""
    import pyarrow.parquet as pq
    from synthetic import synthetic

    result = synthetic()
    frame = result.to_pandas()
    base = frame[frame["baseline"]]
    assert len(base) == len(result.instances) and base["source_layer"].isna().all()
    assert base["target_layer"].isna().all() and str(frame["source_layer"].dtype) == "Int64"
    cells = frame[~frame["baseline"]]
    assert cells["source_layer"].notna().all() and set(cells["target_layer"]) == set(result.spec.target_layers)
    run = result.save(tmp_path / "run")
    table = pq.read_table(run / "part-000000.parquet")
    assert table.column("source_layer").null_count == 1  # the baseline row, as null in Parquet
    loaded = xtl.SweepResult.load(run)
    assert loaded.to_pandas().equals(frame)
    old = frame[frame["instance"] == 0].fillna({"source_layer": -1, "target_layer": -1})  # how xtl wrote them before
    write_part(run, result.spec, 0, old)
    assert torch.equal(xtl.SweepResult.load(run).correct, result.correct)


def test_direction_is_recorded_and_runs_from_before_it_still_resume(hooked, tmp_path):
    import dataclasses
    import json

    from xtl.tasks.base import Item

    model = hooked("qwen2")
    items = [Item(**dataclasses.asdict(p), task="t", language="sw", direction="x2en") for p in PAIRS]
    run = tmp_path / "run"
    first = run_of(model, run, pairs=items)
    assert first.spec.direction == "x2en" and run_of(model, tmp_path / "plain").spec.direction == ""
    spec = json.loads((run / "_spec.json").read_text())
    del spec["direction"]  # as xtl wrote runs before it recorded the direction
    (run / "_spec.json").write_text(json.dumps(spec))
    (run / "part-000002.parquet").unlink()
    for part in run.glob("part-*.parquet"):  # and its parts as that xtl wrote them
        _rewrite_part(part, drop=(b"xtl.format", b"xtl.run", b"xtl.content"))
    with pytest.warns(RunWarning, match="2 part.* it was written by an older xtl"):  # recomputed, bit for bit
        again = run_of(model, run, pairs=items)  # resumes: the direction is descriptive, not part of the digest
    assert again.complete and torch.equal(again.correct, first.correct)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the parts written since carry the stored spec: nothing to say
        assert xtl.SweepResult.load(run).spec.direction == ""  # the stored spec is left as it was written
