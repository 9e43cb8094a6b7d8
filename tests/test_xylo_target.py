"""Xylo as a real target, checked by SynSense's own tools (rockpool 3.1 mappers / DRC, XyloSim 0.1.3):
our chip-fit verdict == rockpool's, our integer engine == XyloSim (spikes, Vmem, Isyn, outputs at every step),
our quantization == rockpool's channel_quantize, the braille-shaped RNN runs on Xylo Audio 2."""
from __future__ import annotations

import json
from pathlib import Path

import nir
import numpy as np
import pytest

from neurodeploy.cli import main
from neurodeploy.deploy import get_target
from neurodeploy.deploy.xylo import XyloTarget
from neurodeploy.lower.xylo import lower_graph, quantize
from neurodeploy.mapping.xylo import fit as chip_fit
from neurodeploy.deploy.xylo_vendor import run_xylosim, vendor_module
from neurodeploy.errors import UnsupportedError
from neurodeploy.profiles import load_profile
from neurodeploy.sim.xylo import XyloNetwork
from xylo_helpers import braille_graph, nir_net, rockpool_verdict

CHIPS = {"xylo-audio2": (1000, 8), "xylo-imu": (496, 16), "xylo-audio3": (992, 32)}


def cases(chip):
    """>= 30 networks per chip: at and just past each limit, and random ones (sizes, recurrence)."""
    H, O = CHIPS[chip]
    c = [([16, H // 2, H - H // 2, 2], (1,)), ([16, H // 2 + 1, H - H // 2, 2], ()),      # hidden at / past
         ([16, H - 10, 10, 2], (2,)), ([16, H - 10, 11, 2], ()),
         ([16, 20, 30, O], (1,)), ([16, 20, 30, O + 1], ()),                              # outputs at / past
         ([16, 20, 30, 4], ()), ([17, 20, 30, 4], ()),                                     # inputs at / past
         ([16, 20, 4], (1,)), ([16, 20, 4], ()),                                           # one hidden population
         ([16, 20, 30, 4], ("out",)), ([12, 38, 7], (1,))]                                # recurrent output: refused
    rng = np.random.default_rng({"xylo-audio2": 1, "xylo-imu": 2, "xylo-audio3": 3}[chip])
    while len(c) < 32:
        k = int(rng.integers(1, 4))
        sizes = [int(rng.integers(2, 17))] + [int(rng.integers(3, 60)) for _ in range(k)] + [int(rng.integers(1, O + 1))]
        c.append((sizes, tuple(int(i) for i in range(1, k + 1) if rng.random() < 0.5)))
    return c


@pytest.mark.slow
@pytest.mark.parametrize("chip", list(CHIPS))
def test_fit_verdict_equals_rockpool_drc_and_engine_equals_xylosim(chip):
    prof = load_profile(chip)
    fits_seen = {True: 0, False: 0}
    for j, (sizes, rec) in enumerate(cases(chip)):
        out_rec = "out" in rec
        rec = tuple(r for r in rec if r != "out")
        big = sum(sizes[1:-1]) > 200
        g = nir_net(sizes, rec, kind="CubaLIF" if j % 3 else "LIF", seed=j, density=0.03 if big else 1.0,
                    out_rec=out_rec)
        try:
            art = lower_graph(g, chip)
            fit = chip_fit(art, prof)
            ours, why = fit.fits, "; ".join(v.message for v in fit.violations)
        except UnsupportedError as exc:
            art, ours, why = None, False, str(exc)
        theirs, their_why = rockpool_verdict(chip, sizes, rec, out_rec)
        assert ours == theirs, (chip, sizes, rec, out_rec, why, their_why)
        fits_seen[ours] += 1
        if ours:
            T = 8 if big else 25
            x = np.random.default_rng(j).integers(0, 3, (2, T, sizes[0]))
            mine = XyloNetwork(art.spec).run(x)
            for b in range(2):
                ref = run_xylosim(chip, art.spec, x[b])
                for k in ("spikes", "vmem", "isyn", "vmem_out", "out"):
                    np.testing.assert_array_equal(mine[k][b], ref[k], err_msg=f"{chip} {sizes} {k}")
    assert fits_seen[True] >= 10 and fits_seen[False] >= 5, fits_seen


def test_documented_limits_are_the_drc_limits():
    # 2x500 fits Audio 2, 2x501 is refused (the numbers the issue measured); the same limits are in our TOMLs
    assert rockpool_verdict("xylo-audio2", [16, 500, 500, 8])[0]
    assert not rockpool_verdict("xylo-audio2", [16, 501, 500, 8])[0]
    for chip, (H, O) in CHIPS.items():
        p = load_profile(chip)
        assert (p.core_limit("hidden_neurons"), p.core_limit("output_neurons"), p.core_limit("input_channels")) == (H, O, 16)
        assert "xylo_mapper" in p.quantity("core", "hidden_neurons")["source"]


@pytest.mark.parametrize("chip", list(CHIPS))
def test_quantization_equals_rockpool_channel_quantize(chip):
    from rockpool.transform.quantize_methods import channel_quantize

    for seed, sizes, rec in [(0, [16, 20, 30, 8], (1, 2)), (1, [5, 7, 9, 3], (2,)), (2, [12, 38, 7], (1,))]:
        g = nir_net(sizes, rec, seed=seed)
        if chip == "xylo-imu" and len(sizes) == 3:
            continue
        art = lower_graph(g, chip)
        fs = {k: np.array(v, copy=True) for k, v in art.float_spec.items()}
        if chip == "xylo-audio2":   # also exercise the 16-bit threshold clipping (with fewer input than hidden
            # neurons, as on IMU / Audio 3, rockpool's clipping branch indexes w_in[:, Nien] (`<=`): IndexError)
            fs["threshold"] = fs["threshold"] * 300.0
        theirs = channel_quantize(**{k: np.array(v, copy=True) for k, v in fs.items()})
        ours = quantize(fs)
        for k in ("weights_in", "weights_rec", "weights_out", "threshold", "threshold_out", "dash_mem", "dash_syn",
                  "dash_mem_out", "dash_syn_out"):
            np.testing.assert_array_equal(np.asarray(ours[k]).reshape(np.shape(theirs[k])), theirs[k], err_msg=k)
        if chip == "xylo-audio2":
            assert np.abs(ours["threshold"]).max() == 32767      # the clipping branch was taken


def test_engine_bit_exact_with_saturation_and_two_synapses():
    # random integer specs that drive the 16-bit states into the rails (weight shifts, dense input, 2 synapses)
    rng = np.random.default_rng(0)
    for chip, S in (("xylo-audio2", 2), ("xylo-imu", 1), ("xylo-audio3", 2)):
        nh, nien, noen = 40, 25, 30
        spec = dict(weights_in=rng.integers(-127, 128, (16, nien, S)),
                    weights_rec=rng.integers(-127, 128, (nh, nh, S)) * (rng.random((nh, nh, S)) < 0.3),
                    weights_out=rng.integers(-127, 128, (noen, 8)),
                    dash_mem=rng.integers(0, 8, nh), dash_syn=rng.integers(0, 8, nh), dash_syn_2=rng.integers(0, 8, nh),
                    dash_mem_out=rng.integers(0, 8, 8), dash_syn_out=rng.integers(0, 8, 8),
                    threshold=rng.integers(1, 300, nh), threshold_out=rng.integers(1, 3000, 8),
                    bias=rng.integers(-20, 20, nh), bias_out=rng.integers(-20, 20, 8),
                    weight_shift_in=3, weight_shift_rec=2, weight_shift_out=1)
        x = rng.integers(0, 20, (3, 40, 16)) * (rng.random((3, 40, 16)) < 0.4)
        mine = XyloNetwork(spec).run(x)
        assert np.abs(mine["isyn"]).max() >= 32512          # the saturating path was taken
        for b in range(3):
            ref = run_xylosim(chip, spec, x[b])
            for k in ref:
                np.testing.assert_array_equal(mine[k][b], ref[k], err_msg=f"{chip} {k}")


def test_braille_rnn_runs_on_xylo_audio2_equal_to_xylosim():
    g = braille_graph()
    art = lower_graph(g, "xylo-audio2")
    assert chip_fit(art, load_profile("xylo-audio2")).fits
    assert art.recurrent == ["fc_rec"] and (art.n_in, art.n_hidden, art.n_out) == (12, 38, 7)
    assert art.spec["dt"] == 1e-4 and np.count_nonzero(art.spec["weights_rec"]) > 0.9 * 38 * 38
    x = (np.random.default_rng(0).random((4, 100, 12)) < 0.2).astype(np.int64)
    mine = XyloNetwork(art.spec).run(x)
    assert mine["spikes"].sum() > 0 and mine["out"].sum() > 0
    for b in range(4):
        ref = run_xylosim("xylo-audio2", art.spec, x[b])
        for k in ref:
            np.testing.assert_array_equal(mine[k][b], ref[k], err_msg=k)
    # the target's two back-ends predict the same classes
    t = get_target("xylo-audio2")
    assert isinstance(t, XyloTarget) and t.backends == ("fast", "xylosim")
    np.testing.assert_array_equal(t.predict(art, x, backend="fast"), t.predict(art, x, backend="xylosim"))


@pytest.mark.parametrize("make, node, words", [
    (lambda g: g.nodes.update(w1=nir.Affine(weight=g.nodes["w1"].weight, bias=np.ones(20))), "w1", "bias"),
    (lambda g: g.nodes.update(p1=nir.IF(r=np.ones(20), v_threshold=np.ones(20))), "p1", "IF is not deployable"),
    (lambda g: setattr(g.nodes["p1"], "v_leak", np.full(20, 0.1)), "p1", "v_leak"),
    (lambda g: setattr(g.nodes["p2"], "tau_mem", np.full(4, 1e-4)), "p2", "<= dt"),
    (lambda g: setattr(g.nodes["p1"], "tau_mem", np.full(20, 100.0)), "p1", "2^15"),
])
def test_refusals_name_the_node(make, node, words):
    g = nir_net([16, 20, 4], (1,))
    make(g)
    with pytest.raises(UnsupportedError) as e:
        lower_graph(g, "xylo-audio2")
    assert str(e.value).startswith(f"{node}: ") and words in str(e.value)


def test_affine_with_zero_bias_lowers_as_linear():
    g, h = nir_net([16, 20, 30, 4], (1,)), nir_net([16, 20, 30, 4], (1,))
    h.nodes["w2"] = nir.Affine(weight=h.nodes["w2"].weight, bias=np.zeros(30))
    a, b = lower_graph(g, "xylo-audio3"), lower_graph(h, "xylo-audio3")
    for k in a.spec:
        np.testing.assert_array_equal(a.spec[k], b.spec[k], err_msg=k)
    assert a.layers[0] == {"name": "p1", "kind": "CubaLIF", "role": "input+hidden", "size": 20, "first_id": 0}
    assert a.layers[1]["first_id"] == 20 and a.layers[2]["role"] == "output"
    assert np.shape(a.spec["weights_in"]) == (16, 20, 1) and np.shape(a.spec["weights_out"]) == (30, 4)


def test_export_spec_loads_in_xylosim_and_cli_simulate_both_backends(tmp_path, capsys):
    from neurodeploy.graph import write_graph

    model = tmp_path / "braille.nir"
    write_graph(braille_graph(), model)
    x = (np.random.default_rng(1).random((6, 50, 12)) < 0.2).astype(np.float32)
    data = tmp_path / "x.npz"
    np.savez(data, x=x, y=np.arange(6) % 7)
    out = tmp_path / "out"
    assert main(["export", str(model), "--target", "xylo-audio2", "-o", str(out)]) == 0
    folder = out / "xylo-audio2"
    spec = dict(np.load(folder / "spec.npz"))
    doc = json.loads((folder / "spec.json").read_text())
    assert doc["chip"] == "xylo-audio2" and doc["summary"]["hidden_neurons"] == 38
    # the written spec, as loaded by SynSense's simulator, gives the same output spikes as our engine
    counts = x.astype(np.int64)
    cls = vendor_module("xylo-audio2", "xylo_sim").XyloSim
    import inspect

    sim = cls.from_specification(**{k: v for k, v in spec.items() if k in inspect.signature(cls.from_specification).parameters})
    ref_out, _, _ = sim.evolve(counts[0], record=False)
    np.testing.assert_array_equal(XyloNetwork(spec).run(counts[0])["out"], ref_out)
    res = {}
    for backend in ("fast", "xylosim"):
        capsys.readouterr()
        assert main(["simulate", str(out), "--target", "xylo-audio2", "--backend", backend, "--data", str(data),
                     "--json"]) == 0
        res[backend] = json.loads(capsys.readouterr().out)
        assert res[backend]["samples"] == 6 and res[backend]["backend"] == backend
    assert res["fast"]["prediction_agreement"] == res["xylosim"]["prediction_agreement"]
    # and straight from the .nir file
    capsys.readouterr()
    assert main(["simulate", str(model), "--target", "xylo-audio2", "--data", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["prediction_agreement"] == res["fast"]["prediction_agreement"]


def test_unsupported_graph_is_cannot_deploy_in_the_report(tmp_path, capsys):
    from neurodeploy.graph import write_graph

    g = nir_net([16, 20, 4], (1,))
    g.nodes["p1"] = nir.IF(r=np.ones(20), v_threshold=np.ones(20))
    path = tmp_path / "m.nir"
    write_graph(g, path)
    assert main(["report", str(path), "--target", "xylo-imu"]) == 0
    assert "| xylo-imu | cannot deploy: p1: IF is not deployable on Xylo" in capsys.readouterr().out
    # the braille RNN: fits Audio 2 (one dev kit), not the IMU (one hidden population: no separate expansion)
    write_graph(braille_graph(), path)
    assert main(["report", str(path), "--target", "xylo-audio2", "--target", "xylo-imu"]) == 0
    out = capsys.readouterr().out
    assert "| xylo-audio2 | fits | 1 [documented] | 1 chip, XyloAudio 2 dev kit | output_neurons (peak core 88%) | 1 |" in out
    assert "| xylo-imu | does not fit: lif1: SynSense XyloIMU needs separate input- and output-expansion" in out


def test_main_package_needs_no_rockpool_and_xylosim_backend_says_what_is_missing(monkeypatch):
    import importlib.util
    import subprocess
    import sys

    code = ("import sys, numpy as np; sys.path.insert(0, 'tests'); from xylo_helpers import braille_graph; "
            "from neurodeploy.deploy import get_target; from neurodeploy.lower.xylo import lower_graph; "
            "a = lower_graph(braille_graph(), 'xylo-audio2'); "
            "get_target('xylo-audio2').predict(a, np.zeros((1, 5, 12)), backend='fast'); "
            "assert not [m for m in sys.modules if m.split('.')[0] in ('rockpool', 'xylosim', 'samna')]")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(Path(__file__).resolve().parents[1]))
    import neurodeploy.deploy.xylo_vendor as xv

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "rockpool" else real(name, *a))
    art = lower_graph(braille_graph(), "xylo-audio2")
    with pytest.raises(UnsupportedError, match=r"needs rockpool and xylosim .*vendors.*--backend fast"):
        get_target("xylo-audio2").predict(art, np.zeros((1, 5, 12)), backend="xylosim")
    assert xv.ROCKPOOL_CHIPS["xylo-audio3"] == "syns65302"
