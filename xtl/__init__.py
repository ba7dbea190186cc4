"""xtl: cross-lingual latent transplantation (XTransplant) on TransformerLens.

The public names are listed once, in ``__init__.pyi`` beside this file; each is imported
on first use (``lazy_loader``), so ``import xtl`` and ``xtl --help`` load neither torch nor
TransformerLens until something needs them. ``ARCHITECTURE.md`` says which module holds what.

Example:
    >>> import xtl
    >>> model = xtl.toy.load_toy_model()
    >>> res = xtl.transplant(model, source="the capital of uvelmora is", target="mji mkuu wa uvelmora ni",
    ...                      source_layer=-1, target_layer=0, component="attn", max_new_tokens=2)
    >>> len(res.text)
    1
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
