"""A cross-lingual logit lens: in which language the latent state "thinks", layer by layer.

At the last prompt token, the residual stream entering each block (and the final
one) is put through the final norm and the unembedding, as TransformerLens'
``cache.accumulated_resid(apply_ln=True)`` does, and read as next-token
probabilities. :func:`lens` reports, for each prompt, the probability of the
first token of the answer *in each language*: does the model's latent state at
layer ``l`` favour the English answer, the prompt's own language, or neither;
and how a transplant moves that.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import torch

from xtl.capturing import capture
from xtl.errors import InputError
from xtl.hooks import transplant_hooks
from xtl.model import HookedModel, require_tokenizer
from xtl.pairs import first_answer_token
from xtl.prompts import tokenize
from xtl.spec import TransplantSpec
from xtl.threads import threaded

COLUMNS = [
    "prompt_language",
    "condition",
    "layer",
    "answer_language",
    "answer",
    "token",
    "token_text",
    "prob",
    "logprob",
]


@threaded
def lens(
    model: HookedModel,
    prompts: Mapping[str, str],
    answers: Mapping[str, str],
    spec: TransplantSpec | None = None,
    sources: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Per layer, the probability of each language's answer (its first token) at the last prompt token.

    Args:
        model: a TransformerLens ``HookedTransformer``.
        prompts: language -> the prompt read (e.g. the same question in each language).
        answers: language -> the answer as it follows a prompt (``{"en": " Paris", "fr": " Paris",
            "sw": " Parisi"}``); its first token is taken after each prompt.
        spec: also read the prompts with this transplant applied (``condition == "transplanted"``).
        sources: language -> the source prompt transplanted into that language's prompt (needed
            with ``spec``).

    Returns:
        A tidy DataFrame, one row per (prompt language, condition, layer, answer language):
        ``prompt_language, condition, layer`` (``l`` is the residual stream entering block
        ``l``; ``n_layers`` the final one, whose probabilities are the model's output)
        ``, answer_language, answer, token, token_text, prob, logprob``.

    Raises:
        InputError: no prompts or answers, ``spec`` without ``sources`` for every prompt.

    Example:
        >>> frame = xtl.lens(model, {"en": en, "sw": sw}, {"gold": " vodi"})
        >>> fig = xtl.plot.lens(frame)
    """
    for name, given in (("prompts", prompts), ("answers", answers)):
        if not isinstance(given, dict) or not given:
            raise InputError(f"lens needs {name} as a non-empty dict (language -> {name[:-1]}), got {given!r:.60}")
    if spec is not None:
        missing = sorted(set(prompts) - set(sources or {}))
        if missing:
            raise InputError(
                f"a transplant needs a source for every prompt; sources has none for {missing} "
                f"(pass sources={{language: source prompt}})"
            )
    tokenizer = require_tokenizer(model)
    rows = []
    for language, prompt in prompts.items():
        tokens = {a: first_answer_token(tokenizer, prompt, text) for a, text in answers.items()}
        conditions: dict[str, list] = {"untouched": []}
        if spec is not None and sources is not None:  # sources were checked above
            acts = capture(model, sources[language], components=(spec.component,))
            conditions["transplanted"] = transplant_hooks(model, spec, acts)
        for condition, hooks in conditions.items():
            logprobs = layer_logprobs(model, tokenize(model, prompt).tokens, hooks)
            for layer, lp in enumerate(logprobs):
                for a, token in tokens.items():
                    rows.append(
                        (
                            language,
                            condition,
                            layer,
                            a,
                            answers[a],
                            token,
                            tokenizer.decode([token]),
                            float(lp[token].exp()),
                            float(lp[token]),
                        )
                    )
    return pd.DataFrame(rows, columns=COLUMNS)


def layer_logprobs(model, tokens: torch.Tensor, hooks=()) -> torch.Tensor:
    """``[n_layers + 1, d_vocab]`` log-probabilities read from each residual stream at the last token
    of one prompt (``tokens [1, pos]``), with ``hooks`` applied (none: the untouched pass)."""
    with torch.no_grad(), model.hooks(fwd_hooks=list(hooks)):
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: "resid" in name or "ln_final" in name)
        resid = cache.accumulated_resid(apply_ln=True, pos_slice=-1)[:, 0]  # [layer + 1, d_model]
        return model.unembed(resid[:, None])[:, 0].double().log_softmax(-1)
