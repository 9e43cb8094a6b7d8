"""Lava at full size (issue 11): conv groups run as Lava's own Conv process (fixed_pt), bit-exact with our
engine on random convs with stride, padding, groups, dilation, a reshaped source view, balance delays
(an identity DelaySparse in front of the Conv), a relay population (GradedVec) and sparse groups."""
import numpy as np
import pytest
import scipy.sparse as sp

from neurodeploy.lower.balance import balance_network
from neurodeploy.lower.fixed_point import EXCITATORY
from neurodeploy.lower.network import LoweredNetwork, Population, Synapse, conv_out_shape
from neurodeploy.sim import simulate



def _conv_net(seed=0):
    rng = np.random.default_rng(seed)
    net = LoweredNetwork()
    net.populations.append(Population("in", (4, 9, 9), kind="input", input_kind="spikes"))

    def lif(name, shape, **kw):
        net.populations.append(Population(name, shape, du=int(rng.integers(0, 4096)), dv=int(rng.integers(0, 4096)),
                                          vth=int(rng.integers(20, 60)), **kw))

    def conv(name, src, dst, cout, cin_g, k, **geo):
        w = rng.integers(-40, 41, (cout, cin_g) + k)
        s = Synapse(name, src, dst, "conv", w, **geo)
        net.synapses.append(s)
        return s

    geos = {
        "a": dict(cout=6, cin_g=2, k=(3, 3), stride=(2, 2), padding=(1, 1), groups=2),
        "b": dict(cout=4, cin_g=1, k=(3, 2), stride=(1, 2), padding=(2, 0), dilation=(2, 1), groups=4),
        "c": dict(cout=8, cin_g=4, k=(1, 1)),
        "d": dict(cout=3, cin_g=4, k=(2, 3), stride=(3, 1), padding=(1, 2), dilation=(1, 2)),
    }
    for name, geo in geos.items():
        s = Synapse("x", "in", name, "conv", np.zeros((geo["cout"], geo["cin_g"]) + geo["k"]),
                    **{k: v for k, v in geo.items() if k not in ("cout", "cin_g", "k")})
        lif(name, conv_out_shape((4, 9, 9), s))
        conv(f"in->{name}", "in", name, **geo)
    # a conv output (6, 5, 5) flattened into tokens (6, 1, 25); a conv that sees those tokens as (6, 5, 5)
    lif("tok", (6, 1, 25))
    conv("a->tok", "a", "tok", 6, 6, (3, 3), padding=(1, 1))
    lif("img", (6, 3, 3))
    conv("tok->img", "tok", "img", 6, 3, (3, 3), stride=(2, 2), padding=(1, 1), groups=2, src_view=(6, 5, 5))
    # shorter paths: the balancing gives these convs delays of 1 (tok->late), 2 and 3
    conv("in->img", "in", "img", 6, 4, (3, 3), stride=(3, 3))
    lif("late", (2, 3, 3))
    conv("img->late", "img", "late", 2, 6, (1, 1))
    conv("in->late", "in", "late", 2, 4, (3, 3), stride=(3, 3))
    conv("b->late", "b", "late", 2, 4, (3, 2), stride=(3, 1), padding=(1, 0))
    conv("tok->late", "tok", "late", 2, 6, (3, 3), stride=(2, 2), padding=(1, 1), src_view=(6, 5, 5))
    # a relay (graded spike counts per channel) into a readout-like LIF by a dense graded group, and a
    # sparse group
    net.populations.append(Population("cnt", (8,), kind="relay"))
    net.synapses.append(Synapse("c->cnt", "c", "cnt", "conv", np.ones((8, 1, 9, 9), dtype=np.int64), groups=8,
                                sign_mode=EXCITATORY))
    lif("head", (5,))
    net.synapses.append(Synapse("cnt->head", "cnt", "head", "dense", rng.integers(-9, 10, (5, 8)), graded=True))
    m = sp.random(7, net.pop("d").size, density=0.3, random_state=1, data_rvs=lambda n: rng.integers(-60, 61, n)).tocsr()
    lif("sp", (7,))
    net.synapses.append(Synapse("d->sp", "d", "sp", "sparse", m, weight_exp=1))
    net.outputs = ["late", "head"]
    balance_network(net, T=None)
    net.validate()
    return net


def test_conv_geometries_in_lava_equal_the_engine_bit_for_bit():
    from neurodeploy.lava.run import LavaNetwork
    net = _conv_net()
    delays = {s.name: s.balance_delay for s in net.synapses}
    assert (delays["tok->late"], delays["in->img"], delays["in->late"]) == (1, 2, 3)
    steps = 10
    x = (np.random.default_rng(3).random((steps, 1, 4, 9, 9)) < 0.4).astype(np.int64)
    ours = simulate(net, {"in": x}, steps, record="all")
    lnet = LavaNetwork(net, {"in": x}, steps, record="all")
    # every conv group is a Lava Conv (no dense or sparse matrix for a conv)
    from lava.proc.conv.process import Conv
    convs = [s.name for s in net.synapses if s.kind == "conv"]
    assert all(isinstance(lnet.procs[c], Conv) for c in convs)
    lava = lnet.run()
    spikes = 0
    for name, r in ours.items():
        for key, ref in r.items():
            assert np.array_equal(lava[name][key], ref), (name, key, np.argwhere(lava[name][key] != ref)[:3])
        if net.pop(name).kind == "lif":
            spikes += int(r["s"].sum())
    assert spikes > 200
    assert ours["cnt"]["s"].max() > 1                 # graded counts went through the relay


@pytest.mark.parametrize("cin_g,cout_g,groups", [(1, 1, 128), (1, 1, 256), (2, 2, 128), (1, 3, 131), (3, 1, 384)])
def test_merged_groups_compute_the_same_conv(cin_g, cout_g, groups):
    """Lava's Conv holds at most 127 groups (an int8 Var); the merged conv gives the same integers."""
    import torch
    import torch.nn.functional as F
    from neurodeploy.lower.fixed_point import lava_conv_groups
    rng = np.random.default_rng(groups)
    w = rng.integers(-128, 128, (cout_g * groups, cin_g, 3, 3))
    x = torch.as_tensor(rng.integers(0, 2, (1, cin_g * groups, 6, 6)), dtype=torch.float64)
    w2, g2 = lava_conv_groups(w, groups)
    assert g2 <= 127 and groups % g2 == 0 and w2.shape == (cout_g * groups, cin_g * groups // g2, 3, 3)
    assert (w2 != 0).sum() == (w != 0).sum()           # only zeros were added
    ref = F.conv2d(x, torch.as_tensor(w, dtype=torch.float64), stride=2, padding=1, groups=groups)
    got = F.conv2d(x, torch.as_tensor(w2, dtype=torch.float64), stride=2, padding=1, groups=g2)
    assert torch.equal(ref, got) and ref.abs().sum() > 0
    assert lava_conv_groups(w[:127 * cout_g], 127)[1] == 127   # 127 groups stay as they are


def test_depthwise_conv_over_256_channels_in_lava_equals_the_engine():
    """A max-pool OR's depthwise 3x3 stride-2 conv over 256 channels (the full-size gesture tokenizer's last
    pool) and a 128-group conv: as Lava Convs with merged groups, bit-exact with the engine.  With
    ``groups=256`` given to Lava's Conv as is, the int8 Var wraps to 0 and that LIF never receives anything."""
    from neurodeploy.lava.run import LavaNetwork
    net = LoweredNetwork()
    net.populations.append(Population("in", (256, 6, 6), kind="input", input_kind="spikes"))
    net.populations.append(Population("pool", (256, 3, 3), du=4095, dv=4096, vth=127))
    net.populations.append(Population("mix", (128, 6, 6), du=1000, dv=300, vth=200))
    net.synapses.append(Synapse("in->pool", "in", "pool", "conv", np.full((256, 1, 3, 3), 254), stride=(2, 2),
                                padding=(1, 1), groups=256, sign_mode=EXCITATORY))
    rng = np.random.default_rng(5)
    net.synapses.append(Synapse("in->mix", "in", "mix", "conv", rng.integers(-90, 91, (128, 2, 3, 3)),
                                padding=(1, 1), groups=128))
    net.outputs = ["pool", "mix"]
    balance_network(net, T=None)
    net.validate()
    steps = 6
    x = (rng.random((steps, 1, 256, 6, 6)) < 0.2).astype(np.int64)
    ours = simulate(net, {"in": x}, steps, record="all")
    lava = LavaNetwork(net, {"in": x}, steps, record="all").run()
    for name in ("pool", "mix"):
        for key, ref in ours[name].items():
            assert np.array_equal(lava[name][key], ref), (name, key)
    assert ours["pool"]["s"].sum() > 100 and ours["mix"]["s"].sum() > 100
