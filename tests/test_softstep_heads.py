"""The six regression heads: gradients, weight properties, the chunked path, errors and dtypes.

Reference values come from outside the code under test: scikit-learn's pairwise kernels and
``NearestNeighbors``, or a plain softmax written out here.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import pairwise
from sklearn.neighbors import NearestNeighbors

from softstep import HEADS as HEAD_REGISTRY
from softstep import SIMILARITIES, DiffKNNHead, NCAHead, build_head, similarity

HEADS = tuple(HEAD_REGISTRY)  # the paper's six, in Table 1 order
NEIGHBOR_HEADS = HEADS[1:]
D = 3


def data(n, d=D, *, seed=0, dtype=torch.float32, m=None):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g, dtype=dtype)
    y = torch.randn(n, generator=g, dtype=dtype) if m is None else torch.randn(n, m, generator=g, dtype=dtype)
    return z, y


def step_modules(head):
    """The SoftStep / SoftKStep parameter modules of a head (none for linear and plain nca)."""
    if isinstance(head, NCAHead) and head.step is not None:
        return [head.step.params]
    if isinstance(head, DiffKNNHead):
        return [head.kstep.params]
    return []


@torch.no_grad()
def set_step_params(head, value, *, weight_scale=0.0, seed=0):
    """Set every SoftStep/SoftKStep pre-activation to ``value`` (global θ, or the instance bias,
    with instance weights drawn at ``weight_scale``). A list gives (l0, u0, t) for SoftStep; the
    k-NN heads take its first entry."""
    g = torch.Generator().manual_seed(seed)
    for p in step_modules(head):
        target = p.theta if p.param_mode == "global" else p.linear.bias
        v = torch.as_tensor(value, dtype=target.dtype).flatten()
        target.copy_(v[: target.numel()] if v.numel() > 1 else v.expand_as(target))
        if p.param_mode == "instance":
            p.linear.weight.copy_(weight_scale * torch.randn(p.linear.weight.shape, generator=g))
    return head


def make_head(name, kind="l2", **kw):
    return build_head(name, D, **({} if name == "linear" else {"similarity": kind, **kw}))


# ---------------------------------------------------------------- gradients

SLOW_SIMILARITIES = ["l2"] + [pytest.param(k, marks=pytest.mark.slow) for k in SIMILARITIES if k != "l2"]


@pytest.mark.parametrize("name", HEADS)
@pytest.mark.parametrize("kind", SLOW_SIMILARITIES)
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_head_gradcheck(name, kind, train):
    """float64 gradcheck w.r.t. queries, references and every parameter (l2 by default; the
    other similarities under -m slow)."""
    torch.manual_seed(0)
    head = set_step_params(make_head(name, kind), [0.3, -0.2, 0.4], weight_scale=0.3).double()
    z, y = data(7, dtype=torch.float64, seed=1)
    z_ref, y_ref = data(9, dtype=torch.float64, seed=2)
    names = [k for k, _ in head.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in head.parameters()]

    if train:

        def f(z_, *ps):
            return torch.func.functional_call(head, dict(zip(names, ps)), (z_, z_, y), {"exclude_self": True})

        inputs = (z.requires_grad_(), *params)
    else:

        def f(z_, zr, *ps):
            return torch.func.functional_call(head, dict(zip(names, ps)), (z_, zr, y_ref))

        inputs = (z.requires_grad_(), z_ref.requires_grad_(), *params)
    assert torch.autograd.gradcheck(f, inputs, atol=1e-6, rtol=1e-4)


# ---------------------------------------------------------------- weight properties


@pytest.mark.parametrize("name", NEIGHBOR_HEADS)
@pytest.mark.parametrize("kind", SIMILARITIES)
@pytest.mark.parametrize("theta", [-50.0, 0.0, 50.0])
def test_weights_convex_self_excluded_and_nonempty(name, kind, theta):
    head = set_step_params(make_head(name, kind), theta, weight_scale=1.0)
    z, y = data(12, seed=3)
    for exclude_self in (True, False):
        with torch.no_grad():
            w = head.neighbor_weights(z, z, exclude_self=exclude_self)
            y_hat = head(z, z, y, exclude_self=exclude_self)
        assert (w >= 0).all() and torch.isfinite(w).all()
        torch.testing.assert_close(w.sum(-1), torch.ones(12))
        assert (w.amax(-1) > 0).all(), "every query keeps at least one neighbour"
        # forward is the weighted mean with these weights, a convex combination of y_ref
        torch.testing.assert_close(y_hat, w @ y)
        assert (y_hat >= y.min() - 1e-6).all() and (y_hat <= y.max() + 1e-6).all()
        if exclude_self:
            assert torch.equal(w.diagonal(), torch.zeros(12)), "a query's own weight must be exactly 0"


@pytest.mark.parametrize("kind", SIMILARITIES)
@pytest.mark.parametrize("exclude_self", [True, False])
def test_nca_is_softmax_of_similarity(kind, exclude_self):
    """Plain NCA with β = 1 (``learn_scale=False``, the paper's formula) = softmax(Sim) @ y, Sim from
    scikit-learn, diagonal −inf when excluding self; with the learned scale, softmax(β Sim) @ y."""
    head = make_head("nca", kind, learn_scale=False).double()
    z, y = data(10, dtype=torch.float64, seed=4)
    z_ref, y_ref = (z, y) if exclude_self else data(15, dtype=torch.float64, seed=5)
    zn, rn = z.numpy(), z_ref.numpy()
    sim = {
        "l2": lambda: -pairwise.euclidean_distances(zn, rn),
        "cos": lambda: pairwise.cosine_similarity(zn, rn),
        "rbf": lambda: np.log(pairwise.rbf_kernel(zn, rn)),
        "dot": lambda: zn @ rn.T,
    }[kind]()
    if exclude_self:
        np.fill_diagonal(sim, -np.inf)
    expected = torch.softmax(torch.from_numpy(sim), -1) @ y_ref
    torch.testing.assert_close(head(z, z_ref, y_ref, exclude_self=exclude_self), expected, rtol=1e-10, atol=1e-12)
    scaled = make_head("nca", kind).double()
    with torch.no_grad():
        scaled.log_scale.fill_(0.7)
        scaled.scale_initialised.fill_(True)  # else the first training call sets β from the batch
    expected = torch.softmax(math.exp(0.7) * torch.from_numpy(sim), -1) @ y_ref
    torch.testing.assert_close(scaled(z, z_ref, y_ref, exclude_self=exclude_self), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", NEIGHBOR_HEADS)
def test_softstep_sparsifies_when_l_is_high(name):
    """With a high threshold the step heads give exact zeros; plain NCA never does."""
    head = set_step_params(make_head(name), 3.0)  # l0 = u0 = t = σ(3) ≈ 0.95; k = 0.95 (N − 1) for k-NN
    if name.startswith("diffknn"):
        set_step_params(head, -50.0)  # k = 1 (the clamp): ranks ≥ 1 + q = 5 get weight 0
    z, _ = data(30, seed=6)
    with torch.no_grad():
        w = head.neighbor_weights(z, z)
    n_zero = (w == 0).sum(-1)
    if name == "nca":
        assert (n_zero == 0).all()
    else:
        assert (n_zero > 0).all() and (w.amax(-1) > 0).all()


@pytest.mark.parametrize("name", HEADS)
@pytest.mark.parametrize("m", [None, 3], ids=["y(N,)", "y(N,m)"])
@pytest.mark.parametrize("max_elements", [1, 7, 40, 10**6])
def test_predict_chunked_equals_dense(name, m, max_elements):
    """head.predict(max_elements=...) chunks queries (and tiles the reference set for NCA when
    max_elements < N); it must equal the dense eval-mode forward, for y of shape (N,) and (N, m)."""
    head = set_step_params(make_head(name, "l2"), [0.5, -0.3, 0.2], weight_scale=0.5).eval()
    if name == "linear" and m is not None:
        head = build_head("linear", D)  # the linear head's output shape does not follow y_ref
    z, _ = data(13, seed=7)
    z_ref, y_ref = data(29, seed=8, m=m)
    with torch.no_grad():
        dense = head(z, z_ref, y_ref)
    chunked = head.predict(z, z_ref, y_ref, max_elements=max_elements)
    if name != "linear":
        assert dense.shape == ((13,) if m is None else (13, m))
    torch.testing.assert_close(chunked, dense, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["nca", "nca_g", "nca_i"])
def test_predict_tiled_nca_with_exact_zeros(name):
    """The tiled online softmax must handle tiles in which a row has only zero weights."""
    head = set_step_params(make_head(name, "l2"), 2.0, weight_scale=0.5)  # high l: many exact zeros
    z, _ = data(5, seed=9)
    z_ref, y_ref = data(64, seed=10, m=2)
    with torch.no_grad():
        dense = head(z, z_ref, y_ref)
        w = head.neighbor_weights(z, z_ref)
    if name != "nca":
        assert ((w == 0).sum(-1) > 8).all()  # so 8-column tiles without any support exist
    torch.testing.assert_close(head.predict(z, z_ref, y_ref, max_elements=8), dense, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NEIGHBOR_HEADS)
def test_single_reference_at_evaluation(name):
    head = make_head(name)
    z, _ = data(4, seed=11)
    z_ref, y_ref = data(1, seed=12)
    with torch.no_grad():
        out = head(z, z_ref, y_ref)
    torch.testing.assert_close(out, y_ref.expand(4))
    torch.testing.assert_close(head.predict(z, z_ref, y_ref, max_elements=1), out)


# ---------------------------------------------------------------- k-NN equivalence


@pytest.mark.parametrize("name", ["diffknn_g", "diffknn_i"])
@pytest.mark.parametrize("K", [2, 5, 10])
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("dtype,scale", [(torch.float64, 10.0), (torch.float32, 1e5)], ids=["f64", "f32-large"])
def test_near_hard_diffknn_selects_the_k_nearest(name, K, train, dtype, scale):
    """q = 0.5 and a tiny rank strength make the soft step a hard one: the neighbours with
    non-zero weight must be exactly scikit-learn's K nearest (ranks are 0-based, full weight for
    rank ≤ k, so k = K − 1). The float32 case at scale 1e5 has |sim| / rank_strength ≈ 1e10,
    where float32 soft ranks would be wrong."""
    head = build_head(name, 4, similarity="l2", q=0.5, rank_strength=1e-4).to(dtype)
    g = torch.Generator().manual_seed(13)
    z_ref = scale * torch.randn(60, 4, generator=g, dtype=torch.float64)  # well separated: gaps >> 1e-4
    z = z_ref if train else scale * torch.randn(15, 4, generator=g, dtype=torch.float64)
    head.train(train)
    n = len(z_ref)  # N = |Z_N| (Algorithm 1 line 9): in training the query itself is counted
    frac = (K - 1) / (n - 1)
    set_step_params(head, math.log(frac / (1 - frac)))  # σ(θ) (N − 1) = K − 1
    z, z_ref = z.to(dtype), z_ref.to(dtype)
    with torch.no_grad():
        torch.testing.assert_close(head.kstep.k(z, n), torch.full((len(z), 1), K - 1.0, dtype=dtype))
        w = head.neighbor_weights(z, z_ref, exclude_self=train)
        # the support is where SoftKStep's log-weight is finite; at scale 1e5 the softmax of the
        # raw similarities also underflows to 0 beyond the nearest, so check the logits there
        logits = head.logits(z, z_ref, torch.eye(len(z), dtype=torch.bool) if train else None)
    nn_ = NearestNeighbors(n_neighbors=K + train).fit(z_ref.numpy())
    _, idx = nn_.kneighbors(z.numpy())
    for i in range(len(z)):
        expected = set(idx[i].tolist()) - ({i} if train else set())
        assert len(expected) == K
        assert set(torch.nonzero(torch.isfinite(logits[i])).flatten().tolist()) == expected
        if scale < 100:
            assert set(torch.nonzero(w[i]).flatten().tolist()) == expected


@pytest.mark.parametrize("name", ["diffknn_g", "diffknn_i"])
@pytest.mark.parametrize("kind,scale", [("l2", 1.0), ("cos", 1.0), ("rbf", 1e-6), ("dot", 1e4)])
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_diffknn_keeps_a_neighbour_when_all_similarities_tie(name, kind, scale, train):
    """Constant embeddings: every similarity ties. In training every soft rank is the mean rank
    (far above k = 1 when θ = −50); the floor at the row's best soft rank keeps every neighbour,
    tied at weight 1, so the weights are uniform over the other items. At evaluation exact ranks
    break the tie: ranks 0 and 1 (≤ k = 1) have full weight, ranks 2–4 (< k + q = 5) partial."""
    head = set_step_params(make_head(name, kind), -50.0).train(train)
    z = torch.full((20, D), scale)
    with torch.no_grad():
        w = head.neighbor_weights(z, z, exclude_self=train)
    if train:
        expected = torch.full((20, 20), 1.0 / 19).fill_diagonal_(0.0)
        torch.testing.assert_close(w, expected)
    else:
        torch.testing.assert_close(w.sum(-1), torch.ones(20))
        assert ((w > 0).sum(-1) == 5).all()
        top = w.sort(-1, descending=True).values
        torch.testing.assert_close(top[:, 0], top[:, 1])  # ranks 0 and 1: full weight
        if kind != "dot":  # dot: |sim| = 3e8, where float32 absorbs the step's log-weights
            assert (top[:, 1] > top[:, 2]).all() and (top[:, 4] > 0).all()


# ---------------------------------------------------------------- no NaN, no inf

PATTERNS = ("random", "duplicates", "constant", "ties")


@st.composite
def head_inputs(draw):
    name = draw(st.sampled_from(NEIGHBOR_HEADS + ("linear",)))
    kind = draw(st.sampled_from(SIMILARITIES))
    train = draw(st.booleans())
    n = draw(st.integers(2 if train else 1, 12))
    b = n if train else draw(st.integers(1, 6))
    d = draw(st.integers(1, 5))
    pattern = draw(st.sampled_from(PATTERNS))
    # Scales 1e-6 .. 1e4 for every similarity: even for "dot" (the only unbounded one that grows
    # with |z|²), |z·r| <= d · (1e4 · 4)² < 1e10, far from float32's overflow at 3e38, so any inf
    # here is a bug, not a legitimate overflow.
    scale = draw(st.sampled_from([1e-6, 1e-3, 1.0, 1e2, 1e4]))
    theta = draw(st.sampled_from([-50.0, -5.0, 0.0, 5.0, 50.0]))
    seed = draw(st.integers(0, 2**16))
    return name, kind, train, n, b, d, pattern, scale, theta, seed


def pattern_data(pattern, n, d, g):
    if pattern == "random":
        return torch.randn(n, d, generator=g)
    if pattern == "duplicates":  # every row appears at least twice (when n >= 2)
        base = torch.randn(max(1, n // 2), d, generator=g)
        return base[torch.arange(n) % len(base)]
    if pattern == "constant":
        return torch.randn(1, d, generator=g).expand(n, d).clone()
    return torch.randint(-1, 2, (n, d), generator=g).float()  # a coarse grid: many tied similarities


@given(head_inputs())
@settings(max_examples=50, deadline=None)
def test_no_nan_or_inf_in_outputs_or_gradients(args):
    name, kind, train, n, b, d, pattern, scale, theta, seed = args
    g = torch.Generator().manual_seed(seed)
    head = build_head(name, d, **({} if name == "linear" else {"similarity": kind}))
    set_step_params(head, theta, weight_scale=1.0, seed=seed)
    z_ref = (scale * pattern_data(pattern, n, d, g)).requires_grad_()
    z = z_ref if train else (scale * pattern_data(pattern, b, d, g)).requires_grad_()
    y_ref = torch.randn(n, generator=g)
    out = head(z, z_ref, y_ref, exclude_self=train)
    assert out.shape == (b,) and torch.isfinite(out).all()
    leaves = [z_ref] + ([] if train else [z]) + list(head.parameters())
    grads = torch.autograd.grad(out.square().sum(), leaves, allow_unused=True)
    for leaf, grad in zip(leaves, grads):
        assert grad is None or torch.isfinite(grad).all(), (
            f"non-finite gradient for a leaf of shape {tuple(leaf.shape)}"
        )
    if name != "linear":
        with torch.no_grad():
            w = head.neighbor_weights(z, z_ref, exclude_self=train)
        assert (w.amax(-1) > 0).all() and torch.isfinite(w).all()
        assert (out >= y_ref.min() - 1e-5).all() and (out <= y_ref.max() + 1e-5).all()


# ---------------------------------------------------------------- errors


def test_unknown_names():
    with pytest.raises(ValueError, match=r"unknown head 'knn'.*linear, nca, nca_g, nca_i, diffknn_g, diffknn_i"):
        build_head("knn", 4)
    for name in NEIGHBOR_HEADS:
        with pytest.raises(ValueError, match=r"unknown similarity 'manhattan'.*l2, cos, rbf, dot"):
            build_head(name, 4, similarity="manhattan")


@pytest.mark.parametrize("name", NEIGHBOR_HEADS)
def test_input_errors(name):
    head = make_head(name)
    z, y = data(5)
    with pytest.raises(ValueError, match="embedding dimensions differ"):
        head(z, torch.randn(5, D + 1), y)
    with pytest.raises(ValueError, match=f"built for embed_dim={D}"):
        head(torch.randn(5, D + 1), torch.randn(5, D + 1), y)
    with pytest.raises(ValueError, match="at least 2"):
        head(z[:1], z[:1], y[:1], exclude_self=True)
    with pytest.raises(ValueError, match="the first B references are the B queries"):
        head(z, torch.randn(4, D), torch.randn(4), exclude_self=True)
    with pytest.raises(ValueError, match=r"y_ref must be \(N,\) or \(N, m\)"):
        head(z, z, y[:4])
    for bad in ("z", "z_ref", "y_ref"):
        args = {"z": z.clone(), "z_ref": z.clone(), "y_ref": y.clone()}
        args[bad][0] = math.nan
        with pytest.raises(ValueError, match=f"{bad} contains NaN"):
            head(args["z"], args["z_ref"], args["y_ref"])
        with pytest.raises(ValueError, match=f"{bad} contains NaN"):
            head.predict(args["z"], args["z_ref"], args["y_ref"])
    with pytest.raises(ValueError, match="2-D"):
        head.neighbor_weights(z[0], z)


def test_linear_head_rejects_wrong_dim():
    with pytest.raises(ValueError, match=r"z must be \(B, 3\)"):
        build_head("linear", D)(torch.randn(4, D + 2))


# ---------------------------------------------------------------- dtype


@pytest.mark.parametrize("name", HEADS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_outputs_follow_input_dtype(name, dtype):
    head = make_head(name).to(dtype)
    z, y = data(6, dtype=dtype)
    assert head(z, z, y, exclude_self=True).dtype == dtype
    assert head.predict(z, z, y, max_elements=4).dtype == dtype
    if name != "linear":
        assert head.neighbor_weights(z, z).dtype == dtype
        # y_ref of another dtype is cast to the embeddings' dtype
        assert head(z, z, y.to(torch.float16 if dtype == torch.float32 else torch.float32)).dtype == dtype


@pytest.mark.parametrize("name", ["nca", "nca_g", "diffknn_g"])
def test_global_heads_follow_dtype_without_conversion(name):
    """Heads whose parameters never meet z (global SoftStep) accept float64 inputs as they are."""
    head = make_head(name)
    z, y = data(6, dtype=torch.float64)
    assert head(z, z, y, exclude_self=True).dtype == torch.float64


@pytest.mark.parametrize("name", HEADS)
def test_multi_output_shape(name):
    head = make_head(name)
    z, y = data(6, m=4)
    if name == "linear":
        assert head(z, z, y).shape == (6,)
    else:
        assert head(z, z, y, exclude_self=True).shape == (6, 4)
        assert head.predict(z[:3], z, y).shape == (3, 4)


# ---------------------------------------------------------------- near ties, float32 at large scale


@pytest.mark.parametrize("name", ["nca_g", "nca_i"])
def test_near_tied_rows_are_flat_and_predict_equals_forward(name):
    """Rows that are multiples of the all-ones vector: every cosine is 1 up to rounding (a span of
    ~1e-15). Such a row is flat, so predict equals forward and a relative 1e-13 nudge changes nothing."""
    torch.manual_seed(0)
    head = build_head(name, 25, similarity="cos").double().eval()
    set_step_params(head, [0.0, 0.0, -2.0], weight_scale=0.3)
    c = torch.exp(torch.randn(40, 1, dtype=torch.float64) * 3)
    z = c * torch.ones(1, 25, dtype=torch.float64)
    y = torch.rand(40, dtype=torch.float64) * 0.23
    with torch.no_grad():
        fwd = head(z[:10], z, y)
        for chunk in (2**22, 40, 7):
            torch.testing.assert_close(head.predict(z[:10], z, y, max_elements=chunk), fwd, rtol=1e-12, atol=1e-12)
        nudged = head(z[:10] * (1 + 1e-13 * torch.randn(10, 25, dtype=torch.float64)), z, y)
    torch.testing.assert_close(nudged, fwd, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(fwd, y.mean().expand(10), rtol=1e-9, atol=1e-9)  # all neighbours tie


@st.composite
def large_float32_inputs(draw):
    name = draw(st.sampled_from(NEIGHBOR_HEADS))
    kind = draw(st.sampled_from(SIMILARITIES))
    n, d = draw(st.integers(2, 12)), draw(st.integers(1, 8))
    scale = draw(st.sampled_from([1e4, 1e6, 1e9, 1e12, 1e15]))
    offset = draw(st.sampled_from([0.0, 1.0, 100.0]))  # a common offset, in units of scale
    near = draw(st.sampled_from([0.0, 1e-7, 1e-5, 1e-3]))  # relative distance of the near-duplicates
    return name, kind, n, d, scale, offset, near, draw(st.integers(0, 2**16))


@given(large_float32_inputs())
@settings(max_examples=60, deadline=None)
def test_float32_at_large_scale_is_finite_and_duplicates_are_exact(args):
    """float32 embeddings up to 1e17 with a common offset and (near-)duplicates: distances of duplicates
    are exactly 0, distances keep their digits, every output is finite and inside the label range."""
    name, kind, n, d, scale, offset, near, seed = args
    g = torch.Generator().manual_seed(seed)
    base = (torch.randn(n, d, generator=g) + offset) * scale
    z_ref = torch.cat([base, base[: n // 2] * (1 + near * torch.randn(n // 2, d, generator=g))])
    if kind in ("l2", "rbf"):
        sim = similarity(z_ref[: n // 2], z_ref, kind)
        dup = sim[torch.arange(n // 2), torch.arange(n // 2)]
        assert (dup == (-1e-6 if kind == "l2" else 0.0)).all(), "a duplicate's distance must be exact"
        ref = -((z_ref.double()[:, None] - z_ref.double()[None]) ** 2).sum(-1)
        ref = -(-ref).clamp_min(1e-12).sqrt() if kind == "l2" else ref / d
        got = similarity(z_ref, z_ref, kind).double()
        assert ((got - ref).abs() <= 1e-4 * ref.abs().amax(-1, keepdim=True) + 1e-6).all()
    head = build_head(name, d, similarity=kind).eval()
    y = torch.rand(len(z_ref), generator=g)
    with torch.no_grad():
        out = head(z_ref, z_ref, y)
        assert torch.isfinite(out).all()
        assert (out >= y.min() - 1e-5).all() and (out <= y.max() + 1e-5).all()
        tiled = head.predict(z_ref, z_ref, y, max_elements=7)  # other tiles, other rounding: finite and in range
        assert torch.isfinite(tiled).all() and (tiled >= y.min() - 1e-5).all() and (tiled <= y.max() + 1e-5).all()


def test_magnitudes_a_float32_head_cannot_represent_are_a_clear_error():
    head = build_head("nca_g", 100, similarity="l2")
    z = torch.randn(4, 100) * 1e18
    with pytest.raises(ValueError, match=r"magnitude .* overflow torch.float32 .*d=100"):
        head(z, z, torch.rand(4))
    assert torch.isfinite(head.double()(z.double(), z.double(), torch.rand(4, dtype=torch.float64))).all()


@pytest.mark.parametrize("name", NEIGHBOR_HEADS)
@pytest.mark.parametrize("perplexity", [2.0, 5.0, 20.0])
def test_perplexity_scale_init_gives_the_first_batch_that_perplexity(name, perplexity):
    """scale_init="perplexity": after the first training call, the median row of softmax(β·Sim) (self excluded,
    Sim from scikit-learn) has perplexity exp(H) equal to the target; "std" gives unit-std rows."""
    z, y = data(40, dtype=torch.float64, seed=11)
    head = make_head(name, "l2", scale_init="perplexity", init_perplexity=perplexity).double().train()
    head(z, z, y, exclude_self=True)
    sim = -pairwise.euclidean_distances(z.numpy(), z.numpy())
    np.fill_diagonal(sim, -np.inf)
    p = torch.softmax(math.exp(float(head.log_scale.detach())) * torch.from_numpy(sim), -1).numpy()
    entropy = -(p * np.log(np.where(p > 0, p, 1.0))).sum(1)
    assert np.exp(np.sort(entropy)[(len(entropy) - 1) // 2]) == pytest.approx(
        perplexity, rel=1e-6
    )  # torch's median: the lower one
    std_head = make_head(name, "l2", scale_init="std").double().train()
    std_head(z, z, y, exclude_self=True)
    scaled = math.exp(float(std_head.log_scale.detach())) * np.where(np.isinf(sim), np.nan, sim)
    assert np.nanmean(np.nanstd(scaled, 1)) == pytest.approx(1.0, rel=1e-6)


def test_scale_init_rejects_bad_values():
    with pytest.raises(ValueError, match="scale_init"):
        build_head("nca", 4, scale_init="wide")
    with pytest.raises(ValueError, match="init_perplexity"):
        build_head("nca", 4, scale_init="perplexity", init_perplexity=1.0)


@pytest.mark.parametrize("name", NEIGHBOR_HEADS)
@pytest.mark.parametrize("kind", SIMILARITIES)
@pytest.mark.parametrize("cuda_path", [False, True], ids=["cpu-path", "cuda-training-path"])
def test_a_batch_as_its_own_reference_set_computed_once_equals_two_tensors(name, kind, cuda_path, monkeypatch):
    """The trainer passes one tensor as queries and references (``z_ref is z``), which the similarity computes once;
    outputs and gradients equal those of the same values passed as two tensors (a copy). On the CUDA training path
    (simulated: in_cuda_training patched) as well, whose near-pair correction is a constant."""
    import softstep.distances as Fn

    if cuda_path:
        monkeypatch.setattr(Fn, "in_cuda_training", lambda t: torch.is_grad_enabled())
    z0, y = data(24, 5, seed=3, dtype=torch.float64)
    z0[5] = z0[2]  # a duplicate pair among the candidates
    head = set_step_params(build_head(name, 5, similarity=kind), [0.3, -0.5, 0.2], weight_scale=0.3).double().train()
    grads, outs = [], []
    for same in (True, False):
        z = z0.clone().requires_grad_(True)
        out = head(z, z if same else z * 1.0, y, exclude_self=True)
        (out * torch.linspace(-1, 1, 24, dtype=torch.float64)).sum().backward()
        outs.append(out.detach())
        grads.append(z.grad)
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-9, atol=1e-10)
    assert torch.isfinite(grads[0]).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", NEIGHBOR_HEADS)
def test_a_cuda_training_step_compiles_into_one_graph(name, monkeypatch):
    """``trainer.compile=true`` traces the whole training step of every head: no graph break (a break splits the
    compiled step and runs the pieces between eagerly). The CUDA path is simulated by patching in_cuda_training;
    dynamo's trace needs no GPU."""
    import torch._dynamo as dynamo

    import softstep.distances as Fn

    monkeypatch.setattr(Fn, "in_cuda_training", lambda t: torch.is_grad_enabled())
    head = build_head(name, 8).train()
    z, y = data(16, 8, seed=5)
    z.requires_grad_(True)
    head(z, z, y, exclude_self=True)  # the first batch sets β (a data-dependent step, outside the compiled steps)
    dynamo.reset()
    report = dynamo.explain(lambda z, y: torch.mean((head(z, z, y, exclude_self=True) - y) ** 2))(z, y)
    assert report.graph_break_count == 0, [str(b.reason).splitlines()[0] for b in report.break_reasons]
    assert report.graph_count == 1


# ---------------------------------------------------------------- one pass over the references (predict's blocks)


@st.composite
def near_tied_inputs(draw):
    name = draw(st.sampled_from(NEIGHBOR_HEADS))
    kind = draw(st.sampled_from(["l2", "cos", "rbf"]))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    n, d = draw(st.integers(2, 40)), draw(st.integers(1, 12))
    spread = draw(st.sampled_from([0.0, 1e-12, 1e-9, 1e-6, 1e-4, 1e-2]))  # relative distance around one point
    scale = draw(st.sampled_from([1e-3, 1.0, 1e4]))
    chunk = draw(st.sampled_from([1, 5, 17, 64]))
    return name, kind, dtype, n, d, spread, scale, chunk, draw(st.integers(0, 2**16))


@given(near_tied_inputs())
@settings(max_examples=80, deadline=None)
def test_tiled_predict_equals_forward_on_near_ties(args):
    """Issue 21: tiled predict differed from forward by up to 6 % of the label range on near-tied cos inputs, each
    block centring and scaling its own distances. Now every block computes the whole matrix's numbers (one frame per
    call), so predict in any tiling equals the whole-matrix forward within 1e-6 of the label range."""
    name, kind, dtype, n, d, spread, scale, chunk, seed = args
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(1, d, generator=g, dtype=dtype) * scale
    z_ref = base * (1 + spread * torch.randn(n, d, generator=g, dtype=dtype))
    z = base * (1 + spread * torch.randn(5, d, generator=g, dtype=dtype))
    y = torch.rand(n, generator=g, dtype=dtype)
    head = set_step_params(build_head(name, d, similarity=kind), [0.3, -0.2, 0.4], weight_scale=0.3, seed=seed)
    head = head.to(dtype).eval()
    with torch.no_grad():
        head.log_scale.fill_(float(torch.empty(()).uniform_(-2, 30, generator=g)))  # up to β ~ 1e13: rounding noise
        fwd = head(z, z_ref, y)
    tiled = head.predict(z, z_ref, y, max_elements=chunk)
    assert torch.isfinite(fwd).all() and torch.isfinite(tiled).all()
    assert (tiled - fwd).abs().max() <= 1e-6 * (y.max() - y.min())


def _reference_predictions(name, head, z, z_ref, y):
    """An independent float64 transcription of the eval-mode heads (the old whole-matrix computation): distances
    written out directly, β·Sim, NCA's row min–max and SoftStep, DiffKNN's exact ranks by a stable argsort."""
    z, z_ref, y = z.double().numpy(), z_ref.double().numpy(), y.double().numpy()
    sim = -np.sqrt(np.maximum(((z[:, None] - z_ref[None]) ** 2).sum(-1), 1e-12))
    beta = math.exp(float(head.log_scale))
    logit = beta * sim
    if name.startswith("nca") and head.step is not None:
        l0, u0, t = (p.detach().double().numpy()[:, None] for p in head.step.params(torch.as_tensor(z)).unbind(-1))
        lo, hi = sim.min(-1, keepdims=True), sim.max(-1, keepdims=True)
        s = (sim - lo) / (hi - lo)
        l = l0 - head.step.eps
        u = l + u0 * (1 - l)
        with np.errstate(divide="ignore"):
            inner = 1 / (1 + (np.clip(u - s, 0, None) / np.clip(s - l, 0, None)) ** (1 / t))
            logit = logit + np.log(np.where(s <= l, 0.0, np.where(s >= u, 1.0, inner)))
    if name.startswith("diffknn"):
        k = np.maximum(head.kstep.params(torch.as_tensor(z)).detach().double().numpy() * (len(z_ref) - 1), 1.0)
        q, t = head.kstep.q, head.kstep.t
        ranks = np.argsort(np.argsort(-sim, axis=-1, kind="stable"), axis=-1, kind="stable").astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            a, b = np.clip(k + q - ranks, 0, None), np.clip(ranks - k, 0, None)
            step = np.where(
                ranks <= k, 1.0, np.where(ranks >= k + q, 0.0, a ** (1 / t) / (a ** (1 / t) + b ** (1 / t)))
            )
            logit = logit + np.log(step)
    w = np.exp(logit - logit.max(-1, keepdims=True))
    return (w / w.sum(-1, keepdims=True)) @ y


@pytest.mark.parametrize(
    "name,k_frac", [(h, None) for h in NEIGHBOR_HEADS] + [("diffknn_g", 0.003), ("diffknn_i", 0.003)]
)
def test_predict_in_one_pass_and_top_k_equals_the_old_computation(name, k_frac):
    """float64, 2000 references: predict in whole rows, in tiles of the reference set (NCA's online softmax and
    two-pass SoftStep, DiffKNN's running top-⌈k + q⌉ merged tile by tile) and the whole-matrix forward all equal an
    independent transcription of the old computation to 1e-6 relative."""
    torch.manual_seed(0)
    head = set_step_params(build_head(name, 16), [0.3, -0.2, 0.4], weight_scale=0.3).double().eval()
    if k_frac:
        set_step_params(head, math.log(k_frac / (1 - k_frac)), weight_scale=0.3)
    g = torch.Generator().manual_seed(3)
    z_ref, z = (
        torch.randn(2000, 16, generator=g, dtype=torch.float64),
        torch.randn(70, 16, generator=g, dtype=torch.float64),
    )
    y = torch.rand(2000, generator=g, dtype=torch.float64)
    with torch.no_grad():
        head.log_scale.fill_(0.7)
        want = torch.from_numpy(_reference_predictions(name, head, z, z_ref, y))
        fwd = head(z, z_ref, y)
    torch.testing.assert_close(fwd, want, rtol=1e-6, atol=1e-9)
    for max_elements in (2**22, 2000 * 7, 500, 64):
        torch.testing.assert_close(head.predict(z, z_ref, y, max_elements=max_elements), want, rtol=1e-6, atol=1e-9)


def test_exact_top_orders_ties_by_index_in_any_tiling():
    from softstep.diffknn import exact_top

    g = torch.Generator().manual_seed(0)
    sim = torch.randint(0, 4, (6, 50), generator=g).double()  # many ties, also across the cut
    want_v, want_i = sim.sort(dim=-1, descending=True, stable=True)
    for cols in (1, 3, 7, 50):
        for width in (1, 5, 13, 50):
            top, idx = exact_top(lambda s: sim[:, s], 50, cols, width)
            assert torch.equal(top, want_v[:, :width]) and torch.equal(idx, want_i[:, :width])


@given(
    name=st.sampled_from(NEIGHBOR_HEADS),
    kind=st.sampled_from(["cos", "rbf", "l2"]),
    magnitude=st.sampled_from([1e-10, 4e-14, 1e-17, 1e-20, 1e-22, 1e-26, 1e-30, 1e-38, 1e-42]),
    d=st.integers(1, 25),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=80, deadline=None)
def test_tiny_float32_embeddings_give_finite_gradients(name, kind, magnitude, d, seed):
    """Issue 21: float32 embeddings of |z| ≤ 4e-14 gave NaN gradients with finite outputs (a row span whose square
    underflows in the gradient of Norm, and of the soft ranks' gap). Such a row is flat now (FLAT_FLOOR)."""
    g = torch.Generator().manual_seed(seed)
    z = (torch.randn(8, d, generator=g) * magnitude).requires_grad_()
    y = torch.rand(8, generator=g)
    head = build_head(name, d, similarity=kind)
    out = head(z, z, y, exclude_self=True)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(z.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters() if p.grad is not None)


@given(
    name=st.sampled_from(NEIGHBOR_HEADS),
    kind=st.sampled_from(SIMILARITIES),
    magnitude=st.sampled_from([1.0, 1e6, 2.6e12]),
    log_beta=st.sampled_from([0.0, 20.0, 60.0, 88.0]),
    jitter=st.sampled_from([0.0, 1e-7, 1e-6]),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=80, deadline=None)
def test_identical_points_and_a_beta_fitted_to_rounding_noise_stay_finite(
    name, kind, magnitude, log_beta, jitter, seed
):
    """Issue 21: identical float32 points at |z| ≈ 2.6e12, where β fits rounding noise (β·Sim overflowed to −inf in
    every entry of a row: NaN). The logits are β·(Sim − the row's largest), so no row loses every entry: training and
    predict stay finite and inside the label range."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(1, 5, generator=g) * magnitude
    z = (base * (1 + jitter * torch.randn(8, 5, generator=g))).requires_grad_()
    y = torch.rand(8, generator=g)
    head = build_head(name, 5, similarity=kind)
    with torch.no_grad():
        head.log_scale.fill_(log_beta)
        head.scale_initialised.fill_(True)
    out = head(z, z, y, exclude_self=True)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(z.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters() if p.grad is not None)
    head.eval()
    with torch.no_grad():
        queries = z[:3] * (1 + 1e-4)
        for pred in (head(queries, z, y), head.predict(queries, z, y, max_elements=5)):
            assert torch.isfinite(pred).all() and (pred >= y.min() - 1e-6).all() and (pred <= y.max() + 1e-6).all()


# ---------------------------------------------------------------- DiffKNN's candidates through an index (optional faiss)


def test_an_unknown_search_or_a_missing_faiss_is_one_clear_line(monkeypatch):
    import sys

    head = build_head("diffknn_i", 4).eval()
    z, y = data(20, d=4)
    with pytest.raises(ValueError, match="unknown search 'annoy'; allowed: torch, faiss, faiss-hnsw"):
        head.predict(z, z, y, search="annoy")
    monkeypatch.setitem(sys.modules, "faiss", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r"^search='faiss' needs the optional faiss package: pip install faiss-cpu"):
        head.predict(z, z, y, search="faiss")
    assert head.predict(z, z, y).shape == (20,)  # the default needs no faiss


@pytest.mark.parametrize("kind", SIMILARITIES)
@pytest.mark.parametrize("name", ["diffknn_g", "diffknn_i"])
def test_faiss_exact_search_gives_the_torch_path_predictions(name, kind):
    """faiss's IndexFlat candidates (float32), then Sim of each pair in the call's frame: the same predictions as the
    default exact search in torch's blocks (float64, 1e-6 relative). ``make venv`` installs faiss-cpu."""
    pytest.importorskip("faiss")
    head = set_step_params(build_head(name, 8, similarity=kind), math.log(0.004 / 0.996), weight_scale=0.3).double()
    head.eval()
    g = torch.Generator().manual_seed(5)
    z_ref, z = (
        torch.randn(3000, 8, generator=g, dtype=torch.float64),
        torch.randn(64, 8, generator=g, dtype=torch.float64),
    )
    y = torch.rand(3000, generator=g, dtype=torch.float64)
    want = head.predict(z, z_ref, y)
    torch.testing.assert_close(head.predict(z, z_ref, y, search="faiss"), want, rtol=1e-6, atol=1e-9)
    approx = head.predict(z, z_ref, y, search="faiss-hnsw", max_elements=5000)
    assert torch.isfinite(approx).all() and (approx >= y.min()).all() and (approx <= y.max()).all()


def test_param_init_is_checked_and_authors_draws_from_torchs_rng():
    with pytest.raises(ValueError, match="unknown init 'ones'"):
        NCAHead(4, step="global", param_init="ones")
    torch.manual_seed(3)
    head = DiffKNNHead(4, step="global", param_init="authors")
    torch.manual_seed(3)
    assert torch.equal(head.kstep.params.theta.detach(), torch.randn(1))
    assert not torch.equal(DiffKNNHead(4).kstep.params.theta.detach(), torch.randn(1))  # zero: σ(0) = 0.5


def test_head_lr_puts_the_heads_own_parameters_in_their_own_group():
    from softstep.model import Regressor
    from softstep.training import _optimizer
    from softstep.training_types import TrainerSettings

    model = Regressor(6, 10, 4, build_head("nca_i", 4))
    base = TrainerSettings(max_epochs=1, patience=1, batch_size=4, lr=1e-5)
    assert [g["lr"] for g in _optimizer(model, base).param_groups] == [1e-5]
    groups = _optimizer(model, TrainerSettings(**{**base.__dict__, "head_lr": 1e-3})).param_groups
    assert [g["lr"] for g in groups] == [1e-5, 1e-3]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.head.parameters()}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_a_model_with_nothing_to_learn_trains_as_an_evaluation():
    """Plain NCA at β = 1 on raw coordinates (the authors' Figure 3 NONA) has no parameters: fit evaluates it."""
    from softstep.model import Regressor
    from softstep.training import fit
    from softstep.training_types import TensorInputs, TrainerSettings

    g = torch.Generator().manual_seed(0)
    x = torch.rand(120, 2, generator=g)
    y = (x[:, 0] > 0.5).double().numpy()
    model = Regressor(2, 10, 2, NCAHead(2, learn_scale=False), arch="identity")
    assert not list(model.parameters())
    res = fit(
        model, TensorInputs(x), y, np.arange(80), np.arange(80, 100), np.arange(100, 120),
        TrainerSettings(max_epochs=3, patience=5, batch_size=16, lr=1e-3), seed=0,
    )  # fmt: skip
    assert res.epochs_run == 3 and 0 <= res.test_mse < 0.25
