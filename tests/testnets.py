"""Small random lowered networks for exactness tests and benchmarks (integers chosen to exercise every
rule: mixed/excitatory/inhibitory sign modes, odd weights (LSB dropping), weight exponents, synaptic
and balance delays, conv, sparse, residual fan-in, attention, graded input, LIFReset, readout)."""
from __future__ import annotations

import numpy as np

from neurodeploy.lower.network import Attention, LoweredNetwork, Population, Synapse, VTH_MAX


def conv_dense_net(seed: int = 0) -> LoweredNetwork:
    rng = np.random.default_rng(seed)
    return LoweredNetwork(
        populations=[
            Population("in", (2, 6, 6), kind="input", input_kind="spikes"),
            Population("c1", (4, 3, 3), du=4095, dv=1024, vth=20,
                       bias_mant=rng.integers(-50, 50, (4, 3, 3)), bias_exp=3),
            Population("d1", (10,), du=3000, dv=100, vth=30),
            Population("d2", (10,), du=4095, dv=2048, vth=10),
            Population("ro", (3,), kind="readout", du=4095, dv=0, vth=VTH_MAX)],
        synapses=[
            Synapse("s1", "in", "c1", "conv", rng.integers(-40, 60, (4, 2, 3, 3)), stride=(2, 2), padding=(1, 1)),
            Synapse("s2", "c1", "d1", "dense", rng.integers(-128, 127, (10, 36)) * 2, weight_exp=-1,
                    delays=rng.integers(0, 3, (10, 36))),
            Synapse("s3", "d1", "d2", "dense", rng.integers(-100, 127, (10, 10)), sign_mode=1),
            Synapse("s4", "c1", "d2", "sparse", rng.integers(0, 60, (10, 36)) * (rng.random((10, 36)) < 0.3),
                    balance_delay=1),
            Synapse("s5", "d2", "ro", "dense", rng.integers(-128, 127, (3, 10)) * 2)],
        outputs=["ro"])


def residual_attention_net(seed: int = 1, D: int = 4, N: int = 6, heads: int = 2) -> LoweredNetwork:
    """Graded input -> conv (host-like encoder) -> LIF x0 -> q/k/v (1x1 convs as token-wise conv) ->
    attention -> attn LIF -> proj (DelaySparse from a conv with a balance delay) joins the residual
    stream with x0 (balance delay 3) -> LIFReset -> readout."""
    rng = np.random.default_rng(seed)
    pops = [Population("img", (1, 4, N), kind="input", input_kind="graded"),
            Population("x0", (D, 1, N), du=4095, dv=2048, vth=15),
            Population("q", (D, 1, N), du=4095, dv=2048, vth=3),
            Population("k", (D, 1, N), du=4095, dv=2048, vth=3),
            Population("v", (D, 1, N), du=4095, dv=2048, vth=3),
            Population("attn", (D, 1, N), du=4095, dv=2048, vth=2),
            Population("x1", (D, 1, N), du=4095, dv=2048, vth=4, reset_interval=5, reset_offset=3),
            Population("ro", (2,), kind="readout", du=4095, dv=0, vth=VTH_MAX, bias_mant=7, bias_exp=2,
                       reset_interval=64, reset_offset=6)]  # zeroed when the pipeline has filled (latency 5)
    syn = [Synapse("enc", "img", "x0", "conv", rng.integers(-20, 30, (D, 1, 4, 1)), graded=True)]
    for name in ("q", "k", "v"):
        syn.append(Synapse(f"{name}_conv", "x0", name, "conv", rng.integers(-3, 8, (D, D, 1, 1)) * 2))
    syn.append(Synapse("proj", "attn", "x1", "conv", rng.integers(-6, 8, (D, D, 1, 1)) * 2, balance_delay=0))
    syn.append(Synapse("skip", "x0", "x1", "sparse", np.kron(np.eye(D, dtype=np.int64) * 6, np.eye(N, dtype=np.int64)),
                       balance_delay=2))
    syn.append(Synapse("head", "x1", "ro", "dense", rng.integers(-100, 100, (2, D * N)) * 2, weight_exp=1))
    att = [Attention("att", "q", "k", "v", "attn", heads=heads, dim=D, tokens=N, weight=1)]
    return LoweredNetwork(populations=pops, synapses=syn, attention=att, outputs=["ro"])


def extremes_net(seed: int = 2) -> LoweredNetwork:
    """u wrap-around (24 bits), v saturation, inhibitory and excitatory modes, num_weight_bits < 8,
    positive weight_exp, negative bias, a conv that becomes a DelaySparse."""
    rng = np.random.default_rng(seed)
    pops = [Population("in", (3, 4, 4), kind="input", input_kind="spikes"),
            Population("big", (8,), du=0, dv=0, vth=VTH_MAX),
            Population("neg", (8,), du=200, dv=3000, vth=1, bias_mant=-4096, bias_exp=7),
            Population("cv", (2, 4, 4), du=4095, dv=0, vth=40, bias_mant=rng.integers(-4096, 4095, (2, 4, 4)),
                       bias_exp=0),
            Population("out", (5,), du=100, dv=4095, vth=2)]
    syn = [Synapse("exc", "in", "big", "dense", rng.integers(0, 255, (8, 48)), weight_exp=3),
           Synapse("inh", "in", "neg", "dense", -rng.integers(0, 255, (8, 48)), num_weight_bits=5, weight_exp=-2),
           Synapse("cvs", "in", "cv", "conv", rng.integers(-60, 60, (2, 3, 3, 3)) * 2, padding=(1, 1),
                   balance_delay=2),
           Synapse("o1", "big", "out", "dense", rng.integers(-256, 255, (5, 8)), num_weight_bits=7),
           Synapse("o2", "neg", "out", "dense", rng.integers(-256, 255, (5, 8)), balance_delay=0),
           Synapse("o3", "cv", "out", "dense", rng.integers(-256, 255, (5, 32)) * 2, delays=rng.integers(0, 4, (5, 32)))]
    return LoweredNetwork(populations=pops, synapses=syn, outputs=["out"])


def random_inputs(net: LoweredNetwork, T: int, batch: int = 1, seed: int = 0, rate: float = 0.4) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for p in net.inputs:
        if p.input_kind == "spikes":
            out[p.name] = (rng.random((T, batch) + tuple(p.shape)) < rate).astype(np.int64)
        elif p.input_kind == "graded":
            out[p.name] = rng.integers(-300, 1000, (T, batch) + tuple(p.shape))
        else:
            out[p.name] = rng.integers(-4096, 4095, (batch,) + tuple(p.shape))
    return out
