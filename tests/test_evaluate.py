"""Upper bound, marginals, stability, rank agreement and evaluate()."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic import GRID, synthetic

import xtl
from xtl.runner import OptionCollisionWarning

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "xtransplant-samples"


def test_upper_bound_by_hand():
    table = xtl.upper_bound(synthetic()).set_index(["language", "component"])
    sw = table.loc[("sw", "attn")]
    assert sw["instances"] == 3 and sw["baseline"] == pytest.approx(1 / 3)
    assert sw["upper_bound"] == pytest.approx(2 / 3) and sw["relative_growth"] == pytest.approx(1.0)
    ur = table.loc[("ur", "any")]
    assert ur["baseline"] == 0 and ur["upper_bound"] == 1 and np.isnan(ur["relative_growth"])
    assert table.loc[("all", "attn"), "upper_bound"] == pytest.approx(3 / 4)
    assert table.loc[("all", "attn"), "gain"] == pytest.approx(3 / 4 - 1 / 4)


def test_marginals_by_hand():
    src = xtl.marginal_upper_bound(synthetic(), "source_layer").set_index(["language", "source_layer"])
    assert src.loc[("sw", 0), "upper_bound"] == pytest.approx(1 / 3)  # only instance 0 via source 0
    assert src.loc[("sw", 1), "upper_bound"] == pytest.approx(1 / 3)  # only instance 1 via source 1
    tgt = xtl.marginal_upper_bound(synthetic(), "target_layer").set_index(["language", "target_layer"])
    assert tgt.loc[("all", 1), "upper_bound"] == pytest.approx(2 / 4)  # instances 1 and 3
    with pytest.raises(ValueError, match="unknown axis 'layer'"):
        xtl.marginal_upper_bound(synthetic(), "layer")


def test_stability_and_rank_agreement():
    table = xtl.pair_stability(synthetic()).set_index(["language", "component", "source_layer", "target_layer"])
    assert table.loc[("all", "attn", 1, 1), "solve_rate"] == pytest.approx(2 / 4)
    assert table.loc[("all", "attn", 1, 1), "solved"] == 2 and table.loc[("sw", "attn", 0, 0), "solved"] == 1
    assert table.loc[("sw", "attn", 1, 1), "share_of_solved"] == pytest.approx(1 / 2)
    within = xtl.rank_agreement(synthetic())
    assert list(within.columns) == ["sw", "ur"] and within.loc["sw", "sw"] == pytest.approx(1)
    # sw solve rates per pair (0,0),(0,1),(1,0),(1,1): 1/3,0,0,1/3 -> average ranks 3.5,1.5,1.5,3.5;
    # ur: 0,1,1,1 -> ranks 1,3,3,3. Pearson of the ranks, by hand: -2 / sqrt(4 * 3).
    assert within.loc["sw", "ur"] == pytest.approx(-1 / 3**0.5)
    between = xtl.rank_agreement(synthetic(), synthetic()).set_index("language")
    assert between.loc["all", "spearman"] == pytest.approx(1) and between.loc["sw", "pairs"] == 4


def test_best_source_layer_prefers_accuracy_then_logprob():
    res = synthetic()
    assert xtl.best_source_layer(res, "ur", "attn", target_layer=0) == 1
    assert xtl.best_source_layer(res, "sw", "attn", target_layer=0) == 0


@pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"sample data folder {SAMPLES} absent")
def test_evaluate_settings_end_to_end(hooked):
    model = hooked("qwen2")
    task = xtl.tasks.get("xquad", data=SAMPLES / "XQuAD" / "XQuAD_sample")
    kwargs = dict(languages=["de"], max_new_tokens=2, limit=3, progress=False)
    base = xtl.evaluate(model, task, setting="baseline", **kwargs)
    default = xtl.evaluate(model, task, setting="default", **kwargs)
    fixed = xtl.evaluate(model, task, setting=xtl.TransplantSpec(-1, 1, "attn"), **kwargs)
    first = xtl.evaluate(model, task, setting="targetfirst", **kwargs)
    assert base.loc[0, "accuracy"] == base.loc[0, "baseline"] and base.loc[0, "instances"] == 3
    assert set(pd.concat([base, default, first])["rule"]) == {"xquad/paper"}  # the table states its rule
    assert set(
        xtl.upper_bound(
            xtl.sweep(
                model, task.items("de")[:1], components=["mlp"], max_new_tokens=1, scorer=task.scorer, progress=False
            )
        )["rule"]
    ) == {"xquad/paper"}
    lenient = xtl.tasks.get("xquad", data=SAMPLES / "XQuAD", rule="lenient")
    assert xtl.evaluate(model, lenient, setting="baseline", **kwargs).loc[0, "rule"] == "xquad/lenient"
    cell = (default.loc[0, "component"], default.loc[0, "source_layer"], default.loc[0, "target_layer"])
    assert cell == ("mlp", 0, 0)
    assert (fixed.loc[0, "setting"], fixed.loc[0, "source_layer"], fixed.loc[0, "target_layer"]) == ("fixed", 2, 1)
    assert first.loc[0, "target_layer"] == 0 and first.loc[0, "setting"] == "targetfirst"
    search = xtl.sweep(
        model,
        task.items("de")[:3],
        components=["mlp"],
        target_layers=[0],
        max_new_tokens=2,
        scorer=task.scorer,
        progress=False,
    )
    chosen = xtl.best_source_layer(search, "de", "mlp", 0)
    assert first.loc[0, "source_layer"] == chosen
    at = search.index("mlp", chosen, 0)
    assert first.loc[0, "accuracy"] == pytest.approx(float(search.correct[(slice(None), *at)].float().mean()))
    items = task.items("de")[:3]
    res = xtl.sweep(
        model,
        items,
        components=["mlp"],
        source_layers=[0],
        target_layers=[0],
        max_new_tokens=2,
        scorer=task.scorer,
        progress=False,
    )
    assert default.loc[0, "accuracy"] == pytest.approx(float(res.correct.float().mean()))
    assert res.languages == ["de"] * 3
    with pytest.raises(ValueError, match="unknown setting 'best'"):
        xtl.evaluate(model, task, setting="best", **kwargs)


@pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"sample data folder {SAMPLES} absent")
def test_option_logprob_scoring(hooked):
    model = hooked("llama")
    task = xtl.tasks.get("xnli", data=SAMPLES / "XNLI" / "XNLI_sample")
    # this tiny tokenizer splits " 1" into " " and "1": the options collide, and it is said
    with pytest.warns(OptionCollisionWarning, match="4 of 4 instances"):
        table = xtl.evaluate(
            model,
            task,
            languages=["sw"],
            setting="default",
            scoring="logprob",
            max_new_tokens=1,
            limit=4,
            progress=False,
        )
    with pytest.warns(OptionCollisionWarning):
        res = xtl.sweep(
            model,
            task.items("sw")[:4],
            components=["attn"],
            source_layers=[-1],
            target_layers=[0],
            max_new_tokens=1,
            scorer=task.scorer,
            progress=False,
        )
    assert not res.option_correct.any()  # ties are never counted as answers
    assert table.loc[0, "accuracy"] == pytest.approx(float(res.option_correct.float().mean()))
    assert table.loc[0, "rule"] == "logprob"
    bound = xtl.upper_bound(res, scoring="logprob").set_index("component")
    assert bound.loc["attn", "upper_bound"] == pytest.approx(float(res.option_correct.float().mean()))
    with pytest.raises(ValueError, match="unknown scoring 'vote'"):
        xtl.upper_bound(res, scoring="vote")


def test_several_settings_share_one_sweep_and_reuse_a_search():
    model = xtl.toy.load_toy_model()
    task = xtl.tasks.get("toy-understanding")
    kwargs = dict(languages=["sw", "fr"], max_new_tokens=3, limit=4, progress=False)
    one_by_one = pd.concat(
        [xtl.evaluate(model, task, setting=s, split="unseen", **kwargs) for s in ("baseline", "default", "targetfirst")]
    )
    search = xtl.sweep(
        model,
        [i for lang in ("sw", "fr") for i in task.items(lang)[:4]],
        components=["attn"],
        target_layers=[0],
        max_new_tokens=3,
        scorer=task.scorer,
        progress=False,
    )
    together = xtl.evaluate(
        model, task, setting=["baseline", "default", "targetfirst"], split="unseen", search=search, **kwargs
    )
    columns = ["language", "setting", "component", "source_layer", "target_layer", "instances", "accuracy"]
    key = ["language", "setting"]
    pd.testing.assert_frame_equal(
        one_by_one[columns].sort_values(key).reset_index(drop=True),
        together[columns].sort_values(key).reset_index(drop=True),
    )
    with pytest.raises(ValueError, match="the search sweep holds no 'es' items"):
        xtl.evaluate(model, task, setting="targetfirst", search=search, **{**kwargs, "languages": ["es"]})


def _solved_grid(solved: list[int], languages: list[str]) -> dict:
    """A synthetic grid where instance k is solved by one attention cell exactly when solved[k]."""
    return {k: (lang, {"attn": [[0, 0], [s, 0]]}, 0) for k, (s, lang) in enumerate(zip(solved, languages))}


def test_control_difference_by_hand():
    languages = ["sw", "sw", "sw", "ur"]
    res = synthetic(_solved_grid([1, 1, 0, 1], languages))
    control = synthetic(_solved_grid([0, 1, 0, 0], languages))
    table = xtl.control_difference(res, control).set_index(["language", "component"])
    assert table.loc[("sw", "attn"), ["matched", "control", "difference"]].tolist() == pytest.approx(
        [2 / 3, 1 / 3, 1 / 3]
    )
    assert table.loc[("all", "any"), "difference"] == pytest.approx(0.5)
    # one instance: its difference is that point
    assert table.loc[("ur", "attn"), ["difference", "ci_low", "ci_high"]].tolist() == [1.0, 1.0, 1.0]
    for _, row in table.iterrows():
        assert row.ci_low <= row.difference <= row.ci_high
    same = xtl.control_difference(res, res).set_index(["language", "component"])
    assert (same[["difference", "ci_low", "ci_high"]] == 0).all().all()  # no difference: a zero-width interval


def test_control_difference_interval_matches_the_normal_approximation():
    """On 400 paired instances the 95% bootstrap interval is the mean difference +- 1.96 standard
    errors of it (computed here from the differences directly), within 10%."""
    rng = np.random.default_rng(1)
    matched = (rng.random(400) < 0.5).astype(int)
    shifted = np.where(rng.random(400) < 0.7, matched, 1 - matched) * (rng.random(400) < 0.8)
    res = synthetic(_solved_grid(matched.tolist(), ["sw"] * 400))
    control = synthetic(_solved_grid(shifted.tolist(), ["sw"] * 400))
    row = xtl.control_difference(res, control).set_index("component").loc["attn"]
    d = matched - shifted
    assert row.difference == pytest.approx(d.mean())
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
    assert (row.ci_high - row.ci_low) / 2 == pytest.approx(half, rel=0.1)
    again = xtl.control_difference(res, control).set_index("component").loc["attn"]
    assert (again.ci_low, again.ci_high) == (row.ci_low, row.ci_high)  # seeded: reproducible


def test_control_difference_needs_the_same_items():
    res = synthetic()
    with pytest.raises(ValueError, match="same instances as the result"):
        xtl.control_difference(res, synthetic({k: v for k, v in GRID_3.items()}))
    other = synthetic({k + 10: v for k, v in GRID.items()})  # the same cells of other items
    with pytest.raises(ValueError, match="the control's instance 0 is another item than the result's"):
        xtl.control_difference(res, other)
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        xtl.control_difference(res, res, confidence=95)


GRID_3 = {k: ("sw", {"attn": [[1, 0], [0, 0]]}, 0) for k in range(3)}
