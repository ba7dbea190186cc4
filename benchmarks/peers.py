"""xtl.sweep against nnsight, pyvene and TransformerLens on the same layer-pair sweep, in one process.

Every tool transplants the same thing: the attention (or MLP) output at the last
source token of layer i replaces the target's at its last prompt token of layer j,
in the prompt pass only, for every (component, i, j), then decodes greedily. The
model is a random Qwen2-shaped checkpoint built here (nothing is downloaded); xtl
reads it through TransformerLens, the peers run the Hugging Face model itself.

* **xtl**: ``xtl.sweep``.
* **nnsight, batched**: per instance one ``trace`` of the source and one ``generate``
  whose batch holds every cell as a row (plus the untouched row), each target
  layer's rows assigned in one slice.
* **pyvene, batched**: per instance and (component, target layer) one
  ``IntervenableModel.generate`` whose batch holds every source layer, with the
  source activations passed as ``source_representations``.
* **per cell**: one call per cell: ``xtl.transplant`` (without and with its untouched
  baseline), nnsight ``generate``, pyvene ``generate``, and TransformerLens alone:
  the source value from ``run_with_cache`` (stopped after the source layer), then
  ``model.generate`` under a hook that patches the prompt pass.
  These run on ``--cells`` cells spread over the map, and their time is scaled to all
  cells (said in the output).

xtl and the batched peers run ``--repeats`` times each and the median is reported
(one run of about a second swings 10-20% with this machine's load). A per-cell
tool's cells run in ``--repeats`` slices with ``xtl.sweep`` timed again after each,
and its ratio is to the median of those xtl times: the machine's speed drifts over
the minutes a benchmark takes, so each ratio compares runs from the same minutes.

Tokens are compared with xtl's cell by cell (rows stop at no EOS: every tool
generates exactly ``new`` tokens). nnsight and pyvene are optional
(``pip install -e .[bench]``); a tool that is not installed is skipped with a note.

    python benchmarks/peers.py                 # both settings, 1 torch thread
    python benchmarks/peers.py --threads 2     # torch's default on this machine
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

import xtl  # noqa: E402
from xtl.testing import save_checkpoint  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from sweep_speed import PeakRSS, prompts  # noqa: E402

MODULES = {"attn": "self_attn", "mlp": "mlp"}  # xtl component -> the HF module whose output it is
PYVENE = {"attn": "attention_output", "mlp": "mlp_output"}


def cells(n_layers: int) -> list[tuple[str, int, int]]:
    return [(c, s, t) for c in MODULES for s in range(n_layers) for t in range(n_layers)]


def source_acts(hf, tok, text: str) -> dict[tuple[str, int], torch.Tensor]:
    """Each layer's attention and MLP output at the source's last token (plain forward hooks)."""
    acts, handles = {}, []
    for i, layer in enumerate(hf.model.layers):
        for c, name in MODULES.items():

            def keep(module, args, out, key=(c, i)):
                acts[key] = (out[0] if isinstance(out, tuple) else out)[0, -1].clone()

            handles.append(getattr(layer, name).register_forward_hook(keep))
    with torch.no_grad():
        hf(**tok(text, return_tensors="pt"))
    for h in handles:
        h.remove()
    return acts


def hf_kwargs(tok, new: int) -> dict:
    return {"max_new_tokens": new, "min_new_tokens": new, "do_sample": False, "pad_token_id": tok.pad_token_id}


def run_xtl(model, pairs, new):
    res = xtl.sweep(model, pairs, max_new_tokens=new, eos_token_id=[], progress=False)
    return {
        (k, *cell): res.tokens_array[(k, *res.index(*cell))]
        for k in range(len(pairs))
        for cell in cells(model.cfg.n_layers)
    }


def run_nnsight_batched(hf, tok, pairs, new):
    import nnsight

    lm, out = nnsight.TransformersModel(hf, tokenizer=tok), {}
    all_cells = cells(hf.config.num_hidden_layers)
    for k, pair in enumerate(pairs):
        with lm.trace(pair.source):
            acts = nnsight.save({})
            for i, layer in enumerate(lm.model.layers):  # in the order the model runs them
                for c, name in MODULES.items():
                    out_ = getattr(layer, name).output
                    acts[c, i] = (out_[0] if c == "attn" else out_)[0, -1]
        n_prompt = tok(pair.target, return_tensors="pt")["input_ids"].shape[1]
        with lm.generate([pair.target] * (len(all_cells) + 1), **hf_kwargs(tok, new)) as tracer:
            for t, layer in enumerate(lm.model.layers):
                for c, name in MODULES.items():
                    rows = [r for r, cell in enumerate(all_cells) if cell[0] == c and cell[2] == t]
                    values = torch.stack([acts[c, all_cells[r][1]] for r in rows])
                    out_ = getattr(layer, name).output
                    (out_[0] if c == "attn" else out_)[rows, -1] = values
            result = tracer.result.save()
        for r, cell in enumerate(all_cells):
            out[(k, *cell)] = result[r, n_prompt:].tolist()
    return out


def run_pyvene_batched(hf, tok, pairs, new):
    import pyvene as pv

    n_layers, out = hf.config.num_hidden_layers, {}
    wrapped = {
        (c, t): pv.IntervenableModel(
            pv.IntervenableConfig([{"layer": t, "component": PYVENE[c], "intervention_type": pv.VanillaIntervention}]),
            model=hf,
        )
        for c in MODULES
        for t in range(n_layers)
    }
    for k, pair in enumerate(pairs):
        acts = source_acts(hf, tok, pair.source)
        base = tok([pair.target] * n_layers, return_tensors="pt")
        n_prompt = base["input_ids"].shape[1]
        for (c, t), model in wrapped.items():
            reps = torch.stack([acts[c, s] for s in range(n_layers)])[:, None]  # [source layer, 1, d]
            _, gen = model.generate(
                base,
                unit_locations={"base": [[[n_prompt - 1]] * n_layers]},
                source_representations=reps,
                intervene_on_prompt=True,
                **hf_kwargs(tok, new),
            )
            for s in range(n_layers):
                out[k, c, s, t] = gen[s, n_prompt:].tolist()
    return out


def per_cell(tool: str, model, hf, tok, pairs, new, which: list[tuple[str, int, int]], lm=None):
    """The cells ``which`` of the first instance, one transplant each (its source pass included,
    as one ``xtl.transplant`` call does); ``lm``: nnsight's wrapper of ``hf``."""
    pair, out = pairs[0], {}
    target = tok(pair.target, return_tensors="pt")
    n_prompt = target["input_ids"].shape[1]
    for c, s, t in which:
        if tool in ("nnsight", "pyvene"):
            acts = source_acts(hf, tok, pair.source)
        if tool == "nnsight":
            with lm.generate(pair.target, **hf_kwargs(tok, new)) as tracer:
                out_ = getattr(lm.model.layers[t], MODULES[c]).output
                (out_[0] if c == "attn" else out_)[0, -1] = acts[c, s]
                result = tracer.result.save()
            tokens = result[0, n_prompt:].tolist()
        elif tool == "pyvene":
            import pyvene as pv

            wrapped = pv.IntervenableModel(
                pv.IntervenableConfig(
                    [{"layer": t, "component": PYVENE[c], "intervention_type": pv.VanillaIntervention}]
                ),
                model=hf,
            )
            _, gen = wrapped.generate(
                target,
                unit_locations={"base": [[[n_prompt - 1]]]},
                source_representations=acts[c, s][None, None],
                intervene_on_prompt=True,
                **hf_kwargs(tok, new),
            )
            tokens = gen[0, n_prompt:].tolist()
        elif tool.startswith("xtl"):
            r = xtl.transplant(
                model,
                pair.source,
                pair.target,
                s,
                t,
                c,
                max_new_tokens=new,
                eos_token_id=[],
                baseline=tool == "xtl+baseline",
            )
            tokens = r.tokens[0].tolist()
        else:  # TransformerLens: generate under a hook on the prompt pass
            name = f"blocks.{s}.hook_{c}_out"  # TransformerLens alone: its cache, stopped after layer s
            value = model.run_with_cache(pair.source, names_filter=name, stop_at_layer=s + 1)[1][name][0, -1]
            tl_tokens = model.to_tokens(pair.target)

            def patch(act, hook, value=value, n=tl_tokens.shape[1]):
                if act.shape[1] == n:
                    act[:, -1] = value
                return act

            with model.hooks([(f"blocks.{t}.hook_{c}_out", patch)]):
                gen = model.generate(
                    tl_tokens,
                    max_new_tokens=new,
                    do_sample=False,
                    stop_at_eos=False,
                    verbose=False,
                    use_past_kv_cache=True,
                )
            tokens = gen[0, n_prompt:].tolist()
        out[0, c, s, t] = tokens
    return out


def agree(got: dict, want: dict) -> str:
    same = sum(got[key] == want[key] for key in got)
    return f"{same}/{len(got)} cells token-identical with xtl"


def timed(fn, repeats: int):
    """``fn()``'s result, the median of ``repeats`` timed runs, the runs' times as text, and the first
    run's peak memory."""
    times, memory = [], []
    for _ in range(repeats):
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        memory.append(mem)
    return out, statistics.median(times), "(runs " + ", ".join(f"{t:.2f}" for t in times) + ")", memory[0]


def bench(name, model, hf, tok, pairs, new, limit, repeats):
    n_layers = model.cfg.n_layers
    n_cells = len(pairs) * len(cells(n_layers))
    lengths = [tok(p, return_tensors="pt")["input_ids"].shape[1] for pair in pairs for p in (pair.source, pair.target)]
    print(
        f"\n== ({name}) random Qwen2-shaped model, {n_layers} layers, d_model {model.cfg.d_model}; "
        f"{len(pairs)} instance(s), prompts {min(lengths)}-{max(lengths)} tokens, {new} new token(s), "
        f"{n_cells} cells, torch threads {torch.get_num_threads()}"
    )
    xtl.sweep(model, pairs[:1], source_layers=[0], target_layers=[0], max_new_tokens=2, progress=False)  # warm up
    times = {}
    want, times["xtl.sweep"], runs, mem = timed(lambda: run_xtl(model, pairs, new), repeats)
    print(f"{'xtl.sweep':28s}: {times['xtl.sweep']:8.2f} s  {runs}  {mem}")
    batched = [("nnsight, batched", "nnsight", run_nnsight_batched), ("pyvene, batched", "pyvene", run_pyvene_batched)]
    for label, package, fn in batched:
        if importlib.util.find_spec(package) is None:
            print(f"{label:28s}: skipped ({package} is not installed: pip install -e .[bench])")
            continue
        got, times[label], runs, mem = timed(lambda fn=fn: fn(hf, tok, pairs, new), repeats)
        print(
            f"{label:28s}: {times[label]:8.2f} s  ({times[label] / times['xtl.sweep']:.1f}x xtl)  {runs}  {mem}; "
            f"{agree(got, want)}"
        )
    labels = {"xtl": "xtl.transplant per cell", "xtl+baseline": "  the same, baseline=True"}
    every = cells(n_layers)
    timed_cells = every[:: max(1, len(every) // limit)][:limit]
    for tool in ("xtl", "xtl+baseline", "nnsight", "pyvene", "transformer_lens"):
        if importlib.util.find_spec(tool.split("+")[0]) is None:
            continue
        lm = None
        if tool == "nnsight":
            from nnsight import TransformersModel

            lm = TransformersModel(hf, tokenizer=tok)
        got, spent, beside = {}, 0.0, []
        for part in range(repeats):  # slices of the cells, xtl.sweep re-timed after each
            t0 = time.perf_counter()
            got.update(per_cell(tool, model, hf, tok, pairs, new, timed_cells[part::repeats], lm))
            spent += time.perf_counter() - t0
            t0 = time.perf_counter()
            run_xtl(model, pairs, new)
            beside.append(time.perf_counter() - t0)
        scaled, near = spent / len(got) * n_cells, statistics.median(beside)
        label = labels.get(tool, f"{tool} per cell")
        print(
            f"{label:28s}: {scaled:8.2f} s  ({scaled / near:.1f}x xtl.sweep timed between its slices: "
            f"median {near:.2f} s; measured on {len(got)} cells, scaled to {n_cells}); {agree(got, want)}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch threads for every tool (default: %(default)s)")
    p.add_argument("--cells", type=int, default=24, help="cells timed per call in the per-cell modes")
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="timed runs of each batched tool, the median reported (default: %(default)s)",
    )
    p.add_argument("--quick", action="store_true", help="only the first-token setting")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    xtl.set_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = save_checkpoint("qwen2", Path(tmp) / "peers", n_layers=8, d_model=256, n_heads=8, d_mlp=768)
        model = xtl.load_model(path)
        hf = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        tok = AutoTokenizer.from_pretrained(path)
    src, tgt = prompts(model, 4, 60, 0), prompts(model, 4, 60, 1)
    pairs = [xtl.Pair(s, t, "Assistant") for s, t in zip(src, tgt)]
    if not args.quick:
        bench("a", model, hf, tok, pairs[:2], 10, args.cells, args.repeats)
    bench("b", model, hf, tok, pairs, 1, args.cells, args.repeats)


if __name__ == "__main__":
    main()
