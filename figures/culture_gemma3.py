"""Can Gemma 3 270M (base) answer GlobalOpinionQA, the paper's culture task? Untouched, both sides.

For six language groups (50 `sample` items each, the authors' released split): the English
prompt (what X -> En scores) and the prompt in the group's language (the source side of X -> En),
each untouched and with the paper's default for culture (MLP 0 -> 0), scored by the authors' rule
(the answer's option letter) and by option log-probability; beside them chance (1 / options), how
often the gold is option A, and which letter the untouched answers give. Needs the data folder
(``../shared/data/xtransplant-samples``) and ``pip install 'xtl[gemma]'``.

    python figures/culture_gemma3.py       # 15 min on this project's 2-core CPU
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter

import numpy as np

import xtl
from xtl.metrics import verdicts

LANGUAGES = ("zh", "ja", "ru", "ar", "hi", "sw")
LETTER = re.compile(r"[（(]\s*([A-Z])")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data/xtransplant-samples/GlobalOpinionQA")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    start = time.perf_counter()
    model = xtl.load_model("gemma3-270m")
    task = xtl.tasks.get("globalopinionqa", data=args.data)
    rows = []
    letters = {}
    with xtl.using_threads(args.threads):
        for direction, side in (("x2en", "English prompt"), ("en2x", "prompt in the language")):
            items = [item for lang in LANGUAGES for item in task.items(lang, direction)]
            res = xtl.sweep(
                model, items, ("mlp",), source_layers=[0], target_layers=[0], max_new_tokens=6, scorer=task.scorer
            )
            letters[side] = Counter((LETTER.search(t) or [None, "none"])[1] for t in res.baseline["text"])
            for scoring in ("rule", "logprob"):
                cells, base = verdicts(res, scoring)
                for lang in dict.fromkeys(res.languages):
                    mask = np.array(res.languages) == lang
                    rows.append((side, scoring, lang, base[mask].mean(), cells[mask, 0, 0, 0].mean()))
    print("| scored prompt | scoring | " + " | ".join(LANGUAGES) + " |")
    print("|---|---|" + "---|" * len(LANGUAGES))
    for side in ("English prompt", "prompt in the language"):
        for scoring in ("rule", "logprob"):
            cells = [f"{u:.2f} ({d:.2f})" for s, sc, _, u, d in rows if s == side and sc == scoring]
            print(f"| {side} | {scoring} | " + " | ".join(cells) + " |")
    chance = [np.mean([1 / len(i.options) for i in task.items(lang)]) for lang in LANGUAGES]
    gold_a = [np.mean([i.gold == "A" for i in task.items(lang)]) for lang in LANGUAGES]
    print("| chance (1 / options) | | " + " | ".join(f"{c:.2f}" for c in chance) + " |")
    print("| gold is (A) | | " + " | ".join(f"{a:.2f}" for a in gold_a) + " |")
    print("\nuntouched (not default) in each cell; the paper's default for culture (MLP 0 -> 0) in brackets")
    for side, counts in letters.items():
        print(f"letters the untouched answers give, {side}: {dict(counts.most_common())}")
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
