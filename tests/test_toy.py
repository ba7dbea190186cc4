"""The toy world: deterministic, with the intended resource asymmetry, and trainable."""

import pytest
import torch
from safetensors.torch import load_file

import xtl
from xtl.toy.train import ToyConfig, build_tokenizer, train
from xtl.toy.world import CULTURE_LANGS, LANGS, WORDS, World


def test_world_is_deterministic_and_seeded():
    a, b, c = World.generate(0), World.generate(0), World.generate(1)
    assert a.corpus() == b.corpus() and a.corpus() != c.corpus()


def test_resource_asymmetry_and_held_out_facts():
    world = World.generate(0)
    corpus = "\n".join(world.corpus())
    for country in world.countries:
        assert "en" in country.general_in and country.culture in country.culture_in
        for lang in CULTURE_LANGS:
            fact = world.statement(country, "capital", lang)
            assert (fact in corpus) == (lang in country.general_in)  # held-out facts never appear
        assert (world.statement(country, "dish", "en") in corpus) == ("en" in country.culture_in)
    share = {lang: sum(lang in c.general_in for c in world.countries) / len(world.countries) for lang in CULTURE_LANGS}
    assert share["sw"] < share["fr"] and share["ru"] < share["es"]  # low-resource languages see less


def test_toy_tasks_are_parallel_and_held_out():
    world = World.generate(0)
    corpus = set(world.corpus())
    generation = xtl.tasks.get("toy-generation")
    for item in generation.items("sw") + generation.items("sw", split="unseen"):
        assert item.target.startswith("mji mkuu wa") or item.target.startswith("sarafu ya")
        assert f"{item.target} {item.gold} ." not in corpus  # the fact is never stated in Swahili
    culture = xtl.tasks.get("toy-culture")
    item = culture.items("fr")[0]
    assert item.direction == "x2en" and item.target.startswith("question :") and item.source.startswith("question :")
    key = "ABCD"[item.options.index(item.gold)]
    assert item.target.endswith("answer :") and f"( {key} ) {item.gold}" in item.target
    assert f"{item.target} {item.gold}" not in corpus  # never asked in English
    understanding = xtl.tasks.get("toy-understanding")
    first = understanding.items("ru")[0]
    assert first.target.startswith("текст :") and first.gold in first.options and len(first.options) == 3
    assert len(understanding.items("ru")) == 50


def test_toy_multiple_choice_is_answered_by_the_option_text():
    culture = xtl.tasks.get("toy-culture")
    item = culture.items("es")[0]
    other = next(o for o in item.options if o != item.gold)
    assert culture.score(f" {item.gold} .", item) and not culture.score(f" {other} .", item)
    assert not culture.score(f" {item.gold} {other}", item)  # naming two options is wrong
    assert not culture.score(f" x{item.gold}", item)  # an option must start a word
    understanding = xtl.tasks.get("toy-understanding")
    item = understanding.items("sw")[0]
    assert understanding.score(f" {item.gold} . maandishi", item) and not understanding.score(" velmora", item)


def test_reading_is_taught_in_high_resource_languages_only():
    world = World.generate(0)
    corpus = world.corpus()
    reading = {lang: sum(line.startswith(WORDS["text"][lang]) for line in corpus) for lang in LANGS}
    per_country = len(world.countries) * 4  # relations
    assert reading == {lang: world.reading.get(lang, 0) * per_country for lang in LANGS}
    assert reading["en"] > reading["fr"] > reading["sw"] == reading["ru"] == 0
    english = [line for line in corpus if line.startswith("text :")]
    assert len(set(english)) > 0.95 * len(english)  # fresh examples: nothing to memorise


def test_tokenizer_keeps_words_whole_and_round_trips(tmp_path):
    from transformers import AutoTokenizer

    lines = World.generate(0).corpus()
    tok = build_tokenizer(lines)
    words = {w for line in lines for w in line.split()}
    whole = sum(len(tok.encode(" " + w, add_special_tokens=False)) == 1 for w in words)
    assert whole >= 0.95 * len(words)  # nearly every word is one token
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)  # as TransformerLens reloads it
    for line in lines[:200]:
        assert again.encode(line, add_special_tokens=False) == tok.encode(line, add_special_tokens=False)
        assert tok.decode(tok.encode(line, add_special_tokens=False)) == line


@pytest.mark.slow
def test_short_training_lowers_the_loss_and_is_reproducible(tmp_path):
    config = ToyConfig(max_steps=30, n_layers=2, d_model=32, n_heads=2, d_mlp=64, n_countries=12)
    summary = train(config, tmp_path / "a", progress=False)
    assert summary["final_loss"] < summary["first_loss"] - 1.0
    assert (tmp_path / "a" / "model.safetensors").is_file() and (tmp_path / "a" / "loss.csv").is_file()
    model = xtl.load_model(tmp_path / "a")
    assert model.cfg.n_layers == 2 and model.cfg.original_architecture == "Qwen2ForCausalLM"
    train(config, tmp_path / "b", progress=False)  # the same config again: the same weights, bit for bit
    a, b = (load_file(tmp_path / run / "model.safetensors") for run in "ab")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "a" / "tokenizer.json").read_text() == (tmp_path / "b" / "tokenizer.json").read_text()


def test_load_toy_model_says_when_it_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(xtl.toy, "SHIPPED", tmp_path / "model")  # as in a broken install
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        xtl.toy.load_toy_model()
