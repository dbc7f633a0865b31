"""The input pipeline and the device knobs: decoded-sample cache (decode once, shared, atomic), one DataLoader
per Inputs, image decode/finish, trainer.precision / compile / max_elements / num_workers."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pandas as pd
import pytest
import torch

from data.base import RegressionData
from data.media import ImageFile, ImageTransform
from experiments.inputs import batches as I
from experiments.inputs.batches import Inputs
from experiments.protocol import device as D
from experiments.protocol import pipeline
from experiments.protocol.compose import compose
from experiments.store.results import read_results
from softstep import HEADS, build_head
from softstep.model import Regressor
from softstep.training import fit
from softstep.training_types import TrainerSettings
from tests.fixtures_data import write_image


def image_folder(root, n=40):
    for i in range(n):
        write_image(root / f"{i}.png", size=(48, 40), salt=i)
    pd.DataFrame({"file": [f"{i}.png" for i in range(n)], "target": np.arange(n, dtype=float)}).to_csv(
        root / "labels.csv", index=False
    )


class Counted:
    """A picklable loader that counts its calls in this process."""

    calls = 0

    def __call__(self, item):
        Counted.calls += 1
        time.sleep(0.002)
        return torch.full((3,), float(item))


def counted_data(n=40):
    Counted.calls = 0
    return RegressionData(
        "counted", "table", list(range(n)), np.arange(n, dtype=float), load=Counted(), preprocessing="p"
    )


# ---------------------------------------------------------------- decode once
@pytest.mark.slow
def test_fine_tuned_image_run_decodes_each_file_once(tmp_path, monkeypatch):
    """40 files, 2 splits x 3 epochs (training, validation, test and reruns): 40 decodes, then none."""
    image_folder(tmp_path / "imgs")
    calls = []
    orig = ImageFile.decode
    monkeypatch.setattr(ImageFile, "decode", lambda self, path: calls.append(path) or orig(self, path))
    overrides = [
        "dataset=image_folder",
        f"dataset.loader.root={tmp_path / 'imgs'}",
        "dataset.loader.size=32",
        "extractor=resnet18",
        "extractor.builder.source=random",
        "extractor.finetune=true",
        "head=nca",
        "splits=[0,1]",
        "trainer.max_epochs=3",
        "trainer.patience=5",
        "trainer.batch_size=8",
        "trainer.num_workers=0",
        f"paths.results_root={tmp_path / 'results'}",
        "progress=false",
    ]
    pipeline.run(compose(overrides))
    assert len(calls) == 40 and len(set(calls)) == 40
    pipeline.run(compose(overrides + ["force=true", "head=nca_i"]))  # a rerun and another head: nothing decoded
    assert len(calls) == 40
    results = read_results(tmp_path / "results")
    assert len(results) == 4 and all(len(r["history"]) == 3 for r in results)
    assert all(r["runtime"]["precision"] == "32" and r["runtime"]["compile"] is False for r in results)
    assert all(e["epoch_time_s"] > 0 for r in results for e in r["history"])
    shards = list((tmp_path / "results" / "cache" / "decoded").glob("*/shard_*.pt"))
    assert shards and not list((tmp_path / "results" / "cache" / "decoded").glob("*/*.lock"))
    # without the cache every batch decodes again: the same run decodes each file once per epoch and split
    calls.clear()
    pipeline.run(compose(overrides + ["force=true", "trainer.decoded_cache=false"]))
    assert len(calls) > 40 * 2 * 3


def test_cached_items_equal_decoded_items(tmp_path):
    image_folder(tmp_path, n=6)
    t = ImageTransform(mode="L", size=16, mean=(0.5,), std=(0.5,))
    data = RegressionData(
        "imgs",
        "image",
        [str(tmp_path / f"{i}.png") for i in range(6)],
        np.arange(6.0),
        load=ImageFile(t),
        preprocessing=t.describe(),
    )
    cache = I.DecodedCache(tmp_path / "cache", data, shard_size=4).build()
    assert cache.decodes == 6 and cache.get(5).dtype == torch.uint8
    inputs = Inputs(data=data, cache=cache)
    got = torch.cat(list(inputs.batches([5, 0, 3], 2, "cpu")))
    want = torch.stack([data.load(data.items[i]) for i in (5, 0, 3)])
    torch.testing.assert_close(got, want)
    again = I.DecodedCache(tmp_path / "cache", data, shard_size=4).build()  # a rerun reads, decodes nothing
    assert again.decodes == 0 and torch.equal(again.get(5), cache.get(5))


def test_a_changed_preprocessing_or_item_list_is_a_new_cache():
    a = counted_data()
    b = RegressionData("counted", "table", a.items, a.labels, load=a.load, preprocessing="other")
    c = RegressionData("counted", "table", list(range(1, 41)), a.labels, load=a.load, preprocessing="p")
    assert len({I.DecodedCache.key(d) for d in (a, b, c)}) == 3


def test_jobs_sharing_a_cache_decode_each_item_once(tmp_path):
    """Two builders at once (as two jobs would): each shard is claimed by one, the other waits for it."""
    data = counted_data(40)
    caches = [I.DecodedCache(tmp_path, data, shard_size=4, poll_s=0.01) for _ in range(2)]
    threads = [threading.Thread(target=c.build) for c in caches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert Counted.calls == 40 and sum(c.decodes for c in caches) == 40
    assert all(torch.equal(c.get(i), torch.full((3,), float(i))) for c in caches for i in range(40))
    assert not list(tmp_path.glob("*/*.lock")) and not list(tmp_path.glob("*/.*.tmp"))


def test_a_dead_jobs_lock_is_taken_over(tmp_path):
    data = counted_data(8)
    cache = I.DecodedCache(tmp_path, data, shard_size=4)
    cache.dir.mkdir(parents=True)
    import socket
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (cache.dir / "shard_00000.lock").write_text(f"{socket.gethostname()} {dead.stdout.strip()}\n")
    cache.build()
    assert cache.complete() and cache.decodes == 8


def test_one_dataloader_serves_every_epoch(tmp_path):
    data = counted_data(20)
    inputs = Inputs(data=data, num_workers=0)
    first = torch.cat(list(inputs.batches(np.arange(20)[::-1], 6, "cpu")))
    loader = inputs._loader
    second = torch.cat(list(inputs.batches(np.arange(5), 2, "cpu")))
    assert inputs._loader is loader
    torch.testing.assert_close(first[:, 0], torch.arange(19, -1, -1, dtype=torch.float32))
    torch.testing.assert_close(second[:, 0], torch.arange(5, dtype=torch.float32))


def test_read_ahead_keeps_the_order_and_reads_in_one_background_thread():
    """The decoded-sample cache's batches on CUDA: collated ahead by one other thread, yielded in order; an error
    there reaches the training loop."""
    seen = []

    def make(c):
        seen.append(threading.current_thread().name)
        time.sleep(0.01 * (c % 3))  # uneven reads must not reorder the batches
        return c * 10

    assert list(I._read_ahead(make, list(range(7)), depth=2)) == [c * 10 for c in range(7)]
    assert len(seen) == 7 and all(name.startswith("read-ahead") for name in seen)
    assert list(I._read_ahead(make, [4], depth=2)) == [40]

    def broken(c):
        if c == 3:
            raise OSError("shard_0.pt is truncated")
        return c

    with pytest.raises(OSError, match="truncated"):
        list(I._read_ahead(broken, list(range(6))))


@pytest.mark.slow
def test_persistent_workers_give_the_same_batches():
    data = counted_data(30)
    a = Inputs(data=data, num_workers=2)
    b = Inputs(data=data, num_workers=0)
    for order in (np.arange(30), np.random.default_rng(0).permutation(30)):
        torch.testing.assert_close(
            torch.cat(list(a.batches(order, 7, "cpu"))), torch.cat(list(b.batches(order, 7, "cpu")))
        )


def test_image_finish_on_a_batch_equals_the_loader(tmp_path):
    image_folder(tmp_path, n=3)
    for t in (ImageTransform(mode="RGB", size=20, crop=16), ImageTransform(mode="L", size=16, mean=0.5, std=0.5)):
        f = ImageFile(t)
        paths = [tmp_path / f"{i}.png" for i in range(3)]
        batch = t.finish(torch.stack([f.decode(p) for p in paths]))
        torch.testing.assert_close(batch, torch.stack([f(p) for p in paths]))


# ---------------------------------------------------------------- knobs
def test_num_workers_auto(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")
    assert I.resolve_num_workers("auto") == 5
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    monkeypatch.delenv("SLURM_CPUS_ON_NODE", raising=False)
    assert I.resolve_num_workers("auto") == max(len(os.sched_getaffinity(0)) - 1, 0)
    assert I.resolve_num_workers(3) == 3
    with pytest.raises(ValueError, match="num_workers"):
        I.resolve_num_workers(-1)


def test_max_elements_auto_is_sized_from_the_device(monkeypatch):
    assert D.resolve_max_elements("auto", "cpu") == 2**22
    assert D.resolve_max_elements(1000, "cuda") == 1000
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (78 * 2**30, 80 * 2**30))
    assert D.resolve_max_elements("auto", "cuda") == 2**26  # capped: blocks of at most 2 GiB at 32 B per entry
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2 * 2**30, 80 * 2**30))
    assert D.resolve_max_elements("auto", "cuda") == 2**23  # 1/8 of 2 GiB free at 32 B per entry
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (78 * 2**30, 80 * 2**30))
    sizes = {name: D.resolve_max_elements("auto", "cuda", build_head(name, 8)) for name in HEADS}
    assert sizes["nca"] == 2**27 and sizes["linear"] == sizes["nca_i"] == 2**26  # plain NCA: 16 B, the others 32
    assert sizes["diffknn_i"] == sizes["diffknn_g"] == 2**25  # 33 B: 2²⁶ entries measured 2,050 MiB, over 2 GiB


def test_precision_and_compile_resolve():
    assert D.resolve_precision("auto", "cuda") == D.resolve_precision(32, "cpu") == "32"
    assert D.resolve_precision("bf16", "cuda") == "bf16"
    assert D.resolve_compile("auto", "cuda") is False and D.resolve_compile(True, "cpu") is True


class TinyExtractor(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 8)
        self.seen = []

    def forward(self, x):
        out = self.lin(x)
        self.seen.append(out.dtype)
        return out


def test_bf16_autocasts_the_extractor_only():
    torch.manual_seed(0)
    ext = TinyExtractor()
    head = build_head("nca_i", 5)
    dtypes = []
    head.register_forward_pre_hook(lambda m, args: dtypes.append(args[0].dtype))
    model = Regressor(8, 16, 5, head, ext)
    x = torch.randn(24, 4)
    res = fit(
        model,
        Inputs(features=x),
        np.random.rand(24),
        np.arange(16),
        np.arange(16, 20),
        np.arange(20, 24),
        TrainerSettings(max_epochs=2, patience=5, batch_size=8, lr=1e-2, precision="bf16"),
        seed=0,
    )
    assert set(ext.seen) == {torch.bfloat16} and set(dtypes) == {torch.float32}
    assert res.runtime["precision"] == "bf16" and np.isfinite(res.test_mse)


def test_the_fused_adam_fit_uses_on_cuda_is_the_same_update_as_foreach():
    """fit's optimiser on CUDA is fused Adam (one kernel per group); with the trainer's groups (two learning
    rates) and weight decay it takes the same steps as the foreach Adam the CPU keeps. Fused Adam also runs on
    a CPU, which lets this check run here."""
    from softstep.training import adam_kernels

    assert adam_kernels("cuda") == {"fused": True} and adam_kernels("cpu") == {"foreach": True}
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    b, start = __import__("copy").deepcopy(a), a[0].weight.detach().clone()
    opts = [
        torch.optim.Adam(
            [{"params": m[0].parameters(), "lr": 1e-2}, {"params": m[2].parameters(), "lr": 1e-3}],
            weight_decay=1e-3,
            **kw,
        )
        for m, kw in ((a, adam_kernels("cuda")), (b, adam_kernels("cpu")))
    ]
    x, y = torch.randn(32, 6), torch.randn(32, 1)
    for _ in range(5):
        for m, opt in zip((a, b), opts):
            opt.zero_grad()
            torch.mean((m(x) - y) ** 2).backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert (a[0].weight - start).abs().max() > 1e-3  # the steps moved the weights


def test_compile_wraps_the_training_step(monkeypatch):
    compiled = []

    def fake_compile(fn, **kw):  # inductor takes minutes on a shared CPU; check the wiring with the eager backend
        compiled.append(fn)
        return torch._dynamo.optimize("eager")(fn) if hasattr(torch, "_dynamo") else fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    torch.manual_seed(0)
    x = torch.randn(30, 3)
    model = Regressor(3, 16, 5, build_head("nca", 5))
    res = fit(
        model,
        Inputs(features=x),
        np.random.rand(30),
        np.arange(20),
        np.arange(20, 25),
        np.arange(25, 30),
        TrainerSettings(max_epochs=2, patience=5, batch_size=8, lr=1e-2, compile=True),
        seed=0,
    )
    assert len(compiled) == 1 and res.runtime["compile"] is True and np.isfinite(res.val_mse)


def test_cache_builds_with_workers(tmp_path):
    """Workers decode whole shards; this process writes them (the decode count is the shards it wrote)."""
    data = counted_data(10)
    cache = I.DecodedCache(tmp_path, data, shard_size=3).build(num_workers=2)
    assert cache.complete() and cache.decodes == 10
    assert all(torch.equal(cache.get(i), torch.full((3,), float(i))) for i in range(10))


@pytest.mark.parametrize("family", ["distilbert", "bert"])
def test_memoised_tokens_equal_the_tokenizer_and_each_text_is_tokenised_once(family, monkeypatch):
    from extractors import text as T

    enc = T.hf_text(family, "random", max_length=12, seed=3)
    texts = ["a short one", "a much longer text that will be truncated at twelve tokens", "", "a short one"]
    want = enc.tokenizer(texts, padding=True, truncation=True, max_length=12, return_tensors="pt")
    monkeypatch.setattr(T, "_TOKENS", {})
    calls = []
    orig = type(enc.tokenizer).__call__
    monkeypatch.setattr(
        type(enc.tokenizer), "__call__", lambda self, x, **kw: calls.append(list(x)) or orig(self, x, **kw)
    )
    got = enc.encode(texts)
    assert torch.equal(got["input_ids"], want["input_ids"]) and torch.equal(
        got["attention_mask"], want["attention_mask"]
    )
    enc.eval()
    with torch.no_grad():
        hidden = enc.model(**{k: v for k, v in want.items()}).last_hidden_state
        mask = want["attention_mask"].unsqueeze(-1).float()
        torch.testing.assert_close(enc(texts), (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0))
    enc.encode(texts[::-1])  # later epochs: nothing tokenised again
    assert calls == [["a short one", "a much longer text that will be truncated at twelve tokens", ""]]
