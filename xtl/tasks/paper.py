"""The paper's benchmarks with the authors' released layout, plain tables, or the hub.

Each task reads one of three sources, chosen by ``data=``:

- the authors' released layout (as in ``xtransplant-samples``): the task's
  folder holding ``{Name}_sample`` and ``{Name}_unseen`` side by side (``XNLI/``),
  or one of those split folders, whose sibling serves the other split;
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
from typing import Any, ClassVar

from xtl.errors import InputError, MissingFileError
from xtl.spec import TransplantSpec
from xtl.tasks.base import SPLITS, Record, Task, require_dir
from xtl.tasks.files import DataError, at, by_id, check_aligned, check_record, field, finite, json_lines, table

SAMPLE_SIZE = 50
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _table_path(root: Path, language: str, split: str) -> Path:
    names = [f"{language}.jsonl", f"{language}.csv"] if split == "sample" else []
    names += [f"{language}.{split}.jsonl", f"{language}.{split}.csv"]
    for name in names:
        if (root / name).is_file():
            return root / name
    raise MissingFileError(f"no {split} data for {language!r} in {str(root)!r}; looked for {names}")


def texts(values: list[Any], path: Path, what: str = "prompt") -> None:
    """Every line of a released file must be a non-blank JSON string (``what`` names it in the error).

    A blank gold answer is refused: the authors' ``gold.lower() in pred.lower()`` would count
    every output correct."""
    for number, value in enumerate(values, 1):
        if not isinstance(value, str):
            raise DataError(f"{path}:{number}: the {what} must be a JSON string, got {value!r:.60}")
        if not value.strip():
            raise DataError(f"{path}:{number}: the {what} is blank ({value!r})")


def _hub_rows(rows: list[Any], split: str) -> list[Any]:
    return rows[:SAMPLE_SIZE] if split == "sample" else rows[SAMPLE_SIZE:]


class _PaperTask(Task):
    """Shared plumbing: pick the source, read per-language records, align them."""

    released_name: str = ""  # the authors' folder prefix ("XNLI" for XNLI_sample, XNLI_unseen)
    released_marker: str = ""  # a path inside a released split folder ("" if the authors released none)
    template: str = ""  # English template over the raw fields
    option_names: ClassVar[tuple[str, ...]] = ("templates",)

    def released_root(self, split: str) -> Path | None:
        """The folder of ``split`` in the authors' released layout, or ``None`` when ``data``
        is not that layout. ``data`` may be the task's folder (``XNLI/``, holding
        ``XNLI_sample`` and ``XNLI_unseen``) or one split folder, whose sibling serves the
        other split.

        Raises:
            FileNotFoundError: the layout is there but not the split asked for.
        """
        if not self.released_marker or not isinstance(self.data, Path):
            return None

        def is_layout(path: Path) -> bool:
            return (path / self.released_marker).exists()

        want = self.data / f"{self.released_name}_{split}"
        present = [f"{self.released_name}_{s}" for s in SPLITS if is_layout(self.data / f"{self.released_name}_{s}")]
        if not present:
            if not is_layout(self.data):
                return None
            own = next((s for s in SPLITS if self.data.name.endswith(f"_{s}")), None)
            if own is None and split == "sample":
                return self.data  # a released folder under another name: the sample split
            want = self.data.with_name(f"{self.data.name[: -len(own)]}{split}") if own else want
            present = [self.data.name]
        if is_layout(want):
            return want
        raise MissingFileError(
            f"task {self.name!r}: no {split!r} split in the authors' released layout at {str(self.data)!r}: "
            f"looked for {str(want)!r}; found {present}"
        )

    def rows(self, language: str, split: str) -> list[tuple[Record, Record]]:
        if self.data == "hub":
            english, other = self.hub_records("en", split), self.hub_records(language, split)
            return self._aligned(english, Path(f"hub:{self.hub}/en"), other, Path(f"hub:{self.hub}/{language}"))
        root = require_dir(self.data, self.name, "the authors' released layout or plain tables")
        released = self.released_root(split)
        if released is not None:
            return self.released_rows(released, language)
        paths = [_table_path(root, lang, split) for lang in ("en", language)]
        english_rows, other_rows = table(paths[0]), table(paths[1])
        english = self.table_records(list(enumerate(english_rows, 1)), paths[0], "en")
        other = self.table_records(by_id(english_rows, paths[0], other_rows, paths[1]), paths[1], language)
        return self._aligned(english, paths[0], other, paths[1])

    def template_for(self, language: str) -> str:
        templates = self.options.get("templates", {})
        if language in templates:
            return templates[language]
        if language == "en":
            return self.template
        raise InputError(
            f"task {self.name!r}: rows for {language!r} have no 'prompt' column and no template "
            f"was given; pass templates={{{language!r}: '...'}} (the paper translates the whole prompt)"
        )

    def table_records(self, rows: list[tuple[int, dict]], path: Path, language: str) -> list[Record]:
        """Records of numbered table rows; any malformed row is a :class:`DataError` at its line."""
        records = []
        for number, row in rows:
            with at(path, number):
                record = self.record(row, language, path, number)
                check_record(record.prompt, record.gold, record.options, path, number)
                records.append(record)
        return records

    def released_rows(self, root: Path, language: str) -> list[tuple[Record, Record]]:
        raise NotImplementedError

    def record(self, row: dict, language: str, path: Path, number: int) -> Record:
        raise NotImplementedError

    def hub_records(self, language: str, split: str) -> list[Record]:
        raise NotImplementedError


class XNLI(_PaperTask):
    """XNLI, multilingual understanding: premise/hypothesis relation as options (1)-(3).

    Raw table fields: ``premise``, ``hypothesis``, ``label`` (``1``/``2``/``3``; the
    hub's 0-2 are mapped) and optionally ``labels`` (the three label tags).
    Scoring (``rule="paper"``): the gold's ``(k)``, the bare ``k`` as the whole
    output, or its released label tag, and no other option's (see
    :mod:`xtl.tasks.scoring`). The English template has the released spacing
    (``(1) Entail \\n``, with a space). Parallel files must agree on the gold
    line by line.
    """

    name = "xnli"
    kind = "understanding"
    languages = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "tr", "ur", "vi", "zh")
    direction = "en2x"
    default = TransplantSpec(source_layer=-1, target_layer=0, component="attn")
    family = "option"
    shared_gold = True
    alignment_test = "the gold label"
    hub = "facebook/xnli"
    released_name = "XNLI"
    released_marker = "ans_lang"
    options_keys = ("1", "2", "3")
    english_labels = ("Entail", "Neutral", "Contradict")
    option_names = ("templates", "label_words")
    template = (
        "Human: What do you think is the relationship between the premise and the hypothesis?"
        "\n\nPremise: {premise}\nHypothesis: {hypothesis}\n\n(1) {label1} \n(2) {label2}\n(3) {label3}"
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
            labels = tuple(str(words[0][k]) for k in self.options_keys)  # as released, unstripped
            texts(prompts, root / "split" / f"{lang}.json")
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
        if "labels" in row and not (
            isinstance(row["labels"], list)
            and len(row["labels"]) == len(self.options_keys)
            and all(isinstance(w, str) and w.strip() for w in row["labels"])
        ):
            raise DataError(
                f"{path}:{number}: field 'labels' must be a list of {len(self.options_keys)} label "
                f"words, got {row['labels']!r:.60}"
            )
        labels = tuple(row["labels"]) if "labels" in row else self.label_words(language)
        gold = self._gold(field(row, "answer" if "answer" in row else "label", path, number), path, number)
        if "prompt" in row:
            return Record(field(row, "prompt", path, number, (str,)), gold, self.options_keys, labels)
        names = labels or self.english_labels
        prompt = self.template_for(language).format(
            premise=field(row, "premise", path, number, (str,)),
            hypothesis=field(row, "hypothesis", path, number, (str,)),
            label1=names[0],
            label2=names[1],
            label3=names[2],
        )
        return Record(prompt, gold, self.options_keys, labels)

    def hub_records(self, language, split):
        from datasets import load_dataset

        rows = _hub_rows(list(load_dataset(self.hub, language, split="test")), split)
        return [
            self.record(dict(row), language, Path(f"hub:{self.hub}/{language}"), k) for k, row in enumerate(rows, 1)
        ]


class XQuAD(_PaperTask):
    """XQuAD, multilingual generation: extractive QA from a context.

    Raw table fields: ``context``, ``question``, ``answer``. Scoring: the gold
    answer is a case-insensitive substring of the output. The answer is a span
    of its own context, so a line whose gold is not in its own prompt is misaligned.
    """

    name = "xquad"
    kind = "generation"
    languages = ("ar", "de", "el", "en", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh")
    direction = "en2x"
    default = TransplantSpec(source_layer=0, target_layer=0, component="mlp")
    family = "contains"
    alignment_test = "a gold answer missing from its own prompt"
    hub = "google/xquad"
    released_name = "XQuAD"
    released_marker = "ans"

    def misaligned(self, english, other):
        return any(record.gold not in record.prompt for record in (english, other))

    template = (
        "Human: Please answer these questions only based on the given context.\n\n"
        "Context: {context}\nQuestion: {question}\n\nAssistant: My answer would be:"
    )

    def released_rows(self, root, language):
        def side(lang):
            prompts = json_lines(root / "split" / f"xquad.{lang}.json")
            golds = json_lines(root / "ans" / f"xquad.{lang}.json")
            check_aligned(prompts, root / "split" / f"xquad.{lang}.json", golds, root / "ans" / f"xquad.{lang}.json")
            texts(prompts, root / "split" / f"xquad.{lang}.json")
            texts(golds, root / "ans" / f"xquad.{lang}.json", "gold answer")
            return [Record(p, str(g)) for p, g in zip(prompts, golds)]

        english, other = side("en"), side(language)
        return self._aligned(
            english, root / "split" / "xquad.en.json", other, root / "split" / f"xquad.{language}.json"
        )

    def record(self, row, language, path, number):
        answer = field(row, "answer", path, number, (str, int, dict))
        if isinstance(answer, dict):  # the hub's {"text": [...], "answer_start": [...]}
            answer = field({"text": answer["text"][0]}, "text", path, number, (str,))
        if "prompt" in row:
            return Record(field(row, "prompt", path, number, (str,)), str(answer))
        prompt = self.template_for(language).format(
            context=field(row, "context", path, number, (str,)), question=field(row, "question", path, number, (str,))
        )
        return Record(prompt, str(answer))

    def hub_records(self, language, split):
        from datasets import load_dataset

        rows = _hub_rows(list(load_dataset(self.hub, f"xquad.{language}", split="validation")), split)
        return [
            self.record({**row, "answer": row["answers"]}, language, Path(f"hub:{self.hub}/{language}"), k)
            for k, row in enumerate(rows, 1)
        ]


LANGUAGE_GROUPS: dict[str, tuple[str, ...]] = {
    "am": ("Ethiopia",),
    "ar": (
        "Algeria",
        "Bahrain",
        "Egypt",
        "Iraq",
        "Jordan",
        "Kuwait",
        "Lebanon",
        "Libya",
        "Morocco",
        "Palest. ter.",
        "Qatar",
        "Saudi Arabia",
        "Sudan",
        "Syria",
        "Tunisia",
        "Yemen",
    ),
    "de": ("Austria", "Germany", "Switzerland"),
    "el": ("Cyprus", "Greece"),
    "en": (
        "Australia",
        "Britain",
        "Canada",
        "Ghana",
        "Great Britain",
        "Ireland",
        "New Zealand",
        "Nigeria",
        "Northern Ireland",
        "S. Africa",
        "Singapore",
        "Uganda",
        "United States",
        "Zimbabwe",
    ),
    "es": (
        "Argentina",
        "Bolivia",
        "Chile",
        "Colombia",
        "Costa Rica",
        "Dominican Republic",
        "Ecuador",
        "El Salvador",
        "Guatemala",
        "Honduras",
        "Mexico",
        "Nicaragua",
        "Panama",
        "Paraguay",
        "Peru",
        "Puerto Rico",
        "Spain",
        "Uruguay",
        "Venezuela",
    ),
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
    letter). Scoring (``rule="paper"``): the upper-cased output holds the gold's
    ``(A)`` or is the bare letter, and no other letter A-Z does. Both sides share
    one gold, so the alignment check compares it only where a table gives each
    side its own.
    """

    name = "globalopinionqa"
    kind = "culture"
    languages: ClassVar[tuple[str, ...]] = (
        "am",
        "ar",
        "de",
        "el",
        "en",
        "es",
        "fr",
        "hi",
        "id",
        "ja",
        "pt",
        "ru",
        "sv",
        "sw",
        "tl",
        "tr",
        "uk",
        "ur",
        "vi",
        "zh-CN",
    )
    aliases = {"zh": "zh-CN", "zh_cn": "zh-CN", "zh-cn": "zh-CN"}
    direction = "x2en"
    default = TransplantSpec(source_layer=0, target_layer=0, component="mlp")
    family = "letter"
    shared_gold = True
    alignment_test = "the gold letter (largest human share)"
    hub = "Anthropic/llm_global_opinions"
    released_name = "GlobalOpinionQA"
    released_marker = "translated"

    @staticmethod
    def gold_letter(shares: list[float]) -> str:
        """The option with the largest share of human answers (the first on ties)."""
        return LETTERS[max(range(len(shares)), key=lambda k: shares[k])]

    def released_rows(self, root, language):
        english_path, other_path = root / "split" / f"{language}.json", root / "translated" / f"{language}.json"
        english = json_lines(english_path)
        other = json_lines(other_path)
        check_aligned(english, english_path, other, other_path)
        rows = []
        for number, (row, translated) in enumerate(zip(english, other), 1):
            if not isinstance(row, dict):
                raise DataError(f"{english_path}:{number}: expected an object with input_text and label")
            with at(english_path, number):
                rows.append(self._pair(row.get("input_text"), translated, row.get("label"), None, english_path, number))
        return rows

    def _pair(self, prompt, translated, shares, answer, path, number) -> tuple[Record, Record]:
        if not isinstance(prompt, str) or not isinstance(translated, str):
            raise DataError(f"{path}:{number}: needs an English prompt and its translation as text")
        if answer is None:
            if not isinstance(shares, list) or not shares:
                raise DataError(f"{path}:{number}: needs 'label' (shares per option) or 'answer'")
            answer = self.gold_letter([finite(x, path, number, "share") for x in shares])
            n = len(shares)
        else:
            answer = str(field({"answer": answer}, "answer", path, number)).strip()
            if len(answer) != 1 or answer not in LETTERS:
                raise DataError(f"{path}:{number}: answer {answer!r} is not a letter A-Z")
            n = len(shares) if isinstance(shares, list) else LETTERS.index(answer) + 1
            if LETTERS.index(answer) >= n:
                raise DataError(f"{path}:{number}: answer {answer!r} is outside the {n} options")
        letters = tuple(LETTERS[:n])
        return Record(prompt, str(answer), letters), Record(translated, str(answer), letters)

    def rows(self, language, split):
        if self.data == "hub":
            raise NotImplementedError(
                "GlobalOpinionQA from the hub needs translated prompts, which the hub does not carry; "
                "use the authors' released layout or a table with prompt/translated/label columns"
            )
        root = require_dir(self.data, self.name, "the authors' released layout or plain tables")
        released = self.released_root(split)
        if released is not None:
            return self.released_rows(released, language)
        path = _table_path(root, language, split)
        pairs = []
        for number, row in enumerate(table(path), 1):
            with at(path, number):
                pairs.append(
                    self._pair(
                        row.get("prompt"), row.get("translated"), row.get("label"), row.get("answer"), path, number
                    )
                )
        return pairs


class XCOPA(_PaperTask):
    """XCOPA, out-of-distribution understanding: which of two alternatives is the cause/effect?

    Raw table fields: ``premise``, ``choice1``, ``choice2``, ``question``
    (``cause``/``effect``), ``label`` (``1``/``2``; the hub's 0/1 are mapped).
    The method doc gives no XCOPA prompt, so xtl's English template follows the
    XNLI prompt's form. The authors released no XCOPA rule, so the XNLI rule
    scores it over its two options: ``(k)``, the bare ``k`` as the whole output or
    the alternative's text, and not the other's. On the hub, the English side of
    language X is XCOPA's ``translation-X`` configuration (the same items in
    English). Languages: the authors' run list (``en`` included); ``et`` and ``th``,
    which XCOPA has and the authors did not run, are accepted too.
    """

    name = "xcopa"
    kind = "understanding"
    languages = ("en", "ht", "id", "it", "sw", "ta", "tr", "vi", "zh")
    extra_languages = ("et", "th")
    direction = "en2x"
    default = TransplantSpec(source_layer=-1, target_layer=0, component="attn")
    family = "option"
    shared_gold = True
    alignment_test = "the gold alternative"
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
            return Record(field(row, "prompt", path, number, (str,)), label, self.options_keys, labels)
        prompt = self.template_for(language).format(
            premise=field(row, "premise", path, number, (str,)),
            question=field(row, "question", path, number, (str,)),
            choice1=field(row, "choice1", path, number, (str,)),
            choice2=field(row, "choice2", path, number, (str,)),
        )
        return Record(prompt, label, self.options_keys, labels)

    def rows(self, language, split):
        if self.data != "hub":
            return super().rows(language, split)
        from datasets import load_dataset

        def side(config, lang):
            rows = _hub_rows(list(load_dataset(self.hub, config, split="test")), split)
            return [self.record(dict(r), lang, Path(f"hub:{self.hub}/{config}"), k) for k, r in enumerate(rows, 1)]

        english, other = side(f"translation-{language}", "en"), side(language, language)
        return self._aligned(
            english, Path(f"hub:{self.hub}/translation-{language}"), other, Path(f"hub:{self.hub}/{language}")
        )


class MKQA(_PaperTask):
    """MKQA, out-of-distribution generation: open-domain questions without context.

    Raw table fields: ``question``, ``answer``. Scoring: the gold answer is a
    case-insensitive substring. On the hub, one row holds every language's
    query and answers; rows without a text answer in English or the language
    are skipped for both sides. (``apple/mkqa`` ships a loading script, which
    recent ``datasets`` releases no longer run; export it to tables then.)
    Languages: the authors' 17 (``zh`` is MKQA's ``zh_cn``), then MKQA's others.
    """

    name = "mkqa"
    kind = "generation"
    languages = ("ar", "de", "en", "es", "fi", "fr", "he", "hu", "it", "ja", "ko", "nl", "no", "pt", "tr", "vi", "zh")
    extra_languages = ("da", "km", "ms", "pl", "ru", "sv", "th", "zh_hk", "zh_tw")
    aliases = {"zh_cn": "zh", "zh-CN": "zh", "zh-cn": "zh"}
    hub_codes = {"zh": "zh_cn"}
    direction = "en2x"
    default = TransplantSpec(source_layer=0, target_layer=0, component="mlp")
    family = "contains"
    hub = "apple/mkqa"
    template = "Human: Please answer the following question.\n\nQuestion: {question}\n\nAssistant: My answer would be:"

    def record(self, row, language, path, number):
        answer = str(field(row, "answer", path, number, (str, int)))
        if "prompt" in row:
            return Record(field(row, "prompt", path, number, (str,)), answer)
        return Record(self.template_for(language).format(question=field(row, "question", path, number, (str,))), answer)

    def rows(self, language, split):
        if self.data != "hub":
            return super().rows(language, split)
        from datasets import load_dataset

        def text(row, lang):
            answers = row["answers"].get(lang) or []
            return next((a.get("text") for a in answers if a.get("text")), None)

        code = self.hub_codes.get(language, language)
        kept = [r for r in load_dataset(self.hub, split="train") if text(r, "en") and text(r, code)]
        source = Path(f"hub:{self.hub}")
        return [
            (
                self.record({"question": r["queries"]["en"], "answer": text(r, "en")}, "en", source, k),
                self.record({"question": r["queries"][code], "answer": text(r, code)}, language, source, k),
            )
            for k, r in enumerate(_hub_rows(kept, split), 1)
        ]


class CulturalBench(GlobalOpinionQA):
    """CulturalBench, out-of-distribution cultural adaptability: multiple-choice questions
    about a region's culture, asked in the region's language (source) and in English (target).

    CulturalBench is English-only, so both sides come from tables with ``prompt``
    (English), ``translated`` and ``answer`` (a letter) columns, one file per
    language group as for GlobalOpinionQA. Scoring: the GlobalOpinionQA rule.
    Languages: the authors' CulturalBench-Hard list, then GlobalOpinionQA's other groups.
    """

    name = "culturalbench"
    languages = ("ar", "de", "en", "es", "fr", "he", "hi", "ja", "ko", "ms", "pl", "ru", "tl", "tr", "vi", "zh")
    extra_languages = ("am", "el", "id", "pt", "sv", "sw", "uk", "ur")  # GlobalOpinionQA's other groups
    aliases = {"zh-CN": "zh", "zh_cn": "zh", "zh-cn": "zh"}
    hub = "kellycyy/CulturalBench"
    released_marker = ""  # the authors released no CulturalBench split

    def rows(self, language, split):
        if self.data == "hub":
            raise NotImplementedError(
                "CulturalBench on the hub is English-only; translate the questions into each language "
                "group and pass tables with prompt/translated/answer columns"
            )
        return super().rows(language, split)
