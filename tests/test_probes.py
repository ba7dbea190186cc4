"""xtl.select.probe: the source answer's logit lens and the attribution toward it, against the
Hugging Face model (tests/hf_reference.py), and what they may not read (the gold).

Tolerance in float64: 1e-6, as the lens and attribution tests (the same quantities computed two ways)."""

import hf_reference as ref
import numpy as np
import pytest
import torch
from conftest import PROMPTS_EN, PROMPTS_SW

import xtl
from xtl import select
from xtl.errors import InputError, XtlWarning
from xtl.pairs import first_answer_token
from xtl.probes import load_probes, save_probes
from xtl.scripts import answer_line

LAYERS = dict(source_layers=[0, 2], target_layers=[0, 1, 2])


def _pairs(gold):
    return [xtl.Pair(source=s, target=t, gold=gold) for s, t in zip(PROMPTS_EN, PROMPTS_SW)]


@pytest.fixture(scope="module")
def llama(checkpoints):
    model = xtl.load_model(checkpoints["llama"], dtype="float64")
    pairs = _pairs("zz")
    res = xtl.sweep(model, pairs, components=("attn", "mlp"), max_new_tokens=3, progress=False, **LAYERS)
    return model, pairs, res, select.probe(model, pairs, res, progress=False)


def test_probes_match_the_hf_reference(llama, hf):
    """lens_logprob/lens_rank: the source's own first answer token read from each residual stream
    of the source pass (HF hidden_states through the final norm and lm_head; the last entry is the
    output, where that token is the greedy one: rank 0); attribution: each cell's gradient .
    (source value - own value) of the log-prob of the first token of the source's answer after the
    target prompt, as the attribution test computes it."""
    model, pairs, res, probed = llama
    reference = hf("llama", torch.float64)
    n = model.cfg.n_layers
    for k, pair in enumerate(pairs):
        row = probed.baseline.loc[k]
        src = xtl.tokenize(model, pair.source).tokens.cpu()
        ones = torch.ones_like(src)
        token = int(ref.generate(reference, src, ones, 1)[1][0, 0])
        assert token == row["source_tokens"][0]
        with torch.no_grad():
            out = reference(input_ids=src, output_hidden_states=True)
            lens = [reference.lm_head(reference.model.norm(h[:, -1])).log_softmax(-1)[0] for h in out.hidden_states[:n]]
            lens.append(out.logits[0, -1].log_softmax(-1))
        want = torch.stack([lp[token] for lp in lens])
        torch.testing.assert_close(torch.tensor(row["lens_logprob"]), want, atol=1e-6, rtol=0)
        assert row["lens_rank"].tolist() == [int((lp > lp[token]).sum()) for lp in lens] and row["lens_rank"][-1] == 0
        answer = answer_line(row["source_text"])
        assert answer, "a source that answered nothing would leave the attribution undefined"
        wanted = first_answer_token(model.tokenizer, pair.target, pair.answer_template.format(answer))
        tgt = xtl.tokenize(model, pair.target).tokens.cpu()
        for c, component in enumerate(("attn", "mlp")):
            for si, s in enumerate(LAYERS["source_layers"]):
                value = ref.capture(reference, src, ones, ref.READ_WRITE[component][0], s)[0]
                for ti, t in enumerate(LAYERS["target_layers"]):
                    change = ref.attribution(reference, tgt, torch.ones_like(tgt), component, t, value, [wanted])[0]
                    assert row["attribution"][c, si, ti] == pytest.approx(float(change), abs=1e-6, rel=1e-6)
    assert np.abs(np.stack(probed.baseline["attribution"])).max() > 1e-4  # cells that move it


def test_probes_do_not_read_the_gold(llama):
    """The same prompts swept with other golds give the same probes."""
    model, _, _, probed = llama
    pairs = _pairs("another answer")
    other = xtl.sweep(model, pairs, components=("attn", "mlp"), max_new_tokens=3, progress=False, **LAYERS)
    again = select.probe(model, pairs, other, progress=False)
    for name in ("lens_logprob", "lens_rank", "attribution"):
        np.testing.assert_array_equal(np.stack(probed.baseline[name]), np.stack(again.baseline[name]))


def test_probe_refuses_what_it_cannot_read(llama, tmp_path):
    model, pairs, res, probed = llama
    with pytest.raises(InputError, match=r"these 2 pairs are not the 3 the sweep ran"):
        select.probe(model, pairs[:2], res)
    with pytest.raises(InputError, match="are not the 3 the sweep ran"):
        select.probe(model, _pairs("another answer"), res)  # other golds: another sweep
    with pytest.warns(XtlWarning, match="no item has options"):
        approx = xtl.attribution_sweep(model, pairs, ("attn",), progress=False)
    with pytest.raises(InputError, match="reads an exact sweep's source answers"):
        select.probe(model, pairs, approx)
    view = select.Unlabelled(res)
    for selector, name in ((select.LensGuided(), "lens_rank"), (select.AttributionGuided(), "attribution")):
        with pytest.raises(InputError, match=rf"reads '{name}', a probe this sweep does not hold: .*probe\(model"):
            selector.fit(probed).choose(view)


def test_probes_are_saved_beside_a_run_and_only_read_back_for_it(llama, tmp_path):
    model, pairs, res, probed = llama
    path = tmp_path / "sample.probes.npz"
    save_probes(probed, path)
    back = load_probes(res, path)
    for name in ("lens_logprob", "lens_rank", "attribution"):
        np.testing.assert_array_equal(np.stack(back.baseline[name]), np.stack(probed.baseline[name]))
    assert back.baseline["lens_rank"].iloc[0].dtype.kind == "i"
    assert load_probes(res.take([0, 1]), path) is None  # other instances
    assert load_probes(res, tmp_path / "none.npz") is None
    other = xtl.sweep(model, pairs, components=("attn",), max_new_tokens=3, progress=False, **LAYERS)
    assert load_probes(other, path) is None  # another spec
    assert "attribution" in select.Unlabelled(back).baseline and "lens_rank" not in select.Unlabelled(res).baseline
