"""XTransplant in one call: capture the source, patch the target's prompt pass, decode."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float, Int

from xtl.capturing import capture
from xtl.components import HEAD, model_components
from xtl.directions import Direction, orient
from xtl.errors import InputError
from xtl.generate import Generation, generate_packed, greedy_generate, packable
from xtl.model import HookedModel, n_layers, require_tokenizer
from xtl.patch import RowPatches
from xtl.prompts import PromptBatch, Prompts, as_batch, left_padded
from xtl.spec import TransplantSpec
from xtl.threads import threaded


@dataclass
class TransplantResult:
    """Outputs of :func:`transplant` for a batch of (source, target) pairs.

    Attributes:
        spec: the transplant that was applied.
        text: greedy continuation of each target prompt, transplanted.
        tokens: ``[batch, n_new]`` generated ids (see :class:`~xtl.generate.Generation`).
        lengths: ``[batch]`` new tokens per row, EOS included.
        logits: ``[batch, d_vocab]`` next-token logits of the patched prompt pass.
        baseline_text, baseline_tokens, baseline_lengths, baseline_logits: the same
            for the untouched target (``None`` if ``baseline=False``).
        direction: ``"en2x"``/``"x2en"`` when run through a direction helper.
    """

    spec: TransplantSpec
    text: list[str]
    tokens: Int[torch.Tensor, "batch n_new"]
    lengths: Int[torch.Tensor, " batch"]
    logits: Float[torch.Tensor, "batch d_vocab"]
    baseline_text: list[str] | None = None
    baseline_tokens: Int[torch.Tensor, "batch n_base"] | None = None
    baseline_lengths: Int[torch.Tensor, " batch"] | None = None
    baseline_logits: Float[torch.Tensor, "batch d_vocab"] | None = None
    direction: str | None = field(default=None)

    @property
    def logprobs(self) -> Float[torch.Tensor, "batch d_vocab"]:
        """Next-token log-probabilities of the patched prompt pass."""
        return self.logits.log_softmax(-1)


@threaded
def transplant(
    model: HookedModel,
    source: Prompts,
    target: Prompts,
    source_layer: int,
    target_layer: int,
    component: str = "attn",
    *,
    max_new_tokens: int = 20,
    baseline: bool = True,
    eos_token_id: int | Sequence[int] | None = None,
    prepend_bos: bool | None = None,
) -> TransplantResult:
    """Transplant one component from source prompts into target prompts and decode greedily.

    The source prompts run once; the chosen component's output at each row's
    last prompt token at ``source_layer`` replaces the target's at
    ``target_layer``, in the target's prompt pass only. Decoding then reads
    the patched position from the KV cache. Source and target are tokenised
    separately; row i of the source goes into row i of the target.

    Args:
        model: a TransformerLens model (``HookedTransformer`` or compatible bridge).
        source: source prompt(s) (text, list of text, tokens or a ``PromptBatch``).
        target: target prompt(s), as many as sources.
        source_layer: layer read in the source run (negative counts from the end).
        target_layer: layer written in the target run (negative counts from the end).
        component: one of :data:`~xtl.components.COMPONENTS`, or ``"head.<h>"`` for attention head ``h``.
        max_new_tokens: greedy tokens to generate per row.
        baseline: also decode the untouched targets.
        eos_token_id: stop id(s); default the generation config's EOS ids, as HF ``generate``
            (see :func:`xtl.generate.eos_ids`).
        prepend_bos: override the model's BOS default when tokenising text.

    Example:
        >>> res = xtl.transplant(model, source="the capital of pukiga is", target="mji mkuu wa upukiga ni",
        ...                      source_layer=-1, target_layer=0, component="attn", max_new_tokens=2)
        >>> res.text, res.baseline_text
    """
    if component == HEAD:
        raise InputError(
            f"component {HEAD!r} means every attention head; a transplant carries one: "
            f"'head.<h>', h in 0..{model.cfg.n_heads - 1} (xtl.sweep takes 'head')"
        )
    component = model_components(model, [component])[0]
    spec = TransplantSpec(source_layer, target_layer, component)
    resolved = spec.resolve(n_layers(model))  # fails on bad layers before any work
    tokenizer = require_tokenizer(model)
    src = as_batch(model, source, prepend_bos=prepend_bos)
    tgt = left_padded(as_batch(model, target, prepend_bos=prepend_bos))
    if src.batch_size != tgt.batch_size:
        raise InputError(
            f"source has {src.batch_size} prompts but target has {tgt.batch_size}; pass one source per target"
        )
    layer = resolved.source_layer
    source = capture(model, src, components=(component,), stop_at_layer=layer + 1)[component][layer]
    size = tgt.batch_size
    longest = tgt.tokens.shape[1]
    if (
        (baseline or size > 1)
        and packable(model, longest + max_new_tokens)
        and longest > 1
        and bool(tgt.attention_mask[:, -2].all())
    ):
        patched, base = _packed(
            model, tgt, source, component, resolved.target_layer, max_new_tokens, baseline, eos_token_id
        )
    else:
        patches = RowPatches.build([component] * size, [resolved.target_layer] * size, source)
        patched = greedy_generate(model, tgt, max_new_tokens, patches, eos_token_id)
        base = greedy_generate(model, tgt, max_new_tokens, None, eos_token_id) if baseline else None
    return TransplantResult(
        spec=spec,
        text=patched.texts(tokenizer),
        tokens=patched.tokens,
        lengths=patched.lengths,
        logits=patched.logits,
        baseline_text=base.texts(tokenizer) if base else None,
        baseline_tokens=base.tokens if base else None,
        baseline_lengths=base.lengths if base else None,
        baseline_logits=base.logits if base else None,
    )


def _packed(
    model, tgt: PromptBatch, source, component: str, layer: int, max_new_tokens: int, baseline: bool, eos_token_id
) -> tuple[Generation, Generation | None]:
    """Patched and untouched rows of every target in one batch (:func:`~xtl.generate.generate_packed`):
    each target's prompt pass below ``layer`` and its prefix run once for both."""
    per = 2 if baseline else 1
    prompts = [
        PromptBatch(tgt.tokens[r, mask][None], tgt.attention_mask[r, mask][None])
        for r, mask in enumerate(tgt.attention_mask.bool())
    ]
    rows = list(range(0, per * len(prompts), per))  # the patched row of each target; the next is untouched
    patches = RowPatches.build([component] * len(rows), [layer] * len(rows), source, rows=rows)
    gen = generate_packed(
        model,
        prompts,
        [per] * len(prompts),
        max_new_tokens,
        patches,
        eos_token_id,
        row_names=[r // per for r in range(per * len(prompts))],
    )
    return gen.select(slice(0, None, per)), (gen.select(slice(1, None, per)) if baseline else None)


def transplant_directed(
    model: HookedModel, english: Prompts, other: Prompts, direction: Direction, **kwargs
) -> TransplantResult:
    """:func:`transplant` with source and target chosen by ``direction``.

    Example:
        >>> res = xtl.transplant_directed(model, english=en, other=sw, direction="en2x",
        ...                               source_layer=-1, target_layer=0, component="attn")
        >>> res.text  # Swahili answers, helped by the English run
    """
    source, target = orient(direction, english, other)
    result = transplant(model, source, target, **kwargs)
    result.direction = direction
    return result


def transplant_en2x(model: HookedModel, english: Prompts, other: Prompts, **kwargs) -> TransplantResult:
    """En -> X: transplant from the English prompt into the non-English one, which is scored."""
    return transplant_directed(model, english, other, "en2x", **kwargs)


def transplant_x2en(model: HookedModel, english: Prompts, other: Prompts, **kwargs) -> TransplantResult:
    """X -> En: transplant from the non-English prompt into the English one, which is scored."""
    return transplant_directed(model, english, other, "x2en", **kwargs)
