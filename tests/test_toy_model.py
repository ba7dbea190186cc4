"""The shipped toy model: offline loading, the model card's numbers, exactness and parity on it."""

import re

import hf_reference as ref
import pytest
import torch

import xtl
from xtl.toy import SHIPPED
from xtl.toy.card import CARD, TASKS

MAX_NEW_TOKENS = 4  # as the model card measures


@pytest.fixture(scope="module")
def toy():
    return xtl.toy.load_toy_model()


def card_baselines() -> dict[tuple[str, str], tuple[str, str]]:
    """``(task, language) -> (source side, target side)`` counts from the card's first table."""
    rows = re.findall(
        r"^\| (toy-[a-z]+) \| (en2x|x2en) \| ([a-z]+) \| (\d+/\d+) \| (\d+/\d+) \|$", CARD.read_text(), re.MULTILINE
    )
    return {(task, lang): (src, tgt) for task, _, lang, src, tgt in rows}


def test_shipped_model_loads_offline_and_is_small(toy):
    assert toy.cfg.original_architecture == "Qwen2ForCausalLM" and toy.cfg.n_layers >= 6
    size = sum(f.stat().st_size for f in SHIPPED.iterdir())
    assert size < 8 * 2**20, size  # a few MB, inside the package
    assert (SHIPPED / "tokenizer.json").is_file() and (SHIPPED / "model.safetensors").is_file()
    text = "the capital of"
    assert toy.tokenizer.decode(toy.tokenizer.encode(text, add_special_tokens=False)) == text


@pytest.mark.slow
def test_model_card_baselines_are_reproduced_exactly(toy):
    card = card_baselines()
    for name in TASKS:
        task = xtl.tasks.get(name)
        reverse = "x2en" if task.direction == "en2x" else "en2x"
        counts = {}
        for side, direction in (("source", reverse), ("target", task.direction)):
            frame = xtl.evaluate(
                toy, task, direction=direction, setting="baseline", max_new_tokens=MAX_NEW_TOKENS, progress=False
            )
            counts[side] = {
                row.language: f"{round(row.baseline * row.instances)}/{row.instances}" for row in frame.itertuples()
            }
        for lang in task.languages:
            assert card[name, lang] == (counts["source"][lang], counts["target"][lang]), (name, lang)


def test_toy_sweep_equals_one_transplant_per_cell(toy):
    model = xtl.toy.load_toy_model(dtype=torch.float64)
    items = [xtl.tasks.get(name).items("sw")[0] for name in TASKS]
    layers = [0, 2, model.cfg.n_layers - 1]
    res = xtl.sweep(
        model,
        items,
        components=("attn", "mlp"),
        source_layers=layers,
        target_layers=layers,
        max_new_tokens=MAX_NEW_TOKENS,
        progress=False,
    )
    for k, item in enumerate(items):
        for c in ("attn", "mlp"):
            for s in layers:
                for t in layers:
                    r = xtl.transplant(
                        model, item.source, item.target, s, t, c, max_new_tokens=MAX_NEW_TOKENS, baseline=False
                    )
                    assert res.tokens_array[(k, *res.index(c, s, t))] == r.tokens[0, : int(r.lengths[0])].tolist()


def test_transplant_on_toy_matches_hf_reference():
    from transformers import AutoModelForCausalLM

    model = xtl.toy.load_toy_model(dtype=torch.float64)
    reference = AutoModelForCausalLM.from_pretrained(
        SHIPPED, dtype=torch.float64, local_files_only=True, attn_implementation="sdpa"
    ).eval()
    items = xtl.tasks.get("toy-generation").items("ru")[:3]
    tok = model.tokenizer
    bos = [tok.bos_token_id]  # as TransformerLens prepends it
    src = ref.left_pad([bos + tok.encode(i.source, add_special_tokens=False) for i in items], tok.pad_token_id)
    tgt = ref.left_pad([bos + tok.encode(i.target, add_special_tokens=False) for i in items], tok.pad_token_id)
    for component in ("attn", "mlp"):
        for s, t in [(0, 0), (3, 1), (5, 5)]:
            res = xtl.transplant(
                model,
                xtl.PromptBatch(*src),
                xtl.PromptBatch(*tgt),
                s,
                t,
                component,
                max_new_tokens=MAX_NEW_TOKENS,
                eos_token_id=[],
                baseline=False,
            )
            want_lp, want_tokens = ref.generate(reference, *tgt, MAX_NEW_TOKENS, patch=(component, s, t, *src))
            # float64; the trained model's log-probs reach -30, and differences of ~1e-6 in them
            # (2e-7 relative) are the size of TransformerLens' own cached-vs-uncached differences
            torch.testing.assert_close(res.logprobs, want_lp, atol=1e-6, rtol=1e-6)
            assert torch.equal(res.tokens.cpu(), want_tokens), (component, s, t)
