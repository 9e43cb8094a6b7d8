"""Our fixed-point engine against hand-computed integers (Lava fixed_pt semantics)."""
import numpy as np
import pytest

from neurodeploy.errors import BadInputError, UnsupportedError
from neurodeploy.lower import LoweredNetwork, Population, Synapse
from neurodeploy.sim import Engine, lava_effective_weights, simulate
import testnets


def _tiny(weights, du, dv, vth, bias_mant=0, bias_exp=0, weight_exp=0, n_in=2):
    return LoweredNetwork(
        populations=[Population("in", (n_in,), kind="input", input_kind="spikes"),
                     Population("n", (1,), du=du, dv=dv, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp)],
        synapses=[Synapse("w", "in", "n", "dense", np.array([weights]), weight_exp=weight_exp)],
        outputs=["n"])


def test_effective_weights_follow_lava_rules():
    assert lava_effective_weights(np.array([[11, -3]])).tolist() == [[10, -4]]        # mixed: LSB dropped
    assert lava_effective_weights(np.array([[300, 7]])).tolist() == [[255, 7]]         # excitatory clip
    assert lava_effective_weights(np.array([[255, 6]]), num_weight_bits=6).tolist() == [[252, 4]]
    assert lava_effective_weights(np.array([[-7, -300]]), num_weight_bits=7).tolist() == [[-6, -254]]
    assert lava_effective_weights(np.array([[5, -5]]), sign_mode=1).tolist() == [[4, -6]]


def test_mixed_sign_lsb_and_voltage_halving_by_hand():
    # weights [11, -3] act as [10, -4]; du=4095: u is only this step's input x 64; dv=2048 halves v
    net = _tiny([11, -3], du=4095, dv=2048, vth=2)
    x = np.array([[1, 1], [1, 0], [0, 0], [0, 1], [0, 0], [0, 0]])[:, None, :]
    r = simulate(net, {"in": x}, 6, record="all")["n"]
    # step 1 nothing arrived; step 2: (10-4)*64 = 384 > 2*64 -> spike; step 3: 640 -> spike;
    # step 4: 0; step 5: -4*64 = -256; step 6: u = 0, v = -256/2 = -128
    assert r["u"][:, 0, 0].tolist() == [0, 384, 640, 0, -256, 0]
    assert r["v"][:, 0, 0].tolist() == [0, 0, 0, 0, -256, -128]
    assert r["s"][:, 0, 0].tolist() == [0, 1, 1, 0, 0, 0]
    # layer-synchronous: the same integers one step earlier
    r0 = simulate(net, {"in": x}, 5, record="all", pipelined=False)["n"]
    assert r0["u"][:, 0, 0].tolist() == [384, 640, 0, -256, 0]


def test_current_decay_bias_and_threshold_by_hand():
    # du=2047: u halves (4096-2048); bias 3<<2 = 12 per step; vth 1 -> spike iff v > 64
    net = _tiny([5], du=2047, dv=0, vth=1, bias_mant=3, bias_exp=2, n_in=1)
    x = np.zeros((6, 1, 1), dtype=np.int64)
    x[0] = 1
    r = simulate(net, {"in": x}, 6, record="all")["n"]
    assert r["u"][:, 0, 0].tolist() == [0, 320, 160, 80, 40, 20]
    assert r["v"][:, 0, 0].tolist() == [12, 0, 0, 0, 52, 0]
    assert r["s"][:, 0, 0].tolist() == [0, 1, 1, 1, 0, 1]


def test_weight_exp_floors_and_decay_rounds_toward_zero():
    net = _tiny([-3], du=4095, dv=1000, vth=100, weight_exp=-1, n_in=1)
    x = np.array([[1], [0], [0]])[:, None, :]
    r = simulate(net, {"in": x}, 3, record="all")["n"]
    # -3 >> 1 = -2 (floor): u = -128; next step v = -(128*3096 >> 12) = -96 (toward zero, not -97)
    assert r["u"][:, 0, 0].tolist() == [0, -128, 0]
    assert r["v"][:, 0, 0].tolist() == [0, -128, -96]


def test_u_wraps_and_v_saturates():
    # 200 inputs x 255 << 3 = 408000 per step; x 64 = 26112000: Lava folds u once (+-2**24), v saturates
    net = _tiny([255] * 200, du=4095, dv=0, vth=(1 << 17) - 1, weight_exp=3, n_in=200)
    x = np.ones((3, 1, 200), dtype=np.int64)
    r = simulate(net, {"in": x}, 3, record="all")["n"]
    assert r["u"][:, 0, 0].tolist() == [0, 26112000 - (1 << 24)] * 1 + [26112000 - (1 << 24)]
    assert r["s"][:, 0, 0].tolist() == [0, 1, 1]   # v saturates at 2**23-1 > (2**17-1)*64 and spikes
    net = _tiny([-255] * 200, du=4095, dv=0, vth=(1 << 17) - 1, weight_exp=3, n_in=200)
    r = simulate(net, {"in": x}, 3, record="all")["n"]
    assert r["u"][:, 0, 0].tolist() == [0, -26112000 + (1 << 24), -26112000 + (1 << 24)]
    assert r["v"][:, 0, 0].tolist() == [0, -(1 << 23) + 1, -(1 << 23) + 1]


def test_batch_equals_single_samples():
    net = testnets.residual_attention_net()
    x = testnets.random_inputs(net, 9, batch=3, seed=5)
    batched = simulate(net, x, 9, record="all")
    lif = [p.name for p in net.populations if p.kind == "lif"]
    per_sample = [sum(int(batched[n]["s"][:, b].sum()) for n in lif) for b in range(3)]
    assert min(per_sample) > 0                  # every sample spikes (a silent network would compare zeros)
    assert not np.array_equal(batched[lif[-1]]["s"][:, 0], batched[lif[-1]]["s"][:, 1])   # and the samples differ
    for b in range(3):
        single = simulate(net, {k: v[:, b:b + 1] for k, v in x.items()}, 9, record="all")
        for name in single:
            for key in single[name]:
                assert np.array_equal(single[name][key][:, 0], batched[name][key][:, b]), (name, key)


def test_pipelined_equals_layer_synchronous_shifted_by_latency():
    net = testnets.residual_attention_net()
    lat = net.latency()
    T = 12
    x = testnets.random_inputs(net, T, seed=3)
    # constant-length input for the shifted comparison: the pipelined run needs T + latency steps
    xl = {k: np.concatenate([v, np.zeros((max(lat.values()),) + v.shape[1:], v.dtype)]) for k, v in x.items()}
    sync = simulate(net, x, T, record="all", pipelined=False)
    pipe = simulate(net, xl, T + max(lat.values()), record="all")
    for name, L in lat.items():
        if net.pop(name).kind == "input":
            continue
        for key in ("s", "u", "v"):
            assert np.array_equal(pipe[name][key][L:L + T], sync[name][key]), (name, key)
    assert sum(sync[n]["s"].sum() for n in sync) > 50  # the network is active


def test_bad_inputs_are_named():
    net = testnets.conv_dense_net()
    with pytest.raises(BadInputError, match="'in'"):
        simulate(net, {}, 3)
    with pytest.raises(BadInputError, match="'in'"):
        simulate(net, {"in": np.zeros((3, 1, 5))}, 3)
    bad = testnets.conv_dense_net()
    bad.synapses[1].balance_delay = 70
    with pytest.raises(UnsupportedError, match="s2.*exceeds"):
        Engine(bad)
