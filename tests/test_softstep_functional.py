"""The functional core: similarity, row_minmax, soft_step / log_soft_step, log_soft_k_step.

References are independent of the code under test: scikit-learn's pairwise kernels for the
similarities and the closed form of section 3.1, written out directly, for SoftStep.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import pairwise

from softstep import SIMILARITIES, log_soft_k_step, log_soft_step, row_minmax, similarity, soft_step
from softstep import functional as Fn
from softstep.step import SoftStep

DTYPES = (torch.float32, torch.float64)


def closed_form_step(s, l, u, t):
    """SoftStep(s; l, u, t) exactly as printed in section 3.1 (numpy, float64)."""
    s = np.asarray(s, dtype=np.float64)
    out = np.where(s >= u, 1.0, 0.0)
    inside = (s > l) & (s < u)
    a, b = (s - l).clip(min=0) ** (1 / t), (u - s).clip(min=0) ** (1 / t)
    return np.where(inside, a / np.where(inside, a + b, 1.0), out)


# ---------------------------------------------------------------- similarity


def sklearn_similarity(z, r, kind):
    z, r = z.double().numpy(), r.double().numpy()
    if kind == "l2":
        return -pairwise.euclidean_distances(z, r)
    if kind == "cos":
        return pairwise.cosine_similarity(z, r)
    if kind == "rbf":
        return -pairwise.euclidean_distances(z, r, squared=True) / z.shape[1]  # log RBF kernel, gamma = 1/d
    return pairwise.linear_kernel(z, r)


@pytest.mark.parametrize("kind", SIMILARITIES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_similarity_matches_sklearn_and_follows_dtype(kind, dtype):
    g = torch.Generator().manual_seed(0)
    z, r = torch.randn(7, 5, generator=g, dtype=dtype), torch.randn(11, 5, generator=g, dtype=dtype)
    sim = similarity(z, r, kind)
    assert sim.shape == (7, 11) and sim.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    np.testing.assert_allclose(sim.double().numpy(), sklearn_similarity(z, r, kind), rtol=tol, atol=tol)


def test_rbf_gamma_is_used():
    z, r = torch.randn(3, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    expected = np.log(pairwise.rbf_kernel(z.numpy(), r.numpy(), gamma=2.5))  # the log of scikit-learn's kernel
    np.testing.assert_allclose(similarity(z, r, "rbf", gamma=2.5).numpy(), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="gamma"):
        similarity(z, r, "rbf", gamma=0.0)


def test_l2_gradient_finite_for_duplicates():
    z = torch.ones(4, 3, dtype=torch.float64, requires_grad=True)
    similarity(z, z, "l2").sum().backward()
    assert torch.isfinite(z.grad).all()


def test_similarity_errors():
    z = torch.randn(3, 4)
    with pytest.raises(ValueError, match="unknown similarity 'manhattan'.*l2, cos, rbf, dot"):
        similarity(z, z, "manhattan")
    with pytest.raises(ValueError, match="same d"):
        similarity(z, torch.randn(3, 5), "l2")


# ---------------------------------------------------------------- row_minmax


def test_row_minmax_range_and_mask():
    g = torch.Generator().manual_seed(1)
    sim = torch.randn(6, 6, generator=g, dtype=torch.float64)
    out = row_minmax(sim)
    assert torch.equal(out.amax(-1), torch.ones(6, dtype=torch.float64))
    assert torch.equal(out.amin(-1), torch.zeros(6, dtype=torch.float64))
    # with the diagonal excluded, a huge self-similarity must not affect the scaling
    mask = torch.eye(6, dtype=torch.bool)
    sim_self = sim.masked_fill(mask, 1e6)
    out_m = row_minmax(sim_self, mask)
    assert torch.equal(out_m.diagonal(), torch.zeros(6, dtype=torch.float64))
    off = ~mask
    lo = sim.masked_fill(mask, math.inf).amin(-1, keepdim=True)
    hi = sim.masked_fill(mask, -math.inf).amax(-1, keepdim=True)
    torch.testing.assert_close(out_m[off], ((sim - lo) / (hi - lo))[off])


def test_row_minmax_constant_row_is_one():
    sim = torch.tensor([[2.0, 2.0, 2.0], [0.0, 1.0, 3.0]])
    out = row_minmax(sim)
    assert torch.equal(out[0], torch.ones(3))
    torch.testing.assert_close(out[1], torch.tensor([0.0, 1 / 3, 1.0]))


# ---------------------------------------------------------------- soft_step


@given(
    l=st.floats(-2, 2),
    width=st.floats(1e-3, 3),
    t=st.floats(0.05, 1.0),
    s=st.lists(st.floats(-5, 5), min_size=1, max_size=20),
)
@settings(max_examples=50, deadline=None)
def test_soft_step_matches_closed_form(l, width, t, s):
    u = l + width
    s_t = torch.tensor(s, dtype=torch.float64)
    out = soft_step(s_t, torch.tensor(l, dtype=torch.float64), torch.tensor(u, dtype=torch.float64), t)
    np.testing.assert_allclose(out.numpy(), closed_form_step(s, l, u, t), rtol=1e-9, atol=1e-12)


@given(l=st.floats(-1, 1), width=st.floats(1e-4, 2), t=st.floats(1e-4, 1.0), dtype=st.sampled_from(DTYPES))
@settings(max_examples=50, deadline=None)
def test_soft_step_exact_zero_one_and_monotone(l, width, t, dtype):
    l_t = torch.tensor(l, dtype=dtype)
    u_t = torch.tensor(l + width, dtype=dtype)
    s = torch.linspace(l - 1, l + width + 1, 2001, dtype=dtype)
    s = torch.cat([s, l_t[None], u_t[None]]).sort().values
    out = soft_step(s, l_t, u_t, torch.tensor(t, dtype=dtype))
    assert out.dtype == dtype
    assert torch.isfinite(out).all()
    assert (out[s <= l_t] == 0).all(), "SoftStep must be exactly 0 for s <= l"
    assert (out[s >= u_t] == 1).all(), "SoftStep must be exactly 1 for s >= u"
    assert (out.diff() >= 0).all(), "SoftStep must be non-decreasing"
    log_out = log_soft_step(s, l_t, u_t, torch.tensor(t, dtype=dtype))
    assert (log_out[s <= l_t] == -math.inf).all() and (log_out[s >= u_t] == 0).all()


def test_soft_step_gradcheck_inside_transition():
    g = torch.Generator().manual_seed(2)
    l = torch.tensor([-0.3, 0.1, 0.2], dtype=torch.float64)
    u = torch.tensor([0.6, 0.9, 0.4], dtype=torch.float64)
    s = (l + (u - l) * (0.1 + 0.8 * torch.rand(3, generator=g, dtype=torch.float64))).requires_grad_()
    t = torch.tensor([0.3, 0.75, 1.0], dtype=torch.float64, requires_grad=True)
    l.requires_grad_(), u.requires_grad_()
    assert torch.autograd.gradcheck(soft_step, (s, l, u, t))
    assert torch.autograd.gradcheck(log_soft_step, (s, l, u, t))


@pytest.mark.parametrize("where", ["l", "u"])
def test_soft_step_gradient_at_boundaries_is_finite_and_zero(where):
    """At s = l and s = u the one-sided derivative of SoftStep (1/t > 1) is 0 in every argument."""
    l = torch.tensor([0.2, -0.5], dtype=torch.float64, requires_grad=True)
    u = torch.tensor([0.7, 0.5], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.5, 0.9], dtype=torch.float64, requires_grad=True)
    s = (l if where == "l" else u).detach().clone().requires_grad_()
    out = soft_step(s, l, u, t)
    assert torch.equal(out, torch.zeros(2, dtype=torch.float64) if where == "l" else torch.ones(2, dtype=torch.float64))
    grads = torch.autograd.grad(out.sum(), (s, l, u, t))
    for g_ in grads:
        assert torch.isfinite(g_).all()
        assert torch.equal(g_, torch.zeros_like(g_))
    # and the derivative just inside the transition shrinks towards that limit
    sign = 1.0 if where == "l" else -1.0
    inside = []
    for h in (1e-3, 1e-6, 1e-9):
        s_in = (s.detach() + sign * h).requires_grad_()
        inside.append(torch.autograd.grad(soft_step(s_in, l, u, t).sum(), s_in)[0].abs())
    assert (inside[0] > inside[1]).all() and (inside[1] > inside[2]).all()


def test_soft_step_small_t_does_not_overflow():
    s = torch.linspace(0.0, 1.0, 101, requires_grad=True)
    out = soft_step(s, torch.tensor(0.1), torch.tensor(0.9), torch.tensor(1e-6))  # clamped to T_MIN
    (g,) = torch.autograd.grad(out.sum(), s)
    assert torch.isfinite(out).all() and torch.isfinite(g).all()
    assert ((out == 0) | (out == 1) | ((s - 0.5).abs() < 0.02)).all(), "t -> 0 is a hard step at the midpoint"


# ---------------------------------------------------------------- log_soft_k_step


def test_soft_k_step_values():
    ranks = torch.arange(0, 10, dtype=torch.float64)
    k, q, t = 2.0, 4.0, 0.75
    out = log_soft_k_step(ranks, torch.tensor(k, dtype=torch.float64), q, t).exp()
    # SoftKStep(r) = SoftStep(-r; -(k+q), -k, t): 1 for r <= k, 0 for r >= k + q, decreasing between
    expected = closed_form_step(-ranks.numpy(), -(k + q), -k, t)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-15)
    assert (out[ranks <= k] == 1).all() and (out[ranks >= k + q] == 0).all()
    assert (out.diff() <= 0).all()


def test_soft_k_step_gradcheck():
    g = torch.Generator().manual_seed(3)
    ranks = (torch.rand(2, 8, generator=g, dtype=torch.float64) * 9).requires_grad_()
    k = torch.tensor([[2.3], [4.1]], dtype=torch.float64, requires_grad=True)
    # keep ranks off the kinks at k and k + q so finite differences stay on one piece
    with torch.no_grad():
        for a in (k, k + 4.0):
            close = (ranks - a).abs() < 1e-3
            ranks[close] += 1e-2
    assert torch.autograd.gradcheck(lambda r, k_: log_soft_k_step(r, k_, 4.0, 0.75).exp(), (ranks, k))


def test_soft_k_step_rejects_bad_q():
    with pytest.raises(ValueError, match="q must be > 0"):
        log_soft_k_step(torch.zeros(3), torch.tensor(1.0), q=0.0)


@given(
    value=st.floats(-1e6, 1e6),
    ulps=st.integers(0, 16),
    n=st.integers(2, 30),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=100, deadline=None)
def test_row_minmax_near_tied_row_is_flat(value, ulps, n, dtype, seed):
    """A row whose values differ by rounding only (a few ulps of its magnitude) is flat: all 1, as a
    constant row; stretching that noise to [0, 1] would make SoftStep cut on it."""
    g = torch.Generator().manual_seed(seed)
    v = torch.tensor(value, dtype=dtype)
    noise = torch.randint(-ulps, ulps + 1, (1, n), generator=g).to(dtype) * torch.finfo(dtype).eps * v.abs()
    assert torch.equal(row_minmax(v + noise), torch.ones(1, n, dtype=dtype))
    spread = v + torch.linspace(0, 1, n, dtype=dtype) * max(1.0, abs(value)) * 1e-3  # a real spread still spans [0, 1]
    out = row_minmax(spread[None])
    assert out.min() == 0 and out.max() == 1


@given(
    scale=st.sampled_from([1e3, 1e6, 1e9, 1e12, 1e15]),
    offset=st.sampled_from([0.0, 1.0, 100.0]),
    n=st.integers(1, 20),
    d=st.integers(1, 64),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=100, deadline=None)
def test_float32_distances_exact_for_duplicates_and_accurate_at_scale(scale, offset, n, d, seed):
    g = torch.Generator().manual_seed(seed)
    z = (torch.randn(n, d, generator=g) + offset) * scale
    r = torch.cat([z, (torch.randn(n, d, generator=g) + offset) * scale])
    for kind in ("l2", "rbf"):
        sim = similarity(z, r, kind)
        assert torch.isfinite(sim).all()
        assert (sim.diagonal() == (-1e-6 if kind == "l2" else 0.0)).all()
        exact = ((z.double()[:, None] - r.double()[None]) ** 2).sum(-1)
        ref = -exact.clamp_min(1e-12).sqrt() if kind == "l2" else -exact / d
        assert ((sim.double() - ref).abs() <= 1e-5 * ref.abs().amax() + 1e-6).all()


def test_float32_magnitude_limit_is_a_value_error():
    z = torch.full((2, 100), 1e18)
    for kind in SIMILARITIES:
        with pytest.raises(ValueError, match="magnitude"):
            similarity(z, z, kind)
    assert torch.isfinite(similarity(z.double(), z.double(), "l2")).all()


@given(
    scale=st.sampled_from([1e-3, 1.0, 1e6]),
    n=st.integers(1, 12),
    d=st.integers(1, 16),
    dups=st.integers(0, 3),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=60, deadline=None)
def test_sync_free_distance_refinement_equals_the_indexed_one(scale, n, d, dups, dtype, seed):
    """CUDA's default (dense_refine: torch.cdist's direct form wherever a pair is near, no host sync) against
    the CPU's (the near pairs found with nonzero): the same distances and gradients, duplicates exactly 0."""
    from softstep.distances import _sqdist

    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g, dtype=dtype) * scale
    r = torch.cat([z[: min(dups, n)], torch.randn(n, d, generator=g, dtype=dtype) * scale])
    out = {}
    for dense in (False, True):
        zz = z.clone().requires_grad_(True)
        sq = _sqdist(zz, r, dense_refine=dense)
        sq.sum().backward()
        out[dense] = (sq.detach(), zz.grad)
    tol = dict(rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=0.0)
    torch.testing.assert_close(out[True][0], out[False][0], **tol)
    torch.testing.assert_close(out[True][1], out[False][1], rtol=tol["rtol"], atol=1e-6 * scale)
    for i in range(min(dups, n)):
        assert out[True][0][i, i] == 0
    assert torch.isfinite(out[True][1]).all()


def test_cuda_training_skips_the_host_reading_checks_only(monkeypatch):
    """In a CUDA training step the heads skip the finiteness scan (a host sync per step); in evaluation, and on
    the CPU, it stays. Simulated on the CPU by patching in_cuda_training."""
    import softstep.distances as Fn
    from softstep import build_head

    head = build_head("nca", 4)
    z = torch.randn(6, 4)
    z[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        head(z, z, torch.rand(6), exclude_self=True)
    monkeypatch.setattr(Fn, "in_cuda_training", lambda t: torch.is_grad_enabled())
    head(z, z, torch.rand(6), exclude_self=True)  # skipped: the trainer's per-epoch loss check catches it
    with torch.no_grad(), pytest.raises(ValueError, match="NaN"):
        head.predict(z, z, torch.rand(6))


class _HostReads(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the ops that read a tensor's value back to the host (``.item()``, ``bool(t)``): on CUDA each waits for the GPU."""

    def __init__(self):
        super().__init__()
        self.reads = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.reads += func.overloadpacket.__name__ == "_local_scalar_dense"
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name", ["nca", "nca_g", "nca_i", "diffknn_g", "diffknn_i"])
def test_a_cuda_training_step_reads_nothing_back_to_the_host(monkeypatch, name):
    """After the first batch (which sets β), forward and backward of a training step never read a value back,
    so the CPU can queue the next step while the GPU works; a reloaded or reset ``scale_initialised`` is read
    once again. Simulated on the CPU by patching in_cuda_training."""
    import softstep.distances as Fn
    from softstep import build_head

    monkeypatch.setattr(Fn, "in_cuda_training", lambda t: torch.is_grad_enabled())
    head = build_head(name, 8).train()
    z = torch.randn(16, 8, requires_grad=True)
    head(z, z, torch.rand(16), exclude_self=True).sum().backward()  # the first batch sets β: reads allowed
    first = head.log_scale.item()
    for _ in range(2):
        with _HostReads() as mode:
            head(z, z, torch.rand(16), exclude_self=True).sum().backward()
        assert mode.reads == 0
    fresh = build_head(name, 8).train()
    fresh.load_state_dict(head.state_dict())
    fresh(2 * z, 2 * z, torch.rand(16), exclude_self=True)
    assert fresh.log_scale.item() == first  # the loaded flag was read: β is not set again
    head.scale_initialised.fill_(False)
    head(2 * z, 2 * z, torch.rand(16), exclude_self=True)
    assert head.log_scale.item() != first  # a reset flag is seen: β is set from this batch


def test_power_floor_gives_one_half_where_both_powers_are_below_it():
    """nona_anon's S_1 floors (s − l)^(1/t) and (u − s)^(1/t) at 1e-12: where both are below it the step is 1/2,
    where one is, that one counts as 1e-12; outside (l, u) the step is 0 or 1 as printed."""
    s = torch.tensor([0.0, 0.201, 0.5, 0.799, 0.9], dtype=torch.float64)
    l, u, t = 0.2, 0.8, 0.05  # 1/t = 20: (0.3)^20 = 3.5e-11, (0.001)^20 = 1e-60
    floored = torch.exp(log_soft_step(s, l, u, t, power_floor=1e-12))
    a, b = (s - l).clamp_min(0) ** (1 / t), (u - s).clamp_min(0) ** (1 / t)
    a, b = a.clamp_min(1e-12), b.clamp_min(1e-12)
    want = torch.where(s <= l, 0.0, torch.where(s >= u, 1.0, a / (a + b)))
    torch.testing.assert_close(floored, want, rtol=1e-12, atol=0)
    assert floored[2] == pytest.approx(0.5)  # both powers 3.5e-11 ≥ floor: the equation's 1/2 by symmetry
    plain = torch.exp(log_soft_step(s, l, u, t))
    assert plain[1] < 1e-40 < floored[1]  # next to l the printed step is ~0, the floored one 1e-12 / (1e-12 + b)
    narrow = torch.exp(log_soft_step(torch.tensor([0.46, 0.5, 0.54]), 0.45, 0.55, t, power_floor=1e-12))
    torch.testing.assert_close(narrow, torch.full((3,), 0.5))  # both powers ≤ 0.09^20 < 1e-12: flat at 1/2
    with pytest.raises(ValueError, match="power_floor"):
        SoftStep(power_floor=0.0)


@settings(max_examples=200, deadline=None)
@given(
    s=st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]) | st.floats(0, 1, width=32), min_size=1, max_size=8),
    l=st.sampled_from([0.0, 0.25, 0.5, 0.75]) | st.floats(0, 0.75, width=32),
    width=st.sampled_from([0.0, 1e-9, 0.25]) | st.floats(0, 1, width=32),
    t=st.floats(1e-6, 2.0),
)
def test_evaluation_step_is_the_log_step_exponentiated(s, l, width, t):
    """The evaluation path's SoftStep (no autograd, fewer passes) is exp(log SoftStep), finite, in [0, 1], also
    where the learned step is hard and u collapses onto l in float32 (s = l = u: 0, as s ≤ l; once NaN, seen on
    abalone under protocol=learn)."""
    s = torch.tensor(s, dtype=torch.float32)
    l = torch.tensor(l, dtype=torch.float32)
    u = l + torch.tensor(width, dtype=torch.float32) * (1 - l)  # the heads' u = l + u0 (1 − l): u ≥ l, maybe = l
    got = Fn.soft_step_weights(s, l, u, t)
    assert torch.isfinite(got).all() and ((got >= 0) & (got <= 1)).all()
    torch.testing.assert_close(got, torch.exp(log_soft_step(s, l, u, t)), rtol=1e-4, atol=1e-5)
    assert (got[s <= l] == 0).all() and (got[(s >= u) & (s > l)] == 1).all()
