"""Issue 14, property-based: generated bad and edge-case checkpoints, .nir graphs, data files, profiles,
firing-rate files and command options (Hypothesis).  Each case goes through the API (documented class:
BadInputError / ResourceLimitError, or a valid result equal to what an independent oracle predicts) and,
for a sample, the CLI (exit 2, exactly one stderr line, no traceback, no file changed or left behind)."""
from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import h5py
import networkx as nx
import nir
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conftest import NIR_PAPER
from neurodeploy import limits
from neurodeploy.checkpoint import FORMAT, load_model
from neurodeploy.cli import main
from neurodeploy.data import load_labeled_samples
from neurodeploy.errors import BadInputError, NeurodeployError, ResourceLimitError, boundary
from neurodeploy.graph import read_graph, write_graph
from neurodeploy.graph.core import validate_graph
from neurodeploy.models.registry import build_model, default_config
from neurodeploy.profiles import load_profile_file
from neurodeploy.rates import load_firing_rates

REPO = Path(__file__).resolve().parents[1]
LIF = NIR_PAPER / "01_lif" / "lif_norse.nir"
FAST = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_main(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def assert_one_line(code: int, err: str, needle: str = "") -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neurodeploy: error: ") and "Traceback" not in err, err
    assert needle in lines[0], lines[0]


def listing(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


# -- checkpoints -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_payload():
    torch.manual_seed(0)
    model = build_model("spikingformer-digits").eval()
    return {"format": FORMAT, "format_version": 1, "arch": "spikingformer-digits",
            "config": model.cfg.to_dict(), "state_dict": {k: v.clone() for k, v in model.state_dict().items()},
            "metrics": {}}


BAD_SCALARS = st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
                        st.text(max_size=5), st.none(), st.booleans(), st.lists(st.integers(0, 9), max_size=3))
CONFIG_KEYS = sorted(default_config("spikingformer-digits").to_dict())


@FAST
@given(key=st.sampled_from(CONFIG_KEYS), value=BAD_SCALARS)
def test_generated_checkpoint_configs(digits_payload, tmp_path_factory, key, value):
    """Any value for any config key: a model that loads, or one BadInputError; never a raw exception and
    never a huge allocation (the config is checked before the model is built)."""
    folder = tmp_path_factory.mktemp("cfg")
    path = folder / "ck.pt"
    payload = dict(digits_payload, config={**digits_payload["config"], key: value})
    torch.save(payload, path)
    before = maxrss_mib()
    default = digits_payload["config"][key]
    try:
        model = load_model(path)
    except NeurodeployError as exc:
        assert isinstance(exc, BadInputError) and str(exc).startswith(str(path)) and "\n" not in str(exc)
    else:  # only values that keep every weight shape and are valid may load
        assert model.cfg.to_dict()[key] == value
        assert key in ("tau", "attention_scale", "attention_threshold", "attention_order", "T") or value == default
    assert maxrss_mib() - before < 400
    if key == "num_heads" and isinstance(value, int) and not isinstance(value, bool) and (value < 1 or 64 % value):
        with pytest.raises(BadInputError, match="num_heads"):
            load_model(path)


@FAST
@given(key_index=st.integers(0, 10**6), poison=st.sampled_from(["nan", "inf", "-inf", "complex"]),
       where=st.integers(0, 10**6))
def test_generated_checkpoint_tensors(digits_payload, tmp_path_factory, key_index, poison, where):
    floats = [k for k, v in digits_payload["state_dict"].items() if v.is_floating_point()]
    key = floats[key_index % len(floats)]
    t = digits_payload["state_dict"][key].clone()
    if poison == "complex":
        t = t.to(torch.complex64)
    else:
        t.view(-1)[where % t.numel()] = float(poison)
    path = tmp_path_factory.mktemp("sd") / "ck.pt"
    torch.save(dict(digits_payload, state_dict={**digits_payload["state_dict"], key: t}), path)
    want = "complex" if poison == "complex" else "NaN or infinity"
    with pytest.raises(BadInputError, match=f"key '{key}'.*{want}"):
        load_model(path)


def test_huge_config_is_refused_before_allocation(digits_payload, tmp_path):
    for key, value, cls in (("embed_dim", 2**20, ResourceLimitError), ("depth", 10**6, ResourceLimitError),
                            ("num_heads", 0, BadInputError), ("num_heads", "4", BadInputError),
                            ("img_size", 10**7, ResourceLimitError)):
        path = tmp_path / f"{key}.pt"
        torch.save(dict(digits_payload, config={**digits_payload["config"], key: value}), path)
        before = maxrss_mib()
        with pytest.raises(cls, match=key):
            load_model(path)
        assert maxrss_mib() - before < 100
    big = dict(digits_payload["config"], embed_dim=8192, tokenizer_channels=[16, 32, 8192], num_heads=8, depth=128)
    torch.save(dict(digits_payload, config=big), tmp_path / "big.pt")
    with pytest.raises(ResourceLimitError, match="parameters"):
        load_model(tmp_path / "big.pt")


# -- .nir graphs -----------------------------------------------------------------------------------------

STATEFUL = ("lif", "if")


def make_node(kind: str, n: int, poison: str | None, rng: np.random.Generator):
    w = rng.normal(size=(n, n)).astype(np.float32)
    if poison in ("nan", "inf"):
        w.flat[0] = np.nan if poison == "nan" else np.inf
    if poison == "complex":
        w = w.astype(np.complex64)
    if kind == "affine":
        return nir.Affine(weight=w, bias=np.zeros(n, np.float32))
    if kind == "linear":
        return nir.Linear(weight=w)
    if kind == "scale":
        return nir.Scale(scale=w[0])
    if kind == "lif":
        return nir.LIF(tau=np.full(n, 0.01, np.float32), r=np.ones(n, np.float32), v_leak=np.zeros(n, np.float32),
                       v_threshold=np.ones(n, np.float32) if poison is None else w[0])
    return nir.IF(r=np.ones(n, np.float32), v_threshold=np.ones(n, np.float32) if poison is None else w[0])


@st.composite
def graphs(draw):
    n = 3
    kinds = draw(st.lists(st.sampled_from(["affine", "linear", "scale", "lif", "if"]), min_size=1, max_size=4))
    names = [f"n{i}" for i in range(len(kinds))]
    poison_at = draw(st.one_of(st.none(), st.integers(0, len(kinds) - 1)))
    poison = draw(st.sampled_from(["nan", "inf", "complex"])) if poison_at is not None else None
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    nodes = {"input": nir.Input(input_type={"input": np.array([n])}),
             "output": nir.Output(output_type={"output": np.array([n])})}
    for i, (name, kind) in enumerate(zip(names, kinds)):
        nodes[name] = make_node(kind, n, poison if i == poison_at else None, rng)
    chain = ["input", *names, "output"]
    edges = list(zip(chain, chain[1:]))
    extra = draw(st.lists(st.tuples(st.sampled_from(names + ["ghost"]), st.sampled_from(names)), max_size=3))
    edges += [e for e in extra if e not in edges]
    md = draw(st.sampled_from([{}, {"neurodeploy.dt": 0.0}, {"neurodeploy.dt": -1e-4}, {"neurodeploy.dt": 1e-4},
                               {"neurodeploy.time_steps": 10**9}, {"neurodeploy.time_steps": 4},
                               {"neurodeploy.readout_reduction": "bogus"}]))
    g = nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(md), type_check=False)
    return g, dict(zip(names, kinds)), poison


def expected_error(g: nir.NIRGraph, kinds: dict, poison) -> tuple[type, str] | None:
    """The oracle: what validate_graph must say (networkx for the cycles, in validate_graph's order)."""
    if any("ghost" in e for e in g.edges):
        return BadInputError, "does not have"
    plain = nx.DiGraph()
    plain.add_nodes_from(n for n in g.nodes if kinds.get(n) not in STATEFUL)
    plain.add_edges_from((a, b) for a, b in g.edges if a in plain and b in plain)
    if not nx.is_directed_acyclic_graph(plain):
        return BadInputError, "a cycle must pass through a neuron"
    if poison == "complex":
        return BadInputError, "complex"
    if poison is not None:
        return BadInputError, "NaN or infinity"
    md = g.metadata
    if md.get("neurodeploy.dt", 1) <= 0:
        return BadInputError, "neurodeploy.dt must be > 0"
    if md.get("neurodeploy.time_steps", 0) > limits.MAX_TIME_STEPS:
        return ResourceLimitError, "exceeds the limit"
    if "neurodeploy.readout_reduction" in md:
        return BadInputError, "readout_reduction"
    return None


@settings(FAST, max_examples=40)
@given(case=graphs())
def test_generated_graphs_api(case):
    g, kinds, poison = case
    want = expected_error(g, kinds, poison)
    if want is None:
        assert validate_graph(g) is g
    else:
        with pytest.raises(want[0], match=want[1]):
            validate_graph(g)


@settings(FAST, max_examples=15)
@given(case=graphs())
def test_generated_graphs_through_files(tmp_path_factory, case):
    """The same graphs written to .nir and read back: the documented class, the file named, nothing else."""
    g, kinds, poison = case
    path = tmp_path_factory.mktemp("g") / "g.nir"
    write_graph(g, path)
    want = expected_error(g, kinds, poison)
    if want is None:
        read_graph(path)
    else:
        with pytest.raises(want[0]) as info:
            read_graph(path)
        assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_fill_value_dataset_is_refused_before_reading(tmp_path):
    """A tiny .nir with a chunked dataset that was never written (fill value) declares 3.6 GB."""
    path = tmp_path / "bomb.nir"
    write_graph(read_graph(LIF), path)
    with h5py.File(path, "a") as f:
        node = f["node/nodes"][next(iter(f["node/nodes"]))]
        for k in list(node):
            if k == "weight" or isinstance(node[k], h5py.Dataset) and node[k].ndim >= 1 and k not in ("type",):
                del node[k]
                node.create_dataset(k, shape=(30000, 30000), dtype="f4", chunks=(1000, 1000),
                                    compression="gzip", fillvalue=0.0)
                break
    assert path.stat().st_size < 200_000
    before = maxrss_mib()
    with pytest.raises(ResourceLimitError, match="declares 3,600,000,000 bytes"):
        read_graph(path)
    assert maxrss_mib() - before < 100
    code, out, err = run_main("check", path, "--no-dynamic")
    assert_one_line(code, err, "refusing to allocate")


def test_algebraic_loop_and_self_loop_messages():
    a = nir.Affine(weight=np.eye(2, dtype=np.float32), bias=np.zeros(2, np.float32))
    base = {"input": nir.Input({"input": np.array([2])}), "output": nir.Output({"output": np.array([2])})}
    g = nir.NIRGraph(nodes={**base, "a": a}, edges=[("input", "a"), ("a", "a"), ("a", "output")], type_check=False)
    with pytest.raises(BadInputError, match="self-loop on a: a cycle must pass through a neuron"):
        validate_graph(g)
    lif = nir.LIF(tau=np.ones(2), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2))
    ok = nir.NIRGraph(nodes={**base, "a": a, "l": lif}, edges=[("input", "a"), ("a", "l"), ("l", "a"),
                                                               ("l", "output")], type_check=False)
    assert validate_graph(ok) is ok  # a recurrence through a neuron is fine
    with pytest.raises(BadInputError, match="graph has no nodes"):
        validate_graph(nir.NIRGraph(nodes={}, edges=[], type_check=False))


# -- data files ------------------------------------------------------------------------------------------

@st.composite
def data_files(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_, np.complex64]))
    shape = draw(st.lists(st.integers(0, 3), min_size=1, max_size=5))
    x = draw(hnp.arrays(dtype, shape, elements=None if dtype is np.bool_ else
                        st.just(1) if np.dtype(dtype).kind in "iu" else st.sampled_from([0.5, -1.0, np.nan, np.inf])))
    labels = draw(st.one_of(st.none(), st.lists(st.integers(-2, 12), min_size=0, max_size=4)))
    fmt = draw(st.sampled_from(["npy", "npz", "pt"]))
    return x, (None if labels is None else np.asarray(labels, np.int64)), fmt


def data_oracle(x: np.ndarray, y, fmt: str) -> str | None:
    if x.dtype.kind == "c":
        return "numeric"
    if x.ndim < 2 or x.shape[0] == 0:
        return "expected samples"
    if 0 in x.shape:
        return "zero-length axis"
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        return "NaN or infinity"
    if fmt != "npy" and y is not None:
        if y.shape != (x.shape[0],):
            return "labels must be integers"
        if y.size and (y.min() < 0 or y.max() >= 10):
            return "outside [0, 9]"
    return None


@settings(FAST, max_examples=40)
@given(case=data_files())
def test_generated_data_files(tmp_path_factory, case):
    x, y, fmt = case
    path = tmp_path_factory.mktemp("d") / f"s.{fmt}"
    if fmt == "npy":
        np.save(path, x)
    elif fmt == "npz":
        np.savez(path, **({"x": x} if y is None else {"x": x, "y": y}))
    else:
        torch.save({"x": torch.as_tensor(x)} if y is None else {"x": torch.as_tensor(x), "y": torch.as_tensor(y)}, path)
    want = data_oracle(x, y, fmt)
    if want is None:
        xs, ys = load_labeled_samples(path, num_classes=10)
        np.testing.assert_array_equal(xs, x.astype(np.float32))
    else:
        with pytest.raises(BadInputError, match=want):
            load_labeled_samples(path, num_classes=10)


def test_data_header_checked_before_reading(tmp_path):
    """An .npy header that declares 2**40 elements is refused from the header (the file is 128 bytes)."""
    path = tmp_path / "big.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (2**20, 2**20)})
    with pytest.raises(ResourceLimitError, match="1,099,511,627,776 elements"):
        load_labeled_samples(path)


# -- hardware profiles -----------------------------------------------------------------------------------

PROFILE = (REPO / "hardware_profiles" / "loihi2.toml").read_text()
VALUE_LINES = [i for i, line in enumerate(PROFILE.splitlines()) if "{ value = " in line and "value = [" not in line
               and "value = true" not in line and "value = false" not in line]


@settings(FAST, max_examples=40)
@given(line=st.sampled_from(VALUE_LINES), value=st.sampled_from(["nan", "inf", "-inf", "0", "-1", "0.5", "1e300"]))
def test_generated_profiles(tmp_path_factory, line, value):
    lines = PROFILE.splitlines()
    key = lines[line].split("=")[0].strip()
    head, rest = lines[line].split("{ value = ", 1)
    lines[line] = head + "{ value = " + value + rest[rest.index(","):]
    path = tmp_path_factory.mktemp("p") / "p.toml"
    path.write_text("\n".join(lines))
    section = next(ln for ln in reversed(PROFILE.splitlines()[:line]) if ln.startswith("["))
    must_fail = value in ("nan", "inf", "-inf", "-1", "1e300") or (
        value in ("0", "0.5") and (section in ("[core]", "[chip]") or key.endswith("_per_unit")
                                   or key in ("weight_bits", "state_bits", "spike_payload_bits")))
    if must_fail:
        with pytest.raises(BadInputError, match=key):
            load_profile_file(path)
    else:
        try:
            load_profile_file(path)
        except BadInputError as exc:
            assert key in str(exc) and "\n" not in str(exc)


@settings(FAST, max_examples=30)
@given(line=st.sampled_from(VALUE_LINES), scale=st.sampled_from([1e3, 1e6, 1e9, 1e20]))
def test_generated_absurd_profile_values_through_targets(tmp_path_factory, line, scale):
    """``targets --profile P.toml``: a value outside its key's plausible range (profiles.PLAUSIBLE_RANGES) is
    exit 2 naming the file and the key; inside, the profile loads."""
    from neurodeploy.profiles import plausible_range

    lines = PROFILE.splitlines()
    key = lines[line].split("=")[0].strip()
    section = next(ln for ln in reversed(lines[:line]) if ln.startswith("["))[1:-1]
    head, rest = lines[line].split("{ value = ", 1)
    old = float(rest[:rest.index(",")])
    value = max(old, 1.0) * scale
    lines[line] = head + "{ value = " + repr(value) + rest[rest.index(","):]
    path = tmp_path_factory.mktemp("p") / "p.toml"
    path.write_text("\n".join(lines))
    nth_system = sum(ln.startswith("[[systems]]") for ln in lines[:line]) - 1
    dotted = f"systems[{nth_system}].chips" if section == "[systems]" else f"{section}.{key}"
    lo, hi, _ = plausible_range(dotted)
    code, out, err = run_main("targets", "--profile", path)
    if value > hi:
        assert_one_line(code, err, f"hardware profile {path}: key {dotted}: ")
        assert "plausible range" in err and out == ""
    elif code:  # in range, refused by another rule (a per-core list, a whole number of cores)
        assert_one_line(code, err, f"key {dotted}")


# -- firing rates ----------------------------------------------------------------------------------------

@FAST
@given(depth=st.integers(1, 100_000), token=st.sampled_from(["0.5", "NaN", "Infinity", "1.5", "true"]))
def test_generated_firing_rate_files(tmp_path_factory, depth, token):
    path = tmp_path_factory.mktemp("r") / "r.json"
    path.write_text('{"a": ' * depth + token + "}" * depth)
    if depth > limits.MAX_NESTING:
        with pytest.raises(ResourceLimitError, match="nested deeper"):
            load_firing_rates(path)
    elif depth == 1 and token == "0.5":
        assert load_firing_rates(path) == {"a": 0.5}
    else:
        with pytest.raises(BadInputError):
            load_firing_rates(path)


# -- options (in-process CLI: one line, exit 2, nothing written) -----------------------------------------

def _bogus_device(s: str) -> bool:
    try:
        return torch.device(s).type != "cpu"
    except Exception:  # noqa: BLE001 - anything torch refuses is bogus
        return True


@FAST
@given(opt=st.sampled_from(["lr", "device", "epochs", "batch-size"]),
       value=st.one_of(st.sampled_from(["nan", "inf", "-inf", "0", "-3", "1e999", "bogus", "cuda:7", "meta"]),
                       st.text(alphabet="abcxyz:0129-", min_size=1, max_size=6)))
def test_generated_train_options_fail_before_training(tmp_path_factory, opt, value):
    if opt == "device":
        assume(_bogus_device(value))
    elif opt == "lr":
        assume(value in ("nan", "inf", "-inf", "0", "-3", "1e999") or not value.replace(".", "").isdigit())
    else:
        assume(not (value.isdigit() and int(value) >= 1))
    folder = tmp_path_factory.mktemp("t")
    code, out, err = run_main("train", "-o", folder / "ck.pt", f"--{opt}", value)
    assert_one_line(code, err)
    assert out == "" and os.listdir(folder) == []


@FAST
@given(steps=st.one_of(st.integers(max_value=0), st.integers(limits.MAX_TIME_STEPS + 1, 2**80)))
def test_generated_step_counts(steps):
    code, out, err = run_main("simulate", LIF, "--steps", steps)
    assert_one_line(code, err, "--steps")


def test_train_into_an_existing_folder_fails_before_training(tmp_path):
    code, out, err = run_main("train", "-o", tmp_path)
    assert_one_line(code, err, "is a directory")
    assert os.listdir(tmp_path) == []


def test_argparse_errors_are_one_line_everywhere():
    for args in ([], ["--bogus"], ["frobnicate"], ["check"], ["export", "x.nir"], ["report", "--format", "pdf", "m"],
                 ["simulate", "m", "--steps", "many"], ["train", "--epochs"], ["targets", "--nope"]):
        code, out, err = run_main(*args)
        assert_one_line(code, err)
        assert "usage:" not in err and out == ""


def test_boundary_turns_raw_exceptions_into_documented_classes():
    for raw in (ZeroDivisionError("x"), TypeError("t"), OverflowError("o"), RecursionError("r"), OSError(5, "EIO")):
        with pytest.raises(BadInputError) as info:
            with boundary("model.nir"):
                raise raw
        assert str(info.value).startswith("model.nir: ") and "\n" not in str(info.value)
    with pytest.raises(KeyboardInterrupt):
        with boundary("x"):
            raise KeyboardInterrupt


# -- a sample through the real CLI (subprocess) ------------------------------------------------------------

@pytest.mark.slow
def test_cli_sample_in_a_subprocess(tmp_path, digits_payload):
    nan_nir = tmp_path / "nan.nir"
    g = read_graph(LIF)
    node = next(n for n in g.nodes.values() if hasattr(n, "weight"))
    node.weight = node.weight.copy()
    node.weight.flat[0] = np.nan
    write_graph(g, nan_nir)
    heads0 = tmp_path / "heads0.pt"
    torch.save(dict(digits_payload, config={**digits_payload["config"], "num_heads": 0}), heads0)
    zero_t = tmp_path / "zero_t.npy"
    np.save(zero_t, np.zeros((2, 0, 1, 8, 8), np.float32))
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    cases = [(["check", nan_nir, "--no-dynamic"], "NaN or infinity"),
             (["export", heads0, "-o", tmp_path / "out"], "num_heads"),
             (["simulate", "spikingformer-digits", "--data", zero_t], "zero-length axis"),
             (["report", LIF, "--firing-rates", deep], "nested deeper")]
    before = listing(tmp_path)
    for args, needle in cases:
        r = subprocess.run([sys.executable, "-m", "neurodeploy", *map(str, args)], capture_output=True, text=True,
                           cwd=tmp_path, timeout=300)
        assert_one_line(r.returncode, r.stderr, needle)
    assert listing(tmp_path) == before
    json.loads("[]")  # the JSON module is unaffected by the deep file (no global state changed)


def test_labels_out_of_range_are_refused_by_simulate(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((2, 1, 8, 8), np.float32), y=np.array([3, 10]))
    code, out, err = run_main("simulate", "spikingformer-digits", "--data", path)
    assert_one_line(code, err, "labels: label 10 is outside [0, 9] (the model has 10 classes)")
    assert out == ""


def test_float_simulation_in_time_chunks_is_exact():
    """fidelity runs the float reference time_chunk steps at a time (memory flat in T): bit-identical."""
    from neurodeploy.front_door import load_graph
    from neurodeploy.graph import simulate

    g, _ = load_graph("spikingformer-digits")
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 3
    whole = simulate(g, x, T=150)
    assert torch.equal(simulate(g, x, T=150, time_chunk=64), whole) and whole.shape == (150, 2, 10)


# -- issue 26: the edges still open ------------------------------------------------------------------------

def _bomb(digits_payload, path: Path) -> Path:
    """326 KB: the digits weights under a config that claims embed_dim 8192 (3.9 GB if it were built)."""
    cfg = dict(digits_payload["config"], embed_dim=8192, tokenizer_channels=[16, 32, 8192], num_heads=8)
    torch.save(dict(digits_payload, config=cfg), path)
    return path


def test_config_bomb_is_refused_before_any_model_is_built(digits_payload, tmp_path, monkeypatch):
    """The config is checked against the weights' keys and shapes (a meta-device build: shapes, no storage)
    before a model is built; measured peak of the refused CLI run: benchmarks/bench_config_bomb.py."""
    import neurodeploy.checkpoint as ck

    path = _bomb(digits_payload, tmp_path / "bomb.pt")
    assert path.stat().st_size < 400_000

    def no_build(*a, **kw):
        raise AssertionError("a model was built before the config was checked against the weights")

    monkeypatch.setattr(ck, "build_model", no_build)
    before = maxrss_mib()
    with pytest.raises(BadInputError, match=r"key 'patch_embed\.block2_conv\.weight' has shape \[64, 32, 3, 3\], "
                                            r"expected \[8192, 32, 3, 3\] \(config embed_dim = 8192"):
        load_model(path)
    assert maxrss_mib() - before < 200
    code, out, err = run_main("export", path, "-o", tmp_path / "out")
    assert_one_line(code, err, "embed_dim = 8192")
    assert out == "" and sorted(os.listdir(tmp_path)) == ["bomb.pt"]


def test_official_checkpoint_shapes_checked_before_building(digits_payload, tmp_path, monkeypatch):
    """--arch with a state_dict of another size: refused from the shapes, nothing built."""
    import neurodeploy.checkpoint as ck

    sd = dict(digits_payload["state_dict"], **{"head.weight": torch.zeros(7, 64)})
    torch.save({"state_dict": sd}, tmp_path / "official.pth.tar")
    monkeypatch.setattr(ck, "build_model", lambda *a, **kw: pytest.fail("built"))
    with pytest.raises(BadInputError, match=r"key 'head\.weight' has shape \[7, 64\], expected \[10, 64\] "
                                            r"\(config num_classes = 10\)"):
        load_model(tmp_path / "official.pth.tar", arch="spikingformer-digits")


CNN = NIR_PAPER / "02_cnn" / "cnn_sinabs.nir"
#: node of cnn_sinabs.nir -> its shape-fixing fields (Conv2d '0', SumPool2d '4', Flatten '8')
CNN_FIELDS = {"0": ("stride", "dilation", "padding", "groups", "input_shape"), "4": ("kernel_size", "stride", "padding"),
              "8": ("start_dim", "end_dim")}
FIELD_RANGES = {"padding": (0, limits.MAX_DIM), "start_dim": (-limits.MAX_NDIM, limits.MAX_NDIM),
                "end_dim": (-limits.MAX_NDIM, limits.MAX_NDIM)}


@settings(FAST, max_examples=30)
@given(node=st.sampled_from(sorted(CNN_FIELDS)), pick=st.integers(0, 4),
       value=st.one_of(st.sampled_from([0, -1, -7, 2**40, 2**62, 2**63 - 1, 10**6, 1.5, np.nan, np.inf, -np.inf]),
                       st.integers(-2**63, 2**63 - 1)), pair=st.booleans())
def test_generated_nir_shape_fields(tmp_path_factory, node, pick, value, pair):
    """Any value in a conv/pool/flatten field of a real .nir file: read, or one BadInputError naming the node
    and the field (never nir's OverflowError, ZeroDivisionError or a numpy warning on stderr)."""
    field = CNN_FIELDS[node][pick % len(CNN_FIELDS[node])]
    path = tmp_path_factory.mktemp("s") / "cnn.nir"
    path.write_bytes(CNN.read_bytes())
    scalar = field in ("groups", "start_dim", "end_dim")
    data = np.asarray(value if scalar or not pair else [value, value] if field != "input_shape" else [value, 34])
    if not scalar and data.ndim == 0:
        data = np.asarray([value, 1] if field != "padding" else [value, 0])
    with h5py.File(path, "a") as f:
        g = f["node/nodes"][node]
        if field in g:
            del g[field]
        g.create_dataset(field, data=data)
    lo, hi = FIELD_RANGES.get(field, (1, limits.MAX_DIM))
    vals = np.asarray(data, dtype=np.float64).reshape(-1)
    bad = not all(np.isfinite(v) and v == int(v) and lo <= v <= hi for v in vals)
    if bad:
        with pytest.raises(BadInputError) as info:
            read_graph(path)
        msg = str(info.value)
        assert msg.startswith(f"{path}: node '{node}': '{field}'") and "\n" not in msg, msg
        code, out, err = run_main("check", path, "--no-dynamic")
        assert_one_line(code, err, f"node '{node}': '{field}'")
    else:  # a valid number that gives another shape: read, or refused naming a node (type check, kernel fit)
        try:
            read_graph(path)
        except BadInputError as exc:
            assert ("node" in str(exc) or "type " in str(exc)) and "\n" not in str(exc)


def test_stride_zero_nir_is_one_line_naming_node_and_field(tmp_path):
    path = tmp_path / "s0.nir"
    path.write_bytes(CNN.read_bytes())
    with h5py.File(path, "a") as f:
        del f["node/nodes/0/stride"]
        f["node/nodes/0"].create_dataset("stride", data=np.array([0, 0]))
    code, out, err = run_main("check", path, "--no-dynamic")
    assert_one_line(code, err, f"{path}: node '0': 'stride' must be integers in [1, 16,777,216], got [0, 0]")
    assert "Overflow" not in err and "Warning" not in err


def test_in_memory_conv_fields_are_validated():
    w = np.ones((2, 1, 3, 3), np.float32)
    base = {"input": nir.Input({"input": np.array([1, 8, 8])}), "output": nir.Output({"output": np.array([2, 6, 6])})}
    for kw, needle in (({"stride": 0}, "'stride'"), ({"dilation": (1, -2)}, "'dilation'"),
                       ({"padding": (2**40, 0)}, "'padding'"), ({"groups": 0}, "'groups'")):
        args = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, **kw}
        conv = nir.Conv2d(input_shape=None, weight=w, bias=np.zeros(2, np.float32), **args)
        g = nir.NIRGraph(nodes={**base, "c": conv}, edges=[("input", "c"), ("c", "output")], type_check=False)
        with pytest.raises(BadInputError, match=f"node 'c': {needle}"):
            validate_graph(g)
    conv = nir.Conv2d(input_shape=None, weight=np.ones((2, 1, 9, 9), np.float32), bias=np.zeros(2, np.float32),
                      stride=1, padding=0, dilation=1, groups=1)
    conv.input_shape = np.array([4, 4])  # a 9x9 kernel on a 4x4 input without padding: no output at all
    g = nir.NIRGraph(nodes={**base, "c": conv}, edges=[("input", "c"), ("c", "output")], type_check=False)
    with pytest.raises(BadInputError, match="node 'c': kernel 9 .* does not fit 'input_shape' 4"):
        validate_graph(g)


@settings(FAST, max_examples=30)
@given(case=graphs())
def test_generated_graphs_through_lower_graph(case):
    """lower_graph is a documented entry point: the validator's error (NaN/inf named by node, algebraic loops
    named by their nodes), or a lowered network / a NeurodeployError, never a raw exception."""
    from neurodeploy.lower.loihi2 import lower_graph

    g, kinds, poison = case
    want = expected_error(g, kinds, poison)
    if want is not None:
        with pytest.raises(want[0], match=want[1]) as info:
            lower_graph(g, T=4)
        assert str(info.value).startswith("lower_graph: ") and "\n" not in str(info.value)
    else:
        try:
            lower_graph(g, T=4)
        except NeurodeployError as exc:
            assert "\n" not in str(exc)


def test_lower_graph_names_the_nan_node_and_the_loop():
    from neurodeploy.lower.loihi2 import lower_graph

    g = read_graph(LIF)
    g.nodes["0"].weight = g.nodes["0"].weight.copy()
    g.nodes["0"].weight.flat[0] = np.nan
    with pytest.raises(BadInputError, match=r"^lower_graph: node '0': 'weight' contains NaN or infinity$"):
        lower_graph(g, T=10)
    eye = {"weight": np.eye(2, dtype=np.float32), "bias": np.zeros(2, np.float32)}
    loop = nir.NIRGraph(nodes={"input": nir.Input({"input": np.array([2])}), "a": nir.Affine(**eye),
                               "b": nir.Affine(**eye), "output": nir.Output({"output": np.array([2])})},
                        edges=[("input", "a"), ("a", "b"), ("b", "a"), ("b", "output")], type_check=False)
    with pytest.raises(BadInputError, match="algebraic loop through a, b"):
        lower_graph(loop, T=10)
    good = read_graph(LIF)
    for kw, name in (({"T": 0}, "'T'"), ({"T": 10**6}, "'T'"), ({"scale": float("nan")}, "'scale'"),
                     ({"input_range": (0.0, float("inf"))}, "'input_range'"), ({"bias_exp_min": 9}, "'bias_exp_min'"),
                     ({"rounding": "up"}, "'rounding'")):
        with pytest.raises(BadInputError, match=name):
            lower_graph(good, **kw)
    with pytest.raises(BadInputError, match="argument 'graph'"):
        lower_graph({"nodes": {}})


@FAST
@given(arg=st.one_of(st.integers(), st.none(), st.floats(), st.booleans(), st.lists(st.integers(), max_size=2),
                     st.just(""), st.just("/tmp/" + "a/" * 3000 + "x.pt"), st.just("/tmp/" + "n" * 300 + ".pt"),
                     st.just("a\0b.pt")))
def test_generated_load_model_arguments(arg):
    with pytest.raises(BadInputError, match=r"^load_model: argument 'path'") as info:
        load_model(arg)
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


@FAST
@given(dtype=st.one_of(st.sampled_from([np.int32, np.int8, np.uint8, np.int64, np.bool_, np.complex64, int, bool,
                                        "int32", "bogus", None, 5, object, np.float128 if hasattr(np, "float128")
                                        else np.longdouble]), st.text(max_size=6)))
def test_generated_to_nir_dtypes(dtype):
    from neurodeploy.exporters import to_nir

    try:  # numpy as the oracle: what it reads as a float16/32/64 dtype is valid
        valid = dtype is not None and not isinstance(dtype, bool) and np.dtype(dtype).name in ("float16", "float32",
                                                                                                "float64")
    except Exception:  # noqa: BLE001 - numpy cannot read it: invalid
        valid = False
    assume(not valid)
    with pytest.raises(BadInputError, match=r"^to_nir: argument 'dtype' must be one of float16, float32, float64"):
        to_nir(build_model("spikingformer-digits"), dtype=dtype)


# -- option validators (commands/common.py) ------------------------------------------------------------------

def _parse_oracle(text: str, kind):
    try:
        v = float(text) if kind is float else int(text.strip(), 10)
    except ValueError:
        return None
    return v


@settings(FAST, max_examples=60)
@given(text=st.one_of(st.integers(-10, 2 * 10**6).map(str), st.sampled_from(["nan", "inf", "-inf", "1e999", "0x10", "",
                                                                               "1.5", "1e3", " 7 ", "٣"]),
                      st.text(max_size=6)))
def test_generated_validator_values(text):
    import argparse

    from neurodeploy.commands.common import fraction, positive_float, positive_int, positive_minutes

    checks = ((positive_int("--max-chips", 10**6), int, lambda v: 1 <= v <= 10**6),
              (positive_float("--max-energy-uj", 1e6), float, lambda v: np.isfinite(v) and 0 < v <= 1e6),
              (fraction("--min-fidelity"), float, lambda v: np.isfinite(v) and 0 <= v <= 1),
              (positive_minutes(), float, lambda v: np.isfinite(v) and 0 < v <= 7 * 24 * 60))
    for parse, kind, ok in checks:
        v = _parse_oracle(text, kind)
        if v is not None and ok(v):
            assert parse(text) == v
        else:
            with pytest.raises(argparse.ArgumentTypeError) as info:
                parse(text)
            name = {"positive_int": "--max-chips", "positive_float": "--max-energy-uj", "fraction": "--min-fidelity",
                    "positive_minutes": "--max-minutes"}[parse.__name__]
            assert str(info.value).startswith(name) and "\n" not in str(info.value)


def test_system_and_family_name_validators():
    import argparse

    from neurodeploy.commands.common import known_name, known_systems, system_name

    systems = known_systems()
    assert {"Hala Point", "Kapoho Point", "Oheo Gulch", "Pohoiki Springs"} <= set(systems)
    parse = system_name()
    assert parse("hala-point") == parse("HALA POINT") == parse("Hala Point") == "Hala Point"
    with pytest.raises(argparse.ArgumentTypeError, match=r"^--system: unknown system 'Hala Pont'; close matches: "
                                                         r"Hala Point"):
        parse("Hala Pont")
    with pytest.raises(argparse.ArgumentTypeError, match=r"unknown system 'zzz'; known: .*Oheo Gulch.*XyloIMU dev kit$"):
        parse("zzz")
    family = known_name("--family", ["spikingformer", "spikformer", "sew-resnet"], "family")
    assert family("SEW_resnet") == "sew-resnet"
    with pytest.raises(argparse.ArgumentTypeError, match="close matches: spikingformer, spikformer"):
        family("spikingformr")


#: (command line before the option, option, bad values, the words of the message)
OPTION_CASES = [
    (["report", LIF], "--max-chips", ["0", "-1", str(10**7), "nan", "2.5"], "--max-chips"),
    (["report", LIF], "--max-energy-uj", ["0", "-1", "1e300", "nan", "inf"], "--max-energy-uj"),
    (["report", LIF], "--min-fidelity", ["-0.1", "1.5", "nan", "inf"], "--min-fidelity"),
    (["report", LIF], "--samples", ["0", "-3", str(2**40)], "--samples"),
    (["simulate", LIF], "--batch", ["0", "-3", str(2**30)], "--batch"),
    (["simulate", LIF], "--limit", ["0", "-3", str(2**40)], "--limit"),
    (["simulate", LIF], "-T", ["0", "-3", str(10**6)], "--steps"),
    (["export", LIF, "-o", "never"], "--dt", ["0", "-1", "1e300", "nan"], "--dt"),
    (["export", LIF, "-o", "never"], "--samples", ["0"], "--samples"),
    (["check", LIF], "--samples", ["0", str(2**40)], "--samples"),
]


@settings(FAST, max_examples=40)
@given(case=st.sampled_from(OPTION_CASES), pick=st.integers(0, 4))
def test_generated_bad_option_values_are_one_line(case, pick):
    head, opt, values, needle = case
    value = values[pick % len(values)]
    code, out, err = run_main(*head, opt, value)
    assert_one_line(code, err, needle)
    assert out == "" and "argument" not in err and not Path(REPO / "never").exists()


def test_input_shape_option_is_validated(tmp_path):
    code, out, err = run_main("export", LIF, "-o", tmp_path / "o", "--input-shape", "0", "8", "8")
    assert_one_line(code, err, "--input-shape must be >= 1, got 0")
    assert os.listdir(tmp_path) == []
