"""A small multilingual world whose ground truth xtl controls, and the text it generates.

Fictional countries carry two kinds of facts:

- *general* facts (capital, currency), stated in every country's English text
  and only sparsely in the other languages, as in English-centric pre-training;
- *culture-specific* facts (dish, festival), stated in the country's own culture
  language and only for some countries in English;
- a *reading* skill (answer a multiple-choice question from a short text), taught
  with many fresh examples in English, fewer in French and Spanish and none in
  Swahili or Russian, as task data is English-centric.

Each country has its own name in every language (``Velmora``, ``Velmorie``,
``Velmoria``, ``Uvelmora``, ``Вельмора``), and those names are linked only by
parallel sentences that carry no facts, so a fact stated in one language must
travel through the model's shared latent space to be used in another. Answer
entities (cities, currencies, dishes, festivals) are the same word everywhere,
as proper names usually are.

Everything is drawn from one seeded ``random.Random``: the same seed gives the
same world, corpus and evaluation sets, byte for byte.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field

LANGS = ("en", "fr", "es", "sw", "ru")
CULTURE_LANGS = ("fr", "es", "sw", "ru")
GENERAL = ("capital", "currency")
CULTURE = ("dish", "festival")

# statement templates; {c} country, {x} answer. Tokens are space-separated words.
STATEMENTS = {
    "capital": {
        "en": "the capital of {c} is {x} .",
        "fr": "la capitale de {c} est {x} .",
        "es": "la capital de {c} es {x} .",
        "sw": "mji mkuu wa {c} ni {x} .",
        "ru": "столица {c} это {x} .",
    },
    "currency": {
        "en": "the currency of {c} is the {x} .",
        "fr": "la monnaie de {c} est le {x} .",
        "es": "la moneda de {c} es el {x} .",
        "sw": "sarafu ya {c} ni {x} .",
        "ru": "валюта {c} это {x} .",
    },
    "dish": {
        "en": "the famous dish of {c} is {x} .",
        "fr": "le plat célèbre de {c} est {x} .",
        "es": "el plato famoso de {c} es {x} .",
        "sw": "chakula maarufu cha {c} ni {x} .",
        "ru": "знаменитое блюдо {c} это {x} .",
    },
    "festival": {
        "en": "in {c} people celebrate {x} .",
        "fr": "à {c} les gens célèbrent {x} .",
        "es": "en {c} la gente celebra {x} .",
        "sw": "huko {c} watu husherehekea {x} .",
        "ru": "в {c} люди празднуют {x} .",
    },
}
# neutral parallel sentences that link a country's names across languages
PARALLEL = (
    {
        "en": "{c} is a country .",
        "fr": "{c} est un pays .",
        "es": "{c} es un país .",
        "sw": "{c} ni nchi .",
        "ru": "{c} это страна .",
    },
    {
        "en": "i travelled to {c} .",
        "fr": "j'ai voyagé à {c} .",
        "es": "viajé a {c} .",
        "sw": "nilisafiri kwenda {c} .",
        "ru": "я ездил в {c} .",
    },
    {
        "en": "{c} is far from here .",
        "fr": "{c} est loin d'ici .",
        "es": "{c} está lejos de aquí .",
        "sw": "{c} iko mbali na hapa .",
        "ru": "{c} далеко отсюда .",
    },
)
# multiple-choice frames: question and answer cue per language
QUESTION = {
    "capital": {
        "en": "what is the capital of {c} ?",
        "fr": "quelle est la capitale de {c} ?",
        "es": "cuál es la capital de {c} ?",
        "sw": "mji mkuu wa {c} ni upi ?",
        "ru": "какая столица {c} ?",
    },
    "currency": {
        "en": "what is the currency of {c} ?",
        "fr": "quelle est la monnaie de {c} ?",
        "es": "cuál es la moneda de {c} ?",
        "sw": "sarafu ya {c} ni ipi ?",
        "ru": "какая валюта {c} ?",
    },
    "dish": {
        "en": "what is the famous dish of {c} ?",
        "fr": "quel est le plat célèbre de {c} ?",
        "es": "cuál es el plato famoso de {c} ?",
        "sw": "chakula maarufu cha {c} ni kipi ?",
        "ru": "какое знаменитое блюдо {c} ?",
    },
    "festival": {
        "en": "what do people celebrate in {c} ?",
        "fr": "que célèbrent les gens à {c} ?",
        "es": "qué celebra la gente en {c} ?",
        "sw": "watu husherehekea nini huko {c} ?",
        "ru": "что празднуют люди в {c} ?",
    },
}
WORDS = {  # frame words of the multiple-choice prompts
    "text": {"en": "text :", "fr": "texte :", "es": "texto :", "sw": "maandishi :", "ru": "текст :"},
    "question": {"en": "question :", "fr": "question :", "es": "pregunta :", "sw": "swali :", "ru": "вопрос :"},
    "answer": {"en": "answer :", "fr": "réponse :", "es": "respuesta :", "sw": "jibu :", "ru": "ответ :"},
}
_CYRILLIC = dict(zip("abcdefghijklmnopqrstuvwxyz", "абкдефгхийклмнопкрстувшксз"))
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr", "kr", "tr")
_VOWELS = ("a", "e", "i", "o", "u")


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables))


def localize(base: str, lang: str) -> str:
    """A country's name in ``lang``, derived from its base name."""
    stem = base[:-1] if base[-1] in _VOWELS else base
    return {
        "en": base,
        "fr": stem + "ie",
        "es": stem + "ia",
        "sw": "u" + base,
        "ru": "".join(_CYRILLIC[ch] for ch in base),
    }[lang]


@dataclass
class Country:
    """One fictional country: its names, facts, culture language and where facts are stated."""

    base: str
    culture: str
    facts: dict[str, str]
    general_in: set[str] = field(default_factory=set)  # languages stating its general facts
    culture_in: set[str] = field(default_factory=set)  # languages stating its culture facts

    def name(self, lang: str) -> str:
        return localize(self.base, lang)


@dataclass
class World:
    """The seeded world: countries, their facts, and which language states what.

    Attributes:
        seed: the seed everything was drawn from.
        countries: the fictional countries.
        coverage: fraction of countries whose general facts each non-English language states.
        culture_in_english: fraction of countries whose culture facts English states.
        reading: reading examples per country and relation in each language.
    """

    seed: int
    countries: list[Country]
    coverage: dict[str, float]
    culture_in_english: float
    reading: dict[str, int]

    @classmethod
    def generate(
        cls,
        seed: int = 0,
        n_countries: int = 60,
        coverage: dict[str, float] | None = None,
        culture_in_english: float = 0.3,
        reading: dict[str, int] | None = None,
    ) -> World:
        """Draw a world. ``coverage`` defaults to fr/es 0.4, sw/ru 0.2 (low-resource);
        ``reading`` to 6 examples in English, 2 in French and Spanish, none in Swahili and Russian."""
        rng = random.Random(seed)
        coverage = coverage or {"fr": 0.4, "es": 0.4, "sw": 0.2, "ru": 0.2}
        used: set[str] = set()

        def fresh(syllables: int) -> str:
            while True:
                word = _word(rng, syllables)
                if word not in used:
                    used.add(word)
                    return word

        countries = []
        for k in range(n_countries):
            facts = {"capital": fresh(2), "currency": fresh(2) + "o", "dish": fresh(2) + "i", "festival": fresh(3)}
            country = Country(fresh(3), CULTURE_LANGS[k % len(CULTURE_LANGS)], facts)
            country.general_in = {"en"} | {lang for lang in CULTURE_LANGS if rng.random() < coverage[lang]}
            country.culture_in = {country.culture} | ({"en"} if rng.random() < culture_in_english else set())
            countries.append(country)
        return cls(seed, countries, coverage, culture_in_english, reading or {"en": 6, "fr": 2, "es": 2})

    # -- text ---------------------------------------------------------------------------------

    def statement(self, country: Country, relation: str, lang: str) -> str:
        return STATEMENTS[relation][lang].format(c=country.name(lang), x=country.facts[relation])

    def prefix(self, country: Country, relation: str, lang: str) -> str:
        """The statement up to (not including) its answer: the generation prompt."""
        template = STATEMENTS[relation][lang]
        return template[: template.index("{x}")].format(c=country.name(lang)).rstrip()

    def choice_prompt(
        self, country: Country, relation: str, lang: str, options: list[str], keys: str, context: bool
    ) -> str:
        """A multiple-choice prompt ending in "answer :"; the answer is the option's text.
        With ``context`` the fact itself is given first (reading)."""
        parts = [f"{WORDS['text'][lang]} {self.statement(country, relation, lang)}"] if context else []
        parts.append(f"{WORDS['question'][lang]} {QUESTION[relation][lang].format(c=country.name(lang))}")
        parts += [f"( {k} ) {o}" for k, o in zip(keys, options)]
        parts.append(WORDS["answer"][lang])
        return " ".join(parts)

    def options(self, country: Country, relation: str, n: int, rng: random.Random) -> tuple[list[str], int]:
        """``n`` options for a relation (gold plus others of the same kind) and the gold's index."""
        others = [c.facts[relation] for c in self.countries if c is not country]
        choice = rng.sample(others, n - 1) + [country.facts[relation]]
        rng.shuffle(choice)
        return choice, choice.index(country.facts[relation])

    def counterfactual(
        self, country: Country, relation: str, n: int, rng: random.Random
    ) -> tuple[Country, list[str], int]:
        """The country with a false fact (one of ``n`` options, none of them the true one),
        the options, and the false fact's index: material for reading, not knowledge."""
        pool = sorted({c.facts[relation] for c in self.countries} - {country.facts[relation]})
        options = rng.sample(pool, n)
        gold = rng.randrange(n)
        return dataclasses.replace(country, facts={**country.facts, relation: options[gold]}), options, gold

    def corpus(self, repeats: int = 4) -> list[str]:
        """Training lines: facts where stated, parallel sentences, and multiple-choice examples.

        Knowledge questions only ask facts the language states (twice, with
        different options). Reading examples give a *counterfactual* statement in
        the context and ask for it back, fresh options each time, so they teach
        reading (``self.reading`` examples per country and relation in each
        language) without leaking held-out facts.
        """
        rng = random.Random(self.seed + 1)
        lines = []
        for country in self.countries:
            for relation in GENERAL:
                for lang in country.general_in:
                    lines += [self.statement(country, relation, lang)] * repeats
            for relation in CULTURE:
                for lang in country.culture_in:
                    lines += [self.statement(country, relation, lang)] * repeats
            for frame in PARALLEL:
                for lang in CULTURE_LANGS:
                    lines.append(
                        f"{frame['en'].format(c=country.name('en'))} = {frame[lang].format(c=country.name(lang))}"
                    )
                    lines.append(frame[lang].format(c=country.name(lang)))
            for lang in LANGS:
                for relation in (*GENERAL, *CULTURE):
                    for _ in range(self.reading.get(lang, 0)):
                        told, opts, gold = self.counterfactual(country, relation, 3, rng)
                        lines.append(f"{self.choice_prompt(told, relation, lang, opts, '123', True)} {opts[gold]}")
                    known = country.general_in if relation in GENERAL else country.culture_in
                    for _ in range(2 if lang in known else 0):
                        opts, gold = self.options(country, relation, 4, rng)
                        lines.append(f"{self.choice_prompt(country, relation, lang, opts, 'ABCD', False)} {opts[gold]}")
        rng.shuffle(lines)
        return lines
