"""Tasks: the released samples, plain tables, the hub mapping, and the paper's scoring rules."""

import json
from pathlib import Path

import pytest
import torch

import xtl
import xtl.tasks as tasks
from xtl.runner import OptionCollisionWarning
from xtl.tasks import scoring

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "xtransplant-samples"
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"sample data folder {SAMPLES} absent")
XNLI_DIR = SAMPLES / "XNLI" / "XNLI_sample"
XQUAD_DIR = SAMPLES / "XQuAD" / "XQuAD_sample"
GOQA_DIR = SAMPLES / "GlobalOpinionQA" / "GlobalOpinionQA_sample"


def test_registry(monkeypatch):
    monkeypatch.setattr(tasks, "_REGISTRY", dict(tasks._REGISTRY))  # the test's task leaves with the test
    assert {"xnli", "xquad", "globalopinionqa"} <= set(tasks.list())
    with pytest.raises(ValueError, match=r"unknown task 'xnl'; registered tasks: \["):
        tasks.get("xnl")

    @tasks.register
    class Echo(tasks.Task):
        name, kind, languages, direction, family = "echo-test", "generation", ("xx",), "en2x", "contains"
        default = xtl.TransplantSpec(0, 0, "mlp")

        def rows(self, language, split):
            return [(tasks.Record("Q: hi A:", "hi"), tasks.Record("Q: salut A:", "salut"))]

    class Old(tasks.Task):
        name, rule = "old-test", "contains"  # before issue 12 the family was called `rule`

    with pytest.raises(ValueError, match=r"task 'old-test' sets family=None; .* one of \['option', 'letter'"):
        Old()
    item = tasks.get("echo-test").items("xx")[0]
    assert (item.source, item.target, item.gold, item.direction) == ("Q: hi A:", "Q: salut A:", "salut", "en2x")
    assert tasks.get("echo-test").score(" Salut!", item)


# --- xtl's lenient rules on hand-written outputs (the paper's: test_protocol.py) -----------------

WORDS = ("Entail", "Neutral", "Contradict")


@pytest.mark.parametrize(
    "text,ok",
    [
        (" (2) Neutral", True),
        (" 2", True),
        (" Neutral.", True),
        (" neutral", True),
        (" (2)", True),
        (" (1) Entail", False),
        (" (2) or (3)", False),
        (" 2, maybe Contradict", False),
        (" 12 reasons", False),
        (" I cannot tell.", False),
        (" Neutral or Entail", False),
    ],
)
def test_xnli_option_rule(text, ok):
    assert scoring.option_match(text, "2", ("1", "2", "3"), WORDS) is ok


@pytest.mark.parametrize(
    "text,ok",
    [
        (" (B) Banks", True),
        (" B", True),
        ("B. Banks", True),
        (" (B)", True),
        (" B )", True),
        (" (A) Our government", False),
        (" (A) or (B)", False),
        (" B, then (C)", False),
        (" Banks and other institutions", False),
        (" A good question: (B)", True),
    ],
)
def test_letter_rule(text, ok):
    assert scoring.letter_match(text, "B", "ABCDEF") is ok


def test_contains_rule():
    assert scoring.contains(" the NEW ENGLAND Patriots", "New England Patriots")
    assert not scoring.contains(" the Patriots", "New England Patriots")
    assert scoring.contains(" 比分是23–16。", "23–16")


# --- the authors' released samples ---------------------------------------------------------------


@needs_samples
def test_xnli_samples_aligned_with_gold_and_label_words():
    task = tasks.get("xnli", data=XNLI_DIR)
    english = task.items("de", direction="x2en")
    for language in task.languages:
        if not (XNLI_DIR / "split" / f"{language}.json").exists():
            continue
        items = task.items(language)
        assert len(items) == 50
        assert [i.gold for i in items] == [i.gold for i in english]  # same questions, same labels
        assert all(i.gold in ("1", "2", "3") and i.options == ("1", "2", "3") for i in items)
        assert [i.source for i in items] == [i.target for i in english]  # English side, line by line
    sw = task.items("sw")[0]
    assert sw.labels == ("Inajumuisha", "Kuegemea upande wowote", "Kupingana")
    assert sw.source.startswith("Human:") and sw.target.startswith("Binadamu:")
    assert task.score(" (1) Inajumuisha", sw) and not task.score(" Kupingana", sw)
    assert english[0].labels == ("Entail", "Neutral", "Contradict")
    with pytest.raises(ValueError, match=r"task 'xnli' has no language 'xx'; valid: \['ar'"):
        task.items("xx")


@needs_samples
def test_xquad_samples():
    task = tasks.get("xquad", data=XQUAD_DIR)
    zh, back = task.items("zh"), task.items("zh", direction="x2en")
    assert len(zh) == len(back) == 50
    assert zh[1].gold == json.loads((XQUAD_DIR / "ans" / "xquad.zh.json").read_text().splitlines()[1])
    assert back[1].gold == "New England Patriots"
    assert task.score(" 他们击败了新英格兰爱国者队。", zh[1])
    assert task.default == xtl.TransplantSpec(0, 0, "mlp") and task.kind == "generation"


@needs_samples
def test_globalopinionqa_samples_pair_countries_with_language_groups():
    task = tasks.get("globalopinionqa", data=GOQA_DIR)
    assert task.direction == "x2en"
    zh = task.items("zh-CN")
    assert len(zh) == 50
    countries = {line.split("someone from ")[1].split(" answer")[0] for line in (i.target for i in zh)}
    assert countries <= {"China", "China (Non-national sample)", "Hong Kong SAR", "Macau SAR"}
    assert {"Hong Kong SAR", "Macau SAR"} <= countries
    first = json.loads((GOQA_DIR / "split" / "sw.json").read_text().splitlines()[0])
    sw = task.items("sw")[0]
    shares = first["label"]
    assert sw.gold == "ABCDEF"[shares.index(max(shares))] == "A"
    assert sw.target == first["input_text"] and sw.source.startswith("Binadamu:")
    assert sw.options == tuple("ABCDEF"[: len(shares)])
    assert len(task.items("en")) == 50


# --- plain tables and bad data ------------------------------------------------------------------


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def test_tables_with_templates_and_prompts(tmp_path):
    _write_jsonl(
        tmp_path / "en.jsonl",
        [
            {"premise": "It rains.", "hypothesis": "It is wet.", "label": 1},
            {"premise": "A cat.", "hypothesis": "A dog.", "label": "3"},
        ],
    )
    (tmp_path / "sw.csv").write_text(
        'prompt,answer\n"Binadamu: mvua? jibu:",1\n"Binadamu: paka? jibu:",3\n', encoding="utf-8"
    )
    task = tasks.get("xnli", data=tmp_path, label_words={"sw": ["Ndiyo", "Labda", "Hapana"]})
    items = task.items("sw")
    assert items[0].source.startswith("Human: What do you think") and "Premise: It rains." in items[0].source
    assert "(1) Entail" in items[0].source and items[0].target == "Binadamu: mvua? jibu:"
    assert [i.gold for i in items] == ["1", "3"] and items[0].labels == ("Ndiyo", "Labda", "Hapana")
    _write_jsonl(tmp_path / "fr.jsonl", [{"premise": "Il pleut.", "hypothesis": "C'est mouillé.", "label": 1}])
    with pytest.raises(ValueError, match=r"no 'prompt' column and no template"):
        tasks.get("xnli", data=tmp_path).items("fr")
    fr = tasks.get("xnli", data=tmp_path, templates={"fr": "Humain : {premise} / {hypothesis} ?"})
    with pytest.raises(
        tasks.DataError,
        match=r"en.jsonl:2: no line 2 in .*fr.jsonl .*misaligned data: .*en.jsonl has 2 lines but .*fr.jsonl has 1",
    ):
        fr.items("fr")


def test_bad_data_names_file_and_line(tmp_path):
    _write_jsonl(tmp_path / "en.jsonl", [{"prompt": "Q1", "answer": "1"}, {"prompt": "Q2", "answer": "7"}])
    _write_jsonl(tmp_path / "sw.jsonl", [{"prompt": "S1", "answer": "1"}, {"prompt": "S2"}])
    task = tasks.get("xnli", data=tmp_path)
    with pytest.raises(tasks.DataError, match=r"en.jsonl:2: label '7' is not one of \['1', '2', '3'\]"):
        task.items("sw")
    _write_jsonl(tmp_path / "en.jsonl", [{"prompt": "Q1", "answer": "1"}, {"prompt": "Q2", "answer": "2"}])
    with pytest.raises(tasks.DataError, match=r"sw.jsonl:2: missing field 'label'"):
        task.items("sw")
    (tmp_path / "sw.jsonl").write_text('{"prompt": "S1", "answer": "1"}\n{"prompt": \n', encoding="utf-8")
    with pytest.raises(tasks.DataError, match=r"sw.jsonl:2: not a JSON value"):
        task.items("sw")
    with pytest.raises(FileNotFoundError, match=r"no sample data for 'de'"):
        task.items("de")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tasks.get("xquad", data=tmp_path / "nope").items("de")
    with pytest.raises(ValueError, match="unknown split 'test'"):
        task.items("sw", split="test")
    with pytest.raises(ValueError, match="unknown direction 'up'"):
        task.items("sw", direction="up")


@pytest.mark.parametrize(
    "task, row, message",
    [
        (
            "xnli",
            {"premise": "p", "hypothesis": "h", "label": 1, "labels": ["a"]},
            r"de.jsonl:2: field 'labels' must be a list of 3 label words, got \['a'\]",
        ),
        (
            "xnli",
            {"prompt": "p", "answer": "1", "labels": [1, 2, 3]},
            r"de.jsonl:2: field 'labels' must be a list of 3",
        ),
        ("xnli", {"prompt": 5, "answer": "1"}, r"de.jsonl:2: field 'prompt' must be text, got int 5"),
        ("xquad", {"prompt": ["p"], "answer": "x"}, r"de.jsonl:2: field 'prompt' must be text, got list"),
        (
            "xquad",
            {"prompt": "p", "answer": ["x"]},
            r"de.jsonl:2: field 'answer' must be text or a number or an object",
        ),
        ("xquad", {"prompt": "p", "answer": True}, r"de.jsonl:2: field 'answer' must be .*, got bool True"),
        ("xquad", {"prompt": "p", "answer": {"text": ["  "]}}, r"de.jsonl:2: field 'text' is blank \('  '\)"),
        ("xquad", {"prompt": "p", "answer": ""}, r"de.jsonl:2: field 'answer' is blank \(''\)"),
        ("mkqa", {"prompt": "p", "answer": {"a": 1}}, r"de.jsonl:2: field 'answer' must be text or a number, got dict"),
        ("xquad", {"context": 3, "question": "q", "answer": "x"}, r"de.jsonl:2: field 'context' must be text, got int"),
        ("xquad", {"prompt": "p", "answer": {"start": 1}}, r"de.jsonl:2: malformed row \(missing field 'text'\)"),
        ("xquad", {"prompt": "p", "answer": float("nan")}, r"de.jsonl:2: NaN is not a valid value"),
        ("xquad", {"prompt": "p", "answer": 1e999}, r"de.jsonl:2: Infinity is not a valid value"),
        ("xnli", {"prompt": "p", "answer": " "}, r"de.jsonl:2: field 'answer' is blank \(' '\)"),
    ],
)
def test_malformed_fields_name_file_and_line(tmp_path, task, row, message):
    good = {"prompt": "q", "answer": "1"}
    _write_jsonl(tmp_path / "en.jsonl", [good, good])
    (tmp_path / "de.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(tasks.DataError, match=message):
        templates = {"de": "{premise} {hypothesis}"} if task == "xnli" else {"de": "{context} {question}"}
        tasks.get(task, data=tmp_path, templates=templates).items("de")


def test_non_utf8_files_and_nan_shares_name_file_and_line(tmp_path):
    _write_jsonl(tmp_path / "en.jsonl", [{"prompt": "q", "answer": "x"}] * 3)
    (tmp_path / "de.jsonl").write_bytes(
        b'{"prompt": "a", "answer": "x"}\n{"prompt": "b", "answer": "x"}\n{"prompt": "caf\xe9", "answer": "x"}\n'
    )
    with pytest.raises(tasks.DataError, match=r"de.jsonl:3: not UTF-8 text \(byte 0xe9\)"):
        tasks.get("xquad", data=tmp_path).items("de")
    for shares, message in (
        ("[0.5, NaN]", "NaN is not a valid value"),
        ('[0.5, "x"]', "share 'x' is not a number"),
        ('[0.5, 0.2], "answer": "AB"', ""),
    ):
        (tmp_path / "sw.jsonl").write_text(
            '{"prompt": "p", "translated": "t", "label": [0.1, 0.9]}\n'
            f'{{"prompt": "p", "translated": "t", "label": {shares}}}\n',
            encoding="utf-8",
        )
        if message:
            with pytest.raises(tasks.DataError, match=rf"sw.jsonl:2: .*{message}"):
                tasks.get("globalopinionqa", data=tmp_path).items("sw")
        else:
            with pytest.raises(tasks.DataError, match=r"sw.jsonl:2: answer 'AB' is not a letter A-Z"):
                tasks.get("globalopinionqa", data=tmp_path).items("sw")


def test_rows_are_paired_by_id_when_both_files_have_one(tmp_path):
    _write_jsonl(tmp_path / "en.jsonl", [{"id": k, "prompt": f"en {k} a{k}", "answer": f"a{k}"} for k in range(3)])
    _write_jsonl(tmp_path / "de.jsonl", [{"id": k, "prompt": f"de {k} a{k}", "answer": f"a{k}"} for k in (2, 0, 1)])
    items = tasks.get("xquad", data=tmp_path).items("de")
    assert [(i.source, i.target, i.gold) for i in items] == [
        (f"en {k} a{k}", f"de {k} a{k}", f"a{k}") for k in range(3)
    ]
    _write_jsonl(tmp_path / "de.jsonl", [{"id": k, "prompt": f"de {k} a{k}", "answer": f"a{k}"} for k in (2, 0, 5)])
    with pytest.raises(tasks.DataError, match=r"paired by id: .*de.jsonl has no row for ids \['1'\]"):
        tasks.get("xquad", data=tmp_path).items("de")
    _write_jsonl(tmp_path / "de.jsonl", [{"id": k, "prompt": f"de {k} a{k}", "answer": f"a{k}"} for k in (2, 0, 2)])
    with pytest.raises(tasks.DataError, match=r"de.jsonl:3: id '2' already on line 1"):
        tasks.get("xquad", data=tmp_path).items("de")
    # a malformed row is named by its own line, not its position after pairing
    _write_jsonl(
        tmp_path / "de.jsonl",
        [
            {"id": 2, "prompt": "de 2"},
            {"id": 0, "prompt": "de 0 a0", "answer": "a0"},
            {"id": 1, "prompt": "de 1 a1", "answer": "a1"},
        ],
    )
    with pytest.raises(tasks.DataError, match=r"de.jsonl:1: missing field 'answer'"):
        tasks.get("xquad", data=tmp_path).items("de")


def test_unseen_split_from_tables(tmp_path):
    for lang in ("en", "de"):
        _write_jsonl(tmp_path / f"{lang}.jsonl", [{"prompt": f"{lang} sample x", "answer": "x"}])
        _write_jsonl(tmp_path / f"{lang}.unseen.jsonl", [{"prompt": f"{lang} unseen y", "answer": "y"}] * 2)
    task = tasks.get("xquad", data=tmp_path)
    assert [i.target for i in task.items("de", split="unseen")] == ["de unseen y"] * 2
    assert task.items("de")[0].split == "sample"


def test_hub_rows_are_mapped_without_network(monkeypatch):
    import datasets

    def fake(name, config, split):
        if name == "facebook/xnli":
            return [{"premise": f"{config} p{i}", "hypothesis": "h", "label": i % 3} for i in range(60)]
        return [
            {"context": f"ctx a{i}", "question": f"{config} q{i}", "answers": {"text": [f"a{i}"], "answer_start": [0]}}
            for i in range(55)
        ]

    monkeypatch.setattr(datasets, "load_dataset", fake)
    xnli = tasks.get(
        "xnli", data="hub", templates={"sw": "{premise} {hypothesis} {label1}"}, label_words={"sw": ["N", "L", "H"]}
    )
    sample, unseen = xnli.items("sw"), xnli.items("sw", split="unseen")
    assert len(sample) == 50 and len(unseen) == 10
    assert [i.gold for i in sample[:4]] == ["1", "2", "3", "1"]  # hub labels 0-2 -> options 1-3
    assert sample[0].target == "sw p0 h N" and "Premise: en p0" in sample[0].source
    xquad = tasks.get("xquad", data="hub", templates={"de": "{context} | {question}"})
    assert xquad.items("de")[3].gold == "a3" and xquad.items("de")[3].target == "ctx a3 | xquad.de q3"
    with pytest.raises(NotImplementedError, match="translated prompts"):
        tasks.get("globalopinionqa", data="hub").items("sw")


@needs_samples
def test_tiny_model_sweeps_released_items_with_the_papers_scorer(hooked):
    model = hooked("qwen2")
    task = tasks.get("xnli", data=XNLI_DIR)
    items = task.items("sw")[:2]
    with pytest.warns(OptionCollisionWarning):  # the tiny tokenizer has no " 1" token: said, not hidden
        res = xtl.sweep(
            model,
            items,
            components=("attn",),
            source_layers=[-1],
            target_layers=[0],
            max_new_tokens=3,
            scorer=task.scorer,
            progress=False,
        )
    texts = res.texts("attn", -1, 0)
    assert res.correct[:, 0, 0, 0].tolist() == [task.score(t, i) for t, i in zip(texts, items)]
    assert res.option_logprob.shape[-1] == 3 and not torch.isnan(res.option_logprob).any()
    assert res.spec.ids[0] == "xnli-sw-sample-0"


def test_scoring_docstring_examples():
    import doctest

    from xtl.tasks import paper

    assert doctest.testmod(scoring).failed == 0
    assert doctest.testmod(paper).failed == 0


def test_xcopa_mkqa_culturalbench_from_tables(tmp_path):
    _write_jsonl(
        tmp_path / "en.jsonl",
        [
            {
                "premise": "The man turned on the faucet.",
                "choice1": "The toilet filled.",
                "choice2": "Water flowed.",
                "question": "effect",
                "label": 2,
            }
        ],
    )
    _write_jsonl(
        tmp_path / "et.jsonl",
        [
            {
                "prompt": "Inimene: Mees keeras kraani lahti. ...",
                "label": 2,
                "choice1": "Tualett täitus veega.",
                "choice2": "Tilast voolas vett.",
            }
        ],
    )
    item = tasks.get("xcopa", data=tmp_path).items("et")[0]
    assert "What was the effect?" in item.source and "(2) Water flowed." in item.source
    assert item.gold == "2" and item.options == ("1", "2") and item.labels[1] == "Tilast voolas vett."
    xcopa = tasks.get("xcopa", data=tmp_path)
    assert xcopa.score(" (2)", item) and xcopa.score(" Tilast voolas vett.", item)
    assert not xcopa.score(" (1) Tualett täitus veega.", item)

    _write_jsonl(tmp_path / "en.jsonl", [{"question": "Who wrote Hamlet?", "answer": "Shakespeare"}])
    _write_jsonl(tmp_path / "fi.jsonl", [{"question": "Kuka kirjoitti Hamletin?", "answer": "Shakespeare"}])
    mkqa = tasks.get("mkqa", data=tmp_path, templates={"fi": "Ihminen: {question}\nAvustaja:"})
    item = mkqa.items("fi")[0]
    assert (
        item.source.startswith("Human: Please answer") and item.target == "Ihminen: Kuka kirjoitti Hamletin?\nAvustaja:"
    )
    assert mkqa.score(" William Shakespeare.", item)

    _write_jsonl(
        tmp_path / "sw.jsonl",
        [
            {
                "prompt": "Human: How would someone from Kenya ... (A) ugali (B) sushi",
                "translated": "Binadamu: ... (A) ugali (B) sushi",
                "answer": "A",
            }
        ],
    )
    bench = tasks.get("culturalbench", data=tmp_path)
    item = bench.items("sw")[0]
    assert (item.source[:9], item.target[:6], item.gold, item.options) == ("Binadamu:", "Human:", "A", ("A",))
    with pytest.raises(NotImplementedError, match="English-only"):
        tasks.get("culturalbench", data="hub").items("sw")


def test_xcopa_and_mkqa_hub_mapping_without_network(monkeypatch):
    import datasets

    def fake(name, config=None, split=None):
        if name == "cambridgeltl/xcopa":
            lang = "en" if config.startswith("translation-") else config
            return [
                {"premise": f"{lang} p{i}", "choice1": "a", "choice2": "b", "question": "cause", "label": i % 2}
                for i in range(52)
            ]
        rows = [
            {
                "queries": {"en": f"q{i}", "fi": f"k{i}"},
                "answers": {"en": [{"text": f"A{i}"}], "fi": [{"text": None if i == 1 else f"V{i}"}]},
            }
            for i in range(5)
        ]
        return rows

    monkeypatch.setattr(datasets, "load_dataset", fake)
    xcopa = tasks.get("xcopa", data="hub", templates={"sw": "{premise}|{question}|{choice1}|{choice2}"})
    items = xcopa.items("sw")
    assert len(items) == 50 and len(xcopa.items("sw", split="unseen")) == 2
    assert [i.gold for i in items[:2]] == ["1", "2"]
    assert items[0].target == "sw p0|cause|a|b" and items[0].source.startswith("Human: en p0")
    mkqa = tasks.get("mkqa", data="hub", templates={"fi": "{question}?"})
    items = mkqa.items("fi")
    assert [i.gold for i in items] == ["V0", "V2", "V3", "V4"]  # row 1 has no Finnish answer: skipped
    assert items[1].target == "k2?" and "Question: q2" in items[1].source


@needs_samples
def test_every_released_country_is_in_its_files_language_group():
    from xtl.tasks.paper import language_group

    for path in sorted((GOQA_DIR / "split").glob("*.json")):
        countries = {json.loads(line)["country"] for line in path.read_text(encoding="utf-8").splitlines()}
        assert {language_group(c) for c in countries} == {path.stem}, path.name
    assert language_group("Atlantis") is None


# --- world-facts: xtl's own multilingual factual-recall task ----------------------------------------


def test_world_facts_items_golds_and_aliases():
    task = tasks.get("world-facts")
    assert task.languages[:8] == ("en", "fr", "es", "de", "it", "pt", "sw", "id") and task.family == "contains"
    sample, unseen = task.items("pt"), task.items("pt", split="unseen")
    assert len(sample) + len(unseen) == 2 * 67 and {i.target for i in sample}.isdisjoint(i.target for i in unseen)
    moscow = next(i for i in sample + unseen if "País: Rússia\nCapital:" in i.target)
    assert moscow.target.startswith("País: Canadá\nCapital: Ottawa\n\nPaís: Quênia\nCapital: Nairobi\n\n")
    assert moscow.gold == "Moscou" and moscow.aliases == ("Moscovo",) and moscow.source.endswith("Russia\nCapital:")
    assert task.score(" Moscovo.", moscow) and task.score(" moscou", moscow) and not task.score(" Moscow", moscow)
    back = next(i for i in task.items("pt", "x2en", moscow.split) if i.source == moscow.target)
    assert back.gold == "Moscow" and back.target == moscow.source
    german = task.items("de") + task.items("de", split="unseen")
    turkey = next(i for i in german if "Land: Türkei\nKontinent:" in i.target)
    assert turkey.gold == "Asien" and task.score(" Europa", turkey) and not task.score(" Afrika", turkey)
    french = task.items("fr")[0].target
    assert french.endswith("Pays : France\nCapitale :") and task.items("fr")[0].gold == "Paris"
    assert task.items("en")[0].source == task.items("en")[0].target


def test_world_facts_in_non_latin_scripts():
    task = tasks.get("world-facts")
    assert task.languages[-5:] == ("zh", "ja", "ru", "ar", "hi")
    chinese = task.items("zh")[0]
    assert chinese.target.endswith("国家：肯尼亚\n首都：内罗毕\n\n国家：法国\n首都：") and chinese.gold == "巴黎"
    assert task.score("北京", task.items("zh")[14]) is False and task.score("巴黎。", chinese)  # 14: Japan
    hindi = task.items("hi") + task.items("hi", split="unseen")
    france = next(i for i in hindi if i.target.endswith("देश: फ़्रांस\nमहाद्वीप:"))
    assert france.gold == "यूरोप" and task.score(" यूरोप", france)
    africa = next(i for i in hindi if i.target.endswith("देश: मिस्र\nमहाद्वीप:"))  # Egypt
    assert africa.gold == "अफ़्रीका" and task.score(" अफ्रीका", africa)  # written without the nukta too
    japanese = task.items("ja") + task.items("ja", split="unseen")
    mexico = next(i for i in japanese if "国：メキシコ\n首都：" in i.target)
    assert task.score("メキシコシティー", mexico) and not task.score("Mexico City", mexico)
    for language in ("zh", "ja", "ru", "ar", "hi"):
        items = task.items(language) + task.items(language, split="unseen")
        given = [i.gold for i in items[::2] if i.gold in i.target.split("\n\n")[-1]]  # the question names it
        assert len(items) == 134 and given == {"ja": ["アルジェ"], "ru": ["Алжир"], "ar": ["الجزائر"]}.get(language, [])


def test_world_facts_names_in_non_latin_scripts_are_cldr_names():
    """Country, continent and capital names (where CLDR names the capital's time zone) against
    CLDR as Babel ships it; the hand-made exceptions are listed here."""
    babel = pytest.importorskip("babel")
    from xtl.tasks.facts import NON_LATIN, _countries

    english = {name: code for code, name in babel.Locale.parse("en").territories.items()}
    english |= {"Czech Republic": "CZ", "United States": "US", "United Kingdom": "GB", "South Korea": "KR"}
    english["Turkey"] = "TR"
    natural = {("ru", "US"): "США", ("ru", "ZA"): "ЮАР", ("ru", "KR"): "Южная Корея", ("hi", "TR"): "तुर्की"}
    natural[("hi", "US")] = "संयुक्त राज्य अमेरिका"
    continents = {"AF": "002", "AS": "142", "EU": "150", "NA": "003", "SA": "005", "OC": "009"}
    task = tasks.get("world-facts")
    checked = 0
    for language in NON_LATIN:
        locale = babel.Locale.parse(language)
        cities = {
            zone.split("/")[-1].replace("_", " "): info["city"]
            for zone, info in locale.time_zones.items()
            if "city" in info
        }
        cities.setdefault("Kyiv", cities.get("Kiev"))  # CLDR renamed the zone
        k = task.languages.index(language)
        for names, capitals, _ in _countries():
            code = english[names[0][0]]
            assert names[k][0] == natural.get((language, code), locale.territories[code]), (language, names[0])
            city = cities.get(capitals[0][0])
            if city is not None:  # the gold is CLDR's name, or its start (メキシコシティ for メキシコシティー)
                assert city.startswith(capitals[k][0]), (language, capitals[0][0], city)
                checked += 1
        items = task.items(language) + task.items(language, split="unseen")
        for item, (names, _, continent) in zip(items[1::2], _countries()[0::2] + _countries()[1::2]):
            region = continents[continent.split("/")[0]]
            assert item.gold in (locale.territories[region], locale.territories["021"]), (language, names[0])
    assert checked > 5 * 45  # most capitals are time-zone cities


def test_world_facts_untouched_accuracy_counts_each_relation(hooked):
    from xtl.tasks.facts import untouched_accuracy

    model = hooked("qwen2")
    table = untouched_accuracy(model, ["sw"], max_new_tokens=2, batch_size=50, progress=False)
    assert list(table["relation"]) == ["capital", "continent"] and list(table["items"]) == [67, 67]
    task = tasks.get("world-facts")
    items = task.items("sw") + task.items("sw", split="unseen")
    texts = [xtl.transplant(model, i.target, i.target, 0, 0, "mlp", max_new_tokens=2).baseline_text[0] for i in items]
    one_by_one = [task.score(text, item) for text, item in zip(texts, items)]
    assert list(table["correct"]) == [sum(one_by_one[0::2]), sum(one_by_one[1::2])]
