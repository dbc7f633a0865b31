"""Issue 28's numerics (finding 8), each as a property: a head given tensors of mixed dtypes computes in the
embeddings' dtype (``softstep.dtypes``) with no torch dtype error and no NaN; labels up to the head's bound
(``label_bound``: 1.8e19 in float32) at embedding scales from 1e-20 to 1e15 give no NaN output or gradient, and a
gradient is finite wherever the true one fits the dtype; labels beyond the bound are one clear error."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from softstep import HEADS as HEAD_REGISTRY
from softstep import SIMILARITIES, build_head
from softstep.dtypes import compute_dtype, label_bound

HEADS = tuple(HEAD_REGISTRY)
DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _head(name, kind, d, dtype=torch.float32, train=False):
    head = build_head(name, d, **({} if name == "linear" else {"similarity": kind})).to(dtype)
    return head.train(train)


def _leaves_grads(out, leaves):
    return torch.autograd.grad(out.sum(), leaves, allow_unused=True)


@given(
    name=st.sampled_from(HEADS),
    kind=st.sampled_from(SIMILARITIES),
    head_dtype=st.sampled_from(DTYPES[:2]),
    dtypes=st.tuples(*[st.sampled_from(DTYPES)] * 3),
    scale=st.sampled_from([1e-20, 1e-3, 1.0, 1e4]),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=150, deadline=None)
def test_mixed_dtypes_compute_in_the_embeddings_dtype(name, kind, head_dtype, dtypes, scale, seed):
    """The finding's case among them: ``build_head('nca', 8, similarity='dot')`` with float64 z of 1e-20 gave NaN."""
    g = torch.Generator().manual_seed(seed)
    z_dtype, ref_dtype, y_dtype = dtypes
    head = _head(name, kind, 4, head_dtype)
    z = (torch.randn(5, 4, generator=g, dtype=torch.float64) * scale).to(z_dtype).requires_grad_()
    z_ref = (torch.randn(7, 4, generator=g, dtype=torch.float64) * scale).to(ref_dtype)
    y = torch.rand(7, generator=g).to(y_dtype)
    out = head(z, z_ref, y)
    want = compute_dtype(z)
    assert out.dtype == want and torch.isfinite(out).all()
    assert head.predict(z.detach(), z_ref, y).dtype == want
    (grad,) = _leaves_grads(out, [z])
    assert grad is None or torch.isfinite(grad).all()
    if name != "linear":
        w = head.neighbor_weights(z.detach(), z_ref)
        assert w.dtype == want and torch.allclose(w.sum(-1), torch.ones((), dtype=want), atol=1e-3)


@given(
    name=st.sampled_from(list(HEADS[1:])),
    kind=st.sampled_from(SIMILARITIES),
    y_max=st.sampled_from([1.0, 1.6e16, 1e18, label_bound(torch.float32)]),
    scale=st.sampled_from([1e-20, 1e-6, 1.0, 1e4, 1e15]),
    train=st.booleans(),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=200, deadline=None)
def test_labels_up_to_the_bound_give_no_nan_output_or_gradient(name, kind, y_max, scale, train, seed):
    g = torch.Generator().manual_seed(seed)
    head = _head(name, kind, 4, train=train)
    z_ref = (torch.randn(8, 4, generator=g) * scale).requires_grad_()
    z = z_ref if train else (torch.randn(3, 4, generator=g) * scale).requires_grad_()
    y = (torch.rand(8, generator=g) * 2 - 1) * y_max
    out = head(z, z_ref, y, exclude_self=train)
    assert torch.isfinite(out).all()
    leaves = [z_ref] + ([] if train else [z]) + list(head.parameters())
    for grad in _leaves_grads(out, leaves):
        if grad is None:
            continue
        assert not torch.isnan(grad).any()
        if y_max / min(scale, 1.0) <= 1e30:  # the true gradient, about |y| / |z| at most, fits float32
            assert torch.isfinite(grad).all()


@pytest.mark.parametrize("name", HEADS[1:])
def test_labels_beyond_the_bound_are_one_clear_error(name):
    head = _head(name, "l2", 4)
    z = torch.randn(6, 4)
    with pytest.raises(ValueError, match="scale the targets"):
        head(z, z, torch.full((6,), 1e30))
    assert torch.isfinite(head(z.double(), z.double(), torch.full((6,), 1e30, dtype=torch.float64))).all()
