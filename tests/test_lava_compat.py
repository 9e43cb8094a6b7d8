"""Lava on Python 3.11 through ``neurodeploy.lava_compat``, and Lava's fixed-point LIF against hand-computed
integers (equations: shared/reference/lava_loihi.md section 1.2)."""
from __future__ import annotations

import ast
import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from neurodeploy.lava_compat import ensure_lava, patch_var_model_source

pytestmark = pytest.mark.lava

ENCODER_CLASSES = {"CoreEncoder": ("x", "y", "p"), "ChipEncoder": ("x", "y", "z"), "AxonEncoder": ("hi", "lo")}


def _var_model_path() -> Path:
    spec = importlib.util.find_spec("lava")  # finds the namespace package without importing Lava
    assert spec is not None, "lava-nc is not installed (make test installs it)"
    for root in spec.submodule_search_locations:
        path = Path(root) / "magma" / "compiler" / "var_model.py"
        if path.exists():
            return path
    raise AssertionError("lava/magma/compiler/var_model.py not found")


def _encoder_namespace(source: str) -> dict:
    """Execute only the ByteEncoder and the three encoder dataclasses of a var_model source text."""
    tree = ast.parse(source)
    wanted = {"ByteEncoder", *ENCODER_CLASSES}
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name in wanted]
    assert {c.name for c in classes} == wanted
    header = "from dataclasses import dataclass, field as _nd_field\n"
    namespace: dict = {}
    exec(compile(header + "\n\n".join(ast.unparse(c) for c in classes), "<var_model encoders>", "exec"), namespace)
    return namespace


def test_patch_rewrites_exactly_the_byteencoder_defaults():
    path = _var_model_path()
    source = path.read_text(encoding="utf-8")
    patched = patch_var_model_source(source)

    assert "= ByteEncoder()" in source  # the upstream bug is really there
    assert "= ByteEncoder()" not in patched
    assert patched.count("_nd_field(default_factory=ByteEncoder)") == 8  # 3 + 3 + 2 fields
    # nothing else changes and no line moves (tracebacks keep their line numbers): 8 field lines differ,
    # plus the __future__ line that gets the import of `field` appended
    old_lines, new_lines = source.splitlines(), patched.splitlines()
    assert len(new_lines) == len(old_lines)
    changed = [i for i, (a, b) in enumerate(zip(old_lines, new_lines)) if a != b]
    assert len(changed) == 9
    assert new_lines[changed[0]].startswith("from __future__ import annotations; from dataclasses import field")
    assert all(old_lines[i].rstrip().endswith("= ByteEncoder()") for i in changed[1:])
    # still valid Python with the __future__ import first, and patching twice changes nothing
    compile(patched, str(path), "exec", dont_inherit=True)
    assert patch_var_model_source(patched) == patched


def test_patched_encoders_build_and_do_not_share_defaults():
    source = _var_model_path().read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="mutable default"):  # what Python 3.11 does to the original
        _encoder_namespace(source)

    ns = _encoder_namespace(patch_var_model_source(source))
    byte = ns["ByteEncoder"]
    for cls_name, fields in ENCODER_CLASSES.items():
        cls = ns[cls_name]
        assert tuple(f.name for f in dataclasses.fields(cls)) == fields
        a, b = cls(), cls()
        for name in fields:
            assert getattr(a, name) == byte(base=0, len=0, ptr=0)
            assert getattr(a, name) is not getattr(b, name)  # a fresh ByteEncoder per instance
        assert cls(**{fields[0]: byte(base=3, len=2, ptr=1)}).__dict__[fields[0]] == byte(3, 2, 1)


def test_lava_imports_through_ensure_lava():
    ensure_lava()
    from lava.magma.compiler import var_model

    assert var_model.CoreEncoder().x == var_model.ByteEncoder()
    assert var_model.AxonEncoder().hi is not var_model.AxonEncoder().hi


def test_netx_imports():
    ensure_lava()
    import lava.lib.dl.netx as netx

    assert hasattr(netx.hdf5, "Network")


# ---------------------------------------------------------------------------------------------------------
# RingBuffer -> Dense -> LIF under Loihi2SimCfg(select_tag='fixed_pt'), checked against hand computation.
#
# Fixed-point LIF per step (lava_loihi.md 1.2), everything integer:
#   u = trunc0(u * (4096 - (du + 1)) / 4096) + 64 * a_in       (trunc0: round toward zero)
#   v = trunc0(v * (4096 - dv) / 4096) + u                     (bias 0 here)
#   spike iff v > 64 * vth, then v = 0 (u is not reset)
# The source sends column c of its data at step c + 1; Dense delivers it to the LIF one step later.
# ---------------------------------------------------------------------------------------------------------


def _run_chain(weights, sent_columns, num_steps, **lif_params):
    """Return (spikes, v, u) as int arrays [neuron, step] for steps 1..num_steps."""
    ensure_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor

    weights = np.asarray(weights)
    n_out, n_in = weights.shape
    data = np.zeros((n_in, num_steps))
    data[:, list(sent_columns)] = 1
    source = Source(data=data)
    dense = Dense(weights=weights)
    lif = LIF(shape=(n_out,), **lif_params)
    sink = Sink(shape=(n_out,), buffer=num_steps)
    source.s_out.connect(dense.s_in)
    dense.a_out.connect(lif.a_in)
    lif.s_out.connect(sink.a_in)
    v_monitor, u_monitor = Monitor(), Monitor()
    v_monitor.probe(lif.v, num_steps)
    u_monitor.probe(lif.u, num_steps)
    try:
        lif.run(condition=RunSteps(num_steps=num_steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        spikes = sink.data.get()  # [neuron, step]
        v = v_monitor.get_data()[lif.name]["v"].T  # monitors record [step, neuron]
        u = u_monitor.get_data()[lif.name]["u"].T
    finally:
        lif.stop()
    return spikes.astype(np.int64), v.astype(np.int64), u.astype(np.int64)


def test_fixed_pt_lif_no_decay_matches_hand_computation():
    # weight 10, du=4095 (u forgets everything each step: u = 640 one step after an input spike, else 0),
    # dv=0 (v keeps everything), vth=15 -> spike when v > 960, i.e. on the second 640 in a row of
    # accumulation.  Source sends at steps 1, 2, 3, 5, 6 -> u = 640 at steps 2, 3, 4, 6, 7.
    #   step: 1    2    3       4    5    6       7    8
    #   v:    0  640 1280->0  640  640 1280->0  640  640
    spikes, v, u = _run_chain([[10]], [0, 1, 2, 4, 5], 8, du=4095, dv=0, vth=15)
    assert u.tolist() == [[0, 640, 640, 640, 0, 640, 640, 0]]
    assert v.tolist() == [[0, 640, 0, 640, 640, 0, 640, 640]]
    assert spikes.tolist() == [[0, 0, 1, 0, 0, 1, 0, 0]]


def test_fixed_pt_lif_with_decay_rounds_toward_zero():
    # Two neurons fed by one source: weights +12 and -8 (even, so the mixed-sign Dense keeps them exactly).
    # du=1024 -> u factor 4096-1025 = 3071; dv=1000 -> v factor 3096; vth=30 -> spike when v > 1920.
    # Source sends at steps 1, 2, 3, 6 -> input at steps 2, 3, 4, 7.
    # Neuron 0 (+12 -> 768 per input):
    #   step 2: u = 768;                     v = 768
    #   step 3: u = 768*3071>>12 = 575 +768 = 1343;  v = 768*3096>>12 = 580 + 1343 = 1923 > 1920 -> spike, v=0
    #   step 4: u = 1343*3071>>12 = 1006 + 768 = 1774;  v = 0 + 1774
    #   step 5: u = 1774*3071>>12 = 1330;   v = 1774*3096>>12 = 1340 + 1330 = 2670 -> spike, v=0
    #   step 6: u = 997;  v = 997.   step 7: u = 747 + 768 = 1515;  v = 753 + 1515 = 2268 -> spike
    #   step 8: u = 1135; v = 1135.  step 9: u = 850; v = 857 + 850 = 1707.  step 10: u = 637;
    #   v = 1290 + 637 = 1927 -> spike
    # Neuron 1 (-8 -> -512 per input; negative products round toward zero, not down):
    #   step 3: u = -(512*3071>>12) - 512 = -383 - 512 = -895;  v = -(512*3096>>12) - 895 = -387 - 895 = -1282
    #   step 4: u = -671 - 512 = -1183;  v = -(1282*3096>>12) - 1183 = -969 - 1183 = -2152  (floor: -2153)
    #   ... never spikes
    spikes, v, u = _run_chain([[12], [-8]], [0, 1, 2, 5], 10, du=1024, dv=1000, vth=30)
    assert u.tolist() == [
        [0, 768, 1343, 1774, 1330, 997, 1515, 1135, 850, 637],
        [0, -512, -895, -1183, -886, -664, -1009, -756, -566, -424],
    ]
    assert v.tolist() == [
        [0, 768, 0, 1774, 0, 997, 0, 1135, 1707, 0],
        [0, -512, -1282, -2152, -2512, -2562, -2945, -2982, -2819, -2554],
    ]
    assert spikes.tolist() == [
        [0, 0, 1, 0, 1, 0, 1, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ]
