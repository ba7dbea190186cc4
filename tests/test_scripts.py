"""The writing system of a text (xtl.scripts), and the label-free fields a sweep records."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import PROMPTS_EN, PROMPTS_SW

import xtl
from xtl.errors import InputError
from xtl.scripts import LANGUAGE_SCRIPTS, answer_line, in_language_script, script_counts, script_of


@pytest.fixture(scope="module")
def model(hooked):
    return hooked("llama", torch.float64)


PAIRS = [xtl.Pair(PROMPTS_EN[0], PROMPTS_SW[0], "1", ("1", "2"), answer_template="{}")]


@pytest.mark.parametrize(
    "text, script",
    [
        (" Paris", "Latin"),
        ("Nairobi.", "Latin"),
        (" Париж", "Cyrillic"),
        (" باريس", "Arabic"),
        (" पेरिस", "Devanagari"),
        ("巴黎", "Han"),
        ("パリ", "Katakana"),
        ("Αθήνα", "Greek"),
        ("กรุงเทพ", "Thai"),
        ("አዲስ አበባ", "Ethiopic"),
        ("서울", "Hangul"),
        (" 42, (A).", "Latin"),  # the option letter is a Latin letter
        (" 42 .", ""),
        ("", ""),
    ],
)
def test_script_of(text, script):
    assert script_of(text) == script


def test_a_mixed_text_is_in_the_script_of_most_of_its_letters():
    assert script_counts("Paris Париж!") == {"Latin": 5, "Cyrillic": 5}
    assert script_of("Paris Париж!") == "Latin"  # a tie: the first in SCRIPTS
    assert script_of("Paris Парижск") == "Cyrillic"
    assert script_of(None) == ""


def test_the_answer_is_the_first_non_blank_line():
    """What follows the answer is often the prompt's template continued in the prompt's language
    (seen on Gemma: " Japan\\n\\n国家：中国"); it must not hide an answer in another script."""
    assert (
        answer_line(" Japan\n\n国家：中国\n") == "Japan" and script_of(answer_line(" Japan\n\n国家：中国")) == "Latin"
    )
    assert script_of(" Japan\n\n国家：中华人民共和国") == "Han"  # the whole text would say Chinese
    assert answer_line("\n  \n Nairobi \nNchi") == "Nairobi"
    assert answer_line(None) == answer_line(" \n ") == ""


def test_in_language_script():
    assert in_language_script(" Nairobi", "sw") and not in_language_script(" Nairobi", "ru")
    assert in_language_script("東京とうきょうトウキョウ", "ja") and in_language_script("東京", "zh")
    assert not in_language_script(" Tokyo", "ja")
    assert in_language_script(" 1990.", "ar")  # no letters: nothing says it left the language
    assert all(scripts for scripts in LANGUAGE_SCRIPTS.values())
    with pytest.raises(InputError, match=r"no script known for language 'xx'; known: .*\bsw\b"):
        in_language_script("x", "xx")


def test_changed_and_scripts_of_a_sweep(model):
    pairs = PAIRS
    res = xtl.sweep(model, pairs, ("attn", "mlp"), max_new_tokens=3, progress=False)
    base = list(res.baseline.loc[0, "tokens"])
    want = np.vectorize(lambda t: list(t) != base, otypes=[bool])(res.tokens_array)
    assert torch.equal(res.changed, torch.from_numpy(want))
    assert 0 < int(res.changed.sum()) < res.changed.numel()  # some cells change the answer, some do not
    assert res.scripts.shape == res.texts_array.shape
    assert all(res.scripts[i] == script_of(answer_line(text)) for i, text in np.ndenumerate(res.texts_array))
    assert isinstance(res.baseline.loc[0, "source_text"], str) and res.baseline.loc[0, "source_tokens"]
    assert not torch.isnan(res.top_logprob).any() and (res.top_logprob <= 0).all()
    assert (res.entropy >= 0).all() and (res.mean_logprob <= 0).all()


def test_a_run_written_before_the_label_free_fields_loads_with_them_missing(model, tmp_path):
    pairs = PAIRS
    res = xtl.sweep(model, pairs, ("attn",), max_new_tokens=2, progress=False)
    frame = res.to_pandas().drop(columns=["top_logprob", "entropy", "mean_logprob", "source_text", "source_tokens"])
    old = xtl.results.from_frame(res.spec, frame)
    assert torch.isnan(old.top_logprob).all() and torch.isnan(old.entropy).all() and torch.isnan(old.mean_logprob).all()
    assert old.baseline.loc[0, "source_text"] is None and list(old.baseline.loc[0, "source_tokens"]) == []
    assert torch.equal(old.correct, res.correct) and torch.equal(old.changed, res.changed)
    back = xtl.results.from_frame(res.spec, res.to_pandas())  # the fields survive the long-form table
    for name in ("top_logprob", "entropy", "mean_logprob"):
        torch.testing.assert_close(getattr(back, name), getattr(res, name), atol=0, rtol=0)
    pd.testing.assert_frame_equal(back.baseline, res.baseline)


def test_an_estimate_has_no_changed_cells(model):
    pairs = PAIRS
    est = xtl.attribution_sweep(model, pairs, ("attn",), progress=False)
    assert torch.isnan(est.top_logprob).all() and not np.isnan(est.baseline.loc[0, "entropy"])
    with pytest.raises(InputError, match="attribution estimate generates no text"):
        _ = est.changed
