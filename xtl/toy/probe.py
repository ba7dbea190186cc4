"""Measure a trained toy model on the toy tasks: ``python -m xtl.toy.probe DIR``.

For each toy task, sweeps every (component, source layer, target layer) cell
on the ``sample`` split of all languages and prints the untouched accuracy,
the instance-aware upper bound per component, the paper's default setting and
the best fixed cell. This is the measurement behind the model card.

As a control, the upper bound is measured again with each item's source
taken from another item (the next one): whatever that "mismatched" bound
reaches comes from chance and from disturbing the target, not from the
source's knowledge. With many cells and few options it is far from zero.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import xtl


def probe(path: str, max_new_tokens: int = 4) -> None:
    """Print baseline, upper bound, default setting and best fixed cell per toy task."""
    model = xtl.load_model(path)
    for name in ("toy-generation", "toy-understanding", "toy-culture"):
        task = xtl.tasks.get(name)
        items = [item for lang in task.languages for item in task.items(lang)]
        start = time.perf_counter()
        res = xtl.sweep(model, items, components=("attn", "mlp"), max_new_tokens=max_new_tokens,
                        scorer=task.scorer, progress=False)
        bound = xtl.upper_bound(res)
        table = bound.pivot(index="language", columns="component", values="upper_bound")
        table["baseline"] = bound.groupby("language")["baseline"].first()
        shifted = [dataclasses.replace(item, source=items[(k + 1) % len(items)].source)
                   for k, item in enumerate(items)]
        control = xtl.upper_bound(xtl.sweep(model, shifted, components=("attn", "mlp"),
                                            max_new_tokens=max_new_tokens, scorer=task.scorer, progress=False))
        table["mismatched_any"] = control[control["component"] == "any"].set_index("language")["upper_bound"]
        print(f"== {name}: {len(items)} items, {task.direction}, {time.perf_counter() - start:.0f} s")
        print(table.round(2).to_string())
        spec = task.default.resolve(model.cfg.n_layers)
        c, s, t = res.index(spec.component, spec.source_layer, spec.target_layer)
        print(f"paper default {spec.component} ({spec.source_layer}, {spec.target_layer}): "
              f"accuracy {float(res.correct[:, c, s, t].float().mean()):.3f}")
        accuracy = res.correct.float().mean(0)  # [component, source, target]
        for k, component in enumerate(res.spec.components):
            i, j = divmod(int(accuracy[k].argmax()), accuracy.shape[2])
            print(f"best fixed {component} cell ({res.spec.source_layers[i]}, {res.spec.target_layers[j]}): "
                  f"accuracy {float(accuracy[k, i, j]):.3f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a toy checkpoint directory (from python -m xtl.toy.train)")
    p.add_argument("--max-new-tokens", type=int, default=4)
    args = p.parse_args(argv)
    probe(args.model, args.max_new_tokens)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
