"""The toy world's evaluation tasks, registered with the paper's benchmarks.

- ``toy-generation`` (XQuAD-like, En -> X): complete a general fact ("mji mkuu
  wa uvelmora ni") for countries whose general facts the query language never
  states; the English prompt is the source.
- ``toy-understanding`` (XNLI-like, En -> X): read a counterfactual statement in
  the context and pick the option it gives, (1)-(3); answering from memory fails.
  The reading skill was trained in English, French and Spanish only.
- ``toy-culture`` (GlobalOpinionQA-like, X -> En): multiple choice (A)-(D) in
  English about a dish or festival stated only in the country's own language;
  the culture-language prompt is the source.

The prompts list options with keys, and the model answers with the option's
text (``answer : dopoo``), so items carry the options' texts as ``options`` and
``gold`` and are scored by the ``choice`` rule (exactly one option named);
option log-probabilities are those of the texts.

Items are parallel across languages and split in halves: ``sample`` and ``unseen``.
"""

from __future__ import annotations

import random

from xtl.spec import TransplantSpec
from xtl.tasks.base import Record, Task
from xtl.toy.world import CULTURE, CULTURE_LANGS, GENERAL, World


class _ToyTask(Task):
    languages = CULTURE_LANGS
    option_names = ("seed", "n_countries")

    def world(self) -> World:
        return World.generate(self.options.get("seed", 0), self.options.get("n_countries", 60))

    def rows(self, language, split):
        rows = self.all_rows(self.world(), language)
        half = (len(rows) + 1) // 2
        return rows[:half] if split == "sample" else rows[half:]

    def all_rows(self, world: World, language: str) -> list[tuple[Record, Record]]:
        raise NotImplementedError


class ToyGeneration(_ToyTask):
    """General facts held out of the query language, completed as text (scored by substring)."""

    name, kind, direction, family = "toy-generation", "generation", "en2x", "contains"
    default = TransplantSpec(source_layer=0, target_layer=0, component="mlp")

    def all_rows(self, world, language):
        return [
            (Record(world.prefix(c, r, "en"), c.facts[r]), Record(world.prefix(c, r, language), c.facts[r]))
            for c in world.countries
            if language not in c.general_in
            for r in GENERAL
        ]


class ToyUnderstanding(_ToyTask):
    """Reading a counterfactual context in the query language (options (1)-(3))."""

    name, kind, direction, family = "toy-understanding", "understanding", "en2x", "choice"
    default = TransplantSpec(source_layer=-1, target_layer=0, component="attn")

    def all_rows(self, world, language):
        rng = random.Random(world.seed + 2)
        rows = []
        for country in world.countries[:25]:
            for relation in (*GENERAL, *CULTURE):
                fake, options, gold = world.counterfactual(country, relation, 3, rng)
                pair = [
                    Record(
                        world.choice_prompt(fake, relation, lang, options, "123", True), options[gold], tuple(options)
                    )
                    for lang in ("en", language)
                ]
                rows.append(tuple(pair))
        return rows


class ToyCulture(_ToyTask):
    """Culture facts stated only in the country's language, asked in English ((A)-(D))."""

    name, kind, direction, family = "toy-culture", "culture", "x2en", "choice"
    default = TransplantSpec(source_layer=0, target_layer=0, component="mlp")

    def all_rows(self, world, language):
        rng = random.Random(world.seed + 3)
        rows = []
        for country in world.countries:
            if country.culture != language or "en" in country.culture_in:
                continue
            for relation in CULTURE:
                options, gold = world.options(country, relation, 4, rng)
                pair = [
                    Record(
                        world.choice_prompt(country, relation, lang, options, "ABCD", False),
                        options[gold],
                        tuple(options),
                    )
                    for lang in ("en", language)
                ]
                rows.append(tuple(pair))
        return rows
