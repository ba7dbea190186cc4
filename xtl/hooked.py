"""The TransformerLens model class xtl's fast paths read, on TransformerLens 3 and 4.

TransformerLens 4.0 removed ``HookedTransformer``; its ``TransformerBridge`` remains. On 4.x
the name below is a stand-in that no model is an instance of, so every call takes the path xtl
takes for a bridge (TransformerLens' own forward, the sequence re-run at each decoding step).
"""

from __future__ import annotations

try:
    from transformer_lens import HookedTransformer

    #: Whether the installed TransformerLens has ``HookedTransformer`` (3.x) or not (4.x).
    HAS_HOOKED_TRANSFORMER = True
except ImportError:  # TransformerLens >= 4.0

    class HookedTransformer:  # type: ignore[no-redef]
        """Stand-in for the class TransformerLens 4 removed: no model is one."""

    HAS_HOOKED_TRANSFORMER = False


def transformer_lens_version() -> str:
    """The installed TransformerLens version (from the package metadata)."""
    from importlib.metadata import version

    return version("transformer-lens")


__all__ = ["HAS_HOOKED_TRANSFORMER", "HookedTransformer", "transformer_lens_version"]
