"""Event data (DVS-style ``(x, y, t, p)`` events) binned into frames for a graph's input.

Files: ``.npy`` holding one structured event array with fields ``x``, ``t``, ``p`` (and ``y`` for 2-D
sensors; tonic's layout), optionally a field ``sample`` (or ``n``) giving each event's sample index; or
``.npz`` with such an array under ``events`` (labels under ``labels``/``targets``), or with the columns
``x``, ``t``, ``p`` [, ``y``] [, ``sample``] as 1-d arrays.  Each sample's events are binned into
``T`` frames (the sample's event time range split into T equal bins, :func:`events_to_frames`).
Frames hold event counts [T, P, H, W]; they are reshaped to the graph input when the sizes agree
(P*H*W == prod(input)), and clipped to 0/1 for a binary input domain (a bin is 1 when it holds >= 1 event).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import BadInputError, first_line

EVENT_FIELDS = ("x", "t", "p")
SAMPLE_FIELDS = ("sample", "n")
LABEL_KEYS = ("labels", "targets", "label", "target")


def is_event_array(a) -> bool:
    """A structured array with (at least) the fields x, t, p."""
    names = getattr(getattr(a, "dtype", None), "names", None) or ()
    return all(f in names for f in EVENT_FIELDS)


def _columns_to_events(cols: dict, where: str) -> np.ndarray:
    n = len(cols["t"])
    for k, v in cols.items():
        if v.ndim != 1 or len(v) != n:
            raise BadInputError(f"{where}: event column {k!r} has shape {list(v.shape)}, expected [{n}]")
    fields = [(k, np.int64) for k in cols]
    ev = np.zeros(n, dtype=fields)
    for k, v in cols.items():
        if v.dtype.kind not in "biuf" or not np.all(np.isfinite(v)) or np.any(v != np.round(v)):
            raise BadInputError(f"{where}: event column {k!r} must hold integers")
        ev[k] = v.astype(np.int64)
    return ev


def read_event_file(path: str | Path) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(events structured array, labels or None) when ``path`` holds events, else None (an ordinary sample file)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        try:        # a file numpy cannot open at all: the sample reader names it ("cannot read samples")
            opened = np.load(path, allow_pickle=False, mmap_mode="r")
        except Exception:  # noqa: BLE001 - numpy raises many types for corrupt files
            return None
        if hasattr(opened, "close"):
            opened.close()
    try:
        if suffix == ".npy":
            a = np.load(path, allow_pickle=False)
            return (a, None) if is_event_array(a) else None
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                labels = next((z[k] for k in LABEL_KEYS if k in keys), None)
                if "events" in keys and is_event_array(z["events"]):
                    return z["events"], labels
                if all(k in keys for k in EVENT_FIELDS) and z["t"].ndim == 1:
                    cols = {k: z[k] for k in ("x", "y", "t", "p", "sample", "n") if k in keys}
                    return _columns_to_events(cols, str(path)), labels
                return None
    except BadInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy raises many types for corrupt files
        msg = first_line(exc)
        raise BadInputError(f"{path}: cannot read events ({msg})") from None
    return None


def sensor_size(input_shape: tuple[int, ...], events: np.ndarray, where: str) -> tuple[int, int, int]:
    """tonic's (W, H, P) for a graph input [P, H, W] (2-D sensor) or [F] (1-D sensor, F = P * W)."""
    names = events.dtype.names
    pmax = int(events["p"].max()) + 1 if len(events) else 1
    if len(input_shape) == 3:
        P, H, W = input_shape
        return W, H, P
    if len(input_shape) == 1:
        if "y" in names and len(events) and int(events["y"].max()) > 0:
            raise BadInputError(f"{where}: events with y > 0 for a 1-d graph input of {input_shape[0]} features")
        F = int(input_shape[0])
        P = pmax if F % pmax == 0 and F // pmax > int(events["x"].max(initial=0)) else 1
        return F // P, 1, P
    raise BadInputError(f"{where}: event data needs a graph input [P, H, W] or [F], the graph has {list(input_shape)}")


def events_to_frames(events: np.ndarray, size: tuple[int, int, int], T: int, where: str = "events") -> np.ndarray:
    """One sample's events -> [T, P, H, W] event counts: the sample's time range [t_min, t_max] split into T
    equal bins, the last one closed (bin = min(T - 1, (t - t_min) * T // (t_max - t_min))).

    Hand-written (12 lines) rather than tonic's ``ToFrame(n_time_bins=T)``: tonic 1.7.0's bins are half-open,
    so the events at t_max are dropped (measured: 1 of 2 events lost for a 2-event sample), and tonic pulls in
    librosa and numba (15 packages) for this histogram."""
    W, H, P = size
    for f, lim in (("x", W), ("y", H), ("p", P)):
        if f in events.dtype.names and len(events) and (events[f].min() < 0 or events[f].max() >= lim):
            raise BadInputError(f"{where}: event field {f!r} spans [{int(events[f].min())}, {int(events[f].max())}], "
                                f"outside the sensor's 0..{lim - 1}")
    frames = np.zeros((T, P, H, W), np.float32)
    if len(events) == 0:
        return frames
    t = events["t"].astype(np.int64)
    t0, span = int(t.min()), int(t.max() - t.min())
    b = np.minimum(T - 1, (t - t0) * T // span) if span > 0 else np.zeros(len(t), np.int64)
    y = events["y"].astype(np.int64) if "y" in events.dtype.names else np.zeros(len(t), np.int64)
    np.add.at(frames, (b, events["p"].astype(np.int64), y, events["x"].astype(np.int64)), 1.0)
    return frames


def event_samples(events: np.ndarray, input_shape: tuple[int, ...], T: int | None, where: str,
                  binary: bool = False) -> np.ndarray:
    """All samples of an event array -> [N, T, *input_shape] float32."""
    if not T or T < 1:
        raise BadInputError(f"{where}: event data needs the number of time bins: give -T/--steps N")
    names = events.dtype.names
    key = next((k for k in SAMPLE_FIELDS if k in names), None)
    size = sensor_size(tuple(input_shape), events, where)
    if key is None:
        groups = [events]
    else:
        ids = np.unique(events[key])
        if len(ids) and (ids.min() < 0):
            raise BadInputError(f"{where}: negative sample index in field {key!r}")
        n = int(ids.max()) + 1 if len(ids) else 0
        groups = [events[events[key] == i] for i in range(n)]
    if not groups:
        raise BadInputError(f"{where}: no events")
    out = []
    for g in groups:
        f = events_to_frames(g, size, T, where)
        if int(np.prod(f.shape[1:])) != int(np.prod(input_shape)):
            raise BadInputError(f"{where}: frames of {list(f.shape[1:])} do not fit the graph input {list(input_shape)}")
        out.append(f.reshape((T,) + tuple(input_shape)))
    x = np.stack(out)
    return np.minimum(x, 1.0) if binary else x
