"""The engine's native C kernels (``neurodeploy.sim.native``): the fused LIF step that lists its spikes and
the conv / dense sums over the listed inputs (spikes, or silent inputs taken from the all-ones sum) give
the integers of the torch / numpy ops (``Engine(native=False)``) and of the int64 reference update, and are
really taken; without a compiler the engine falls back to the same integers."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import testnets
from simresults import as_numpy as _np, assert_same as _same
from neurodeploy.lower import LoweredNetwork, Population, Synapse
from neurodeploy.sim import Engine, groups, native


def conv_chain(seed: int = 7, bias_hi: int = 90) -> LoweredNetwork:
    """Spikes -> conv (stride 2, padding 1) -> conv (stride (2, 1), 3x2 kernel) -> conv 1x1 (dilated
    3x3 too) -> dense readout, channel counts that are no multiple of the vector width; ``bias_hi`` large
    makes layer 'a' spike at high rates (its sums then take the silent inputs from the all-ones sum)."""
    rng = np.random.default_rng(seed)
    return LoweredNetwork(
        populations=[Population("in", (3, 9, 11), kind="input", input_kind="spikes"),
                     Population("a", (5, 5, 6), du=4095, dv=1024, vth=9,
                                bias_mant=rng.integers(-90, bias_hi, (5, 5, 6)), bias_exp=2),
                     Population("b", (17, 3, 5), du=3000, dv=0, vth=7),
                     Population("c", (4, 3, 5), du=4095, dv=4096, vth=3),
                     Population("d", (6, 3, 5), du=4095, dv=2048, vth=2),
                     Population("ro", (3,), kind="readout", du=4095, dv=0, vth=(1 << 17) - 1)],
        synapses=[Synapse("s1", "in", "a", "conv", rng.integers(-60, 80, (5, 3, 3, 3)), stride=(2, 2), padding=(1, 1)),
                  Synapse("s2", "a", "b", "conv", rng.integers(-60, 80, (17, 5, 3, 2)), stride=(2, 1), padding=(1, 0)),
                  Synapse("s3", "b", "c", "conv", rng.integers(-30, 80, (4, 17, 1, 1))),
                  Synapse("s6", "b", "d", "conv", rng.integers(-30, 60, (6, 17, 3, 3)), padding=(2, 2), dilation=(2, 2)),
                  Synapse("s4", "c", "ro", "dense", rng.integers(-128, 127, (3, 60)) * 2, weight_exp=-1),
                  Synapse("s5", "a", "ro", "dense", rng.integers(-128, 127, (3, 150)), balance_delay=2),
                  Synapse("s7", "d", "ro", "dense", rng.integers(-128, 127, (3, 90)))],
        outputs=["ro"])


def _count_native(monkeypatch):
    """Counts the native sums taken, and those of rows that listed their silent inputs."""
    seen = {"sums": 0, "silent_rows": 0, "listed": 0}
    real = groups.NativeSum.__call__

    def counted(self, k):
        done = real(self, k)
        if done:
            m = self.src
            seen["sums"] += 1
            seen["listed"] += int(m.cnt[m.B])
            seen["silent_rows"] += int((2 * m.cnt[:m.B] > self.part.n_in).sum())
        return done
    monkeypatch.setattr(groups.NativeSum, "__call__", counted)
    return seen


NETS = [testnets.conv_dense_net, testnets.residual_attention_net, testnets.extremes_net, conv_chain,
        lambda: conv_chain(bias_hi=400)]


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("make", NETS)
def test_native_equals_torch_ops_and_reference(monkeypatch, make, batch):
    assert native.lib() is not None, "the native kernels did not build here (C compiler?)"
    net = make()
    T = 12
    x = testnets.random_inputs(net, T, batch=batch, seed=3, rate=0.5)
    ops = _np(Engine(net, native=False).run(x, T, record="all"))
    monkeypatch.setattr(groups, "NATIVE_EVENT_COST", 0.0)         # every native sum is taken
    seen = _count_native(monkeypatch)
    eng = Engine(net)
    got = _np(eng.run(x, T, record="all"))
    _same(got, ops)
    ref = Engine(net, native=False)
    ref.safe = {n: False for n in ref.safe}                      # int64 reference update everywhere
    _same(got, _np(ref.run(x, T, record="all")))
    if make in (conv_chain, testnets.conv_dense_net):
        assert seen["sums"] > 0                                  # the native sums really ran


def test_both_lists_and_the_rule_give_the_same_integers(monkeypatch):
    """High spike rates make rows list their silent inputs; a prohibitive cost makes every group take the
    dense product (but for sums with nothing listed): the same integers."""
    net = conv_chain(bias_hi=400)
    T = 14
    x = testnets.random_inputs(net, T, batch=4, seed=9, rate=0.7)
    monkeypatch.setattr(groups, "NATIVE_EVENT_COST", 0.0)
    seen = _count_native(monkeypatch)
    always = _np(Engine(net).run(x, T, record="all"))
    assert seen["sums"] > 20 and seen["silent_rows"] > 0
    monkeypatch.setattr(groups, "NATIVE_EVENT_COST", 1e12)
    seen["listed"] = 0
    never = _np(Engine(net).run(x, T, record="all"))
    assert seen["listed"] == 0          # only rows with nothing listed (all spiked: the all-ones sum) remain
    _same(always, never)
    assert sum(int(always[n]["s"].sum()) for n in always) > 100


def test_native_streamed_samples_equal_torch_ops(monkeypatch):
    net = conv_chain()
    T = 6
    batches = [testnets.random_inputs(net, T, batch=b, seed=20 + b, rate=0.5) for b in (2, 2, 1)]
    monkeypatch.setattr(groups, "NATIVE_EVENT_COST", 0.0)
    _same(_np(Engine(net).run_stream(batches, T, record="all")),
          _np(Engine(net, native=False).run_stream(batches, T, record="all")))


@pytest.fixture(scope="module")
def portable_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("native-portable")


@pytest.fixture(params=["native", "no-avx512"])
def kernels(request, monkeypatch, portable_cache):
    """The native library as built here, and built without AVX-512 (native.c's portable loops; built once
    into a cache of this module's)."""
    if request.param == "no-avx512":
        monkeypatch.setenv("NEURODEPLOY_CACHE", str(portable_cache))
        monkeypatch.setattr(native, "FLAGS", native.FLAGS + ["-mno-avx512f"])
        monkeypatch.setattr(native, "_LIB", None)
        monkeypatch.setattr(native, "_TRIED", False)
    lib = native.lib()
    assert lib is not None, "the native kernels did not build here (C compiler?)"
    return lib


def _lists(lib, x):
    """nd_lif_f32's lists of 0/1 rows x [B, n] (v = 0, no decay, slot = x: spikes exactly where x = 1)."""
    B, n = x.shape
    v, s = torch.zeros(B, n), torch.empty(B, n)
    idx, cnt = np.empty(B * n, np.int32), np.zeros(B + 1, np.int32)
    slot = torch.as_tensor(x)
    nev = lib.nd_lif_f32(v.data_ptr(), 0, slot.data_ptr(), 0, 1, B, n, 0.0, 0.0, 32.0, 0, float((1 << 23) - 1),
                         s.data_ptr(), 0, idx.ctypes.data, cnt.ctypes.data)
    assert nev == int(x.sum()) and torch.equal(s, slot)
    assert cnt[B] == sum(min(c, n - c) for c in cnt[:B]) and (2 * cnt[:B] > n).any()
    return idx, cnt


def _start(B, n_out, init, rng):
    """The output buffer and what it holds before the sum: garbage (init: the kernel writes it) or integers
    already there (added to)."""
    if init:
        return torch.full((B, n_out), float("nan")), torch.zeros(B, n_out)
    y0 = torch.as_tensor(rng.integers(-1000, 1000, (B, n_out)).astype(np.float32))
    return y0.clone(), y0


@pytest.mark.parametrize("Co", [19, 8, 36, 150])
@pytest.mark.parametrize("stride,padding,dilation,k", [((1, 1), (0, 0), (1, 1), (3, 3)), ((2, 2), (1, 1), (1, 1), (3, 3)),
                                                       ((2, 1), (1, 0), (1, 1), (3, 2)), ((1, 2), (2, 1), (2, 1), (2, 3))])
def test_conv_kernel_equals_conv2d(kernels, stride, padding, dilation, k, Co):
    """nd_lif_f32's lists drive nd_conv_events_f32 to F.conv2d's integers (channels-last), at low and high
    rates (rows listing spikes and rows listing silent inputs), for output channels below 16 (masked
    vector), with a tail vector (19, 36) and beyond one block of registers (150); into a new buffer and
    added to one holding integers."""
    lib = kernels
    rng = np.random.default_rng(Co)
    B, C, H, W = 3, 7, 9, 8
    w = rng.integers(-128, 128, (Co, C) + k).astype(np.float32)
    x = (rng.random((B, H, W, C)) < np.array([0.1, 0.5, 0.9])[:, None, None, None]).astype(np.float32)
    ref = F.conv2d(torch.as_tensor(x).permute(0, 3, 1, 2), torch.as_tensor(w), stride=stride, padding=padding,
                   dilation=dilation)
    Ho, Wo = ref.shape[2:]
    ref = ref.permute(0, 2, 3, 1).reshape(B, -1)
    n = H * W * C
    idx, cnt = _lists(lib, x.reshape(B, n))
    tables = groups._conv_tables(C, H, W, Co, k[0], k[1], Ho, Wo, stride, padding, dilation)
    ones = F.conv2d(torch.ones(1, C, H, W), torch.as_tensor(w), stride=stride, padding=padding,
                    dilation=dilation)[0].permute(1, 2, 0).reshape(-1).contiguous()
    wt = groups.conv_rows(w)
    assert wt.shape == (C * k[0] * k[1], groups.row_ld(Co))
    pos, tstart, tout, tw = tables
    for init in (0, 1):
        y, y0 = _start(B, Ho * Wo * Co, init, rng)
        lib.nd_conv_events_f32(y.data_ptr(), wt.data_ptr(), ones.data_ptr(), idx.ctypes.data, cnt.ctypes.data, B,
                               n, Ho * Wo * Co, C, k[0] * k[1] * groups.row_ld(Co), pos.ctypes.data,
                               tstart.ctypes.data, tout.ctypes.data, tw.ctypes.data, Co, init)
        assert torch.equal(y, y0 + ref), init


@pytest.mark.parametrize("n_out", [3, 16, 36, 100, 300])
@pytest.mark.parametrize("e", [0, -3, 2])
def test_dense_kernel_equals_numpy(kernels, n_out, e):
    """nd_rows_events_f32 (listed spikes, or silent inputs taken from the all-ones sum; whole vectors,
    tail vector, several register blocks; the weight exponent as floor(sum * 2**e)) gives numpy's integers,
    into a new buffer and added to one holding integers."""
    lib = kernels
    rng = np.random.default_rng(n_out - e)
    B, n_in = 3, 45
    w = rng.integers(-128, 128, (n_in, n_out)).astype(np.float64)
    x = (rng.random((B, n_in)) < np.array([0.1, 0.5, 0.9])[:, None]).astype(np.float32)
    ref = torch.as_tensor(np.floor((x.astype(np.float64) @ w) * 2.0 ** e).astype(np.float32))
    idx, cnt = _lists(lib, x)
    wt = groups.row_layout(w)
    assert wt.shape == (n_in, groups.row_ld(n_out))
    ones = torch.as_tensor(w.sum(0), dtype=torch.float32)
    tmp = torch.empty(n_out)
    for init in (0, 1):
        y, y0 = _start(B, n_out, init, rng)
        lib.nd_rows_events_f32(y.data_ptr(), wt.data_ptr(), ones.data_ptr(), idx.ctypes.data, cnt.ctypes.data, B,
                               n_in, n_out, init, 2.0 ** e, tmp.data_ptr())
        assert torch.equal(y, y0 + ref), init


def test_without_a_compiler_the_same_integers(monkeypatch):
    net = conv_chain()
    T = 8
    x = testnets.random_inputs(net, T, batch=2, seed=4, rate=0.5)
    monkeypatch.setattr(groups, "NATIVE_EVENT_COST", 0.0)
    got = _np(Engine(net).run(x, T, record="all"))
    monkeypatch.setattr(native, "_LIB", None)
    monkeypatch.setattr(native, "_TRIED", True)
    seen = _count_native(monkeypatch)
    _same(got, _np(Engine(net).run(x, T, record="all")))
    assert seen["sums"] == 0


def test_build_failure_is_a_warning_not_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("NEURODEPLOY_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setattr(native, "_LIB", None)
    monkeypatch.setattr(native, "_TRIED", False)
    with pytest.warns(UserWarning, match="native kernels not built"):
        assert native.lib() is None
