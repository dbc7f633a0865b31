"""CUDA parity and the device knobs on a GPU. Marked ``gpu``: they run where CUDA is present and are skipped,
with the reason, elsewhere (``pytest -m gpu`` selects only them)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from experiments.inputs.batches import Inputs
from experiments.protocol import device as D
from softstep import HEADS, build_head
from softstep.model import Regressor
from softstep.training import fit
from softstep.training_types import TrainerSettings

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="no CUDA GPU on this machine (torch.cuda.is_available() is False)"
    ),
]


@pytest.mark.parametrize("name", list(HEADS))
def test_head_outputs_and_gradients_match_the_cpu_in_float64(name):
    torch.manual_seed(0)
    ref = build_head(name, 8).double()
    z, y = torch.randn(32, 8, dtype=torch.float64), torch.rand(32, dtype=torch.float64)
    out = {}
    for dev in ("cpu", "cuda"):
        head = build_head(name, 8).double().to(dev)
        head.load_state_dict(ref.state_dict())
        zz = z.detach().clone().to(dev).requires_grad_(True)  # a leaf on each device
        pred = head(zz, zz, y.to(dev), exclude_self=True)
        pred.sum().backward()
        out[dev] = (pred.detach().cpu(), zz.grad.cpu())
    for a, b in zip(out["cpu"], out["cuda"]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["nca", "nca_i", "diffknn_i"])
def test_predict_with_auto_max_elements_equals_dense_on_cuda(name):
    torch.manual_seed(0)
    head = build_head(name, 16).cuda().eval()
    zr, yr, zq = (
        torch.randn(20_000, 16, device="cuda"),
        torch.rand(20_000, device="cuda"),
        torch.randn(300, 16, device="cuda"),
    )
    with torch.no_grad():
        torch.testing.assert_close(
            head.predict(zq, zr, yr, max_elements=D.resolve_max_elements("auto", "cuda", head)),
            head(zq, zr, yr),
            rtol=1e-4,
            atol=1e-5,
        )
    assert D.resolve_max_elements("auto", "cuda") >= 2**22


def test_torchsort_cuda_ranks_equal_cpu_ranks():
    torchsort = pytest.importorskip("torchsort")
    x = torch.randn(4, 50, dtype=torch.float64)
    torch.testing.assert_close(
        torchsort.soft_rank(x.cuda(), regularization_strength=0.1).cpu(),
        torchsort.soft_rank(x, regularization_strength=0.1),
    )


@pytest.mark.parametrize("kernel", ["torchsort", "triton"])
@pytest.mark.parametrize("rows", [32, 1024])
def test_column_major_soft_rank_on_cuda_equals_torchsort_on_the_cpu(rows, kernel, monkeypatch):
    """softstep.ranks feeds torchsort's CUDA kernels column-major buffers, or runs softstep.isotonic's Triton kernel
    (``ISOTONIC["cuda"] = "triton"``): values and gradients unchanged."""
    torchsort = pytest.importorskip("torchsort")
    from softstep import ranks as R
    from softstep.ranks import soft_rank

    if kernel == "triton":
        pytest.importorskip("triton")
        monkeypatch.setitem(R.ISOTONIC, "cuda", "triton")
    torch.manual_seed(0)
    x, cot = torch.randn(rows, 1024, dtype=torch.float64) * 100, torch.randn(rows, 1024, dtype=torch.float64)
    ref, mine = x.clone().requires_grad_(True), x.cuda().requires_grad_(True)
    r_ref, r = torchsort.soft_rank(ref, regularization_strength=0.1), soft_rank(mine, 0.1)
    (r_ref * cot).sum().backward()
    (r * cot.cuda()).sum().backward()
    torch.testing.assert_close(r.detach().cpu(), r_ref.detach(), rtol=0, atol=1e-9)
    torch.testing.assert_close(mine.grad.cpu(), ref.grad, rtol=0, atol=1e-9)


@pytest.mark.parametrize("precision,compile", [("32", False), ("bf16", False), ("32", True)])
def test_fit_on_cuda_with_each_precision_and_compile(precision, compile):
    class Ext(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.dtypes = torch.nn.Linear(6, 12), set()

        def forward(self, x):
            out = self.lin(x)
            self.dtypes.add(out.dtype)
            return out

    torch.manual_seed(0)
    ext = Ext()
    model = Regressor(12, 32, 8, build_head("diffknn_i", 8), ext)
    x = torch.randn(60, 6)
    res = fit(
        model,
        Inputs(features=x),
        np.random.rand(60),
        np.arange(40),
        np.arange(40, 50),
        np.arange(50, 60),
        TrainerSettings(
            max_epochs=2, patience=5, batch_size=16, lr=1e-2, device="cuda", precision=precision, compile=compile
        ),
        seed=0,
    )
    assert np.isfinite(res.test_mse) and res.runtime["device"] == "cuda" and res.runtime["gpu"]
    assert ext.dtypes == ({torch.bfloat16} if precision == "bf16" else {torch.float32})


def test_cached_batches_read_ahead_on_cuda_equal_the_cpus(tmp_path):
    """The decoded-sample cache on CUDA (collated and pinned one batch ahead by a background thread) gives the
    CPU's batches, in order."""
    from data.base import RegressionData
    from data.media import ImageFile, ImageTransform
    from experiments.inputs import batches as I
    from tests.fixtures_data import write_image

    for i in range(9):
        write_image(tmp_path / f"{i}.png", size=(24, 20), salt=i)
    t = ImageTransform(mode="RGB", size=16)
    data = RegressionData(
        "imgs",
        "image",
        [str(tmp_path / f"{i}.png") for i in range(9)],
        np.arange(9.0),
        load=ImageFile(t),
        preprocessing=t.describe(),
    )
    inputs = Inputs(data=data, cache=I.DecodedCache(tmp_path / "cache", data, shard_size=4).build())
    order = [8, 1, 5, 0, 3, 2, 7]
    gpu, cpu = list(inputs.batches(order, 2, "cuda")), list(inputs.batches(order, 2, "cpu"))
    assert len(gpu) == 4 and all(g.is_cuda for g in gpu)
    torch.testing.assert_close(torch.cat(gpu).cpu(), torch.cat(cpu))


@pytest.mark.parametrize("rows,n", [(1024, 1024), (64, 5000), (3, 1)])
def test_triton_isotonic_kernel_equals_torchsorts_on_cuda(rows, n):
    """softstep.isotonic (each row's pooling in parallel rounds) against torchsort's serial CUDA kernel, on the
    rows soft_rank passes (sorted values less a ramp, with ties) and on unsorted ones."""
    pytest.importorskip("triton")
    from torchsort.ops import isotonic_l2

    from softstep.isotonic import isotonic_rows

    torch.manual_seed(1)
    s, _ = torch.sort(torch.randn(rows, n, dtype=torch.float64, device="cuda") * 30, dim=1, descending=True)
    ramp = torch.arange(n, 0, -1, dtype=torch.float64, device="cuda")
    for y in (s - ramp, torch.round(s) - ramp, torch.randn(rows, n, dtype=torch.float64, device="cuda")):
        want = isotonic_l2["cuda"](y.clone())
        torch.testing.assert_close(isotonic_rows(y), want, rtol=0, atol=1e-9 * max(1.0, float(y.abs().max())))
