"""Bad input gets a clear error naming the value and the valid choices."""

import importlib
import types

import pytest
import torch
from conftest import PROMPTS_EN, PROMPTS_SW

import xtl


@pytest.fixture(scope="module")
def model(hooked):
    return hooked("llama")


def test_unknown_component(model):
    match = r"unknown component 'ffn'; valid components: \['attn', 'attn_as_released', 'mlp', 'resid'\]"
    with pytest.raises(ValueError, match=match):
        xtl.TransplantSpec(0, 0, "ffn")
    with pytest.raises(ValueError, match=match):
        xtl.transplant(model, PROMPTS_EN, PROMPTS_SW, 0, 0, "ffn")
    with pytest.raises(ValueError, match=match):
        xtl.capture(model, PROMPTS_EN, components=("attn", "ffn"))


@pytest.mark.parametrize("source,target,bad", [(3, 0, "source_layer=3"), (0, -4, "target_layer=-4")])
def test_layer_out_of_range(model, source, target, bad):
    with pytest.raises(ValueError, match=rf"{bad} is out of range for a model with 3 layers; valid: -3..2"):
        xtl.transplant(model, PROMPTS_EN, PROMPTS_SW, source, target, "attn")


def test_non_integer_layer():
    with pytest.raises(ValueError, match="source_layer must be an int, got 1.5"):
        xtl.TransplantSpec(1.5, 0)


def test_batch_size_mismatch(model):
    with pytest.raises(ValueError, match="source has 3 prompts but target has 2"):
        xtl.transplant(model, PROMPTS_EN, PROMPTS_SW[:2], 0, 0)
    acts = xtl.capture(model, PROMPTS_EN, components=("attn",))
    hooks = xtl.transplant_hooks(model, xtl.TransplantSpec(0, 0), acts)
    with pytest.raises(ValueError, match="source batch has 3 prompts but the target batch has 1"):
        model.run_with_hooks(xtl.tokenize(model, PROMPTS_SW[0]).tokens, fwd_hooks=hooks)


def test_activations_missing_component(model):
    acts = xtl.capture(model, PROMPTS_EN, components=("attn",))
    with pytest.raises(ValueError, match=r"hold no 'mlp'; they hold \['attn'\]"):
        xtl.transplant_hooks(model, xtl.TransplantSpec(0, 0, "mlp"), acts)


@pytest.mark.parametrize("prompts", ["", ["Human: hi", "   "], []])
def test_empty_prompt(model, prompts):
    with pytest.raises(ValueError, match="empty|no prompts"):
        xtl.tokenize(model, prompts)


def test_bad_max_new_tokens(model):
    with pytest.raises(ValueError, match="max_new_tokens must be an int >= 1, got 0"):
        xtl.transplant(model, PROMPTS_EN[0], PROMPTS_SW[0], 0, 0, max_new_tokens=0)


def test_model_without_the_hook_points(model):
    fake = types.SimpleNamespace(
        cfg=model.cfg,
        tokenizer=model.tokenizer,
        hook_dict={"embed": None},
        to_tokens=model.to_tokens,
        parameters=model.parameters,
    )
    with pytest.raises(ValueError, match=r"no hook point\(s\) \['blocks.0.hook_attn_out'"):
        xtl.capture(fake, PROMPTS_EN, components=("attn",))


def test_model_without_tokenizer(checkpoints):
    model = xtl.load_model(checkpoints["qwen2"])
    model.tokenizer = None
    with pytest.raises(ValueError, match="has no tokenizer"):
        xtl.transplant(model, PROMPTS_EN[0], PROMPTS_SW[0], 0, 0)


def test_prompt_longer_than_context(model):
    with pytest.raises(ValueError, match=r"prompt 1 is \d+ tokens long; the model's context \(cfg.n_ctx\) is 1024"):
        xtl.tokenize(model, ["short", "word " * 2000])


def test_context_must_hold_the_prompt_and_the_new_tokens_before_any_work(model, monkeypatch):
    long_target = "word " * 130  # fits the 1024-token context alone, not with 400 new tokens
    n = xtl.tokenize(model, long_target).tokens.shape[1]
    assert n < 1024 < n + 400
    calls = []
    monkeypatch.setattr(importlib.import_module("xtl.sweeping"), "sweep_instances", lambda *a, **k: calls.append(1))
    with pytest.raises(
        ValueError,
        match=rf"instance 1 \(id None\): its target prompt is {n} tokens and "
        rf"max_new_tokens=400, {n + 400} positions in all; .*is 1024",
    ):
        xtl.sweep(model, [("a", "b", "x"), ("a", long_target, "x")], max_new_tokens=400, progress=False)
    assert calls == []  # refused before the first instance ran
    with pytest.raises(ValueError, match=rf"the prompt is {n} tokens and max_new_tokens=400"):
        xtl.transplant(model, "a", long_target, 0, 0, max_new_tokens=400)


def test_token_tensors_are_checked_against_the_model(model):
    d_vocab = model.cfg.d_vocab
    with pytest.raises(
        ValueError,
        match=rf"token id {d_vocab} \(row 0, position 1\) is outside the model's "
        rf"vocabulary: valid ids are 0..{d_vocab - 1}",
    ):
        xtl.capture(model, torch.tensor([[1, d_vocab, 3]]))
    with pytest.raises(ValueError, match=r"token ids must be >= 0; found -1"):
        xtl.capture(model, torch.tensor([[1, -1, 3]]))
    with pytest.raises(TypeError, match=r"token ids must be an integer tensor, got dtype torch.float32"):
        xtl.capture(model, torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"prompt 0 is 1100 tokens long; the model's context \(cfg.n_ctx\) is 1024"):
        xtl.capture(model, torch.ones((1, 1100), dtype=torch.long))
    with pytest.raises(
        ValueError, match=r"attention_mask must hold only 0 \(padding\) and 1 \(token\); it holds \[2\]"
    ):
        xtl.PromptBatch(torch.tensor([[1, 2]]), torch.tensor([[1, 2]]))


@pytest.mark.parametrize("value", ["yes", 1, None.__class__])
def test_prepend_bos_must_be_a_bool(model, value):
    with pytest.raises(TypeError, match=r"prepend_bos must be True, False or None"):
        xtl.tokenize(model, "hi", prepend_bos=value)
    with pytest.raises(TypeError, match=r"prepend_bos must be True, False or None"):
        xtl.sweep(model, [("a", "b", "x")], prepend_bos=value, progress=False)


def test_integers_of_any_type_are_layers(model):
    import numpy as np

    spec = xtl.TransplantSpec(np.int64(1), torch.tensor(-1), "mlp")
    assert spec == xtl.TransplantSpec(1, -1, "mlp") and type(spec.source_layer) is int
    res = xtl.sweep(
        model,
        [(PROMPTS_EN[0], PROMPTS_SW[0], "x")],
        components="attn",
        source_layers=[np.int32(0)],
        target_layers=torch.tensor([1, 2]),
        max_new_tokens=1,
        progress=False,
    )
    assert res.spec.source_layers == (0,) and res.spec.target_layers == (1, 2)
    one = xtl.sweep(
        model,
        [(PROMPTS_EN[0], PROMPTS_SW[0], "x")],
        components="attn",
        source_layers=np.int64(-1),
        target_layers=0,
        max_new_tokens=1,
        progress=False,
    )
    assert one.spec.source_layers == (2,) and one.spec.target_layers == (0,)
    for bad in ("12", 1.5):
        with pytest.raises(ValueError, match=r"source_layers must be layers \(ints\)"):
            xtl.sweep(model, [(PROMPTS_EN[0], PROMPTS_SW[0], "x")], source_layers=bad, progress=False)
    for bad in (True, 1.0, torch.tensor(1.0), torch.tensor([1]), "1"):
        with pytest.raises(ValueError, match="source_layer must be an int"):
            xtl.TransplantSpec(bad, 0)


def test_blank_gold_and_non_bool_scorers(model):
    with pytest.raises(ValueError, match=r"Pair.gold is blank \(' '\)"):
        xtl.Pair("a", "b", " ")
    with pytest.raises(ValueError, match=r"options must be non-blank strings; got \[''\]"):
        xtl.Pair("a", "b", "x", ("x", ""))
    with pytest.raises(TypeError, match=r"scorer .* returned 'no' \(str\) for instance 0 .* must return True or False"):
        xtl.sweep(
            model,
            [(PROMPTS_EN[0], PROMPTS_SW[0], "x")],
            components="attn",
            source_layers=[0],
            target_layers=[0],
            max_new_tokens=1,
            scorer=lambda text, pair: "no",
            progress=False,
        )
    with pytest.raises(TypeError, match="scorer must be a function"):
        xtl.sweep(model, [(PROMPTS_EN[0], PROMPTS_SW[0], "x")], scorer="contains", progress=False)


def test_nan_weights_and_logits_are_reported(checkpoints, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(checkpoints["llama"], broken)
    weights = load_file(broken / "model.safetensors")
    name = next(k for k in weights if "mlp.down_proj" in k)
    weights[name][0, 0] = float("nan")
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(xtl.model.NonFiniteError, match=r"has NaN/Inf in \d+ parameter\(s\): \['blocks.\d.mlp.W_out'"):
        xtl.load_model(broken)
    model = xtl.load_model(checkpoints["llama"])
    with torch.no_grad():
        model.blocks[0].mlp.W_out[:, :] = float("nan")
    with pytest.raises(
        xtl.model.NonFiniteError,
        match=r"prompt pass: .*NaN/Inf logits in row\(s\) \[0\]; "
        r"parameters holding NaN/Inf: \['blocks.0.mlp.W_out'\]",
    ):
        xtl.transplant(model, PROMPTS_EN[0], PROMPTS_SW[0], 0, 0, max_new_tokens=2)


def test_tokenizer_is_checked_against_the_model_vocabulary(checkpoints):
    from transformers import AutoTokenizer

    model = xtl.load_model(checkpoints["llama"])
    own = model.tokenizer
    bigger = AutoTokenizer.from_pretrained(checkpoints["llama"], local_files_only=True)
    bigger.add_tokens([f"<extra{k}>" for k in range(5)])
    model.tokenizer = bigger
    with pytest.raises(
        ValueError,
        match=r"has ids up to 404, but model HookedTransformer 'llama-tiny' has "
        r"embeddings for ids 0..399 only",
    ):
        xtl.tokenize(model, "hello")
    small = xtl.testing.tokenizer()
    small_model = xtl.load_model(checkpoints["llama"])
    small_model.cfg.d_vocab = 1000  # a model whose vocabulary is far larger than this tokenizer's
    small_model.tokenizer = small
    with pytest.warns(xtl.model.VocabularyWarning, match=r"has 400 tokens but model .* vocabulary of 1000"):
        xtl.tokenize(small_model, "hello")
    model.tokenizer = own
    xtl.tokenize(model, "hello")


def test_a_checkpoint_keeps_the_tokenizer_it_was_saved_with():
    """The toy's tokenizer.json (a byte-level BPE saved as the generic class) is what the model
    reads: transformers 5's AutoTokenizer would rebuild it as Qwen2Tokenizer, whose pre-tokenizer
    splits " 1" into " " and "1", which the model never saw in training."""
    from transformers import PreTrainedTokenizerFast

    model = xtl.toy.load_toy_model()
    saved = PreTrainedTokenizerFast.from_pretrained(xtl.toy.SHIPPED, local_files_only=True)
    item = xtl.tasks.get("toy-understanding").items("sw")[0]
    assert " ( 1 )" in item.target
    assert model.to_tokens(item.target, prepend_bos=False)[0].tolist() == saved.encode(item.target)
    assert len(model.tokenizer) == model.cfg.d_vocab == 2000


def test_batch_sizes_and_stop_ids_are_checked(model):
    pair = [(PROMPTS_EN[0], PROMPTS_SW[0], "x")]
    for bad in ({"max_batch": 0}, {"max_batch": -1}, {"memory_budget": 0}):
        with pytest.raises(ValueError, match=rf"{next(iter(bad))} must be an int >= 1"):
            xtl.sweep(model, pair, progress=False, **bad)
    with pytest.raises(ValueError, match=r"eos_token_id \[-1\] outside the model's vocabulary; valid ids are 0..399"):
        xtl.sweep(model, pair, eos_token_id=-1, progress=False)
    with pytest.raises(ValueError, match=r"eos_token_id must be an int, got 'x'"):
        xtl.transplant(model, PROMPTS_EN[0], PROMPTS_SW[0], 0, 0, eos_token_id="x")


@pytest.fixture(scope="module")
def toy():
    return xtl.toy.load_toy_model()


@pytest.fixture(scope="module")
def toy_sweep(toy):
    task = xtl.tasks.get("toy-culture")
    return task, xtl.sweep(toy, task.items("fr")[:2], max_new_tokens=1, progress=False)


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "call, kind, message",
    [
        (
            lambda m, t, r: xtl.sweep(m, t.items("fr")[:1], source_layers=[0, -6], progress=False),
            xtl.XtlError,
            r"source_layers lists layer 0 more than once \(0, -6; negative layers count from the end of 6\)",
        ),
        (
            lambda m, t, r: xtl.sweep(m, t.items("fr")[:1], components=["attn", "attn"], progress=False),
            xtl.XtlError,
            r"component 'attn' is listed more than once in \['attn', 'attn'\]",
        ),
        (
            lambda m, t, r: xtl.sweep(m, t.items("fr")[:1], components=None, progress=False),
            TypeError,
            r"components must be a name or a list of names .* got NoneType",
        ),
        (
            lambda m, t, r: xtl.sweep(m, None, progress=False),
            TypeError,
            r"pairs must be a list of items .* got NoneType",
        ),
        (
            lambda m, t, r: xtl.sweep(m, t.items("fr")[:1], gpus_per_worker=NAN, progress=False),
            ValueError,
            r"gpus_per_worker must be a number >= 0, got nan",
        ),
        (lambda m, t, r: xtl.sweep(m, t.items("fr")[:1], progress="no"), TypeError, r"progress must be True or False"),
        (
            lambda m, t, r: xtl.transplant(m, None, "b", 0, 0),
            TypeError,
            r"prompts must be a string or a list of strings, got NoneType",
        ),
        (lambda m, t, r: xtl.transplant(m, 5, "b", 0, 0), TypeError, r"got int 5"),
        (
            lambda m, t, r: xtl.transplant(None, "a", "b", 0, 0),
            TypeError,
            r"model must be a TransformerLens HookedTransformer or TransformerBridge .* got NoneType",
        ),
        (
            lambda m, t, r: xtl.evaluate(m, t, languages=[], progress=False),
            ValueError,
            r"languages is empty; pass None for the task's languages \['fr', 'es', 'sw', 'ru'\]",
        ),
        (
            lambda m, t, r: xtl.evaluate(m, t, limit=NAN, progress=False),
            ValueError,
            r"limit must be an int >= 1, got nan",
        ),
        (
            lambda m, t, r: xtl.evaluate(m, t, limit=-1, progress=False),
            ValueError,
            r"limit must be an int >= 1, got -1",
        ),
        (
            lambda m, t, r: xtl.best_source_layer(r, "xx", "attn"),
            ValueError,
            r"no instances in language 'xx'; this result holds \['fr'\]",
        ),
        (
            lambda m, t, r: xtl.best_source_layer(r, "fr", "attn", 99),
            ValueError,
            r"target_layer=99 is out of range for a model with 6 layers",
        ),
        (lambda m, t, r: r.texts("attn", 6, 0), ValueError, r"source_layer=6 is out of range"),
        (lambda m, t, r: xtl.compare_settings(r, "default"), TypeError, r"default must be an xtl.TransplantSpec"),
        (lambda m, t, r: xtl.rank_agreement(r, 5), TypeError, r"b must be an xtl.SweepResult, got int 5"),
        (lambda m, t, r: xtl.upper_bound([1, 2]), TypeError, r"result must be an xtl.SweepResult, got list"),
        (
            lambda m, t, r: xtl.plot.heatmap(r, components=[]),
            ValueError,
            r"components is empty; pass None for all of \['attn', 'mlp'\]",
        ),
        (lambda m, t, r: xtl.Pair("a", "b", "x", ("x", "y", "x")), ValueError, r"option 'x' is listed more than once"),
        (lambda m, t, r: xtl.lens(m, {"en": "a"}, []), ValueError, r"lens needs answers as a non-empty dict"),
        (
            lambda m, t, r: xtl.transplant_hooks(m, xtl.capture(m, "a"), xtl.TransplantSpec(0, 0)),
            TypeError,
            r"spec must be an xtl.TransplantSpec \(the second argument\), got Activations",
        ),
        (lambda m, t, r: xtl.Pair(" ", "b", "x"), ValueError, r"Pair.source is blank \(' '\); every prompt needs text"),
        (lambda m, t, r: xtl.contains_gold(3, xtl.Pair("a", "b", "x")), TypeError, r"takes a str and an xtl.Pair"),
        (
            lambda m, t, r: xtl.evaluate(m, 3, progress=False),
            TypeError,
            r"task must be a task \(xtl.tasks.get\(name\)\) or a registered task's name .* got int 3",
        ),
        (lambda m, t, r: xtl.evaluate(m, "toy-nope", progress=False), ValueError, r"unknown task 'toy-nope'"),
        (
            lambda m, t, r: xtl.tasks.get("world-facts", colour="red"),
            ValueError,
            r"task 'world-facts' has no option 'colour'; valid: data, rule, check$",
        ),
        (
            lambda m, t, r: xtl.tasks.get("toy-culture", n_country=3),
            ValueError,
            r"no option 'n_country'; valid: data, rule, check, seed, n_countries",
        ),
        (
            lambda m, t, r: xtl.transplant_hooks(
                m, xtl.TransplantSpec(0, 0), xtl.capture(m, ["a b", "c d"]), positions=torch.tensor([1, 2, 3])
            ),
            ValueError,
            r"positions must hold one integer index per row \(2, the rows of acts\), got a torch.int64 tensor "
            r"of shape \(3,\)",
        ),
        (
            lambda m, t, r: xtl.transplant_hooks(m, xtl.TransplantSpec(0, 0), xtl.capture(m, "a b"), positions="last"),
            TypeError,
            r"positions must be None, an int, one index per row or the target PromptBatch, got str 'last'",
        ),
        (
            lambda m, t, r: xtl.report.write_report({"x": 3}, "unused", png=False),
            TypeError,
            r"results must map names to xtl.SweepResult; not results: \{'x': 'int'\}",
        ),
        (
            lambda m, t, r: xtl.report.write_report([r], "unused", png=False),
            TypeError,
            r"results must be a dict of name -> xtl.SweepResult, got list",
        ),
        (
            lambda m, t, r: xtl.report.write_report({"x": r}, f"{__file__}/out", png=False),  # under a file
            ValueError,
            r"cannot create the output directory '.*test_errors.py/out': Not a directory; choose a writable path",
        ),
        (
            lambda m, t, r: xtl.load_model(xtl.toy.SHIPPED, device="tpu"),
            ValueError,
            r"unknown device 'tpu'; valid: 'cpu', 'cuda', 'cuda:N', 'mps' or None",
        ),
    ],
)
def test_bad_input_gets_one_clear_xtl_error(toy, toy_sweep, call, kind, message):
    task, res = toy_sweep
    with pytest.raises(kind, match=message) as caught:
        call(toy, task, res)
    assert isinstance(caught.value, xtl.XtlError)


def test_the_cli_checks_component_names_before_loading_the_model(capsys, monkeypatch):
    from xtl import cli

    monkeypatch.setattr(cli, "_load", lambda *a, **k: pytest.fail("the model was loaded"))
    assert (
        cli.main(
            ["sweep", "--model", "toy", "--task", "toy-culture", "--components", "attn,attention", "--out", "unused"]
        )
        == 2
    )
    assert "unknown component 'attention'" in capsys.readouterr().err
