"""The head map and the logit lens on the shipped toy model (`make figures-heads`).

Writes, beside this file:

* ``toy-heads.png/.html``: ``xtl.head_sweep`` on 12 Swahili ``toy-generation`` items
  (English source, Swahili target; the fact is stated only in English): the mean change of
  the gold answer's first-token log-prob for each attention head and the MLP, each
  transplanted from a layer of the English prompt into the same layer of the Swahili one;
* ``toy-lens.png/.html``: ``xtl.lens`` on one of those items: the gold's probability read from
  each layer of the English and the Swahili prompt, and of the Swahili prompt after the
  task's default transplant (MLP, layer 0 -> 0) from the English one.
"""

from __future__ import annotations

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
    frame = xtl.lens(model, {"en": item.source, "sw": item.target}, {"gold": f" {item.gold}"},
                     spec=task.default, sources={"en": item.source, "sw": item.source})
    frame = frame[(frame.prompt_language == "sw") | (frame.condition == "untouched")]
    figure = xtl.plot.lens(frame, subtitle=f"toy model · {item.id} · gold {item.gold!r} · transplanted: "
                                           f"{task.default.component} {task.default.source_layer} -> "
                                           f"{task.default.target_layer} from the English prompt")
    xtl.plot.save(figure, HERE / "toy-lens.html", plotlyjs="directory")
    xtl.plot.save(figure, HERE / "toy-lens.png")
    print(heads)
    print(frame.pivot_table(index="layer", columns=["prompt_language", "condition"], values="prob").round(3))


if __name__ == "__main__":
    main()
