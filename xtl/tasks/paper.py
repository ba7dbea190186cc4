"""The paper's benchmarks with the authors' released layout, plain tables, or the hub.

Each task reads one of three sources, chosen by ``data=``:

- a directory in the authors' released layout (as in ``xtransplant-samples``),
  which holds the ``sample`` split only;
- a directory of plain tables, ``{lang}.jsonl`` / ``{lang}.csv`` (the
  ``sample`` split) and ``{lang}.unseen.jsonl`` / ``.csv``, one row per
  question with named columns: either a ready ``prompt`` and ``answer``, or the
  task's raw fields (below), formatted with its template;
- ``"hub"``: the dataset named in the task's ``hub`` attribute, read with
  ``datasets.load_dataset`` (needs network; never used in tests). The first 50
  rows per language form the ``sample`` split and the rest ``unseen``; these
  are not the authors' random samples.

Prompts are raw text without chat templates. English templates are built in;
for other languages pass ``templates={lang: "..."}`` (and ``label_words`` for
XNLI) to :func:`xtl.tasks.get`, since the paper translates the whole prompt.
Rows that already carry a ``prompt`` need no template.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xtl.spec import TransplantSpec
from xtl.tasks.base import Record, Task, require_dir
from xtl.tasks.files import DataError, check_aligned, field, json_lines, table

SAMPLE_SIZE = 50
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _table_path(root: Path, language: str, split: str) -> Path:
    names = [f"{language}.jsonl", f"{language}.csv"] if split == "sample" else []
    names += [f"{language}.{split}.jsonl", f"{language}.{split}.csv"]
    for name in names:
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"no {split} data for {language!r} in {str(root)!r}; looked for {names}")


def _hub_rows(rows: list[Any], split: str) -> list[Any]:
    return rows[:SAMPLE_SIZE] if split == "sample" else rows[SAMPLE_SIZE:]


class _PaperTask(Task):
    """Shared plumbing: pick the source, read per-language records, align them."""

    released_marker: str = ""  # a path inside the released layout ("" if the authors released none)
    template: str = ""          # English template over the raw fields

    def is_released(self) -> bool:
        return bool(self.released_marker) and isinstance(self.data, Path) and (
            self.data / self.released_marker).exists()

    def rows(self, language: str, split: str) -> list[tuple[Record, Record]]:
        if self.data == "hub":
            english, other = self.hub_records("en", split), self.hub_records(language, split)
            return self._aligned(english, Path(f"hub:{self.hub}/en"), other, Path(f"hub:{self.hub}/{language}"))
        root = require_dir(self.data, self.name, "the authors' released layout or plain tables")
        if self.is_released():
            if split != "sample":
                raise FileNotFoundError(
                    f"{str(root)!r} is the authors' released layout, which holds only the sample "
                    f"split; put unseen data in {language}.unseen.jsonl tables or use data='hub'"
                )
            return self.released_rows(root, language)
        paths = [_table_path(root, lang, split) for lang in ("en", language)]
        english, other = (self.table_records(p, lang) for p, lang in zip(paths, ("en", language)))
        return self._aligned(english, paths[0], other, paths[1])

    def template_for(self, language: str) -> str:
        templates = self.options.get("templates", {})
        if language in templates:
            return templates[language]
        if language == "en":
            return self.template
        raise ValueError(
            f"task {self.name!r}: rows for {language!r} have no 'prompt' column and no template "
            f"was given; pass templates={{{language!r}: '...'}} (the paper translates the whole prompt)"
        )

    def table_records(self, path: Path, language: str) -> list[Record]:
        return [self.record(row, language, path, k) for k, row in enumerate(table(path), 1)]

    def released_rows(self, root: Path, language: str) -> list[tuple[Record, Record]]:
        raise NotImplementedError

    def record(self, row: dict, language: str, path: Path, number: int) -> Record:
        raise NotImplementedError

    def hub_records(self, language: str, split: str) -> list[Record]:
        raise NotImplementedError


class XNLI(_PaperTask):
    """XNLI, multilingual understanding: premise/hypothesis relation as options (1)-(3).

    Raw table fields: ``premise``, ``hypothesis``, ``label`` (``1``/``2``/``3``; the
    hub's 0-2 are mapped) and optionally ``labels`` (the three label words).
    Scoring: the gold option's ``(k)``, bare ``k`` or localized label word
    appears and no other option's does.
    """

    name = "xnli"
    kind = "understanding"
    languages = ("ar", "bg", "de", "el", "es", "fr", "hi", "ru", "sw", "tr", "ur", "vi", "zh")
    direction = "en2x"
    default = TransplantSpec(source_layer=-1, target_layer=0, component="attn")
    rule = "option"
    hub = "facebook/xnli"
    released_marker = "ans_lang"
    options_keys = ("1", "2", "3")
    english_labels = ("Entail", "Neutral", "Contradict")
    template = (
        "Human: What do you think is the relationship between the premise and the hypothesis?"
        "\n\nPremise: {premise}\nHypothesis: {hypothesis}\n\n(1) {label1}\n(2) {label2}\n(3) {label3}"
        "\n\nAssistant: If I had to select one of the options, my answer would be:"
    )

    def label_words(self, language: str) -> tuple[str, ...]:
        words = self.options.get("label_words", {})
        if language in words:
            return tuple(words[language])
        return self.english_labels if language == "en" else ()

    def released_rows(self, root, language):
        def side(lang):
            prompts = json_lines(root / "split" / f"{lang}.json")
            golds = json_lines(root / "ans" / f"{lang}.json")
            words = json_lines(root / "ans_lang" / f"{lang}.json")
            if len(words) != 1 or not isinstance(words[0], dict) or sorted(words[0]) != list(self.options_keys):
                raise DataError(f"{root / 'ans_lang' / f'{lang}.json'}:1: expected one object with keys 1, 2, 3")
            check_aligned(prompts, root / "split" / f"{lang}.json", golds, root / "ans" / f"{lang}.json")
            labels = tuple(words[0][k].strip() for k in self.options_keys)
            for number, gold in enumerate(golds, 1):
                if str(gold) not in self.options_keys:
                    raise DataError(f"{root / 'ans' / f'{lang}.json'}:{number}: gold {gold!r} is not 1, 2 or 3")
            return [Record(p, str(g), self.options_keys, labels) for p, g in zip(prompts, golds)]

        english, other = side("en"), side(language)
        return self._aligned(english, root / "split" / "en.json", other, root / "split" / f"{language}.json")

    def _gold(self, value: Any, path: Path, number: int) -> str:
        text = str(value).strip()
        if text in ("0", "1", "2") and self.data == "hub":
            return str(int(text) + 1)
        if text not in self.options_keys:
            raise DataError(f"{path}:{number}: label {value!r} is not one of {list(self.options_keys)}")
        return text

    def record(self, row, language, path, number):
        labels = tuple(row["labels"]) if isinstance(row.get("labels"), list) else self.label_words(language)
        gold = self._gold(field(row, "answer" if "answer" in row else "label", path, number), path, number)
        if "prompt" in row:
            return Record(row["prompt"], gold, self.options_keys, labels)
        names = labels or self.english_labels
        prompt = self.template_for(language).format(
            premise=field(row, "premise", path, number), hypothesis=field(row, "hypothesis", path, number),
            label1=names[0], label2=names[1], label3=names[2],
        )
        return Record(prompt, gold, self.options_keys, labels)

    def hub_records(self, language, split):
        from datasets import load_dataset

        rows = _hub_rows(list(load_dataset(self.hub, language, split="test")), split)
        return [self.record(dict(row), language, Path(f"hub:{self.hub}/{language}"), k)
                for k, row in enumerate(rows, 1)]


class XQuAD(_PaperTask):
    """XQuAD, multilingual generation: extractive QA from a context.

    Raw table fields: ``context``, ``question``, ``answer``. Scoring: the gold
    answer is a case-insensitive substring of the output.
    """

    name = "xquad"
    kind = "generation"
    languages = ("ar", "de", "el", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh")
    direction = "en2x"
    default = TransplantSpec(source_layer=0, target_layer=0, component="mlp")
    rule = "contains"
    hub = "google/xquad"
    released_marker = "ans"
    template = (
        "Human: Please answer these questions only based on the given context.\n\n"
        "Context: {context}\nQuestion: {question}\n\nAssistant: My answer would be:"
    )

    def released_rows(self, root, language):
        def side(lang):
            prompts = json_lines(root / "split" / f"xquad.{lang}.json")
            golds = json_lines(root / "ans" / f"xquad.{lang}.json")
            check_aligned(prompts, root / "split" / f"xquad.{lang}.json", golds, root / "ans" / f"xquad.{lang}.json")
            return [Record(p, str(g)) for p, g in zip(prompts, golds)]

        english, other = side("en"), side(language)
        return self._aligned(english, root / "split" / "xquad.en.json", other,
                             root / "split" / f"xquad.{language}.json")

    def record(self, row, language, path, number):
        answer = field(row, "answer", path, number)
        if isinstance(answer, dict):  # the hub's {"text": [...], "answer_start": [...]}
            answer = answer["text"][0]
        if "prompt" in row:
            return Record(row["prompt"], str(answer))
        prompt = self.template_for(language).format(
            context=field(row, "context", path, number), question=field(row, "question", path, number))
        return Record(prompt, str(answer))

    def hub_records(self, language, split):
        from datasets import load_dataset

        rows = _hub_rows(list(load_dataset(self.hub, f"xquad.{language}", split="validation")), split)
        return [self.record({**row, "answer": row["answers"]}, language, Path(f"hub:{self.hub}/{language}"), k)
                for k, row in enumerate(rows, 1)]


LANGUAGE_GROUPS: dict[str, tuple[str, ...]] = {
    "am": ("Ethiopia",),
    "ar": ("Algeria", "Bahrain", "Egypt", "Iraq", "Jordan", "Kuwait", "Lebanon", "Libya", "Morocco",
           "Palest. ter.", "Qatar", "Saudi Arabia", "Sudan", "Syria", "Tunisia", "Yemen"),
    "de": ("Austria", "Germany", "Switzerland"),
    "el": ("Cyprus", "Greece"),
    "en": ("Australia", "Britain", "Canada", "Ghana", "Great Britain", "Ireland", "New Zealand", "Nigeria",
           "Northern Ireland", "S. Africa", "Singapore", "Uganda", "United States", "Zimbabwe"),
    "es": ("Argentina", "Bolivia", "Chile", "Colombia", "Costa Rica", "Dominican Republic", "Ecuador",
           "El Salvador", "Guatemala", "Honduras", "Mexico", "Nicaragua", "Panama", "Paraguay", "Peru",
           "Puerto Rico", "Spain", "Uruguay", "Venezuela"),
    "fr": ("Burkina Faso", "France", "Ivory Coast", "Mali", "Senegal"),
    "hi": ("India",),
    "id": ("Indonesia",),
    "ja": ("Japan",),
    "pt": ("Angola", "Brazil", "Mozambique", "Portugal"),
    "ru": ("Russia",),
    "sv": ("Sweden",),
    "sw": ("Kenya", "Tanzania"),
    "tl": ("Philippines",),
    "tr": ("Turkey",),
    "uk": ("Ukraine",),
    "ur": ("Pakistan",),
    "vi": ("Vietnam",),
    "zh-CN": ("China", "Hong Kong SAR", "Macau SAR"),
}


def language_group(country: str) -> str | None:
    """The GlobalOpinionQA language group of a survey country, as the paper pairs them.

    Sample qualifiers such as " (Non-national sample)" are ignored; ``zh-CN``
    covers China, Hong Kong and Macau. Countries in no group give ``None``.

    Example:
        >>> language_group("Macau SAR"), language_group("Kenya (Non-national sample)")
        ('zh-CN', 'sw')
    """
    base = country.split(" (")[0].strip()
    return next((lang for lang, names in LANGUAGE_GROUPS.items() if base in names), None)


class GlobalOpinionQA(_PaperTask):
    """GlobalOpinionQA, cultural adaptability: how would someone from a country answer?

    Items pair each country with its language group (``zh-CN`` covers China, Hong
    Kong and Macau). The English prompt and its translation into the group's
    language ask the same question; the gold is the option with the largest
    share of human answers. Raw table fields: ``prompt`` (English), ``translated``
    (the group's language), ``label`` (shares per option) or ``answer`` (a
    letter). Scoring: the gold letter's ``(A)`` or bare letter and no other's.
    """

    name = "globalopinionqa"
    kind = "culture"
    languages = ("am", "ar", "de", "el", "en", "es", "fr", "hi", "id", "ja", "pt", "ru", "sv", "sw",
                 "tl", "tr", "uk", "ur", "vi", "zh-CN")
    direction = "x2en"
    default = TransplantSpec(source_layer=0, target_layer=0, component="mlp")
    rule = "letter"
    hub = "Anthropic/llm_global_opinions"
    released_marker = "translated"

    @staticmethod
    def gold_letter(shares: list[float]) -> str:
        """The option with the largest share of human answers (the first on ties)."""
        return LETTERS[max(range(len(shares)), key=lambda k: shares[k])]

    def released_rows(self, root, language):
        english_path, other_path = root / "split" / f"{language}.json", root / "translated" / f"{language}.json"
        english = json_lines(english_path)
        other = json_lines(other_path)
        rows = []
        for number, (row, translated) in enumerate(self._aligned(english, english_path, other, other_path), 1):
            if not isinstance(row, dict):
                raise DataError(f"{english_path}:{number}: expected an object with input_text and label")
            rows.append(self._pair(row.get("input_text"), translated, row.get("label"), None,
                                   english_path, number))
        return rows

    def _pair(self, prompt, translated, shares, answer, path, number) -> tuple[Record, Record]:
        if not isinstance(prompt, str) or not isinstance(translated, str):
            raise DataError(f"{path}:{number}: needs an English prompt and its translation as text")
        if answer is None:
            if not isinstance(shares, list) or not shares:
                raise DataError(f"{path}:{number}: needs 'label' (shares per option) or 'answer'")
            answer = self.gold_letter([float(x) for x in shares])
            n = len(shares)
        else:
            n = len(shares) if isinstance(shares, list) else LETTERS.index(str(answer)) + 1
        letters = tuple(LETTERS[:n])
        return Record(prompt, str(answer), letters), Record(translated, str(answer), letters)

    def rows(self, language, split):
        if self.data == "hub":
            raise NotImplementedError(
                "GlobalOpinionQA from the hub needs translated prompts, which the hub does not carry; "
                "use the authors' released layout or a table with prompt/translated/label columns"
            )
        root = require_dir(self.data, self.name, "the authors' released layout or plain tables")
        if self.is_released():
            return super().rows(language, split)
        path = _table_path(root, language, split)
        return [self._pair(row.get("prompt"), row.get("translated"), row.get("label"), row.get("answer"),
                           path, k) for k, row in enumerate(table(path), 1)]


class XCOPA(_PaperTask):
    """XCOPA, out-of-distribution understanding: which of two alternatives is the cause/effect?

    Raw table fields: ``premise``, ``choice1``, ``choice2``, ``question``
    (``cause``/``effect``), ``label`` (``1``/``2``; the hub's 0/1 are mapped).
    The method doc gives no XCOPA prompt, so xtl's English template follows the
    XNLI prompt's form. Scoring as XNLI: ``(k)``, bare ``k`` or the
    alternative's text, and not the other's. On the hub, the English side of
    language X is XCOPA's ``translation-X`` configuration (the same items in
    English).
    """

    name = "xcopa"
    kind = "understanding"
    languages = ("et", "ht", "id", "it", "sw", "ta", "th", "tr", "vi", "zh")
    direction = "en2x"
    default = TransplantSpec(source_layer=-1, target_layer=0, component="attn")
    rule = "option"
    hub = "cambridgeltl/xcopa"
    options_keys = ("1", "2")
    template = (
        "Human: {premise} What was the {question}?\n\n(1) {choice1}\n(2) {choice2}"
        "\n\nAssistant: If I had to select one of the options, my answer would be:"
    )

    def record(self, row, language, path, number):
        label = str(field(row, "answer" if "answer" in row else "label", path, number)).strip()
        if self.data == "hub" and label in ("0", "1"):
            label = str(int(label) + 1)
        if label not in self.options_keys:
            raise DataError(f"{path}:{number}: label {label!r} is not one of {list(self.options_keys)}")
        choices = tuple(str(row[k]) for k in ("choice1", "choice2") if row.get(k))
        labels = choices if len(choices) == 2 else ()
        if "prompt" in row:
            return Record(row["prompt"], label, self.options_keys, labels)
        prompt = self.template_for(language).format(
            premise=field(row, "premise", path, number), question=field(row, "question", path, number),
            choice1=field(row, "choice1", path, number), choice2=field(row, "choice2", path, number))
        return Record(prompt, label, self.options_keys, labels)

    def rows(self, language, split):
        if self.data != "hub":
            return super().rows(language, split)
        from datasets import load_dataset

        def side(config, lang):
            rows = _hub_rows(list(load_dataset(self.hub, config, split="test")), split)
            return [self.record(dict(r), lang, Path(f"hub:{self.hub}/{config}"), k) for k, r in enumerate(rows, 1)]

        english, other = side(f"translation-{language}", "en"), side(language, language)
        return self._aligned(english, Path(f"hub:{self.hub}/translation-{language}"), other,
                             Path(f"hub:{self.hub}/{language}"))


class MKQA(_PaperTask):
    """MKQA, out-of-distribution generation: open-domain questions without context.

    Raw table fields: ``question``, ``answer``. Scoring: the gold answer is a
    case-insensitive substring. On the hub, one row holds every language's
    query and answers; rows without a text answer in English or the language
    are skipped for both sides. (``apple/mkqa`` ships a loading script, which
    recent ``datasets`` releases no longer run; export it to tables then.)
    """

    name = "mkqa"
    kind = "generation"
    languages = ("ar", "da", "de", "es", "fi", "fr", "he", "hu", "it", "ja", "km", "ko", "ms", "nl", "no",
                 "pl", "pt", "ru", "sv", "th", "tr", "vi", "zh_cn", "zh_hk", "zh_tw")
    direction = "en2x"
    default = TransplantSpec(source_layer=0, target_layer=0, component="mlp")
    rule = "contains"
    hub = "apple/mkqa"
    template = "Human: Please answer the following question.\n\nQuestion: {question}\n\nAssistant: My answer would be:"

    def record(self, row, language, path, number):
        answer = str(field(row, "answer", path, number))
        if "prompt" in row:
            return Record(row["prompt"], answer)
        return Record(self.template_for(language).format(question=field(row, "question", path, number)), answer)

    def rows(self, language, split):
        if self.data != "hub":
            return super().rows(language, split)
        from datasets import load_dataset

        def text(row, lang):
            answers = row["answers"].get(lang) or []
            return next((a.get("text") for a in answers if a.get("text")), None)

        kept = [r for r in load_dataset(self.hub, split="train") if text(r, "en") and text(r, language)]
        source = Path(f"hub:{self.hub}")
        return [(self.record({"question": r["queries"]["en"], "answer": text(r, "en")}, "en", source, k),
                 self.record({"question": r["queries"][language], "answer": text(r, language)}, language,
                             source, k))
                for k, r in enumerate(_hub_rows(kept, split), 1)]


class CulturalBench(GlobalOpinionQA):
    """CulturalBench, out-of-distribution cultural adaptability: multiple-choice questions
    about a region's culture, asked in the region's language (source) and in English (target).

    CulturalBench is English-only, so both sides come from tables with ``prompt``
    (English), ``translated`` and ``answer`` (a letter) columns, one file per
    language group as for GlobalOpinionQA. Scoring: letter markers.
    """

    name = "culturalbench"
    hub = "kellycyy/CulturalBench"
    released_marker = ""  # the authors released no CulturalBench split

    def rows(self, language, split):
        if self.data == "hub":
            raise NotImplementedError(
                "CulturalBench on the hub is English-only; translate the questions into each language "
                "group and pass tables with prompt/translated/answer columns"
            )
        return super().rows(language, split)
