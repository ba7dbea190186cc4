"""The ``xtl`` command line: ``xtl demo``, ``xtl sweep``, ``xtl report``, ``xtl lens``, ``xtl transplant``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from xtl.errors import InputError, XtlError

DESCRIPTION = """\
Cross-lingual latent transplantation (XTransplant) on TransformerLens models.

A transplant runs a *source* prompt (one language), keeps a component's output
(attention or MLP) at its last prompt token, and writes it into the *target*
prompt's pass (the same question in another language) at one layer. Sweeping
every (source layer, target layer) pair shows which layers and which component
carry what: read the heatmaps that `xtl demo` and `xtl report` write.

Start with:  xtl demo                        (the shipped toy model, about two minutes on a CPU)
Then:        xtl demo --model smollm2-135m   (a real pretrained LLM, world-facts; minutes on a CPU)
"""

EPILOG = """\
examples:
  xtl demo --out xtl-demo
  xtl demo --model smollm2-135m --languages fr,sw --limit 8 --out smollm2-study
  xtl sweep --model toy --task toy-culture --languages sw,fr --out runs/culture
  xtl sweep --model Qwen/Qwen2-0.5B-Instruct --task xnli --data path/to/XNLI_sample \\
            --languages sw --direction en2x --out runs/xnli-sw
  xtl sweep --model toy --task toy-culture --approx --out runs/culture-approx
  xtl sweep --model toy --task toy-culture --shard 0/4 --out runs/culture   # one job of four
  xtl sweep --model toy --task toy-culture --ray --workers 2 --out runs/culture
  xtl report runs/culture runs/xnli-sw --out report
  xtl lens --model toy --task toy-generation --language sw --transplant default --out lens
  xtl transplant --model toy --source "the capital of gezemi is" \\
                 --target "столица геземи это" --source-layer 0 --target-layer 0 --component mlp
"""


# Spelled out so that `xtl --help` need not import torch; tests/test_cli.py checks them against
# xtl.COMPONENTS and the task registry.
COMPONENT_NAMES = ("attn", "mlp", "resid", "attn_as_released")
TASK_NAMES = (
    "xnli",
    "xquad",
    "globalopinionqa",
    "xcopa",
    "mkqa",
    "culturalbench",
    "world-facts",
    "toy-generation",
    "toy-understanding",
    "toy-culture",
)
DTYPES = ("float32", "float64", "bfloat16", "float16")


def _component(text: str) -> str:
    # xtl.components.get_component's names, spelled out so that parsing imports no torch
    head = text.startswith("head.") and text[len("head.") :].isdigit()
    if text in COMPONENT_NAMES or head:
        return text
    raise argparse.ArgumentTypeError(f"unknown component {text!r}; valid: {', '.join(COMPONENT_NAMES)} or head.N")


def _plotlyjs(text: str) -> str:
    # the rule of xtl.plot.check_plotlyjs, spelled out so that parsing imports neither plotly nor torch
    if text in ("directory", "embed", "cdn") or text.endswith(".js"):
        return text
    raise argparse.ArgumentTypeError(f"--plotlyjs must be directory, embed, cdn or a path ending in .js, got {text!r}")


#: The ``--plotlyjs`` option's argparse settings, shared by the commands that write figures.
PLOTLYJS: dict[str, Any] = {
    "default": "directory",
    "type": _plotlyjs,
    "help": "HTML figures: one offline plotly.js beside them (directory, the default), "
    "plotly.js inside each file (embed), loaded from the web (cdn), or an offline copy at a "
    "relative path ending in .js (e.g. ../plotly.min.js)",
}


THREADS_HELP = (
    "CPU threads for the computation: 'auto' (the default, or $XTL_THREADS: 1 for small models or "
    "when other processes keep cores busy, else torch's count), 'torch' (leave torch's count) or a number"
)


def _threads(text: str):
    from xtl.threads import parse

    try:
        return parse(text, "--threads")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


class LoadError(XtlError, ValueError):
    """A model that could not be loaded, whatever the reason (missing, corrupt, offline)."""


def _load(name: str, dtype: str):
    import xtl

    try:
        return xtl.toy.load_toy_model(dtype=dtype) if name == "toy" else xtl.load_model(name, dtype=dtype)
    except Exception as err:  # noqa: BLE001 - every loading failure becomes one line naming the model
        raise LoadError(f"cannot load model {name!r}: {_one_line(err)}") from err


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    name = type(err).__name__
    return text if isinstance(err, (ValueError, FileNotFoundError)) and text else f"{name}: {text or 'no message'}"


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _study(args: argparse.Namespace) -> int:
    from xtl import study
    from xtl.results import output_dir

    options = {}
    if args.limit is not None:
        options["limit"] = args.limit
    if args.languages:
        options["languages"] = _csv(args.languages)
    if args.layer_step is not None:
        options["layer_step"] = args.layer_step
    if args.map_items is not None:
        options["map_items"] = args.map_items
    if args.map_layer_step is not None:
        options["map_step"] = args.map_layer_step
    if args.direction is not None:
        options["direction"] = args.direction
    study.check_options(**options)  # before loading a model
    output_dir(args.out)
    if not args.quiet:
        print(f"loading {args.model} ...", flush=True)
    done = study.study(
        _load(args.model, "float32"),
        args.out,
        png=not args.no_png,
        progress=not args.quiet,
        plotlyjs=args.plotlyjs,
        name=args.model,
        **options,
    )
    print(f"\nxtl demo: {done['seconds']:.0f} s; report {done['report']}")
    print(study.summary(done).to_string(index=False))
    return 0


def _demo(args: argparse.Namespace) -> int:
    if args.model != "toy":
        return _study(args)
    given = [
        flag
        for flag in ("languages", "layer_step", "map_items", "map_layer_step", "direction")
        if getattr(args, flag) is not None
    ]
    if given:
        raise InputError(
            f"--{given[0].replace('_', '-')} applies to a real model's study (--model NAME); "
            "the toy demo runs the toy tasks' languages, each task's own direction and every layer"
        )
    from xtl.report import demo
    from xtl.results import output_dir

    output_dir(args.out)
    done = demo(args.out, limit=args.limit, png=not args.no_png, progress=not args.quiet, plotlyjs=args.plotlyjs)
    print(f"\nxtl demo: {done['seconds']:.0f} s; report {done['report']}")
    from xtl.metrics import compare_settings
    from xtl.report import task_default

    for name, result in done["results"].items():
        default = task_default(result)
        if default is None:  # the sweep does not hold the task's default cell
            continue
        table = compare_settings(result, default).set_index(["language", "setting"])["accuracy"]
        language = "all" if "all" in table.index.get_level_values(0) else result.languages[0]
        row = table[language]
        print(
            f"  {name:18s} untouched {row['baseline']:.2f} | paper default {row['default']:.2f} | "
            f"TargetFirst {row['targetfirst']:.2f} | upper bound {row['upper_bound']:.2f}  "
            f"({len(result.instances)} items)"
        )
    return 0


def _sweep(args: argparse.Namespace) -> int:
    import xtl
    from xtl.components import check_names, positive_int
    from xtl.results import check_output_dir
    from xtl.study import layer_subset

    if args.limit is not None:
        positive_int(args.limit, "--limit")
    step = positive_int(args.layer_step, "--layer-step")
    if args.approx and args.max_new_tokens is not None:
        raise InputError(
            "--max-new-tokens does not apply to --approx: attribution patching estimates first-token "
            "statistics only, no text is generated"
        )
    if args.approx and args.ray is not None:
        raise InputError(
            "--ray runs exact sweeps; an --approx sweep takes one backward pass per item (use --shard to split it)"
        )
    if (args.workers is not None or args.gpus_per_worker) and args.ray is None:
        raise InputError("--workers and --gpus-per-worker apply to --ray")
    if args.gpus_per_worker < 0:
        raise InputError(f"--gpus-per-worker must be >= 0, got {args.gpus_per_worker}")
    from xtl.distributed import parse_shard

    shard = parse_shard(args.shard)
    check_names(_csv(args.components))
    max_new_tokens = positive_int(20 if args.max_new_tokens is None else args.max_new_tokens, "--max-new-tokens")
    check_output_dir(args.out)  # before the model loads

    task = xtl.tasks.get(args.task, **({"data": args.data} if args.data else {}), rule=args.rule)
    languages = [task.canonical(lang) for lang in _csv(args.languages)] if args.languages else list(task.languages)
    items = [item for lang in languages for item in task.items(lang, args.direction, args.split)[: args.limit]]
    model = _load(args.model, args.dtype)
    layers = None if step == 1 else layer_subset(model.cfg.n_layers, step)
    if args.approx:
        result = xtl.attribution_sweep(
            model,
            items,
            components=_csv(args.components),
            source_layers=layers,
            target_layers=layers,
            out=args.out,
            progress=not args.quiet,
            shard=shard,
        )
        print(_top_cells(result).to_string(index=False))
    else:
        ray = (
            {}
            if args.ray is None
            else {
                "executor": "ray",
                "workers": args.workers,
                "gpus_per_worker": args.gpus_per_worker,
                "address": None if args.ray == "local" else args.ray,
            }
        )
        result = xtl.sweep(
            model,
            items,
            components=_csv(args.components),
            source_layers=layers,
            target_layers=layers,
            max_new_tokens=max_new_tokens,
            scorer=task.scorer,
            out=args.out,
            progress=not args.quiet,
            shard=shard,
            **ray,
        )
        print(xtl.upper_bound(result).round(3).to_string(index=False))
    left = f" ({len(result.missing)} of {len(result.spec.ids)} not yet: other shards)" if result.missing else ""
    print(
        f"\nxtl sweep: {len(result.instances)} instances in {args.out}{left}; `xtl report {args.out} --out report` "
        f"draws them"
    )
    return 0


def _select(args: argparse.Namespace) -> int:
    import xtl
    from xtl.components import check_names, positive_int
    from xtl.results import check_output_dir
    from xtl.study import layer_subset

    if args.limit is not None:
        positive_int(args.limit, "--limit")
    step = positive_int(args.layer_step, "--layer-step")
    max_new_tokens = positive_int(args.max_new_tokens, "--max-new-tokens")
    check_names(_csv(args.components))
    check_output_dir(args.out)  # before the model loads
    task = xtl.tasks.get(args.task, **({"data": args.data} if args.data else {}))
    languages = [task.canonical(lang) for lang in _csv(args.languages)] if args.languages else None
    model = _load(args.model, args.dtype)
    layers = None if step == 1 else layer_subset(model.cfg.n_layers, step)
    found = xtl.select.compare(
        model,
        task,
        languages=languages,
        limit=args.limit,
        max_new_tokens=max_new_tokens,
        components=_csv(args.components),
        layers=layers,
        out=args.out,
        progress=not args.quiet,
        png=not args.no_png,
        plotlyjs=args.plotlyjs,
        probes=not args.no_probes,
    )
    print(found.to_markdown())
    print(f"xtl select: report and runs in {args.out}")
    return 0


def _top_cells(result, shown: int = 10):
    """The cells with the largest mean gold log-prob change (what an approximate sweep is read for)."""
    import pandas as pd

    from xtl.plot import cell_values

    change, spec = cell_values(result, "logprob_change")[0], result.spec
    print(
        f"approximate (attribution patching): the {shown} cells with the largest mean estimated change of the gold "
        f"answer's first-token log-prob over {len(result.instances)} items"
    )
    frame = pd.DataFrame(
        [
            (c, s, t, float(change[ci, si, ti]))
            for ci, c in enumerate(spec.components)
            for si, s in enumerate(spec.source_layers)
            for ti, t in enumerate(spec.target_layers)
        ],
        columns=["component", "source_layer", "target_layer", "logprob_change"],
    )
    return frame.nlargest(shown, "logprob_change").round(3)


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for value in values or ():
        language, sep, text = value.partition("=")
        if not sep or not language.strip():
            raise InputError(f"{what} {value!r} is not LANGUAGE=TEXT (e.g. {what} 'en=The capital of France is')")
        out[language.strip()] = text
    return out


def _lens(args: argparse.Namespace) -> int:
    import xtl
    from xtl.pairs import as_pair
    from xtl.results import output_dir

    prompts, answers = _pairs(args.prompt, "--prompt"), _pairs(args.answer, "--answer")
    sources, spec = None, None
    if args.task:
        if prompts:
            raise InputError("give --task (an item's prompts) or --prompt, not both")
        task = xtl.tasks.get(args.task, **({"data": args.data} if args.data else {}))
        items = task.items(task.canonical(args.language or task.languages[0]), args.direction, args.split)
        if not 0 <= args.index < len(items):
            raise InputError(f"--index {args.index} is out of range: the task has {len(items)} items in this language")
        item = as_pair(items[args.index])  # its answer template resolved against the target prompt
        prompts = {"source": item.source, "target": item.target}
        answers = answers or {"gold": str(item.answer_template).format(item.gold)}
        if args.transplant == "default":
            spec = task.default
        sources = {"target": item.source, "source": item.source}
    if not prompts or not answers:
        raise InputError("give --prompt LANG=TEXT (two or more) and --answer LANG=TEXT, or --task NAME")
    if args.transplant and spec is None:
        spec = _transplant_spec(args.transplant)
    if spec is not None and sources is None:
        if args.source not in prompts:
            raise InputError(f"--source {args.source!r} names no prompt; the prompts are {sorted(prompts)}")
        sources = dict.fromkeys(prompts, prompts[args.source])
    output_dir(args.out)
    model = _load(args.model, args.dtype)
    frame = xtl.lens(model, prompts, answers, spec=spec, sources=sources)
    if spec is not None:  # the source read through its own transplant is itself: keep its untouched lines
        source = "source" if args.task else args.source
        frame = frame[(frame.prompt_language != source) | (frame.condition == "untouched")]
    out = Path(args.out)
    frame.to_csv(out / "lens.csv", index=False)
    what = f" · transplanted: {spec.component} {spec.source_layer} -> {spec.target_layer}" if spec else ""
    figure = xtl.plot.lens(frame, subtitle=f"model {args.model}{what}")
    xtl.plot.save(figure, out / "lens.html", plotlyjs=args.plotlyjs)
    if not args.no_png:
        xtl.plot.save(figure, out / "lens.png")
    table = frame.pivot_table(index="layer", columns=["prompt_language", "condition", "answer_language"], values="prob")
    print(table.round(3).to_string())
    print(f"\nxtl lens: {out / 'lens.csv'}, {out / 'lens.html'}" + ("" if args.no_png else f", {out / 'lens.png'}"))
    return 0


def _transplant_spec(text: str):
    from xtl.spec import TransplantSpec

    parts = text.split(":")
    try:
        component, source_layer, target_layer = parts[0], int(parts[1]), int(parts[2])
        if len(parts) != 3:
            raise ValueError
    except (IndexError, ValueError):
        raise InputError(
            f"--transplant {text!r} is not COMPONENT:SOURCE_LAYER:TARGET_LAYER (e.g. mlp:0:0), or 'default' with --task"
        ) from None
    try:
        return TransplantSpec(source_layer, target_layer, _component(component))
    except argparse.ArgumentTypeError as err:
        raise InputError(str(err)) from None


def _report(args: argparse.Namespace) -> int:
    import warnings

    from xtl.report import write_report
    from xtl.results import RunWarning, SweepResult

    results = {}
    for run in args.runs:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RunWarning)
            result = SweepResult.load(run)
        for w in caught:
            if issubclass(w.category, RunWarning):
                print(f"xtl report: warning: {w.message}", file=sys.stderr)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        name = result.spec.task or Path(run).name
        results[name if name not in results else f"{name} ({Path(run).name})"] = result
    report = write_report(results, args.out, png=not args.no_png, plotlyjs=args.plotlyjs)
    print(f"xtl report: {report}")
    return 0


def _transplant(args: argparse.Namespace) -> int:
    import xtl
    from xtl.components import positive_int

    positive_int(args.max_new_tokens, "--max-new-tokens")

    model = _load(args.model, args.dtype)
    res = xtl.transplant(
        model,
        args.source,
        args.target,
        args.source_layer,
        args.target_layer,
        args.component,
        max_new_tokens=args.max_new_tokens,
    )
    print(f"untouched    : {args.target}{(res.baseline_text or [''])[0]}")
    print(
        f"transplanted : {args.target}{res.text[0]}   "
        f"({args.component}, source layer {args.source_layer} -> target layer {args.target_layer})"
    )
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (the usage is one ``--help`` away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    """The argument parser of the ``xtl`` command."""
    p = _Parser(
        prog="xtl", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="the main job on the shipped toy model (or a real one): sweeps, figures, report",
        description="Sweep the toy model's three tasks (general knowledge En -> X, reading "
        "En -> X, culture X -> En) over attention and MLP and every layer pair, "
        "evaluate untouched / paper default / TargetFirst / upper bound, and write "
        "PNG + HTML figures and report.md. With --model NAME (e.g. smollm2-135m), "
        "the world-facts study of a real model instead: a generation sweep over a "
        "layer subset with its mismatched-source control, held-out settings, and a "
        "first-token map over every layer pair.",
    )
    demo.add_argument(
        "--model",
        default="toy",
        help="'toy' (default), or a real model for the world-facts study: smollm2-135m, gemma3-270m, a GGUF "
        "file, a checkpoint dir or a hub name",
    )
    demo.add_argument("--out", default="xtl-demo", help="output directory (default: %(default)s)")
    demo.add_argument(
        "--limit",
        type=int,
        help="only the first N items per language (a quick look; a real model's study takes 4 unless given)",
    )
    demo.add_argument(
        "--languages",
        help="real model: scored languages, comma-separated "
        "(default: fr,de,sw,id; world-facts has fr es de it pt sw id zh ja ru ar hi)",
    )
    demo.add_argument("--layer-step", type=int, help="real model: sweep every Nth layer and the last (default: 5)")
    demo.add_argument(
        "--map-items", type=int, help="real model: items per language in the first-token maps (default: 1; 0: no maps)"
    )
    demo.add_argument(
        "--map-layer-step",
        type=int,
        help="real model: the first-token maps cover every Nth layer and the last (default: 2; 1: every layer pair)",
    )
    demo.add_argument(
        "--direction",
        choices=("en2x", "x2en"),
        help="real model: en2x (default: the English question is the source, the language's is scored) or x2en "
        "(the language's question is the source, the English one is scored)",
    )
    demo.add_argument("--no-png", action="store_true", help="HTML figures only (PNG needs Chromium)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.add_argument("--plotlyjs", **PLOTLYJS)
    demo.add_argument("--threads", type=_threads, default=argparse.SUPPRESS, help=THREADS_HELP)
    demo.set_defaults(func=_demo)

    sweep = sub.add_parser(
        "sweep",
        help="sweep every layer pair of a task into a resumable run directory",
        description="Run every (component, source layer, target layer) cell on a task's items; "
        "each finished item is saved at once, so an interrupted sweep resumes.",
    )
    sweep.add_argument("--model", required=True, help="'toy', a TransformerLens hub name or a local checkpoint dir")
    sweep.add_argument(
        "--task", required=True, help="a registered task: " + ", ".join(TASK_NAMES) + " (or one you registered)"
    )
    sweep.add_argument("--data", help="the task's data directory (the paper's tasks), or 'hub'")
    sweep.add_argument("--languages", help="comma-separated, e.g. sw,ur (default: the languages the paper runs)")
    sweep.add_argument(
        "--rule",
        choices=("paper", "lenient"),
        help="scoring rule: the authors' released one (paper, the default for the paper's "
        "tasks) or xtl's more forgiving one (lenient)",
    )
    sweep.add_argument("--direction", choices=("en2x", "x2en"), help="default: the task's own")
    sweep.add_argument(
        "--components",
        default="attn,mlp",
        help="comma-separated, from " + ", ".join(COMPONENT_NAMES) + ", head.N (one attention "
        "head) or head (every head) (default: %(default)s)",
    )
    sweep.add_argument("--split", default="sample", choices=("sample", "unseen"))
    sweep.add_argument("--limit", type=int, help="only the first N items per language")
    sweep.add_argument("--max-new-tokens", type=int, help="greedy tokens per answer (default: 20)")
    sweep.add_argument(
        "--approx",
        action="store_true",
        help="estimate every cell's first-token statistics by attribution patching (one backward "
        "pass per item instead of one run per cell; approximate, no text; the run says so)",
    )
    sweep.add_argument(
        "--layer-step",
        type=int,
        default=1,
        help="source and target layers: every Nth layer and the last (default: %(default)s, all)",
    )
    sweep.add_argument("--dtype", default="float32", choices=DTYPES, help="model dtype (default: %(default)s)")
    sweep.add_argument("--out", required=True, help="the run directory")
    sweep.add_argument(
        "--shard",
        metavar="K/N",
        help="only the items whose index i has i %% N == K (one job of N, e.g. a job array's, all "
        "writing to the same --out; `xtl report` reads the run whole or says what is missing)",
    )
    sweep.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run the items on Ray workers (pip install 'xtransplant[distributed]'): a new local Ray, or "
        "the cluster at ADDRESS ('auto': the one this machine belongs to)",
    )
    sweep.add_argument(
        "--workers", type=int, help="with --ray: how many workers (default: one per CPU, or per --gpus-per-worker GPUs)"
    )
    sweep.add_argument(
        "--gpus-per-worker",
        type=float,
        default=0,
        help="with --ray: GPUs each worker reserves (Ray's num_gpus; default: %(default)s)",
    )
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep.add_argument("--threads", type=_threads, default=argparse.SUPPRESS, help=THREADS_HELP)
    sweep.set_defaults(func=_sweep)

    chooser = sub.add_parser(
        "select",
        help="label-free selectors of a cell per item, measured on unseen items against a control",
        description="Sweep a task's sample and unseen items, and both with mismatched sources (the "
        "control); declare the primary label-free selector by cross-validation on sample; score every "
        "selector once on unseen (gap closed between TargetFirst and the upper bound, with intervals that "
        "resample facts), beside copying the source's own answer. Runs resume.",
    )
    chooser.add_argument("--model", required=True, help="'toy', a TransformerLens hub name or a local checkpoint dir")
    chooser.add_argument("--task", required=True, help="a registered task: " + ", ".join(TASK_NAMES))
    chooser.add_argument("--data", help="the task's data directory (the paper's tasks), or 'hub'")
    chooser.add_argument("--languages", help="comma-separated (default: the task's)")
    chooser.add_argument("--limit", type=int, help="only the first N items per language and split")
    chooser.add_argument("--components", default="attn,mlp", help="comma-separated (default: %(default)s)")
    chooser.add_argument(
        "--layer-step", type=int, default=1, help="sweep every Nth layer and the last (default: %(default)s, all)"
    )
    chooser.add_argument("--max-new-tokens", type=int, default=20, help="greedy tokens per answer (default: 20)")
    chooser.add_argument("--dtype", default="float32", choices=DTYPES, help="model dtype (default: %(default)s)")
    chooser.add_argument("--out", required=True, help="output folder: runs/ and report.md")
    chooser.add_argument("--no-png", action="store_true", help="HTML figures only (PNG needs Chromium)")
    chooser.add_argument(
        "--no-probes",
        action="store_true",
        help="leave out the lens- and attribution-guided selectors (they probe the model: a lens pass "
        "and an attribution estimate per item)",
    )
    chooser.add_argument("--plotlyjs", **PLOTLYJS)
    chooser.add_argument("--quiet", action="store_true", help="no progress bars")
    chooser.add_argument("--threads", type=_threads, default=argparse.SUPPRESS, help=THREADS_HELP)
    chooser.set_defaults(func=_select)

    report = sub.add_parser("report", help="figures and report.md from sweep run directories")
    report.add_argument("runs", nargs="+", metavar="RUN", help="run directories written by `xtl sweep`")
    report.add_argument("--out", default="xtl-report", help="output directory (default: %(default)s)")
    report.add_argument("--no-png", action="store_true", help="HTML figures only (PNG needs Chromium)")
    report.add_argument("--plotlyjs", **PLOTLYJS)
    report.set_defaults(func=_report)

    lens = sub.add_parser(
        "lens",
        help="cross-lingual logit lens: each layer's probability of each answer",
        description="Read the residual stream at the last prompt token of each layer through the "
        "final norm and unembedding: the probability of each answer's first token, "
        "per prompt, untouched and (with --transplant) after a transplant. Writes "
        "lens.csv and the figure lens.html/png.",
    )
    lens.add_argument("--model", required=True, help="'toy', a hub name or a local checkpoint dir")
    lens.add_argument("--prompt", action="append", metavar="LANG=TEXT", help="a prompt and its language (repeat)")
    lens.add_argument(
        "--answer",
        action="append",
        metavar="LANG=TEXT",
        help="an answer as it follows the prompts, e.g. 'fr= Paris' (repeat)",
    )
    lens.add_argument(
        "--task", help="read one item of a registered task instead: its source and target prompts and its gold answer"
    )
    lens.add_argument("--data", help="the task's data directory (the paper's tasks)")
    lens.add_argument("--language", help="with --task: the item's language (default: the task's first)")
    lens.add_argument("--direction", choices=("en2x", "x2en"), help="with --task: default the task's own")
    lens.add_argument("--split", default="sample", choices=("sample", "unseen"))
    lens.add_argument("--index", type=int, default=0, help="with --task: which item (default: %(default)s)")
    lens.add_argument(
        "--transplant",
        metavar="COMPONENT:SOURCE:TARGET",
        help="also read the prompts after this transplant (e.g. mlp:0:0; 'default' with --task: the task's default)",
    )
    lens.add_argument("--source", default="en", help="the prompt transplanted into the others (default: %(default)s)")
    lens.add_argument("--dtype", default="float32", choices=DTYPES, help="model dtype (default: %(default)s)")
    lens.add_argument("--out", default="xtl-lens", help="output directory (default: %(default)s)")
    lens.add_argument("--no-png", action="store_true", help="HTML figure only (PNG needs Chromium)")
    lens.add_argument("--plotlyjs", **PLOTLYJS)
    lens.add_argument("--threads", type=_threads, default=argparse.SUPPRESS, help=THREADS_HELP)
    lens.set_defaults(func=_lens)

    one = sub.add_parser("transplant", help="one transplant, printed next to the untouched continuation")
    one.add_argument("--model", required=True, help="'toy', a hub name or a local checkpoint dir")
    one.add_argument("--source", required=True, help="the source prompt (where the activation is read)")
    one.add_argument("--target", required=True, help="the target prompt (where it is written)")
    one.add_argument("--source-layer", type=int, required=True, help="may be negative (-1: last layer)")
    one.add_argument("--target-layer", type=int, required=True)
    one.add_argument(
        "--component",
        default="attn",
        type=_component,
        help=f"{', '.join(COMPONENT_NAMES)} or head.N, attention head N (default: %(default)s)",
    )
    one.add_argument("--max-new-tokens", type=int, default=8)
    one.add_argument("--dtype", default="float32", choices=DTYPES, help="model dtype (default: %(default)s)")
    one.add_argument("--threads", type=_threads, default=argparse.SUPPRESS, help=THREADS_HELP)
    one.set_defaults(func=_transplant)
    return p


def _version() -> str:
    from xtl.version import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``xtl`` console script.

    A user error (bad value, bad or missing file, unreadable data, a model that cannot be
    loaded, a folder that cannot be written) prints one line and exits with status 2;
    ``XTL_TRACEBACK=1`` shows the traceback as well.
    """
    args = parser().parse_args(argv)
    try:
        if hasattr(args, "threads"):
            from xtl.threads import set_threads

            set_threads(args.threads)
        return args.func(args)
    except (ValueError, TypeError, OSError, NotImplementedError, ImportError) as error:
        print(f"xtl {args.command}: error: {_one_line(error)}", file=sys.stderr)
        if os.environ.get("XTL_TRACEBACK"):
            raise
        return 2
    except KeyboardInterrupt:
        print(f"xtl {args.command}: interrupted; finished items are saved and a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
