"""The cross-lingual logit lens against the Hugging Face model's own hidden states."""

import pytest
import torch
from conftest import PROMPTS_EN, PROMPTS_SW

import xtl
from xtl.pairs import first_answer_token

ANSWERS = {"en": "1", "sw": "2"}
PROMPTS = {"en": PROMPTS_EN[2], "sw": PROMPTS_SW[1]}


def test_lens_reads_each_residual_stream_as_the_hf_model_would(hooked, hf):
    """Layer l is the residual stream entering block l (HF ``hidden_states[l]``) through the final norm
    and the unembedding; the last layer is the model's output. Float64 within 1e-6 (the parity tests'
    tolerance), Llama shape (RMSNorm: the processed residual stream is the HF one)."""
    model, reference = hooked("llama", torch.float64), hf("llama", torch.float64)
    frame = xtl.lens(model, PROMPTS, ANSWERS)
    n = model.cfg.n_layers
    assert len(frame) == 2 * (n + 1) * 2 and set(frame["condition"]) == {"untouched"}
    for language, prompt in PROMPTS.items():
        ids = xtl.tokenize(model, prompt).tokens.cpu()
        with torch.no_grad():
            out = reference(input_ids=ids, output_hidden_states=True)
            states = [reference.model.norm(h[:, -1]) for h in out.hidden_states[:n]]
            want = [reference.lm_head(h).log_softmax(-1)[0] for h in states] + [out.logits[0, -1].log_softmax(-1)]
        for answer_language, answer in ANSWERS.items():
            token = first_answer_token(model.tokenizer, prompt, answer)
            got = frame[(frame.prompt_language == language) & (frame.answer_language == answer_language)]
            assert got["layer"].tolist() == list(range(n + 1)) and (got["token"] == token).all()
            torch.testing.assert_close(
                torch.tensor(got["logprob"].to_numpy()), torch.stack([w[token] for w in want]), atol=1e-6, rtol=0
            )  # as test_parity_hf


def test_lens_after_a_transplant_ends_at_the_transplant_output(hooked):
    model = hooked("qwen2", torch.float64)
    spec = xtl.TransplantSpec(source_layer=2, target_layer=1, component="mlp")
    sources = {"en": PROMPTS_SW[0], "sw": PROMPTS_EN[0]}
    frame = xtl.lens(model, PROMPTS, ANSWERS, spec=spec, sources=sources)
    n = model.cfg.n_layers
    for language, prompt in PROMPTS.items():
        res = xtl.transplant(model, sources[language], prompt, 2, 1, "mlp", max_new_tokens=1)
        for answer_language, answer in ANSWERS.items():
            token = first_answer_token(model.tokenizer, prompt, answer)
            rows = frame[(frame.prompt_language == language) & (frame.answer_language == answer_language)]
            after = rows[rows.condition == "transplanted"].set_index("layer")["logprob"]
            before = rows[rows.condition == "untouched"].set_index("layer")["logprob"]
            assert after[n] == pytest.approx(float(res.logprobs[0, token]), abs=1e-9)
            assert before[n] == pytest.approx(float(res.baseline_logits.log_softmax(-1)[0, token]), abs=1e-9)
            assert after[1] == pytest.approx(before[1], abs=1e-12)  # below the target layer nothing changed
            assert abs(after[2] - before[2]) > 1e-6


def test_lens_figure_and_errors(hooked):
    model = hooked("qwen2")
    frame = xtl.lens(model, PROMPTS, ANSWERS)
    fig = xtl.plot.lens(frame)
    assert len(fig.data) == 2 * 2  # prompt languages x answer languages
    assert [a.text for a in fig.layout.annotations] == ["prompt in en", "prompt in sw"]
    assert "logit lens" in fig.layout.title.text
    with pytest.raises(ValueError, match=r"sources has none for \['sw'\]"):
        xtl.lens(model, PROMPTS, ANSWERS, spec=xtl.TransplantSpec(0, 0, "attn"), sources={"en": "x"})
    with pytest.raises(ValueError, match="lens needs prompts"):
        xtl.lens(model, {}, ANSWERS)
    with pytest.raises(ValueError, match=r"unknown value 'p'; valid: \['prob', 'logprob'\]"):
        xtl.plot.lens(frame, "p")
