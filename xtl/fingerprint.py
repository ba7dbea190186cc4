"""Fingerprints of what a sweep's numbers depend on: weights, architecture, tokenizer, scorer.

A run directory records them in its spec, so a resumed run can tell that it is
continuing the same work and never adopts another model's or scorer's numbers.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from typing import Any

import torch

# Config fields that name, place or instrument a model without changing what it computes.
CONFIG_IGNORED = frozenset(
    {
        "model_name",
        "tokenizer_name",
        "device",
        "n_devices",
        "default_prepend_bos",
        "trust_remote_code",
        "use_attn_result",
        "use_split_qkv_input",
        "use_hook_mlp_in",
        "use_attn_in",
        "use_hook_tokens",
        "checkpoint_index",
        "checkpoint_label_type",
        "checkpoint_value",
        "from_checkpoint",
        "init_mode",
        "init_weights",
        "initializer_range",
        "seed",
        "n_params",
        "tokenizer_prepends_bos",
    }
)
_CACHE_ATTR = "_xtl_weights_digest"


def _sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()[:16]


def weights_digest(model: Any) -> str:
    """A hash of every parameter's name, dtype, shape and bytes.

    It is cached on the model and recomputed when any parameter is replaced or
    changed in place (torch counts in-place writes), so repeated sweeps hash once.

    Example:
        >>> xtl.fingerprint.weights_digest(model)
        '6173025064b41bc9'
    """
    params = list(model.named_parameters())
    key = tuple((name, p.data_ptr(), p._version) for name, p in params)
    cached = getattr(model, _CACHE_ATTR, None)
    if cached is not None and cached[0] == key:
        return cached[1]
    h = hashlib.sha256()
    with torch.no_grad():
        for name, p in params:
            h.update(f"{name}:{p.dtype}:{tuple(p.shape)};".encode())
            h.update(p.detach().reshape(-1).view(torch.uint8).cpu().numpy().tobytes())
    digest = h.hexdigest()[:16]
    object.__setattr__(model, _CACHE_ATTR, (key, digest))
    return digest


def config_digest(cfg: Any) -> str:
    """A hash of the model config's fields that change what the model computes."""
    data = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(vars(cfg))
    kept = {k: v for k, v in data.items() if k not in CONFIG_IGNORED and not k.startswith("_")}
    return _sha(json.dumps(kept, default=str, sort_keys=True))


def tokenizer_digest(tokenizer: Any) -> str:
    """A hash of a tokenizer's vocabulary (token -> id, added tokens included) and special ids."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    special = {k: getattr(tokenizer, k, None) for k in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id")}
    return _sha(json.dumps([vocab, special], ensure_ascii=False))


def _code(fn: Any) -> str:
    """Source of ``fn`` plus the values it closes over and its defaults; raises if not readable."""
    source = inspect.getsource(fn)
    closure = [c.cell_contents for c in (getattr(fn, "__closure__", None) or ())]
    return json.dumps([source, repr(closure), repr(getattr(fn, "__defaults__", None))])


def scorer_identity(scorer: Any) -> tuple[str, str]:
    """``(name, digest)`` of a scorer: its qualified name and a hash of its source code.

    The digest is empty for an **anonymous** scorer (a lambda, or code whose source
    cannot be read): a run scored by one cannot be resumed, since nothing says that a
    later scorer is the same. A scorer object may state its own digest as a ``fingerprint``
    string attribute (a task's rule, :class:`xtl.tasks.base.RuleScorer`, hashes the
    scoring module's source).

    Example:
        >>> xtl.fingerprint.scorer_identity(xtl.contains_gold)
        ('xtl.pairs.contains_gold', '...')
    """
    from xtl.pairs import scorer_name

    name = scorer_name(scorer)
    if isinstance(getattr(scorer, "fingerprint", None), str):
        return name, scorer.fingerprint
    if isinstance(scorer, functools.partial):
        target, extra = scorer.func, repr((scorer.args, sorted(scorer.keywords.items())))
    elif inspect.isfunction(scorer) or inspect.ismethod(scorer):
        target, extra = scorer, ""
    else:  # a callable object: its class's code and its state
        target, extra = type(scorer), repr(getattr(scorer, "__dict__", ""))
    if "<lambda>" in getattr(target, "__qualname__", ""):
        return name, ""
    try:
        return name, _sha(_code(target) + extra)
    except (OSError, TypeError):
        return name, ""
