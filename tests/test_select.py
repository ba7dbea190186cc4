"""xtl.select: label-free selectors and an evaluation that cannot read the gold by accident."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic import made_spec

import xtl
from xtl import select
from xtl.results import from_frame, record


@pytest.fixture(scope="module")
def toy():
    """The toy model's generation task (En -> X), fr and sw, 8 items per language and split,
    every cell, with its probes; and the same with each source taken from the next item (the control)."""
    model, task = xtl.toy.load_toy_model(), xtl.tasks.get("toy-generation")

    def run(split, shift=0):
        items = []
        for lang in ("fr", "sw"):
            pool = task.items(lang, split=split)[:8]
            items += [dataclasses.replace(it, source=pool[(k + shift) % len(pool)].source) for k, it in enumerate(pool)]
        res = xtl.sweep(model, items, max_new_tokens=3, scorer=task.scorer, progress=False)
        return select.probe(model, items, res, progress=False)

    return {
        "task": task,
        "sample": run("sample"),
        "unseen": run("unseen"),
        "control": (run("sample", 1), run("unseen", 1)),
    }


def made(rows, components=("attn",), layers=(0, 1), direction=""):
    """A hand-made result: rows are (language, id, untouched (text, correct, mean_logprob), source
    text, {(component, s, t): (text, correct, mean_logprob)}); top log-prob and entropy follow
    the mean log-prob (top = mean, entropy = -mean)."""
    spec = made_spec([r[1] for r in rows], components, layers, len(layers), max_new_tokens=2, direction=direction)

    def one(k, id_, lang, cell, text, right, lp):
        return record(k, id_, cell, text, [ord(ch) for ch in text], right, lp, np.nan, [], lang, -1, lp, -lp, lp)

    out = []
    for k, (lang, id_, (text, right, lp), source, cells) in enumerate(rows):
        out.append(one(k, id_, lang, None, text, right, lp) | {"source_text": source, "source_tokens": [1]})
        every = [(c, s, t) for c in components for s in layers for t in layers]
        out += [one(k, id_, lang, cell, *cells[cell]) for cell in every]
    return from_frame(spec, pd.DataFrame(out))


def cells(a, b, c, d):
    return {("attn", 0, 0): a, ("attn", 0, 1): b, ("attn", 1, 0): c, ("attn", 1, 1): d}


NO = ("x", False, -3.0)


def test_the_view_holds_no_labels(toy):
    view = select.Unlabelled(toy["unseen"])
    for name in ("correct", "gold_logprob", "logit_diff", "option_correct", "gold_option"):
        with pytest.raises(select.LabelError, match=rf"cannot read '{name}': it depends on the gold.*mean_logprob"):
            getattr(view, name)
    assert not {"correct", "gold_logprob", "logit_diff", "gold_option"} & set(view.baseline.columns)
    assert view.shape == tuple(toy["unseen"].correct.shape) and len(view.cells()) == 72
    assert view.facts[:2] == ["toy-generation-unseen-0", "toy-generation-unseen-1"]
    assert view.facts[:8] == view.facts[8:]  # fr and sw ask the same facts
    with pytest.raises(AttributeError, match="no attribute 'colour'"):
        _ = view.colour


def test_choices_do_not_move_with_the_golds(toy):
    """Every selector, fitted on sample, chooses the same cells on unseen when unseen's golds are
    permuted across items (in place, so a selector holding the result would see it)."""
    selectors = [
        select.Untouched(),
        select.Fixed(toy["task"].default),
        select.TargetFirst("mlp"),
        select.BestFixed(),
        select.RandomCell(3),
        select.Confidence(),
        select.Confidence("entropy", abstain=False),
        select.Vote(),
        select.Vote(k=3),
        select.SourceAgreement(),
        select.Reranker(),
        select.Reranker(source=False),
        select.Cascade(),
        select.LensGuided(),
        select.AttributionGuided(k=3),
    ]
    before = toy["unseen"].correct.clone()
    for selector in selectors:
        chosen = select.check_label_free(selector, toy["sample"], toy["unseen"])
        assert chosen.cell.shape == (16,) and ((chosen.cell >= -1) & (chosen.cell < 72)).all()
    assert torch.equal(toy["unseen"].correct, before)  # restored


def test_a_selector_that_peeks_is_caught(toy):
    class Reads(select.Selector):
        name = "reads the view's verdicts"

        def choose(self, view):
            return select.Choice(view.correct.flatten(1).float().argmax(1).numpy(), np.ones(16))

    class Holds(select.Selector):
        """Keeps the unseen result it was given and picks a cell that solves each item."""

        name = "holds the result"

        def __init__(self, result):
            self.result = result

        def choose(self, view):
            return select.Choice(self.result.correct.flatten(1).float().argmax(1).numpy(), np.ones(16))

    with pytest.raises(select.LabelError, match="cannot read 'correct'"):
        select.evaluate([Reads()], toy["sample"], toy["unseen"])
    with pytest.raises(select.LabelError, match=r"'holds the result' chose other cells for \d+ of 16 instances"):
        select.check_label_free(Holds(toy["unseen"]), toy["sample"], toy["unseen"])


def test_choice_verdicts_by_hand():
    res = made(
        [
            ("sw", "a-sw-0", ("u", True, -1.0), "s", cells(NO, ("y", True, -1.0), NO, NO)),
            ("sw", "a-sw-1", ("u", False, -1.0), "s", cells(NO, NO, ("y", True, -1.0), NO)),
        ]
    )
    choice = select.Choice(np.array([0, 2]), np.ones(2))
    assert choice.verdicts(res).tolist() == [False, True] and choice.accuracy(res) == 0.5
    assert select.Choice(np.array([-1, -1]), np.zeros(2)).verdicts(res).tolist() == [True, False]


def test_vote_and_source_agreement_by_hand():
    res = made(
        [
            # cells 1 and 2 say "Nairobi" (changed), cell 3 "Paris": the vote is Nairobi, its first cell 1
            (
                "sw",
                "f-sw-0",
                ("Lima", False, -2.0),
                "Paris",
                cells(
                    ("Lima", False, -2.0), (" Nairobi.", True, -1.5), ("nairobi", True, -0.5), ("Paris", False, -0.1)
                ),
            ),
            # nothing changed: the vote abstains; the source's answer is in cell 0
            ("ru", "f-ru-0", ("Лима", False, -2.0), "Лима", cells(*[("Лима", False, -2.0)] * 4)),
        ]
    )
    view = select.Unlabelled(res)
    assert view.changed.flatten(1).tolist() == [[False, True, True, True], [False] * 4]
    assert select.Vote().choose(view).cell.tolist() == [1, -1]
    assert select.SourceAgreement().choose(view).cell.tolist() == [3, 0]
    assert select.answer_key(" Nairobi.\nKenya") == "nairobi"


def relative(values, lang="sw", text="v"):
    """One item whose cells' mean log-probs are ``values`` above its untouched answer's (-5)."""
    return (lang, f"r-{lang}-{values}", ("u", False, -5.0), "", cells(*[(text, False, -5.0 + v) for v in values]))


def test_confidence_standardises_each_cell_by_the_sample():
    # per cell, over the two sample items: centre 0, 1, 0.1, 2 and spread 1 (none), 1, 0.1, 2
    sample = made([relative([0, 0, 0, 0]), relative([0, 2, 0.2, 4])])
    view = select.Unlabelled(made([relative([0, 1.5, 0.3, 3.0])]))  # scores 0, 0.5, 2, 0.5
    assert select.Confidence(abstain=False).fit(sample).choose(view).cell.tolist() == [2]
    entropy = select.Confidence("entropy", abstain=False).fit(sample)  # entropy is -mean here: the same order
    assert entropy.choose(view).cell.tolist() == [2]


def test_confidence_passes_over_answers_in_another_script():
    sample = made([relative([0, 0, 0, 0], "ru"), relative([2, 2, 2, 2], "ru")])  # every cell: score = value - 1
    target = made(
        [
            (
                "ru",
                "g-ru-0",
                ("Лима", False, -5.0),
                "",
                cells(("Лима", False, -5.0), ("Paris", False, -3.1), ("Париж", True, -4.0), ("Лима", False, -5.0)),
            )
        ]
    )
    view = select.Unlabelled(target)
    assert view.scripts[0, 0, 0, 1] == "Latin" and view.scripts[0, 0, 1, 0] == "Cyrillic"
    assert select.Confidence(language_filter=False, abstain=False).fit(sample).choose(view).cell.tolist() == [1]
    assert select.Confidence(abstain=False).fit(sample).choose(view).cell.tolist() == [2]
    # where the untouched answer is itself in another script (a name the language writes in Latin
    # letters, as the toy world's Russian does), answers in that script are in the language too
    latin = made([("ru", "g-ru-1", ("vodi", False, -5.0), "", cells(NO, ("mudro", True, -2.0), NO, NO))])
    assert select.Confidence(abstain=False).fit(sample).choose(select.Unlabelled(latin)).cell.tolist() == [1]
    # where every answer in the language's script has no signal (NaN), no other-script answer is
    # taken instead: it keeps the untouched answer (the filter's -inf is not the smallest float)
    silent = made(
        [("ru", "g-ru-2", ("Лима", False, -5.0), "", cells(("Paris", False, -1.0), ("Париж", False, np.nan), NO, NO))]
    )
    assert select.Confidence(abstain=False).fit(sample).choose(select.Unlabelled(silent)).cell.tolist() == [-1]


def test_confidence_abstains_below_the_threshold_it_fitted():
    sample = made(
        [
            (
                "sw",
                "h-sw-0",
                ("u", True, -1.0),
                "",
                cells(("v", False, -0.2), NO, NO, NO),
            ),  # wrong where untouched is right
            ("sw", "h-sw-1", ("u", False, -1.0), "", cells(("v", True, -0.1), NO, NO, NO)),  # right
        ]
    )
    # cell 0 scores -1 and +1 on the two items, the others 0 on both: the best cell of item 0 is a
    # wrong one (score 0), of item 1 cell 0 (score 1); keeping the untouched answer below 1 gets both right
    conf = select.Confidence(abstain=True).fit(sample)
    assert conf.threshold == pytest.approx(1.0)
    assert conf.choose(select.Unlabelled(sample)).cell.tolist() == [-1, 0]
    assert select.Confidence(abstain=False).fit(sample).choose(select.Unlabelled(sample)).cell.tolist() == [1, 0]


def test_evaluate_by_hand(toy):
    sample, unseen = toy["sample"], toy["unseen"]
    ev = select.evaluate(
        [select.Vote(k=3)], sample, unseen, default=toy["task"].default, primary="vote of the 3 best cells"
    )
    table = ev.table.set_index("selector")
    assert list(table.index) == [
        "untouched",
        "paper default (mlp 0->0)",
        "targetfirst",
        "best fixed cell",
        "random cell",
        "vote of the 3 best cells",
    ]
    right = {name: choice.verdicts(unseen) for name, choice in ev.choices.items()}
    base = unseen.baseline["correct"].to_numpy(dtype=bool)
    solved = unseen.correct.flatten(1).any(1).numpy()
    assert ev.upper_bound == solved.mean() and ev.floor == "targetfirst" and (ev.instances, ev.facts) == (16, 8)
    for name, hits in right.items():
        row = table.loc[name]
        assert row["accuracy"] == hits.mean()
        assert (row["fixes"], row["harms"]) == ((hits & ~base).sum(), (~hits & base).sum())
        gap = (hits.sum() - right["targetfirst"].sum()) / (solved.sum() - right["targetfirst"].sum())
        assert row["gap_closed"] == pytest.approx(gap)
        assert row["gap_low"] <= row["gap_closed"] <= row["gap_high"] or np.isnan(row["gap_low"])
    assert table.loc["vote of the 3 best cells", "cells_per_item"] == 3
    assert (
        table.loc["paper default (mlp 0->0)", "cells_per_item"] == 1 and table.loc["untouched", "cells_per_item"] == 0
    )
    assert "no mismatched-source control was run" in ev.claim or "does not exclude 0" in ev.claim


def test_evaluate_with_a_control_and_copying_the_source(toy):
    sample, unseen, control = toy["sample"], toy["unseen"], toy["control"]
    copied = np.array(
        [toy["task"].score(t, it) for t, it in zip(unseen.baseline["source_text"], _items(toy, "unseen"))]
    )
    ev = select.evaluate(
        [select.SourceAgreement()],
        sample,
        unseen,
        control=control,
        primary="agrees with the source",
        copy_source=copied,
    )
    table = ev.table.set_index("selector")
    assert (
        table.loc["copy the source", "accuracy"] == copied.mean()
        and table.loc["copy the source", "cells_per_item"] == 0
    )
    theirs = ev.control_choices["agrees with the source"].verdicts(control[1])
    mine = ev.choices["agrees with the source"].verdicts(unseen)
    row = table.loc["agrees with the source"]
    assert row["control_accuracy"] == theirs.mean() and row["difference"] == pytest.approx(mine.mean() - theirs.mean())
    assert row["difference_low"] <= row["difference"] <= row["difference_high"]
    assert ev.claim.startswith(("agrees with the source closes", "No claim: agrees with the source"))
    assert "unseen (16 items, 8 facts" in ev.claim


def _items(toy, split):
    return [it for lang in ("fr", "sw") for it in toy["task"].items(lang, split=split)[:8]]


def test_evaluate_refuses_what_would_fool_it(toy):
    sample, unseen = toy["sample"], toy["unseen"]
    with pytest.raises(xtl.XtlError, match=r"8 facts are in both sample and unseen"):
        select.evaluate([], sample, sample)
    with pytest.raises(
        xtl.XtlError, match=r"primary 'vote' is not one of the selectors: \['confidence \(mean_logprob\)'\]"
    ):
        select.evaluate([select.Confidence()], sample, unseen, primary="vote")
    with pytest.raises(xtl.XtlError, match="the control unseen sweep must hold the same items"):
        select.evaluate([], sample, unseen, control=(toy["control"][0], toy["control"][0]))
    with pytest.raises(xtl.XtlError, match=r"copy_source needs one verdict per unseen instance \(16\)"):
        select.evaluate([], sample, unseen, copy_source=[True])
    with pytest.raises(xtl.XtlError, match="unknown signal 'gold'; valid"):
        select.Confidence("gold")
    with pytest.raises(xtl.XtlError, match="fit it first"):
        select.BestFixed().choose(select.Unlabelled(unseen))


def test_take_keeps_the_rows_asked_for(toy):
    res = toy["unseen"]
    sw = res.take(np.array(res.languages) == "sw")
    assert sw.instances == res.instances[8:] and set(sw.languages) == {"sw"} and sw.missing == list(range(8))
    assert torch.equal(sw.correct, res.correct[8:]) and torch.equal(sw.mean_logprob, res.mean_logprob[8:])
    assert (sw.texts_array == res.texts_array[8:]).all() and list(sw.baseline.index) == res.instances[8:]
    two = res.take([3, 0])
    assert two.instances == [res.instances[3], res.instances[0]] and torch.equal(two.entropy[1], res.entropy[0])


def test_cross_validation_never_chooses_on_what_it_fitted(toy):
    sample = toy["sample"]
    seen = []

    class Spy(select.Selector):
        name = "spy"

        def fit(self, part):
            self.facts = set(select.Unlabelled(part).facts)
            return self

        def choose(self, view):
            seen.append((self.facts, set(view.facts)))
            return select.Untouched().choose(view)

    table = select.cross_validate([Spy(), select.Untouched(), select.BestFixed()], sample, folds=4)
    assert len(seen) == 4 and all(not fitted & chosen for fitted, chosen in seen)
    assert set().union(*(chosen for _, chosen in seen)) == set(select.Unlabelled(sample).facts)
    by = table.set_index("selector")["accuracy"]
    assert by["untouched"] == by["spy"] == sample.baseline["correct"].mean() == table.loc[0, "untouched"]
    assert list(table["accuracy"]) == sorted(table["accuracy"], reverse=True)
    with pytest.raises(xtl.XtlError, match="9 folds need as many facts; sample holds 8"):
        select.cross_validate([select.Untouched()], sample, folds=9)


def test_the_claim_says_which_condition_holds_or_fails():
    right = ("A", True, -1.0)
    sample = made([("sw", f"s-sw-{k}", ("u", False, -1.0), "A", cells(NO, right, NO, NO)) for k in range(4)])

    def unseen(source, where=lambda k: k % 3 + 1):  # the right cell: b, c, d in turn (never TargetFirst's a)
        return made(
            [
                (
                    "sw",
                    f"u-sw-{k}",
                    ("u", False, -1.0),
                    source,
                    cells(*[right if j == where(k) else NO for j in range(4)]),
                )
                for k in range(4)
            ]
        )

    agree = [select.SourceAgreement()]
    ev = select.evaluate(agree, sample, unseen("A"), primary="agrees with the source")
    assert ev.table.set_index("selector").loc["targetfirst", "accuracy"] == 0 and ev.upper_bound == 1
    assert ev.claim.startswith("No claim: agrees with the source closes +100% [+100%, +100%] of the targetfirst")
    assert ev.claim.endswith("but no mismatched-source control was run.")
    control = (sample, unseen("B"))  # other sources: nothing agrees, the untouched answer stays
    ev = select.evaluate(agree, sample, unseen("A"), control=control, primary="agrees with the source")
    assert ev.claim.startswith("agrees with the source closes +100% [+100%, +100%]") and "But copying" not in ev.claim
    assert "with mismatched sources it closes +0% (matched - control accuracy +1.000 [+1.000, +1.000])" in ev.claim
    ev = select.evaluate(
        agree, sample, unseen("A"), control=control, primary="agrees with the source", copy_source=[True] * 4
    )
    assert "But copying the source's own answer does as well or better (1.000 against 1.000)" in ev.claim
    ev = select.evaluate(agree, sample, unseen("A"), control=(sample, unseen("A")), primary="agrees with the source")
    assert ev.claim.startswith("No claim: agrees with the source closes") and "but its control matches it" in ev.claim
    ev = select.evaluate(agree, sample, unseen("A", where=lambda k: 0), primary="agrees with the source")
    assert (
        ev.claim
        == "No claim: there is no targetfirst -> upper-bound gap on unseen to close (targetfirst reaches the bound)."
    )
    assert select.evaluate(agree, sample, unseen("A")).claim.startswith("No primary selector was declared")


def test_the_reranker_learns_what_marks_a_right_answer():
    """On sample the right answer is always the one that agrees with the source (in a different
    cell each time, never the most confident): the reranker learns that and picks it on new items."""

    def item(k, right_at, lang="sw", prefix="t"):
        texts = [("x", False, -0.5), ("y", False, -0.6), ("z", False, -0.7), ("w", False, -0.8)]
        texts[right_at] = ("A", True, -1.5)
        return (lang, f"{prefix}-{lang}-{k}", ("u", False, -2.0), "A", cells(*texts))

    sample = made([item(k, k % 4) for k in range(8)])
    reranker = select.Reranker().fit(sample)
    unseen = made([item(k, (k + 1) % 4, prefix="v") for k in range(4)])
    assert select.Reranker().fit(sample).choose(select.Unlabelled(unseen)).cell.tolist() == [1, 2, 3, 0]
    scores = reranker.scores(select.Unlabelled(unseen))
    assert scores.shape == (4, 5) and (scores[np.arange(4), [2, 3, 4, 1]] == scores.max(1)).all()
    weights = dict(zip(select.FEATURES, reranker.weights))
    assert weights["agrees with the source"] > 0 and len(weights) == len(select.FEATURES)
    alone = select.Reranker(source=False).fit(sample)  # without the source's answer as a feature
    assert len(alone.weights) == len(select.FEATURES) and str(alone) == "reranker without the source's answer"
    with pytest.raises(xtl.XtlError, match="fit it first"):
        select.Reranker().choose(select.Unlabelled(unseen))


def test_the_cascade_runs_every_cell_only_where_the_best_cells_disagree():
    right = ("A", True, -1.0)
    sample = made([("sw", f"c-sw-{k}", ("u", False, -1.0), "", cells(right, right, NO, NO)) for k in range(4)])
    unseen = made(
        [
            ("sw", "d-sw-0", ("u", False, -1.0), "", cells(("B", False, -1.0), ("B", False, -1.0), right, NO)),  # agree
            ("sw", "d-sw-1", ("u", False, -1.0), "", cells(("B", False, -1.0), ("C", False, -1.0), right, NO)),  # not
        ]
    )

    class Third(select.Selector):
        name = "third"

        def choose(self, view):
            return select.Choice(np.full(len(view.instances), 2), np.full(len(view.instances), 4.0))

    cascade = select.Cascade(k=2, then=Third()).fit(sample)
    chosen = cascade.choose(select.Unlabelled(unseen))
    assert cascade.cells == [("attn", 0, 0), ("attn", 0, 1)]
    assert chosen.cell.tolist() == [0, 2] and chosen.run.tolist() == [2.0, 4.0]
    assert str(select.Cascade()) == "cascade (3 best cells, then reranker)"


def test_an_x2en_sweep_is_answered_in_english():
    res = made(
        [
            (
                "ru",
                "e-ru-0",
                ("Lima", False, -5.0),
                "",
                cells(("Lima", False, -5.0), ("Париж", False, -3.0), ("Paris", True, -4.0), ("Lima", False, -5.0)),
            )
        ],
        direction="x2en",
    )
    view = select.Unlabelled(res)
    assert view.languages == ["ru"] and view.target_languages == ["en"]
    sample = made([relative([0, 0, 0, 0], "ru"), relative([2, 2, 2, 2], "ru")], direction="x2en")
    assert select.Confidence(abstain=False).fit(sample).choose(view).cell.tolist() == [2]  # not the Cyrillic answer


def test_the_figures_draw_the_evaluation(toy):
    ev = select.evaluate(
        [select.Vote(k=3), select.Reranker()], toy["sample"], toy["unseen"], control=toy["control"], primary="reranker"
    )
    forest = xtl.plot.selectors(ev.table)
    matched, control = forest.data
    shown = ev.table[ev.table["gap_closed"].notna()].iloc[::-1]
    assert list(matched.y) == list(shown["selector"]) and np.allclose(matched.x, shown["gap_closed"])
    assert np.allclose(np.array(matched.error_x.array) + matched.x, shown["gap_high"])
    assert np.allclose(control.x, shown["control_gap_closed"]) and control.name == "mismatched sources (control)"
    cost = xtl.plot.selection_cost(ev.table)
    assert list(cost.data[0].x) == list(ev.table["cells_per_item"]) and list(cost.data[0].text) == list(
        ev.table["selector"]
    )
    by = ev.by_language
    assert set(by["language"]) == {"fr", "sw"} and "upper bound" in set(by["selector"])
    sw = by[(by["selector"] == "reranker") & (by["language"] == "sw")].iloc[0]
    assert sw["accuracy"] == ev.choices["reranker"].verdicts(toy["unseen"])[8:].mean() and sw["instances"] == 8
    panels = xtl.plot.selector_languages(by)
    assert len(panels.data) == 2 and sum(len(bar.y) for bar in panels.data) == len(by)
    with pytest.raises(xtl.XtlError, match="selectors needs an evaluation table"):
        xtl.plot.selectors(by)


def probed(res, **columns):
    """``res`` with probe columns set by hand (one array per instance)."""
    base = res.baseline.copy()
    for name, values in columns.items():
        base[name] = [np.asarray(v) for v in values]
    return dataclasses.replace(res, baseline=base)


def test_the_lens_guided_selector_moves_its_source_layer_with_the_lens():
    """The source layer is the block before the lens layer from which the source's answer stays in
    the top ``top`` (plus a fitted offset); the component and target layer are fitted on sample."""
    right, early, late = ("A", True, -1.0), [50, 3, 0], [4, 50, 0]  # enters at layer 1 / stays only from 2

    def item(k, ranks, prefix="l"):
        good = cells(NO, right, NO, NO) if ranks is early else cells(NO, NO, NO, right)
        return ("sw", f"{prefix}-sw-{k}", ("u", False, -1.0), "", good), ranks

    rows = [item(k, early if k % 2 else late) for k in range(6)]
    sample = probed(made([r for r, _ in rows]), lens_rank=[ranks for _, ranks in rows])
    lens = select.LensGuided().fit(sample)
    assert lens.emergence(select.Unlabelled(sample)).tolist() == [2, 1, 2, 1, 2, 1]
    assert lens.rule == ("attn", 0, 1) and str(lens) == "lens-guided"
    assert select.BestFixed().fit(sample).choose(select.Unlabelled(sample)).accuracy(sample) == 0.5
    unseen_rows = [item(k, ranks, "m") for k, ranks in enumerate([early, late, late])]
    unseen = probed(made([r for r, _ in unseen_rows]), lens_rank=[ranks for _, ranks in unseen_rows])
    chosen = lens.choose(select.Unlabelled(unseen))
    assert chosen.cell.tolist() == [1, 3, 3] and chosen.run.tolist() == [1.0, 1.0, 1.0]
    assert chosen.accuracy(unseen) == 1.0
    shifted = select.LensGuided(offsets=[1]).fit(sample)  # one block later: layer 1 (and 2, clipped to 1)
    assert shifted.choose(select.Unlabelled(unseen)).cell.tolist() == [3, 3, 3]
    assert select.LensGuided(top=100).emergence(select.Unlabelled(unseen)).tolist() == [0, 0, 0]
    with pytest.raises(xtl.XtlError, match="top must be a positive int, got 0"):
        select.LensGuided(top=0)
    with pytest.raises(xtl.XtlError, match="fit it first"):
        select.LensGuided().choose(select.Unlabelled(unseen))


def test_the_attribution_guided_selector_runs_only_its_k_cells():
    """Only the ``k`` cells attribution rates highest are candidates (with the untouched answer):
    the reranker cannot take an answer from a cell outside them; an item without an estimate
    keeps its untouched answer and runs nothing."""
    right = ("A", True, -1.0)

    def item(k, right_at, prefix="a"):
        texts = [NO, NO, NO, NO]
        texts[right_at] = right
        return ("sw", f"{prefix}-sw-{k}", ("u", False, -1.0), "A", cells(*texts))

    sample = made([item(k, k % 4) for k in range(8)])
    estimate = [np.eye(4)[k % 4].reshape(1, 2, 2) for k in range(8)]  # the right cell rated first
    sample = probed(sample, attribution=estimate)
    guided = select.AttributionGuided(k=2).fit(sample)
    assert guided.allowed(select.Unlabelled(sample))[:2].tolist() == [
        [True, True, False, False],  # ties after the first: the earlier cell
        [True, True, False, False],
    ]
    unseen = made([item(0, 3, "b"), item(1, 3, "b"), item(2, 0, "b")])
    rated = [np.array([[[0.0, 0.0], [0.0, 1.0]]]), np.array([[[1.0, 0.5], [0.0, -1.0]]]), np.full((1, 2, 2), np.nan)]
    view = select.Unlabelled(probed(unseen, attribution=rated))
    chosen = guided.choose(view)
    assert chosen.run.tolist() == [2.0, 2.0, 0.0]
    assert chosen.cell[0] == 3  # the agreeing answer is among its cells
    assert chosen.cell[1] in (-1, 0, 1)  # it is not: cell 3 was never run
    assert chosen.cell[2] == -1
    assert select.Reranker().fit(sample).choose(view).cell[1] == 3  # reading every cell finds it
    with pytest.raises(xtl.XtlError, match="k must be a positive int, got 0"):
        select.AttributionGuided(k=0)
    with pytest.raises(xtl.XtlError, match="fit it first"):
        select.AttributionGuided().choose(view)


def test_the_share_of_agreeing_cells_counts_only_the_cells_run():
    res = made([("sw", "s-sw-0", ("u", False, -1.0), "", cells(("B", False, -1.0), ("B", False, -1.0), NO, NO))])
    view, flat = select.Unlabelled(res), np.zeros(5)
    share = select.FEATURES.index("share of cells with this answer")
    every = select.features(view, np.zeros((5, 3)), np.ones((5, 3)), flat)[0, :, share]
    some = select.features(view, np.zeros((5, 3)), np.ones((5, 3)), flat, np.array([[True, False, True, False]]))
    assert every.tolist() == [0.2, 0.4, 0.4, 0.4, 0.4] and some[0, :, share].tolist() == [
        1 / 3,
        1 / 3,
        1 / 3,
        1 / 3,
        1 / 3,
    ]
