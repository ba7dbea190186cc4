"""The suite's run-time shape checks (tests/shapes.py) check what they claim to."""

import os

import pytest
import torch
from jaxtyping import Float, jaxtyped
from shapes import shapes_only


def test_sizes_must_agree_across_arguments_and_the_return_value():
    @jaxtyped(typechecker=shapes_only)
    def add(
        a: Float[torch.Tensor, "batch d"], b: Float[torch.Tensor, "batch d"], flag: bool = False
    ) -> Float[torch.Tensor, "batch d"]:
        return (a + b)[:1] if flag == "short" else a + b

    assert add(torch.ones(2, 3), torch.ones(2, 3)).shape == (2, 3)
    with pytest.raises(TypeError, match=r"(?s)parameter 'b'.*f32\[2,4\]"):
        add(torch.ones(2, 3), torch.ones(2, 4))
    with pytest.raises(TypeError, match=r"(?s)parameter 'a'.*i64\[2,3\]"):
        add(torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3))
    with pytest.raises(TypeError, match=r"(?s)return.*f32\[1,3\]"):
        add(torch.ones(2, 3), torch.ones(2, 3), "short")
    assert add(torch.ones(2, 3), torch.ones(2, 3), flag="anything") is not None  # plain hints: xtl's own checks


def test_the_engine_modules_are_checked_in_the_suite_unless_turned_off():
    from xtl import decode

    if os.environ.get("XTL_CHECK_SHAPES", "1") == "0":  # make test-fast / make check
        assert not hasattr(decode._project, "__wrapped__")
        return
    with pytest.raises(TypeError, match=r"(?s)xtl.decode._project.*parameter 'z'.*f32\[2,3\]"):
        decode._project(None, torch.ones(2, 3))  # rank 2 where [batch, pos, head, d_head] is annotated
