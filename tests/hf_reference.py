"""An independent XTransplant reference: plain PyTorch forward hooks on the Hugging Face model.

Nothing here imports xtl or TransformerLens. The operation is written from the
method doc: capture the component output at each source row's last prompt
token; in the target's prompt pass replace that component's output at the
target's last prompt token; decode greedily with the HF KV cache, unpatched.
A single head's output is its slice of the attention output projection's input
times the matching rows of the projection's weight.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache

# component -> (where the source is read, where the target is written)
READ_WRITE = {
    "attn": ("attn_out", "attn_out"),
    "mlp": ("mlp_out", "mlp_out"),
    "resid": ("block_out", "block_out"),
    "attn_as_released": ("resid_mid", "attn_out"),
}


def blocks(model):
    """(layers, attention output, mlp output, second norm) accessors: the modules whose outputs a
    block adds to its residual stream, and the norm whose input is the stream between them. Gemma 3
    normalizes both outputs before adding them (``post_attention_layernorm``,
    ``post_feedforward_layernorm``) and normalizes the stream before its MLP
    (``pre_feedforward_layernorm``)."""
    if (
        hasattr(model, "model")
        and hasattr(model.model, "layers")
        and hasattr(model.model.layers[0], "post_feedforward_layernorm")
    ):
        return (
            model.model.layers,
            (lambda b: b.post_attention_layernorm),
            (lambda b: b.post_feedforward_layernorm),
            (lambda b: b.pre_feedforward_layernorm),
        )
    if hasattr(model, "model") and hasattr(model.model, "layers"):
        return model.model.layers, (lambda b: b.self_attn), (lambda b: b.mlp), (lambda b: b.post_attention_layernorm)
    return model.transformer.h, (lambda b: b.attn), (lambda b: b.mlp), (lambda b: b.ln_2)


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def _replace(output, new):
    return (new, *output[1:]) if isinstance(output, tuple) else new


def left_pad(rows: list[list[int]], pad: int):
    width = max(map(len, rows))
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def _positions(mask):
    return (mask.cumsum(-1) - 1).clamp(min=0)


def _forward(model, ids, mask, handle) -> None:
    """One no-grad pass of the (left-padded) batch, then remove ``handle``'s hook."""
    try:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask, position_ids=_positions(mask))
    finally:
        handle.remove()


def capture(model, ids, mask, where: str, layer: int) -> torch.Tensor:
    """[batch, d_model] value of ``where`` at ``layer`` at each row's last token (left padded)."""
    layers, attn, mlp, ln2 = blocks(model)
    block = layers[layer]
    got = {}

    def keep(value: torch.Tensor) -> None:  # a hook returning None leaves the output alone
        got["v"] = value[:, -1].clone()

    if where == "resid_mid":  # resid_mid is the input of the second norm
        handle = ln2(block).register_forward_pre_hook(lambda m, args: keep(args[0]))
    else:
        module = {"attn_out": attn(block), "mlp_out": mlp(block), "block_out": block}[where]
        handle = module.register_forward_hook(lambda m, a, out: keep(_first(out)))
    _forward(model, ids, mask, handle)
    return got["v"]


def patch_handle(model, where: str, layer: int, value: torch.Tensor):
    """Register a hook writing ``value`` over ``where`` at ``layer``, last position of the pass."""
    layers, attn, mlp, _ = blocks(model)
    block = layers[layer]
    module = {"attn_out": attn(block), "mlp_out": mlp(block), "block_out": block}[where]

    def hook(m, args, output):
        hidden = _first(output).clone()
        hidden[:, -1] = value.to(hidden.dtype)
        return _replace(output, hidden)

    return module.register_forward_hook(hook)


def _o_proj(model, block):
    """The attention's output projection and its weight as ``[in = head * d_head, out = d_model]``."""
    if hasattr(model, "model"):
        proj = block.self_attn.o_proj  # nn.Linear: weight [out, in]
        return proj, proj.weight.T
    return block.attn.c_proj, block.attn.c_proj.weight  # GPT-2's Conv1D: weight [in, out]


def _head_part(model, block, x: torch.Tensor, head: int) -> torch.Tensor:
    """Head ``head``'s part of the attention output (bias excluded) from the projection's input ``x``."""
    _, weight = _o_proj(model, block)
    d_head = weight.shape[0] // model.config.num_attention_heads
    part = slice(head * d_head, (head + 1) * d_head)
    return x[..., part] @ weight[part]


def capture_head(model, ids, mask, layer: int, head: int) -> torch.Tensor:
    """[batch, d_model]: head ``head``'s part of the attention output at ``layer``, last token: its
    slice of the output projection's input times the matching rows of the projection."""
    block = blocks(model)[0][layer]
    got = {}
    handle = _o_proj(model, block)[0].register_forward_pre_hook(
        lambda m, args: got.__setitem__("v", _head_part(model, block, args[0][:, -1], head))
    )
    _forward(model, ids, mask, handle)
    return got["v"]


def patch_head(model, layer: int, head: int, value: torch.Tensor):
    """Hooks replacing head ``head``'s part of the attention output at ``layer`` (last position of the
    prompt pass) by ``value``: the target's own part, read at the projection's input, is taken out."""
    block = blocks(model)[0][layer]
    own = {}

    def read(m, args):
        if "prompt" not in own:
            own["prompt"] = _head_part(model, block, args[0][:, -1], head)

    def write(m, args, output):
        if own.get("done"):
            return output  # decoding steps run unpatched
        own["done"] = True
        hidden = _first(output).clone()
        hidden[:, -1] = hidden[:, -1] - own["prompt"] + value.to(hidden.dtype)
        return _replace(output, hidden)

    attention = block.self_attn if hasattr(block, "self_attn") else block.attn  # before any norm of its output
    handles = [_o_proj(model, block)[0].register_forward_pre_hook(read), attention.register_forward_hook(write)]

    class Handles:
        def remove(self):
            for h in handles:
                h.remove()

    return Handles()


def generate(model, ids, mask, steps: int, patch=None, scores: bool = False):
    """Greedy decoding (no early stop). ``patch`` = (component, src_layer, tgt_layer, source_ids, source_mask).

    Returns (first-pass log-probs at the last token [batch, vocab], new tokens [batch, steps]),
    and with ``scores`` also each new token's log-prob [batch, steps].
    """
    handle = None
    if patch is not None:
        component, src_layer, tgt_layer, s_ids, s_mask = patch
        if component.startswith("head."):
            head = int(component.split(".")[1])
            handle = patch_head(model, tgt_layer, head, capture_head(model, s_ids, s_mask, src_layer, head))
        else:
            read, write = READ_WRITE[component]
            value = capture(model, s_ids, s_mask, read, src_layer)
            handle = patch_handle(model, write, tgt_layer, value)
    cache = DynamicCache()
    with torch.no_grad():
        try:
            out = model(input_ids=ids, attention_mask=mask, position_ids=_positions(mask), cache=cache, use_cache=True)
        finally:
            if handle is not None:
                handle.remove()
        logits = out.logits[:, -1]
        first = logits.log_softmax(-1)
        pos = _positions(mask)[:, -1:]
        new, chosen = [], []
        for _ in range(steps):
            token = logits.argmax(-1, keepdim=True)
            new.append(token)
            chosen.append(logits.double().log_softmax(-1).gather(-1, token))
            mask = torch.cat([mask, torch.ones_like(token)], 1)
            pos = pos + 1
            out = model(input_ids=token, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True)
            logits = out.logits[:, -1]
    if scores:
        return first, torch.cat(new, 1), torch.cat(chosen, 1)
    return first, torch.cat(new, 1)


def attribution(
    model, ids, mask, component: str, tgt_layer: int, source_value: torch.Tensor, tokens: list[int]
) -> torch.Tensor:
    """First-order change of each of ``tokens``' next-token log-probs at the target's last
    position when ``component`` at ``tgt_layer`` is replaced by ``source_value``: the gradient of
    the log-prob with respect to the written vector, dotted with (source value - own value).

    One unpadded target row. Returns ``[len(tokens)]``.
    """
    layers, attn, mlp, _ = blocks(model)
    block = layers[tgt_layer]
    if component.startswith("head."):  # a head's part joins the attention module's output, before any norm
        module = block.self_attn if hasattr(block, "self_attn") else block.attn
    else:
        module = {"attn_out": attn(block), "mlp_out": mlp(block), "block_out": block}[READ_WRITE[component][1]]
    leaf = torch.zeros(model.config.hidden_size, dtype=model.dtype, requires_grad=True)
    own = {}

    def add(m, args, output):
        hidden = _first(output)
        own.setdefault("out", hidden[0, -1].detach().clone())
        hidden = torch.cat([hidden[:, :-1], hidden[:, -1:] + leaf], 1)
        return _replace(output, hidden)

    handles = [module.register_forward_hook(add)]
    if component.startswith("head."):
        head = int(component.split(".")[1])

        def read(m, args) -> None:  # a pre-hook returning a value would replace the projection's input
            own["head"] = _head_part(model, block, args[0][0, -1], head).detach()

        handles.append(_o_proj(model, block)[0].register_forward_pre_hook(read))
    try:
        logprobs = model(input_ids=ids, attention_mask=mask).logits[0, -1].log_softmax(-1)
    finally:
        for h in handles:
            h.remove()
    delta = source_value - own["head" if component.startswith("head.") else "out"]
    return torch.stack([torch.autograd.grad(logprobs[t], leaf, retain_graph=True)[0] @ delta for t in tokens])
