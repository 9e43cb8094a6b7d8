"""Comparing engine results in tests: ``{pop: {"s"|"u"|"v": tensor}}`` as numpy, and exact equality of two."""
import numpy as np


def as_numpy(res):
    """``{pop: {key: tensor}}`` -> the same with numpy arrays."""
    return {n: {k: t.cpu().numpy() for k, t in r.items()} for n, r in res.items()}


def assert_same(a, b):
    """The same populations, the same keys, exactly the same integers."""
    assert a.keys() == b.keys()
    for n in a:
        assert a[n].keys() == b[n].keys()
        for k in a[n]:
            assert np.array_equal(a[n][k], b[n][k]), (n, k)


def assert_records_equal(ours, other, names):
    """Two runs' records of the populations ``names`` (every one, no other): s, u, v identical, the first
    differing index in the message (Lava against our engine)."""
    assert set(other) == set(ours) == set(names)
    for name in ours:
        for key in ours[name]:
            bad = np.argwhere(ours[name][key] != other[name][key])
            assert bad.size == 0, f"{name}.{key} differs first at {bad[0].tolist()}"
