"""The paper's protocol: the authors' scoring rules (``rule="paper"``) and xtl's lenient ones,
the unseen split of the released layout, the released XNLI template, the authors' language
lists, decoding and stop ids as Hugging Face ``generate``, and the parallel-data alignment check.

Every expected verdict under ``rule="paper"`` is what the authors' released evaluation code
(YYF-Tommy/XTransplant, commit 7cc0ee3, ``evaluation/*.py``) returns for that output, worked
out by hand from the rule as the issue and their code state it.
"""

import json
import random
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM, GenerationConfig

import xtl
import xtl.tasks as tasks
from xtl.results import SweepSpec, from_frame, record
from xtl.tasks import scoring
from xtl.testing import save_checkpoint

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "xtransplant-samples"
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"sample data folder {SAMPLES} absent")

# The released XNLI label tags (ans_lang/{lang}.json), as they are: French carries "(k)\xa0".
TAGS = {
    "en": ("Entail", "Neutral", "Contradict"),
    "zh": ("蕴涵", "中立", "矛盾"),
    "ar": ("يستلزم", "محايد", "يتناقض"),
    "ur": ("داخل کرنا", "غیر جانبدار", "تضاد"),
    "hi": ("निहित", "तटस्थ", "विरोधाभास"),
    "ru": ("Следствие", "Нейтральное", "Противоречие"),
    "bg": ("Повлича", "Неутрален", "Противоречат"),
    "el": ("Συνεπάγεται", "Ουδέτερο", "Αντίφαση"),
    "fr": ("(1)\xa0Entraîner", "(2)\xa0Neutre", "(3)\xa0Contraire"),
    "tr": ("Gerektirir", "Tarafsız", "Çelişkili"),
    "de": ("Nach sich ziehen", "Neutral", "Widersprechen"),
}

# (language, gold, output, paper verdict, lenient verdict)
XNLI_CASES = [
    # the cases
    ("en", "2", " The answer is 2.", False, True),
    ("en", "2", " (2) Neutral. Premise 1 says", True, False),
    ("en", "2", " neutral", False, True),
    ("zh", "2", "答案是中立", True, True),
    ("ar", "2", " المحايد", True, True),
    ("ur", "3", " متضاد", True, True),
    # markers, bare keys, full-width parentheses
    ("en", "2", " (2)", True, True),
    ("en", "2", " 2", True, True),
    ("en", "2", "2\n", True, True),
    ("en", "2", " 2.", False, True),
    ("en", "2", " (2) or (3)", False, False),
    ("en", "2", " 12 reasons", False, False),
    ("en", "2", " Neutral or Entail", False, False),
    ("en", "1", " Entailment.", True, True),
    ("en", "3", " Contradictory", True, True),
    ("en", "3", " It is contradictory", False, True),
    ("zh", "2", "（2）中立", True, True),
    ("zh", "2", "答案：（2）", True, True),
    ("zh", "1", "蕴涵，不是矛盾", False, False),
    ("zh", "3", "3", True, True),
    # Arabic and Urdu: attached prefixes, other options' words
    ("ar", "3", " يتناقض مع الفرضية", True, True),
    ("ar", "2", " محايد أو يستلزم", False, False),
    ("ur", "2", " غیر جانبدار", True, True),
    ("ur", "2", " غیر جانبدار، تضاد نہیں", False, False),
    # Devanagari
    ("hi", "2", " तटस्थ", True, True),
    ("hi", "1", " (1) निहित", True, True),
    ("hi", "2", " विरोधाभास नहीं, तटस्थ", False, False),
    # Cyrillic: case-sensitive for the authors
    ("ru", "2", " Нейтральное", True, True),
    ("ru", "2", " нейтральное", False, True),
    ("bg", "3", " Противоречат си", True, True),
    # Greek, Turkish, German (multi-word tag)
    ("el", "2", " Ουδέτερο", True, True),
    ("tr", "2", " Tarafsız", True, True),
    ("de", "1", " Das würde nach sich ziehen", False, True),
    ("de", "1", " Nach sich ziehen", True, True),
    # French: the released tag includes its marker and a no-break space
    ("fr", "2", " (2)\xa0Neutre", True, True),
    ("fr", "2", " Neutre", False, True),
    ("fr", "2", " (2) Neutre", True, True),
    ("fr", "3", " Contraire (3)", True, True),
]


@pytest.mark.parametrize("lang, gold, text, paper, lenient", XNLI_CASES)
def test_xnli_rules(lang, gold, text, paper, lenient):
    assert scoring.option_paper(text, gold, ("1", "2", "3"), TAGS[lang]) is paper
    assert scoring.option_match(text, gold, ("1", "2", "3"), TAGS[lang]) is lenient


# (gold, number of options, output, paper verdict, lenient verdict)
LETTER_CASES = [
    # the cases
    ("A", 2, " (a) yes", True, False),
    ("A", 2, " A. Yes", False, True),
    ("A", 2, " A) Yes", False, True),
    ("A", 2, " [A]", False, True),
    ("A", 2, " A:", False, True),
    ("A", 2, " (A) Yes (C)", False, True),
    # bare letters, case, other letters of A-Z
    ("A", 2, " A", True, True),
    ("A", 2, " a", True, False),
    ("B", 4, " (B) Oppose", True, True),
    ("B", 4, " (A) or (B)", False, False),
    ("B", 4, " (B) Oppose (i think)", True, True),
    ("B", 4, " (B) Oppose (i)", False, True),
    ("B", 4, " I would pick (b).", True, False),
    ("C", 3, " A good question: (C)", True, True),
    # CJK: full-width parentheses are not the authors' "(C)"
    ("A", 2, "（A）賛成", False, True),
    ("A", 2, "(A) 賛成", True, True),
    ("B", 2, "答案是(B)反对", True, True),
    # Arabic, Devanagari, Cyrillic outputs with Latin markers; a Cyrillic "А" is not a Latin "A"
    ("A", 2, " (A) أوافق", True, True),
    ("B", 3, " (B) असहमत", True, True),
    ("A", 2, " (А) Да", False, False),
    ("A", 2, " (A) Да", True, True),
]


@pytest.mark.parametrize("gold, n, text, paper, lenient", LETTER_CASES)
def test_letter_rules(gold, n, text, paper, lenient):
    assert scoring.letter_paper(text, gold) is paper
    assert scoring.letter_match(text, gold, "ABCDEFGHIJ"[:n]) is lenient


@pytest.mark.parametrize(
    "gold, text, paper, lenient",
    [
        ("New England Patriots", " the NEW ENGLAND Patriots", True, True),
        ("新英格兰爱国者队", "答案是新英格兰爱国者队。", True, True),
        (" Patriots ", " the Patriots.", False, True),  # the authors do not strip the gold
        ("Αθήνα", " ΑΘΉΝΑ", True, True),
        ("Москва", " в москве", False, False),
        ("Москва", " МОСКВА.", True, True),
        ("ＡＢＣ", " abc", False, True),  # full-width letters: NFKC for the lenient rule only
        ("23–16", " 比分是23–16。", True, True),
    ],
)
def test_contains_rules(gold, text, paper, lenient):
    assert scoring.contains_paper(text, gold) is paper
    assert scoring.contains(text, gold) is lenient


def _authors_option(pred, gold, keys, tags):
    """The authors' XNLI rule transcribed from its description, loop by loop."""
    pred = pred.replace("（", "(").replace("）", ")")
    tag = dict(zip(keys, tags))
    if not (f"({gold})" in pred or pred.strip() == gold or tag[gold] in pred):
        return False
    for other in keys:
        if other != gold and (f"({other})" in pred or pred.strip() == other or tag[other] in pred):
            return False
    return True


def _authors_letter(pred, gold):
    up = pred.upper()
    if not (f"({gold})" in up or up.strip() == gold):
        return False
    return not any(f"({o})" in up or up.strip() == o for o in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if o != gold)


def test_paper_rules_agree_with_a_transcription_on_random_adversarial_outputs():
    rng = random.Random(0)
    pieces = [
        "(1)",
        "(2)",
        "(3)",
        "（2）",
        "1",
        "2",
        "3",
        " ",
        "\n",
        "\u3000",
        "Entail",
        "neutral",
        "Neutral",
        "Contradict",
        "中立",
        "矛盾",
        "(A)",
        "(b)",
        "A",
        "a",
        "(Z)",
        "（A）",
        "B.",
        ".",
        "answer",
    ]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 4)))
        gold = rng.choice("123")
        tags = TAGS["en"] if rng.random() < 0.5 else TAGS["zh"]
        assert scoring.option_paper(text, gold, "123", tags) is _authors_option(text, gold, "123", tags), text
        letter = rng.choice("ABZ")
        assert scoring.letter_paper(text, letter) is _authors_letter(text, letter), text


# --- rules on tasks, runs and reports ---------------------------------------------------------------


def test_paper_rule_is_the_default_and_lenient_is_named():
    for name in ("xnli", "xquad", "globalopinionqa", "xcopa", "mkqa", "culturalbench"):
        assert tasks.get(name).rule == "paper"
        assert tasks.get(name, rule="lenient").rule == "lenient"
    assert tasks.get("xnli").scorer.name == "xnli/paper"
    with pytest.raises(ValueError, match=r"task 'xnli' has no scoring rule 'strict'; valid: \['paper', 'lenient'\]"):
        tasks.get("xnli", rule="strict")
    item = tasks.Item(source="s", target="t", gold="2", options=("1", "2", "3"), task="xnli", labels=TAGS["zh"])
    assert tasks.get("xnli").score("答案是中立", item) and not tasks.get("xnli").score(" The answer is 2.", item)
    assert tasks.get("xnli", rule="lenient").score(" The answer is 2.", item)
    # XCOPA: the XNLI rule over its two options, the alternatives' texts as tags
    copa = tasks.Item(
        source="s", target="t", gold="1", options=("1", "2"), task="xcopa", labels=("It rained.", "It was sunny.")
    )
    assert tasks.get("xcopa").score(" It rained.", copa) and not tasks.get("xcopa").score(" 1.", copa)
    goqa = tasks.Item(source="s", target="t", gold="A", options=("A", "B"), task="globalopinionqa")
    assert tasks.get("globalopinionqa").score(" (a) yes", goqa)
    assert not tasks.get("globalopinionqa").score(" (A) Yes (C)", goqa)


def _item(id_, lang, gold, labels):
    return tasks.Item(
        source=f"s {id_}",
        target=f"t {id_}",
        gold=gold,
        options=("1", "2", "3"),
        id=id_,
        task="xnli",
        language=lang,
        labels=labels,
    )


def test_rescore_and_compare_rules_count_disagreements():
    items = [_item("a", "zh", "2", TAGS["zh"]), _item("b", "en", "3", TAGS["en"])]
    texts = {
        "a": ["答案是中立", " The answer is 2.", " (2) 中立"],  # paper T F T, lenient T T T
        "b": [" contradict", " (3) Contradict", " (1)"],
    }  # paper F T F, lenient T T F
    spec = SweepSpec(
        model="m",
        n_layers=2,
        components=("attn",),
        source_layers=(0,),
        target_layers=(0, 1),
        max_new_tokens=4,
        eos_token_id=(),
        scorer="xnli/paper",
        prompt_hashes=tuple(i.digest() for i in items),
        ids=("a", "b"),
        dtype="float32",
        task="xnli",
    )
    rows = []
    for k, item in enumerate(items):
        base, *cells = texts[item.id]
        rows.append(record(k, item.id, None, base, [], False, -1.0, np.nan, [], item.language))
        rows += [
            record(k, item.id, ("attn", 0, t), text, [], False, -1.0, np.nan, [], item.language)
            for t, text in enumerate(cells)
        ]
    res = from_frame(spec, pd.DataFrame(rows))
    paper = xtl.rescore(res, items, "paper")
    assert paper.correct[:, 0, 0].tolist() == [[False, True], [True, False]]
    assert paper.baseline["correct"].tolist() == [True, False] and paper.spec.scorer == "xnli/paper"
    assert xtl.rescore(res, items, "lenient").spec.scorer == "xnli/lenient"
    table = xtl.compare_rules(res, items).set_index("language")
    assert table.loc["zh"].to_dict() == {
        "verdicts": 3,
        "correct_paper": 2,
        "correct_lenient": 3,
        "disagree": 1,
        "only_paper": 0,
        "only_lenient": 1,
    }
    assert table.loc["en", "disagree"] == 1 and table.loc["all", "disagree"] == 2
    assert table.loc["all", "correct_paper"] == 3 and table.loc["all", "correct_lenient"] == 5
    with pytest.raises(ValueError, match="no item with id 'b'"):
        xtl.rescore(res, items[:1], "paper")


# --- the released layout: both splits, the English template, the authors' languages --------------


@needs_samples
@pytest.mark.parametrize(
    "name, folder, language, sizes",
    [
        ("xnli", "XNLI", "sw", (50, 1000)),
        ("xquad", "XQuAD", "zh", None),
        ("globalopinionqa", "GlobalOpinionQA", "ja", (50, 41)),
    ],
)
def test_unseen_split_on_the_released_layout(name, folder, language, sizes):
    whole = tasks.get(name, data=SAMPLES / folder, check="off")
    one_split = tasks.get(name, data=SAMPLES / folder / f"{folder}_sample", check="off")
    for direction in ("en2x", "x2en"):
        sample, unseen = whole.items(language, direction), whole.items(language, direction, split="unseen")
        assert [i.target for i in sample] == [i.target for i in one_split.items(language, direction)]
        assert [i.target for i in unseen] == [i.target for i in one_split.items(language, direction, "unseen")]
        assert unseen[0].split == "unseen" and unseen[0].id.endswith("-unseen-0")
        assert {i.target for i in sample}.isdisjoint(i.target for i in unseen)
        if sizes:
            assert (len(sample), len(unseen)) == sizes
    other = {
        "xnli": f"split/{language}.json",
        "xquad": f"split/xquad.{language}.json",
        "globalopinionqa": f"translated/{language}.json",
    }[name]
    first = (SAMPLES / folder / f"{folder}_unseen" / other).read_text(encoding="utf-8").splitlines()[0]
    assert whole.items(language, "en2x", "unseen")[0].target == json.loads(first)


def test_a_released_split_folder_without_its_sibling_says_what_is_missing(tmp_path):
    root = tmp_path / "XQuAD_sample"
    for sub in ("split", "ans"):
        (root / sub).mkdir(parents=True)
        for lang in ("en", "de"):
            (root / sub / f"xquad.{lang}.json").write_text(
                json.dumps("Context: Berlin" if sub == "split" else "Berlin") + "\n", encoding="utf-8"
            )
    task = tasks.get("xquad", data=root)
    assert task.items("de")[0].gold == "Berlin"
    with pytest.raises(FileNotFoundError, match=r"no 'unseen' split .* looked for '.*XQuAD_unseen'"):
        task.items("de", split="unseen")


@pytest.mark.parametrize("gold", ["", "  ", 7, None])
def test_a_blank_or_non_text_released_gold_is_named_with_its_file_and_line(tmp_path, gold):
    """The authors' gold.lower() in pred.lower() counts a blank gold as found in every output; xtl
    refuses it as a data error (docs/howto/tasks.md, scoring rules)."""
    root = tmp_path / "XQuAD_sample"
    for sub in ("split", "ans"):
        (root / sub).mkdir(parents=True)
    for lang in ("en", "de"):
        (root / "split" / f"xquad.{lang}.json").write_text('"Context: Berlin"\n"Context: Paris"\n', encoding="utf-8")
    (root / "ans" / "xquad.en.json").write_text('"Berlin"\n"Paris"\n', encoding="utf-8")
    (root / "ans" / "xquad.de.json").write_text(f'"Berlin"\n{json.dumps(gold)}\n', encoding="utf-8")
    message = r"the gold answer is blank" if isinstance(gold, str) else r"the gold answer must be a JSON string"
    with pytest.raises(tasks.DataError, match=rf"ans/xquad.de.json:2: {message}"):
        tasks.get("xquad", data=root).items("de")


@needs_samples
def test_xnli_english_template_matches_every_released_english_prompt():
    template = tasks.get("xnli").template
    pattern = re.compile(r"Premise: (.*)\nHypothesis: (.*)\n\n\(1\)", re.DOTALL)
    checked = 0
    for split in ("sample", "unseen"):
        path = SAMPLES / "XNLI" / f"XNLI_{split}" / "split" / "en.json"
        for line in path.read_text(encoding="utf-8").splitlines():
            prompt = json.loads(line)
            premise, hypothesis = pattern.search(prompt).groups()
            built = template.format(
                premise=premise, hypothesis=hypothesis, label1="Entail", label2="Neutral", label3="Contradict"
            )
            assert built == prompt
            checked += 1
    assert checked == 1050


def test_xnli_template_has_the_released_spacing(tmp_path):
    (tmp_path / "en.jsonl").write_text(json.dumps({"premise": "P.", "hypothesis": "H.", "label": 1}) + "\n")
    prompt = tasks.get("xnli", data=tmp_path).items("en")[0].target
    assert "\n\n(1) Entail \n(2) Neutral\n(3) Contradict\n\nAssistant:" in prompt


def test_languages_as_the_authors_list_them():
    assert "en" in tasks.get("xnli").languages and len(tasks.get("xnli").languages) == 14
    assert tasks.get("xquad").languages == ("ar", "de", "el", "en", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh")
    assert tasks.get("xcopa").languages == ("en", "ht", "id", "it", "sw", "ta", "tr", "vi", "zh")
    assert tasks.get("mkqa").languages[:4] == ("ar", "de", "en", "es") and "zh" in tasks.get("mkqa").languages
    bench = tasks.get("culturalbench")
    assert {"he", "ko", "ms", "pl", "zh", "en"} <= set(bench.languages)
    assert bench.canonical("zh-CN") == "zh" and tasks.get("globalopinionqa").canonical("zh") == "zh-CN"
    assert tasks.get("mkqa").canonical("zh_cn") == "zh"
    with pytest.raises(ValueError, match=r"task 'xquad' has no language 'xx'; valid: \['ar'"):
        tasks.get("xquad").canonical("xx")


def test_aliases_and_english_read_tables_and_the_hub(tmp_path, monkeypatch):
    for lang in ("en", "zh"):
        (tmp_path / f"{lang}.jsonl").write_text(json.dumps({"prompt": f"Q {lang} A:", "answer": "Q"}) + "\n")
    task = tasks.get("mkqa", data=tmp_path)
    assert task.items("zh_cn")[0].language == "zh" and task.items("zh")[0].target == "Q zh A:"
    assert task.items("en")[0].source == task.items("en")[0].target == "Q en A:"

    import datasets

    rows = [
        {"queries": {"en": "Who?", "zh_cn": "谁？"}, "answers": {"en": [{"text": "Ann"}], "zh_cn": [{"text": "安"}]}}
    ] * 3
    monkeypatch.setattr(datasets, "load_dataset", lambda name, split: rows)
    hub = tasks.get("mkqa", data="hub", templates={"zh": "问题：{question}"})
    assert hub.items("zh")[0].target == "问题：谁？" and hub.items("zh")[0].gold == "安"


@needs_samples
def test_english_to_english_runs_on_the_released_layout():
    for name, folder in (("xnli", "XNLI"), ("xquad", "XQuAD")):
        items = tasks.get(name, data=SAMPLES / folder).items("en")
        assert len(items) == 50 and all(i.source == i.target for i in items)


# --- the alignment check ----------------------------------------------------------------------------


def _xnli_tables(root, labels_en, labels_de):
    for lang, labels in (("en", labels_en), ("de", labels_de)):
        (root / f"{lang}.jsonl").write_text(
            "".join(json.dumps({"prompt": f"{lang} {k}", "answer": str(g)}) + "\n" for k, g in enumerate(labels))
        )


def test_misaligned_tables_warn_name_the_file_and_first_line(tmp_path):
    _xnli_tables(tmp_path, [1, 2, 3, 1, 2], [1, 2, 1, 3, 2])
    with pytest.warns(
        tasks.MisalignedWarning,
        match=r"de.jsonl against .*en.jsonl: 2 of 5 lines .* gold label.* "
        r"first at line 3",
    ):
        items = tasks.get("xnli", data=tmp_path).items("de")
    assert len(items) == 5
    with pytest.raises(tasks.DataError, match=r"2 of 5 lines"):
        tasks.get("xnli", data=tmp_path, check="error").items("de")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tasks.get("xnli", data=tmp_path, check="off").items("de")
    with pytest.raises(ValueError, match=r"unknown check 'loud'; valid: \['warn', 'error', 'off'\]"):
        tasks.get("xnli", data=tmp_path, check="loud")
    _xnli_tables(tmp_path, [1, 2, 3], [1, 2, 3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tasks.get("xnli", data=tmp_path).items("de")


def test_xquad_gold_must_be_in_its_own_prompt(tmp_path):
    (tmp_path / "en.jsonl").write_text(
        json.dumps({"prompt": "Context: Paris. Q?", "answer": "Paris"})
        + "\n"
        + json.dumps({"prompt": "Context: Rome. Q?", "answer": "Rome"})
        + "\n"
    )
    (tmp_path / "de.jsonl").write_text(
        json.dumps({"prompt": "Kontext: Paris. F?", "answer": "Paris"})
        + "\n"
        + json.dumps({"prompt": "Kontext: Paris. F?", "answer": "Rom"})
        + "\n"
    )
    with pytest.warns(tasks.MisalignedWarning, match=r"1 of 2 lines .*first at line 2"):
        tasks.get("xquad", data=tmp_path).items("de")


@needs_samples
def test_the_released_german_xnli_unseen_file_is_flagged():
    task = tasks.get("xnli", data=SAMPLES / "XNLI")
    with pytest.warns(tasks.MisalignedWarning) as caught:
        task.items("de", split="unseen")
    message = str(caught[0].message)
    assert "XNLI_unseen/split/de.json" in message and "first at line 211" in message
    assert "705 of 1000 lines" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        task.items("fr", split="unseen")
        task.items("de", split="sample")


# --- decoding and stop ids as Hugging Face generate ------------------------------------------------


def test_texts_are_decoded_without_clean_up_of_spaces():
    tok = xtl.testing.tokenizer()
    # a tokenizer that cleans up by default (transformers 4.x did so for BPE tokenizers too)
    tok.clean_up_tokenization_spaces = True
    tok.clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output = True
    ids = tok.encode("yes . no , ok", add_special_tokens=False)
    assert tok.decode(ids) == "yes. no, ok"  # what the default decode gives
    gen = xtl.Generation(tokens=torch.tensor([ids]), lengths=torch.tensor([len(ids)]), logits=torch.zeros(1, 1))
    assert gen.texts(tok) == ["yes . no , ok"]


def _hf_new_tokens(hf, batch, n):
    out = hf.generate(batch.tokens, attention_mask=batch.attention_mask, max_new_tokens=n, do_sample=False)
    return out[0, batch.tokens.shape[1] :].tolist()


def test_stop_ids_follow_the_generation_config(tmp_path):
    path = save_checkpoint("qwen2", tmp_path / "ckpt", n_layers=2)
    prompt = "Human: hello there"
    model = xtl.load_model(path)
    batch = xtl.tokenize(model, prompt)
    hf = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).eval()
    free = _hf_new_tokens(hf, batch, 12)
    k = next(k for k in range(1, 12) if free[k] not in free[:k])  # a token first generated at step k
    stop = free[k]

    # a generation config listing two ids: HF stops at the second one, and so does xtl
    GenerationConfig(eos_token_id=[2, stop], bos_token_id=1, pad_token_id=0).save_pretrained(path)
    hf = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).eval()
    assert _hf_new_tokens(hf, batch, 12) == free[: k + 1]
    model = xtl.load_model(path)
    res = xtl.transplant(model, prompt, prompt, 0, 0, "mlp", max_new_tokens=12)
    assert res.baseline_tokens[0, : int(res.baseline_lengths[0])].tolist() == free[: k + 1]
    run = xtl.sweep(model, [xtl.Pair(prompt, prompt, "x")], components=["mlp"], max_new_tokens=12, progress=False)
    assert run.spec.eos_token_id == (2, stop)

    # a generation config listing none: HF never stops early, though the tokenizer's EOS is `stop`
    GenerationConfig(bos_token_id=1, pad_token_id=0).save_pretrained(path)
    hf = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).eval()
    assert _hf_new_tokens(hf, batch, 12) == free
    model = xtl.load_model(path)
    model.tokenizer.eos_token = model.tokenizer.convert_ids_to_tokens(stop)
    assert model.tokenizer.eos_token_id == stop
    res = xtl.transplant(model, prompt, prompt, 0, 0, "mlp", max_new_tokens=12)
    assert res.baseline_tokens[0].tolist() == free and int(res.baseline_lengths[0]) == 12

    # no generation config known (e.g. a hub model not in the cache): the tokenizer's EOS
    delattr(model, "xtl_eos_token_ids")
    res = xtl.transplant(model, prompt, prompt, 0, 0, "mlp", max_new_tokens=12)
    assert res.baseline_tokens[0, : int(res.baseline_lengths[0])].tolist() == free[: k + 1]
