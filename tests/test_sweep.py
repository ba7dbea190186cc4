"""Layer-pair sweeps: exactly the naive per-cell loop, chunked, resumable, loadable."""

import pandas as pd
import pytest
import torch
from conftest import PROMPTS_EN, PROMPTS_SW

import xtl
from xtl import decode
from xtl.pairs import as_pair, first_answer_token
from xtl.results import RunWarning
from xtl.testing import ARCHS

OPTIONS = ("1", "2", "3")
# answers right after the prompt: the tiny test tokenizer has no " 1" token, so " {}" would give all
# options the same first token (" ")
PAIRS = [
    xtl.Pair(PROMPTS_EN[i], PROMPTS_SW[i], OPTIONS[i], OPTIONS, id=f"q{i}", answer_template="{}") for i in range(3)
]


def naive(model, pairs, spec, steps):
    """One xtl.transplant call per cell: the reference loop the sweep must reproduce."""
    out = {}
    for k, pair in enumerate(pairs):
        gold = first_answer_token(model.tokenizer, pair.target, pair.answer_template.format(pair.gold))
        for c in spec.components:
            for s in spec.source_layers:
                for t in spec.target_layers:
                    r = xtl.transplant(model, pair.source, pair.target, s, t, c, max_new_tokens=steps, baseline=False)
                    out[k, c, s, t] = (r.tokens[0, : int(r.lengths[0])].tolist(), r.text[0], float(r.logprobs[0, gold]))
    return out


@pytest.mark.parametrize("arch", ARCHS)
def test_sweep_equals_naive_loop_float64(arch, hooked, monkeypatch):
    model = hooked(arch, torch.float64)
    components = ("attn", "mlp", "resid", "attn_as_released")
    calls = []
    real = decode.decode_shared
    monkeypatch.setattr(decode, "decode_shared", lambda *a, **k: calls.append(1) or real(*a, **k))
    res = xtl.sweep(model, PAIRS, components=components, max_new_tokens=6, progress=False)
    # the three small instances (37 rows each) share one batch, decoded by the shared-prefix decoder
    # where xtl's own passes support the model (not Gemma 3: TransformerLens' forward); the
    # instances' untouched source answers are one more, of one row each
    assert len(calls) == (0 if arch == "gemma3" else 2)
    monkeypatch.undo()
    assert res.correct.shape == (3, 4, 3, 3) and res.axes == xtl.results.AXES
    want = naive(model, PAIRS, res.spec, 6)
    for (k, c, s, t), (tokens, text, gold_lp) in want.items():
        ci, si, ti = res.index(c, s, t)
        assert res.tokens_array[k, ci, si, ti] == tokens, (k, c, s, t)
        assert res.texts(c, s, t, instance=k) == text
        assert abs(float(res.gold_logprob[k, ci, si, ti]) - gold_lp) < 1e-6
    for k, pair in enumerate(PAIRS):
        base = xtl.transplant(model, pair.source, pair.target, 0, 0, max_new_tokens=6)
        assert res.baseline.loc[k, "text"] == base.baseline_text[0]


def test_chunking_and_first_token_mode(hooked):
    model = hooked("qwen2", torch.float64)
    full = xtl.sweep(model, PAIRS, max_new_tokens=4, progress=False)
    chunked = xtl.sweep(model, PAIRS, max_new_tokens=4, max_batch=4, progress=False)
    one_row = xtl.sweep(model, PAIRS, max_new_tokens=4, memory_budget=1, progress=False)  # 1 row a pass
    for other in (chunked, one_row):
        assert (full.texts_array == other.texts_array).all()
        torch.testing.assert_close(full.gold_logprob, other.gold_logprob, atol=1e-9, rtol=0)
    first = xtl.sweep(model, PAIRS, max_new_tokens=1, progress=False)
    torch.testing.assert_close(first.gold_logprob, full.gold_logprob, atol=1e-9, rtol=0)
    assert all(len(t) == 1 for t in first.tokens_array.flat)
    # logit difference gold vs best other option, from the option log-probs
    lp = first.option_logprob
    for k, pair in enumerate(PAIRS):
        gi = OPTIONS.index(pair.gold)
        others = [i for i in range(3) if i != gi]
        want = lp[k, ..., gi] - lp[k, ..., others].max(-1).values
        torch.testing.assert_close(first.logit_diff[k], want, atol=1e-9, rtol=0)
    # the option log-prob scorer: gold option has the highest first-token log-prob
    gold_index = torch.tensor([OPTIONS.index(p.gold) for p in PAIRS])[:, None, None, None]
    assert torch.equal(first.option_correct, first.option_logprob.argmax(-1) == gold_index)
    assert first.baseline["gold_option"].tolist() == [0, 1, 2]
    assert torch.equal(
        first.correct,
        torch.tensor(
            [
                [[[xtl.contains_gold(t, PAIRS[k]) for t in row] for row in comp] for comp in inst]
                for k, inst in enumerate(first.texts_array)
            ]
        ),
    )


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_rows_skip_the_blocks_below_their_target_layer(arch, hooked):
    """A row patching target layer j is the untouched prompt below j: the prompt runs once
    untouched, and each cell's row enters the model at block j with its last prompt token
    (counted in rows per block)."""
    model = hooked(arch, torch.float64)
    seen = {layer: 0 for layer in range(3)}
    whole = {layer: 0 for layer in range(3)}
    length = xtl.tokenize(model, PAIRS[0].target).tokens.shape[1]

    def count(act, hook):
        if act.shape[1] == 1:  # the last prompt token (max_new_tokens=1: no decoding steps)
            seen[hook.layer()] += act.shape[0]
        elif act.shape[1] == length:  # the whole target prompt
            whole[hook.layer()] += act.shape[0]

    components, sources, targets = ("attn", "mlp"), [0, 2], [1, 2]
    with model.hooks([(f"blocks.{j}.hook_resid_pre", count) for j in range(3)]):
        res = xtl.sweep(
            model,
            PAIRS[:1],
            components=components,
            source_layers=sources,
            target_layers=targets,
            max_new_tokens=1,
            progress=False,
        )
    per_target = len(components) * len(sources)  # rows of one target layer
    assert seen == {0: 0, 1: per_target, 2: 2 * per_target}
    assert whole == {0: 1, 1: 1, 2: 1}  # the untouched prompt, once
    want = naive(model, PAIRS[:1], res.spec, 1)
    for (k, c, s, t), (tokens, _, gold_lp) in want.items():
        ci, si, ti = res.index(c, s, t)
        assert res.tokens_array[k, ci, si, ti] == tokens
        assert abs(float(res.gold_logprob[k, ci, si, ti]) - gold_lp) < 1e-9


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_decoding_runs_untouched_blocks_once_per_history(arch, hooked, monkeypatch):
    """A new token's blocks 0..j see a row patched at block j as untouched, so rows of one prompt
    with equal histories run them once: count the rows each block's MLP runs per decoding step
    and check it against the histories in the result, and the tokens against decoding every row."""
    model = hooked(arch, torch.float64)
    steps, n_layers = 6, model.cfg.n_layers
    seen: list[int] = []  # rows through each block's MLP while decoding, in call order
    decoding = []
    real_decode = decode.decode_shared

    def tracing(*args, **kwargs):
        decoding.append(len(args[2]) > len(PAIRS))  # not the decoding of the sources' own answers, a row each
        try:
            return real_decode(*args, **kwargs)
        finally:
            decoding.pop()

    def count(act, hook):
        if decoding and decoding[-1]:
            seen.append(act.shape[0])

    monkeypatch.setattr(decode, "decode_shared", tracing)
    with model.hooks([(f"blocks.{i}.hook_mlp_out", count) for i in range(n_layers)]):
        res = xtl.sweep(
            model, PAIRS, components=("attn", "mlp", "resid"), max_new_tokens=steps, eos_token_id=[], progress=False
        )

    def unshared(model, shared, *args):
        shared.untouched = None
        return real_decode(model, shared, *args)

    monkeypatch.setattr(decode, "decode_shared", unshared)
    every_row = xtl.sweep(
        model, PAIRS, components=("attn", "mlp", "resid"), max_new_tokens=steps, eos_token_id=[], progress=False
    )
    monkeypatch.undo()
    assert (res.tokens_array == every_row.tokens_array).all()
    torch.testing.assert_close(res.gold_logprob, every_row.gold_logprob, atol=1e-12, rtol=0)

    want = 0  # rows patched below a block, plus one per history among the rest
    rows_of = []
    for k in range(len(PAIRS)):
        rows = [
            (tuple(res.tokens_array[(k, *res.index(c, i, j))]), j)
            for c in res.spec.components
            for i in res.spec.source_layers
            for j in res.spec.target_layers
        ]
        rows.append((tuple(res.baseline.loc[k, "tokens"]), n_layers))
        rows_of.append(len(rows))
        for step in range(1, steps):
            top = {}
            for tokens, j in rows:
                top[tokens[:step]] = max(top.get(tokens[:step], -1), j)
            for layer in range(n_layers):
                want += sum(j < layer for _, j in rows) + sum(m >= layer for m in top.values())
    assert len(seen) == (steps - 1) * n_layers  # the three instances decode in one batch
    assert sum(seen) == want < (steps - 1) * n_layers * sum(rows_of)


def test_layer_subsets_and_negative_layers(hooked):
    model = hooked("qwen2")
    res = xtl.sweep(
        model, PAIRS[:2], components="mlp", source_layers=[-1, 0], target_layers=[1], max_new_tokens=2, progress=False
    )
    assert res.spec.source_layers == (2, 0) and res.spec.target_layers == (1,)
    assert res.correct.shape == (2, 1, 2, 1)
    one = xtl.transplant(model, PAIRS[1].source, PAIRS[1].target, 0, 1, "mlp", max_new_tokens=2)
    assert res.texts("mlp", 0, 1, instance=1) == one.text[0]
    with pytest.raises(ValueError, match=r"no cell \('attn', 0, 1\)"):
        res.texts("attn", 0, 1)


CALLS: list = []
INTERRUPT_AT: set = set()


def counting_scorer(text, pair):
    """A module-level scorer (fingerprinted, so resumable) that records its calls and can be made
    to raise KeyboardInterrupt on chosen items."""
    CALLS.append(pair.id)
    if pair.id in INTERRUPT_AT:
        raise KeyboardInterrupt
    return xtl.contains_gold(text, pair)


def test_resume_after_interruption_loses_nothing(hooked, tmp_path):
    model = hooked("qwen2")
    run = tmp_path / "run.parquet"
    CALLS.clear()
    INTERRUPT_AT.add("q2")
    try:
        with pytest.raises(KeyboardInterrupt):
            xtl.sweep(model, PAIRS, max_new_tokens=3, scorer=counting_scorer, out=run, progress=False)
    finally:
        INTERRUPT_AT.clear()
    assert sorted(p.name for p in run.iterdir()) == ["_spec.json", "part-000000.parquet", "part-000001.parquet"]
    with pytest.warns(RunWarning, match=r"partial: 2 of 3 instances finished; missing \[2\]"):
        partial = xtl.SweepResult.load(run)
    assert partial.instances == [0, 1] and partial.missing == [2] and not partial.complete
    assert "1 missing (partial run)" in repr(partial)
    CALLS.clear()
    resumed = xtl.sweep(model, PAIRS, max_new_tokens=3, scorer=counting_scorer, out=run, progress=False)
    assert set(CALLS) == {"q2"}  # finished instances were skipped
    fresh = xtl.sweep(model, PAIRS, max_new_tokens=3, scorer=counting_scorer, progress=False)
    assert resumed.instances == [0, 1, 2] and resumed.complete
    assert (resumed.texts_array == fresh.texts_array).all()
    assert torch.equal(resumed.correct, fresh.correct)
    loaded = xtl.SweepResult.load(run)
    assert loaded.complete and loaded.missing == []
    pd.testing.assert_frame_equal(loaded.to_pandas(), fresh.to_pandas())


def test_resume_with_another_spec_is_an_error(hooked, tmp_path):
    model = hooked("qwen2")
    run = tmp_path / "run.parquet"
    xtl.sweep(model, PAIRS[:1], components="attn", max_new_tokens=2, out=run, progress=False)
    with pytest.raises(ValueError, match=r"different spec \(fields \['components'\] differ\)"):
        xtl.sweep(model, PAIRS[:1], components="mlp", max_new_tokens=2, out=run, progress=False)
    with pytest.raises(ValueError, match=r"fields \['prompt_hashes'\] differ"):
        changed = [xtl.Pair(PAIRS[0].source + "?", PAIRS[0].target, "1", OPTIONS, id="q0", answer_template="{}")]
        xtl.sweep(model, changed, components="attn", max_new_tokens=2, out=run, progress=False)


def test_save_load_round_trip_and_table(hooked, tmp_path):
    model = hooked("llama")
    res = xtl.sweep(model, PAIRS, components=("attn",), max_new_tokens=2, progress=False)
    table = res.to_pandas()
    assert len(table) == 3 * (1 + 9) and table["baseline"].sum() == 3
    assert set(table.columns) >= {
        "instance",
        "id",
        "component",
        "source_layer",
        "target_layer",
        "text",
        "correct",
        "gold_logprob",
        "logit_diff",
    }
    back = xtl.SweepResult.load(res.save(tmp_path / "saved"))
    assert back.spec == res.spec
    torch.testing.assert_close(back.gold_logprob, res.gold_logprob)
    assert (back.texts_array == res.texts_array).all()
    assert pd.read_parquet(tmp_path / "saved").shape[0] == len(table)
    with pytest.raises(FileNotFoundError, match="holds no _spec.json"):
        xtl.SweepResult.load(tmp_path)


def test_bridge_sweep_warns_and_agrees(checkpoints, hooked):
    bridge = xtl.load_model(checkpoints["qwen2"], bridge=True, dtype="float64")
    with pytest.warns(UserWarning, match="re-runs each sequence"):
        slow = xtl.sweep(bridge, PAIRS[:2], components=("attn", "mlp"), max_new_tokens=4, progress=False)
    fast = xtl.sweep(
        hooked("qwen2", torch.float64), PAIRS[:2], components=("attn", "mlp"), max_new_tokens=4, progress=False
    )
    assert (slow.texts_array == fast.texts_array).all()
    torch.testing.assert_close(slow.gold_logprob, fast.gold_logprob, atol=1e-6, rtol=0)


def test_sweep_input_errors(hooked):
    model = hooked("qwen2")
    with pytest.raises(ValueError, match="unknown component 'ffn'"):
        xtl.sweep(model, PAIRS, components=("ffn",))
    with pytest.raises(ValueError, match="source_layer=5 is out of range"):
        xtl.sweep(model, PAIRS, source_layers=[5])
    with pytest.raises(ValueError, match="no pairs given"):
        xtl.sweep(model, [])
    with pytest.raises(ValueError, match="cannot read a"):
        xtl.sweep(model, ["just a string"])
    with pytest.raises(ValueError, match=r"gold '4' is not among the options \['1', '2', '3'\]"):
        xtl.Pair("a", "b", "4", OPTIONS)


def test_progress_bar_shows_instances_and_cell_rate(hooked, capsys):
    xtl.sweep(hooked("qwen2"), PAIRS[:2], components="attn", max_new_tokens=1, progress=True)
    err = capsys.readouterr().err
    assert "2/2" in err and "cells_per_s=" in err and "sweep qwen2-tiny attn 3x3 layers" in err
    xtl.sweep(
        xtl.toy.load_toy_model(),
        xtl.tasks.get("toy-culture").items("sw")[:1],
        components=("attn", "mlp"),
        source_layers=[0],
        max_new_tokens=1,
        progress=True,
    )
    assert "sweep toy-culture sw attn+mlp 1x6 layers" in capsys.readouterr().err


def test_options_sharing_a_first_token_are_said_and_never_a_silent_answer(hooked):
    from xtl.runner import OptionCollisionWarning

    model = hooked("qwen2")
    options = ("xylo-1", "xylo-2")
    pair = xtl.Pair(PROMPTS_EN[0], PROMPTS_SW[0], "xylo-1", options, id="c0")
    firsts = {first_answer_token(model.tokenizer, pair.target, f" {o}") for o in options}
    assert len(firsts) == 1  # both answers start with the same token after the prompt
    with pytest.warns(
        OptionCollisionWarning,
        match=r"1 of 2 instances .* \(id 'c0'\): gold 'xylo-1' and "
        r"\['xylo-2'\] all start with token",
    ):
        res = xtl.sweep(
            model,
            [pair, PAIRS[0]],
            components="attn",
            source_layers=[0],
            target_layers=[0],
            max_new_tokens=1,
            progress=False,
        )
    lp = res.option_logprob[0]
    assert torch.equal(lp[..., 0], lp[..., 1])
    assert res.logit_diff[0].isnan().all() and not res.logit_diff[1].isnan().any()
    assert not res.option_correct[0].any()  # a tie is not an answer
    bound = xtl.upper_bound(res, scoring="logprob").set_index(["language", "component"])
    assert bound["upper_bound"].notna().all()


def test_a_pairs_answer_follows_how_its_prompt_ends():
    assert xtl.Pair("q", "Answer:", "2").answer_template == " {}"
    assert xtl.Pair("q", "Answer: ", "2").answer_template == "{}"
    assert xtl.Pair("q", "Answer:", "2", answer_template="{}").answer_template == "{}"
    assert as_pair({"source": "q", "target": "Answer:", "gold": "2"}).answer_template == " {}"
    with pytest.raises(ValueError, match=r"answer_template must be a string holding '\{\}'"):
        xtl.Pair("q", "a:", "2", answer_template="no slot")


def test_a_result_shows_itself_briefly_in_a_notebook():
    from synthetic import GRID, synthetic

    res = synthetic(GRID)
    text = repr(res)
    assert len(text) < 200 and "4 instances" in text and "arrays [4x1x2x2]" in text
    page = res._repr_html_()
    assert "4 instances, components attn, 2 x 2 layer pairs" in page and "<table" in page
    table = xtl.upper_bound(res).set_index(["language", "component"])
    assert f"{table.loc[('sw', 'any'), 'upper_bound']:.3f}".rstrip("0") in page


@pytest.mark.parametrize(("dtype", "tolerance"), [("bfloat16", 0.05), ("float16", 0.01)])
def test_half_precision_sweeps_agree_with_float32(dtype, tolerance, checkpoints, hooked):
    """The reduced-precision path a GPU runs (weights, prefix cache, shared decoder in bfloat16 or
    float16; statistics in float64): gold log-probs within ``tolerance`` nats of float32 (their spread
    across cells is ~0.6 nats here) and the first new token the same in at least 90% of the cells."""
    reference = xtl.sweep(hooked("llama"), PAIRS, max_new_tokens=4, progress=False)
    model = xtl.load_model(checkpoints["llama"], dtype=dtype, processing=False)
    assert model.cfg.dtype == getattr(torch, dtype)
    res = xtl.sweep(model, PAIRS, max_new_tokens=4, progress=False)
    assert res.gold_logprob.dtype == torch.float64
    assert float((res.gold_logprob - reference.gold_logprob).abs().max()) < tolerance
    firsts = [a[:1] == b[:1] for a, b in zip(res.tokens_array.flat, reference.tokens_array.flat)]
    assert sum(firsts) >= 0.9 * len(firsts)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_models_the_decoder_does_not_cover_run_through_transformer_lens(arch, hooked, monkeypatch):
    """Where ``xtl.decode.supports`` says no (attention softcaps, QK norms, parallel blocks ...),
    rows run their last prompt token through TransformerLens' attention and decode with its cache,
    unpacked: the same results as xtl's own passes (float64)."""
    import xtl.decode

    model = hooked(arch, torch.float64)
    calls, own = [], xtl.decode.last_token_pass
    monkeypatch.setattr(xtl.decode, "last_token_pass", lambda *args: calls.append(1) or own(*args))
    want = xtl.sweep(model, PAIRS, max_new_tokens=4, progress=False)
    assert calls  # xtl's own pass ran the rows
    monkeypatch.setattr(xtl.decode, "supports", lambda model, total_len: False)
    calls.clear()
    got = xtl.sweep(model, PAIRS, max_new_tokens=4, progress=False)
    assert not calls  # TransformerLens' did
    torch.testing.assert_close(got.gold_logprob, want.gold_logprob, atol=1e-9, rtol=0)
    assert (got.texts_array == want.texts_array).all()
