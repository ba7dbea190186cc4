"""The head map, the logit lens and attribution patching (`make figures-heads`), the lens on
SmolLM2-135M-Instruct (`make figures-lens-smollm2`, i.e. this script with ``--smollm2``), and the
head map and lens on Gemma 3 270M (`make figures-heads-gemma3`, ``--gemma3``).

Writes, beside this file:

* ``toy-heads.png/.html``: ``xtl.head_sweep`` on 12 Swahili ``toy-generation`` items
  (English source, Swahili target; the fact is stated only in English): the mean change of
  the gold answer's first-token log-prob for each attention head and the MLP, each
  transplanted from a layer of the English prompt into the same layer of the Swahili one;
* ``toy-lens.png/.html``: ``xtl.lens`` on one of those items: the gold's probability read from
  each layer of the English and the Swahili prompt, and of the Swahili prompt after the
  task's default transplant (MLP, layer 0 -> 0) from the English one;
* ``toy-attribution.png/.html``: the exact first-token map of those 12 items beside the
  attribution-patching estimate of it, one colour scale, with the measured agreement;
* with ``--smollm2``, ``smollm2/lens.png/.html``: ``xtl.lens`` on SmolLM2-135M-Instruct for one
  world-facts item (Austria's capital) asked in English, French and German, each language's
  spelling of the answer, untouched and with the English prompt's attention output of layer 23
  written into layer 23 (where the study's matched sources helped most).
* with ``--gemma3``, in ``gemma3/``: ``heads.png/.html`` and ``heads-control.png/.html``:
  ``xtl.head_sweep`` (every head, the whole attention output and the MLP, each layer into the same
  layer) on the first 4 ``sample`` world-facts items per language (fr, de, sw, id) that the
  untouched model gets wrong, with each item's English source and with another country's (the
  control); ``lens.png/.html``: ``xtl.lens`` on one of those items asked in each language,
  untouched and with the English prompt's attention output of layer 12 written into layer 12 (the
  study's best cell).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import xtl

HERE = Path(__file__).parent


def main() -> None:
    model = xtl.toy.load_toy_model()
    task = xtl.tasks.get("toy-generation")
    items = task.items("sw")[:12]
    heads = xtl.head_sweep(model, items, max_new_tokens=1, progress=False)
    figure = xtl.plot.heads(heads, "logprob_change")
    xtl.plot.save(figure, HERE / "toy-heads.html", plotlyjs="directory")
    xtl.plot.save(figure, HERE / "toy-heads.png")
    item = items[0]
    frame = xtl.lens(
        model,
        {"en": item.source, "sw": item.target},
        {"gold": f" {item.gold}"},
        spec=task.default,
        sources={"en": item.source, "sw": item.source},
    )
    frame = frame[(frame.prompt_language == "sw") | (frame.condition == "untouched")]
    figure = xtl.plot.lens(
        frame,
        subtitle=f"toy model · {item.id} · gold {item.gold!r} · transplanted: "
        f"{task.default.component} {task.default.source_layer} -> "
        f"{task.default.target_layer} from the English prompt",
    )
    xtl.plot.save(figure, HERE / "toy-lens.html", plotlyjs="directory")
    xtl.plot.save(figure, HERE / "toy-lens.png")
    print(heads)
    print(frame.pivot_table(index="layer", columns=["prompt_language", "condition"], values="prob").round(3))
    t0 = time.perf_counter()
    exact = xtl.sweep(model, items, max_new_tokens=1, progress=False)
    t_exact = time.perf_counter() - t0
    t0 = time.perf_counter()
    approx = xtl.attribution_sweep(model, items, progress=False)
    t_approx = time.perf_counter() - t0
    table = xtl.attribution.agreement(approx, exact)
    measured = (
        f"per item: median Spearman {table.spearman.median():.2f}, exact top-10 cells in the estimate's "
        f"top-10 {table.top_overlap.mean():.1f} on average · exact {t_exact:.2f} s, estimate {t_approx:.2f} s"
    )
    figure = xtl.plot.facets(
        {"exact": exact, "estimate": approx},
        "logprob_change",
        title="gold log-prob change: exact (top), attribution-patching estimate (bottom)",
        subtitle=f"{xtl.plot.context(exact)}<br>{measured}",
    )
    xtl.plot.save(figure, HERE / "toy-attribution.html", plotlyjs="directory")
    xtl.plot.save(figure, HERE / "toy-attribution.png")
    print(measured)


def smollm2_lens() -> None:
    model = xtl.load_model("smollm2-135m")
    task = xtl.tasks.get("world-facts")
    items = {
        lang: next(i for i in task.items(lang) if i.id == f"world-facts-{lang}-sample-28") for lang in ("fr", "de")
    }
    prompts = {"en": items["fr"].source, "fr": items["fr"].target, "de": items["de"].target}
    answers = {"en": " Vienna", "fr": " Vienne", "de": " Wien"}
    spec = xtl.TransplantSpec(23, 23, "attn")
    frame = xtl.lens(model, prompts, answers, spec=spec, sources=dict.fromkeys(prompts, prompts["en"]))
    frame = frame[(frame.prompt_language != "en") | (frame.condition == "untouched")]
    figure = xtl.plot.lens(
        frame,
        subtitle="SmolLM2-135M-Instruct · world-facts: the capital of Austria, asked in "
        "English, French and German<br>transplanted: attention output of layer 23 "
        "of the English prompt written into layer 23",
    )
    xtl.plot.save(figure, HERE / "smollm2" / "lens.html", plotlyjs="../plotly.min.js")
    xtl.plot.save(figure, HERE / "smollm2" / "lens.png")
    table = frame.pivot_table(index="layer", columns=["prompt_language", "condition", "answer_language"], values="prob")
    print(table.round(3).to_string())


def untouched_wrong(model, items, count: int) -> list:
    """The first ``count`` items whose untouched greedy answer (6 tokens) the task's rule rejects."""
    task = xtl.tasks.get("world-facts")
    texts = xtl.greedy_generate(model, xtl.tokenize(model, [i.target for i in items]), 6).texts(model.tokenizer)
    return [item for item, text in zip(items, texts) if not task.score(text, item)][:count]


def gemma3() -> None:
    model = xtl.load_model("gemma3-270m")
    task = xtl.tasks.get("world-facts")
    languages = ("fr", "de", "sw", "id")
    items = [item for lang in languages for item in untouched_wrong(model, task.items(lang)[:34], 4)]
    shifted = {i.id: i for lang in languages for i in xtl.study.mismatched(task.items(lang), len(task.relations))}
    control = [shifted[item.id] for item in items]
    for name, pairs in (("heads", items), ("heads-control", control)):
        hs = xtl.head_sweep(model, pairs, components=("head", "attn", "mlp"), max_new_tokens=1, progress=False)
        sources = "each item's English question" if name == "heads" else "another country's English question"
        figure = xtl.plot.heads(
            hs,
            "logprob_change",
            subtitle=f"Gemma 3 270M · world-facts · {len(items)} items the untouched model gets wrong "
            f"({', '.join(languages)}) · source: {sources}",
        )
        xtl.plot.save(figure, HERE / "gemma3" / f"{name}.html", plotlyjs="../plotly.min.js")
        xtl.plot.save(figure, HERE / "gemma3" / f"{name}.png")
        change = pd.DataFrame(np.nanmean(hs.logprob_change().numpy(), 0), hs.components, hs.layers).T
        print(f"\n{name}: mean change of the gold's first-token log-prob (layer x component)")
        print(change.round(2).to_string())
    item = next(i for i in items if i.language == "sw")
    k = task.items("sw").index(item)  # the same question in every language
    same = {lang: task.items(lang)[k] for lang in languages}
    prompts = {"en": item.source, **{lang: same[lang].target for lang in languages}}
    answers = {"en": f" {task.items('sw', direction='x2en')[k].gold}"}
    answers |= {lang: f" {same[lang].gold}" for lang in languages}
    spec = xtl.TransplantSpec(12, 12, "attn")
    frame = xtl.lens(model, prompts, answers, spec=spec, sources=dict.fromkeys(prompts, item.source))
    frame = frame[(frame.prompt_language != "en") | (frame.condition == "untouched")]
    figure = xtl.plot.lens(
        frame,
        subtitle=f"Gemma 3 270M · world-facts {item.id.replace('-sw-', '-')} ({item.target.splitlines()[-2]}; gold "
        f"{item.gold!r}), asked in English, {', '.join(languages)}<br>transplanted: attention output of layer 12 "
        "of the English prompt written into layer 12",
    )
    xtl.plot.save(figure, HERE / "gemma3" / "lens.html", plotlyjs="../plotly.min.js")
    xtl.plot.save(figure, HERE / "gemma3" / "lens.png")
    table = frame.pivot_table(index="layer", columns=["prompt_language", "condition", "answer_language"], values="prob")
    own = table[[c for c in table.columns if c[0] == c[2]]]  # each prompt's own language's answer
    print(f"\nlens, {item.id}: probability of each prompt's own answer")
    print(own.round(3).to_string())


if __name__ == "__main__":
    if "--smollm2" in sys.argv[1:]:
        smollm2_lens()
    elif "--gemma3" in sys.argv[1:]:
        gemma3()
    else:
        main()
