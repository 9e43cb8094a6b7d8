"""The bundled digits task at every input (neurodeploy.tasks, docs/data.md), training on it (resume, time
budget) and float vs Loihi 2 fixed point on a small model trained on it."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from neurodeploy import tasks
from neurodeploy.cli import main
from neurodeploy.checkpoint import load_model
from neurodeploy.training import train

#: a reduced Spikingformer of the CIFAR family (32x32 RGB input, same blocks): 29,070 parameters
SMALL = {"embed_dim": 32, "depth": 1, "num_heads": 2, "tokenizer_channels": [4, 8, 16, 32, 32]}


def test_the_split_and_labels_are_scikit_learns_fixed_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    _, _, _, y_te = train_test_split(d.images, d.target, test_size=0.2, random_state=0, stratify=d.target)
    for shape in ((1, 8, 8), (3, 32, 32)):
        _, y = tasks.task_samples(shape, "test", indices=range(50))
        assert np.array_equal(y, y_te[:50])
    assert tasks.task_size("train") == 1437 and tasks.task_size("test") == 360


@pytest.mark.parametrize("shape,steps,out", [((3, 32, 32), None, (5, 3, 32, 32)),
                                             ((3, 224, 224), None, (5, 3, 224, 224)),
                                             ((2, 128, 128), None, (5, tasks.EVENT_STEPS, 2, 128, 128)),
                                             ((2, 128, 128), 3, (5, 3, 2, 128, 128))])
def test_renderings_are_seeded_and_a_subset_renders_as_in_the_full_set(shape, steps, out):
    idx = [7, 0, 300, 41, 359]
    x, y = tasks.task_samples(shape, "test", steps=steps, indices=idx)
    assert x.shape == out and x.dtype == np.float32 and y.dtype == np.int64
    again, _ = tasks.task_samples(shape, "test", steps=steps, indices=idx)
    assert np.array_equal(x, again)
    one, _ = tasks.task_samples(shape, "test", steps=steps, indices=[300])
    assert np.array_equal(one[0], x[2])
    # the test split is rendered one way; the training split anew each epoch
    assert np.array_equal(tasks.task_samples(shape, "test", steps=steps, epoch=5, indices=idx)[0], x)
    tr0 = tasks.task_samples(shape, "train", steps=steps, epoch=0, indices=[3])[0]
    tr1 = tasks.task_samples(shape, "train", steps=steps, epoch=1, indices=[3])[0]
    assert not np.array_equal(tr0, tr1)
    if shape[0] == 2:       # event counts: integers, both polarities, most pixels silent
        assert np.all(x == np.round(x)) and x.min() >= 0
        per_sample = x.reshape(len(x), -1).sum(1)
        assert np.all(per_sample > 1000)
        on, off = x[:, :, 0].sum(), x[:, :, 1].sum()
        assert 0.35 < on / (on + off) < 0.65
        assert (x > 0).mean() < 0.2
    else:                   # images in [0, 1], the digit brighter than its background on average
        assert 0.0 <= x.min() and x.max() <= 1.0


def test_events_come_from_the_moving_digit_not_everywhere():
    """At another size and T: the digit's edges fire (thousands of events per sample) but most pixels
    never do over the whole sample (only shot noise there)."""
    ev, _ = tasks.task_samples((2, 64, 64), "test", steps=4, indices=range(4))
    assert ev.shape == (4, 4, 2, 64, 64)
    fired = ev.sum((1, 2)) > 1          # more than one event over the sample: not a lone noise event
    assert 0.02 < fired.mean() < 0.5


def test_bad_inputs_get_one_line_errors():
    from neurodeploy.errors import BadInputError

    with pytest.raises(BadInputError, match=r"no rendering of the digits task for the input \[7\]"):
        tasks.task_samples((7,), "test")
    with pytest.raises(BadInputError, match="steps must be >= 1"):
        tasks.task_samples((2, 32, 32), "test", steps=0)


def _small(tmp_path, name="small.pt", **kw):
    out = tmp_path / name
    kw.setdefault("batch_size", 8)
    kw.setdefault("epochs", 1)
    train("spikingformer-cifar10-4-384", out, data="digits", lr=2e-3, progress=False, config=SMALL, **kw)
    return out


def test_resumed_mid_epoch_equals_one_run_straight_through(tmp_path):
    straight = _small(tmp_path, "a.pt", max_steps=6)
    first = _small(tmp_path, "b.pt", max_steps=4)
    st = torch.load(first, weights_only=True)["train_state"]
    assert (st["epoch"], st["batch"], st["step"]) == (0, 4, 4)
    m = train("spikingformer-cifar10-4-384", first, data="digits", lr=2e-3, batch_size=8, epochs=1,
              progress=False, config=SMALL, max_steps=2, resume=True)
    assert m["steps"] == 6
    a, b = load_model(straight).state_dict(), load_model(first).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_model(first).cfg.embed_dim == 32       # every command reads it (weights_only)


def test_train_cli_refuses_bad_budget_and_resume_without_state(tmp_path, capsys):
    for bad in ("0", "-1", "nan"):
        assert main(["train", "--arch", "spikingformer-cifar10-4-384", "--data", "digits", "-o",
                     str(tmp_path / "x.pt"), "--max-minutes", bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--max-minutes" in err[0], err
    assert not (tmp_path / "x.pt").exists()
    torch.save({"a": torch.zeros(1)}, tmp_path / "plain.pt")
    assert main(["train", "--arch", "spikingformer-cifar10-4-384", "--data", "digits", "-o",
                 str(tmp_path / "plain.pt"), "--resume"]) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.fixture(scope="module")
def small_trained(tmp_path_factory):
    """The reduced CIFAR-family Spikingformer trained for half a minute on the 32x32 rendering (shared).  Two
    threads, as when RECORDED was measured: CPU kernels sum in an order that depends on the thread count and
    on the CPU's instruction set, so the weights differ slightly from machine to machine; six epochs give a
    model (about 57 %) whose figures move by a few samples, not one barely above chance whose argmax flips."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(0)
        return _small(tmp_path_factory.mktemp("small"), epochs=6, batch_size=32)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_small_model_trained_on_the_task_float_vs_loihi2(small_trained, tmp_path, capsys):
    """A reduced CIFAR-family Spikingformer trained for a few seconds on the 32x32 rendering; float vs
    Loihi 2 fixed point on the first 64 test samples, through `simulate` on the checkpoint and on the
    folder `export` wrote (the same rendering of the same split)."""
    ckpt = small_trained
    assert load_model(ckpt).metrics["test_accuracy"] == pytest.approx(RECORDED["test_accuracy"], abs=0.1)
    assert main(["simulate", str(ckpt), "--target", "loihi2", "--data", "digits", "--limit", "64",
                 "--json", "--layers"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["samples"] == 64
    assert res["float_accuracy"] == pytest.approx(RECORDED["float_accuracy"], abs=6 / 64)
    assert res["loihi2_accuracy"] == pytest.approx(RECORDED["loihi2_accuracy"], abs=6 / 64)
    # fixed point follows the float model on this machine's weights, whatever they are
    assert abs(res["loihi2_accuracy"] - res["float_accuracy"]) <= 4 / 64
    assert res["prediction_agreement"] >= RECORDED["prediction_agreement"] - 6 / 64
    assert min(res["layer_spike_agreement"].values()) > 0.93
    out = tmp_path / "out"
    assert main(["export", str(ckpt), "-o", str(out), "--target", "loihi2", "--data", "digits"]) == 0
    capsys.readouterr()
    # the report's fidelity section of a trained model: accuracy float vs fixed point and the weakest layers
    lo = json.loads((out / "report.json").read_text())["lowering"]
    md = (out / "report.md").read_text()
    assert f"float **{100 * lo['float_accuracy']:.2f}%**, loihi2 fixed point **{100 * lo['target_accuracy']:.2f}%**" in md
    worst = min(lo["layer_spike_agreement"], key=lo["layer_spike_agreement"].get)
    assert f"| {worst} | {100 * lo['layer_spike_agreement'][worst]:.2f}% |" in md
    assert main(["simulate", str(out), "--target", "loihi2", "--data", "digits", "--limit", "64", "--json"]) == 0
    res2 = json.loads(capsys.readouterr().out)
    assert res2["prediction_agreement"] == res["prediction_agreement"]
    assert res2["float_accuracy"] == res["float_accuracy"]


#: measured with this test's recipe (6 epochs, batch 32, seed 0; 270 steps, 29 s) on the shared 2-core machine
#: (AMD EPYC, 2026-12-03; 1 and 2 threads gave the same figures): 56.7 % on the 360 test samples (chance 10 %);
#: on the first 64, float 56.25 %, fixed point 54.69 %, agreement 85.9 %, every layer's spikes 94.7 % or more.
#: The 2-epoch recipe before (17 % on another machine, 15.6 % here, float 14.1 % there and 9.4 % here on the
#: first 64) was too close to chance to pin to a figure.
RECORDED = {"test_accuracy": 0.5667, "float_accuracy": 0.5625, "loihi2_accuracy": 0.546875,
            "prediction_agreement": 0.859375}


@pytest.mark.slow
@pytest.mark.lava
def test_lava_equals_engine_on_the_trained_small_model(small_trained, tmp_path, capsys):
    """Trained weights, not random ones: the network `export --data digits` wrote for the trained reduced
    model, one digits test sample, all T + latency steps, in Lava slice by slice (each slice fed with what its
    outside sources sent in our engine's whole-network run; tests/test_lava_slices.py) equals our engine's
    spikes, u and v bit for bit.  The trained network fires in every layer, so the comparison is not of
    silent populations."""
    from neurodeploy.lava.slices import check_slices
    from neurodeploy.lower.network_file import load_network
    from neurodeploy.lower.slices import partition
    from neurodeploy.sim import simulate
    out = tmp_path / "out"
    assert main(["export", str(small_trained), "-o", str(out), "--target", "loihi2", "--data", "digits"]) == 0
    capsys.readouterr()
    net = load_network(out / "loihi2" / "network.npz")
    x, _ = tasks.task_samples((3, 32, 32), "test", indices=[0])
    inputs = {k: v.numpy() for k, v in net.encode_inputs(x).items()}
    steps = int(net.metadata["time_steps"]) + int(net.metadata["latency"])
    ref = simulate(net, inputs, steps, record="all")
    silent = [n for n, r in ref.items() if net.pop(n).kind == "lif" and not np.any(r["s"] != 0)]
    assert not silent, silent
    reps = check_slices(net, inputs, steps, ref, partition(net, 40), conv_as_sparse=True)
    assert sorted(m for r in reps for m in r["members"]) == sorted(p.name for p in net.populations)
    bad = [(r["members"][0], r["mismatch"]) for r in reps if r["mismatch"]]
    assert not bad, bad
