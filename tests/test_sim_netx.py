"""Our engine on the netx networks and ground truths shipped inside the lava-dl 0.6.0 wheel
(tests/lava/lib/dl/netx in site-packages; see neurodeploy.sim.netx.netx_test_dir)."""
import os

import numpy as np
import pytest

from neurodeploy.errors import BadInputError, UnsupportedError
from neurodeploy.sim import simulate
from neurodeploy.sim.netx import netx_test_dir, netx_weight_bits, read_netx


@pytest.fixture(scope="module")
def root():
    return netx_test_dir()


def test_tinynet_output_and_input_layer_exact(root):
    """lava-dl's test_tinynet: output spikes == gts/tinynet/output (offset 2) with a per-layer reset."""
    net = read_netx(os.path.join(root, "tiny.net"))
    layers = [p for p in net.populations if p.kind != "input"]
    assert [p.name for p in layers] == ["layer0", "layer1", "layer2"]
    # lava-dl resets layer i with io.reset.Reset(interval 17, offset i - 1) in post-management of step t
    # when (t - 1) % 17 == i - 1, i.e. before the dynamics of step t' with t' % 17 == i + 1 (layer 0 never)
    for i, p in enumerate(layers[1:], start=1):
        p.reset_interval, p.reset_offset = 17, (i + 1) % 17
    bias = np.load(os.path.join(root, "gts/tinynet/input_bias.npy")).transpose(2, 1, 0)[None]   # WHC -> CHW
    r = simulate(net, {"input": bias}, 17 + 3, record="all")
    out = r["layer2"]["s"][:, 0]
    gt = np.load(os.path.join(root, "gts/tinynet/output.npy"))[0].reshape(36, 16)[:, 1:]
    assert gt.sum() == 92
    assert np.array_equal(out[2:17].T, gt)
    gt_in = np.load(os.path.join(root, "gts/tinynet/input.npy"))[0].reshape(3 * 16 * 16, 16)[:, 1:]
    assert np.array_equal(r["layer0"]["s"][:15, 0].T, gt_in) and gt_in.sum() == 6783


def _hw(root, name, key):
    g = np.load(os.path.join(root, "gts/pilotnet_lif", name + key + ".npy"))
    if g.ndim == 4:
        g = g.transpose(2, 1, 0, 3)          # (W, H, C, T) -> (C, H, W, T)
    return g.reshape(-1, g.shape[-1]).astype(np.int64)


def test_pilotnet_lif_equals_loihi2_hardware_recording(root):
    """Loihi 2 hardware captures: image as input bias, reset_interval 16.  For the 16 steps of the first
    reset window every conv and fc layer's u and spikes are equal, and v wherever the neuron did not spike
    (the hardware reports v = 128 for a neuron in the step it spikes; Lava and we report the reset 0).
    The last (integrator) layer, a float capture of 25 steps, agrees at step 15 as in lava_loihi.md 3.6."""
    net = read_netx(os.path.join(root, "gts/pilotnet_lif/network.net"), reset_interval=16)
    img = np.load(os.path.join(root, "gts/pilotnet_lif/image.npy")).transpose(2, 1, 0)[None]
    T = 16
    r = simulate(net, {"input": img}, T, record="all")
    pairs = [("layer1", "conv-0"), ("layer2", "conv-1"), ("layer3", "conv-2"), ("layer4", "conv-3"),
             ("layer5", "conv-4"), ("layer7", "fc-0"), ("layer8", "fc-1"), ("layer9", "fc-2")]
    n_spikes = 0
    for ours, gt in pairs:
        s, u, v = (r[ours][k][:, 0].T for k in "suv")
        gs, gu, gv = _hw(root, gt, "")[:, :T], _hw(root, gt, "-u")[:, :T], _hw(root, gt, "-v")[:, :T]
        assert np.array_equal(u, gu), gt
        assert np.array_equal(s, gs), gt
        assert np.array_equal(np.where(s == 1, 0, v), np.where(gs == 1, 0, gv)), gt
        assert np.all(gv[gs == 1] == 128)
        n_spikes += int(gs.sum())
    assert n_spikes == 190766
    fu = _hw(root, "fc-3", "-u")
    assert r["layer10"]["u"][14, 0, 0] == fu[0, 14]
    assert (r["layer10"]["u"][:T, 0, 0] == fu[0, :T]).sum() == 14


def test_ntidigits_delays_full_output(root):
    """Per-output axonal delays up to 62: all 3000 steps of all 242 outputs equal the ground truth
    (one step of offset); lava-dl's own test checks output[:, -1] == gt[:, 1]."""
    net = read_netx(os.path.join(root, "gts/ntidigits/ntidigits.net"), num_layers=5)
    assert sum(s.delays is not None for s in net.synapses) == 2
    x = np.load(os.path.join(root, "gts/ntidigits/input.npy"))
    gt = np.load(os.path.join(root, "gts/ntidigits/output.npy")).astype(np.int64)
    out = simulate(net, {"input": x.T[:, None, :]}, x.shape[1], record=net.outputs)["layer4"]["s"][:, 0].T
    assert np.array_equal(out[:, -1], gt[:, 1])
    assert np.array_equal(out[:, :-1], gt[:, 1:]) and gt.sum() == 22572


def test_mnist_structure_and_weight_bits(root):
    net = read_netx(os.path.join(root, "mnist.net"))
    assert [(p.name, p.kind, p.size) for p in net.populations] == [
        ("input", "input", 784), ("layer0", "lif", 784), ("layer1", "lif", 512), ("layer2", "lif", 512),
        ("layer3", "readout", 10)]
    assert net.pop("layer1").dv == 123 and net.pop("layer1").vth == 80 and net.pop("layer1").du == 4095
    ro = net.pop("layer3")
    assert (ro.du, ro.dv, ro.vth) == (-1, 4096, 1 << 17)
    # netx weight-bit optimisation: scale min(127/52, 128/58) -> 1 + sign bit = 2 scale bits; all even -> 6 bits
    w, nwb, wexp = netx_weight_bits(np.array([[-58, 52], [4, 2]]))
    assert (nwb, wexp) == (6, -2) and w.tolist() == [[-232, 208], [16, 8]]


def test_unsupported_layers_are_named(root, tmp_path):
    with pytest.raises(UnsupportedError, match="layer 5 .*average"):
        read_netx(os.path.join(root, "gts/ntidigits/ntidigits.net"))
    bad = tmp_path / "x.net"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(BadInputError, match="x.net"):
        read_netx(str(bad))
