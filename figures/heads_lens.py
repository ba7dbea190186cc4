"""The head map, the logit lens and attribution patching (`make figures-heads`), and the lens on
SmolLM2-135M-Instruct (`make figures-lens-smollm2`, i.e. this script with ``--smollm2``).

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
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

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


if __name__ == "__main__":
    smollm2_lens() if "--smollm2" in sys.argv[1:] else main()
