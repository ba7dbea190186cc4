"""The README is a front page: within its size budget, the two set-up commands first, its
Python runs as written (on the toy model that ships inside xtl) and says what it prints, and
every local link points at something that exists."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BUDGET = 12 * 1024  # bytes: a front page, as the peers' (3-16 KB); the rest lives in docs/


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.DOTALL)


def test_the_readme_is_a_front_page():
    assert len(README.encode()) <= BUDGET, f"README.md is {len(README.encode())} bytes; the budget is {BUDGET}"
    first = blocks("bash")[0].splitlines()
    assert first[0].startswith("make demo") and first[1].startswith("make test")
    assert README.index("make demo") < README.index("## ")  # before any section


def test_every_local_link_exists():
    targets = re.findall(r"\]\(([^)\s]+)\)", README)
    local = [t.split("#")[0] for t in targets if not t.startswith(("http://", "https://", "#"))]
    assert local, "no local links found"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README.md links to missing paths: {missing}"


@pytest.mark.slow
def test_the_quickstart_runs_as_written_and_says_what_it_prints(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    namespace: dict = {}
    for code in blocks("python"):
        exec(compile(code, "README.md", "exec"), namespace)
    printed = capsys.readouterr().out
    res, xtl = namespace["res"], namespace["xtl"]
    bound = xtl.upper_bound(res).set_index("component")
    n = len(res.instances)
    solved = {c: round(bound.loc[c, "upper_bound"] * n) for c in ("attn", "mlp", "any")}
    untouched = round(bound.loc["any", "baseline"] * n)
    said = re.search(
        r"answers none of these (\d+) Swahili questions; the best cell per item\s+answers (\d+) "
        r"\(the upper bound, ([\d.]+)\), attention alone (\d+), the MLP alone (\d+)",
        README,
    )
    assert said, "the sentence after the quickstart changed: update this test with it"
    assert (int(said[1]), untouched) == (n, 0)
    assert (int(said[2]), int(said[4]), int(said[5])) == (solved["any"], solved["attn"], solved["mlp"])
    assert said[3] == f"{bound.loc['any', 'upper_bound']:.2f}"
    assert "| gold:" in printed and "upper_bound" in printed
    assert type(namespace["fig"]).__name__ == "Figure"
