"""Sample data files for the stages that run a model (check's dynamic check, simulate, report).

``--data FILE``: ``.npy`` (samples only), ``.npz`` (samples under ``x``/``data``/``images``/``inputs`` or the
only array; labels under ``y``/``labels``/``targets``), or ``.pt`` (a tensor, a dict with those keys, or an
``(x, y)`` tuple; read with ``weights_only=True``).  Samples are [B, *input] or [B, T, *input].

Test sets larger than memory: ``.npy`` files and the members of an uncompressed ``.npz`` (``np.savez``, not
``np.savez_compressed``) are memory-mapped, never read whole: the checks (finite values, input domain) run in
chunks and the simulators convert one batch at a time (:func:`float_batch`).  Compressed ``.npz`` and ``.pt``
files are read into memory.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import limits
from .errors import BadInputError, ResourceLimitError, first_line
from .graph.core import input_names, node_shape, meta
from .events import event_samples, read_event_file
from . import tasks

SAMPLE_KEYS = ("x", "data", "images", "inputs")
#: elements per chunk of the checks over memory-mapped samples (64 MiB of float32)
CHECK_CHUNK = 1 << 24
LABEL_KEYS = ("y", "labels", "targets")


def _check_header(path: Path, what: str, shape, dtype) -> None:
    """Shape and dtype of an array from its file header, before it is read."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "biuf":
        raise BadInputError(f"{path}: {what} must be numeric, found dtype {dtype}")
    if len(shape) > limits.MAX_NDIM or any(d > limits.MAX_DIM for d in shape):
        raise ResourceLimitError(f"{path}: {what} shape {list(shape)} is outside the limits "
                                 f"(rank <= {limits.MAX_NDIM}, dims <= {limits.MAX_DIM:,})")
    size = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if size > limits.MAX_ARRAY_ELEMENTS:
        raise ResourceLimitError(f"{path}: {what} has {size:,} elements (limit {limits.MAX_ARRAY_ELEMENTS:,})")


def _npy_header(fileobj):
    version = np.lib.format.read_magic(fileobj)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fileobj)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(fileobj)
    return shape, dtype


def _npz_member_map(path: Path, z, key: str):
    """The ``.npz`` member ``key`` memory-mapped (numpy's own ``mmap_mode`` ignores .npz files), or None when
    it is compressed (then it is read whole)."""
    import zipfile

    info = z.zip.getinfo(f"{key}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if local[:4] != b"PK\x03\x04":
            return None
        name_len, extra_len = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        shape, fortran, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                                 else np.lib.format.read_array_header_2_0(f))
        offset = f.tell()
    if dtype.hasobject:
        return None
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=tuple(shape), order="F" if fortran else "C")


def _release(x) -> None:
    """Drop the pages of a memory-mapped ``x`` from this process (they stay in the OS page cache): rows already
    read do not count in the resident memory, so RSS stays one batch, not the file, however large it is."""
    mm = getattr(x, "_mmap", None)
    if mm is not None and hasattr(mm, "madvise"):
        import mmap as _mmap_mod

        mm.madvise(_mmap_mod.MADV_DONTNEED)


def _all_finite(x) -> bool:
    """np.isfinite(x).all() in chunks (no full-size temporary for memory-mapped samples)."""
    if x.dtype.kind != "f":
        return True
    flat = x.reshape(-1) if x.flags.c_contiguous else np.ravel(x)
    for i in range(0, flat.size, CHECK_CHUNK):
        ok = bool(np.isfinite(flat[i:i + CHECK_CHUNK]).all())
        _release(x)
        if not ok:
            return False
    return True


def float_batch(x, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Samples ``x[start:stop]`` as an in-memory float32 array (reads only those rows of a memory-mapped
    file; a copy whenever the rows are not already a writable float32 array, e.g. a read-only map)."""
    part = x[start:stop]
    if isinstance(part, np.memmap):
        out = np.array(part, dtype=np.float32)
        _release(x)
        return out
    if not part.flags.writeable:
        return np.array(part, dtype=np.float32)
    return np.asarray(part, dtype=np.float32)


def _read(path: Path):
    """(samples, labels or None) as numpy arrays (samples memory-mapped where the file allows), with one-line
    errors naming the file."""
    if not path.exists():
        raise BadInputError(f"{path}: no such file")
    if path.is_dir():
        raise BadInputError(f"{path}: is a directory, expected a .npy/.npz/.pt file")
    suffix = path.suffix.lower()
    y = None
    try:
        if suffix == ".npy":
            with open(path, "rb") as f:
                _check_header(path, "samples", *_npy_header(f))
            x = np.load(path, allow_pickle=False, mmap_mode="r")
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                key = next((k for k in SAMPLE_KEYS if k in keys), None)
                if key is None:
                    if len(keys) != 1:
                        raise BadInputError(f"{path}: .npz holds {keys}; name the samples 'x' (or data/images)")
                    key = keys[0]
                ykey = next((k for k in LABEL_KEYS if k in keys), None)
                for k, what in ((key, "samples"), (ykey, "labels")):
                    if k is not None:
                        with z.zip.open(f"{k}.npy") as member:
                            _check_header(path, what, *_npy_header(member))
                x = _npz_member_map(path, z, key)
                x = z[key] if x is None else x
                y = z[ykey] if ykey else None
        elif suffix in (".pt", ".pth"):
            obj = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(obj, dict):
                key = next((k for k in SAMPLE_KEYS if k in obj), None)
                if key is None:
                    raise BadInputError(f"{path}: dict without a key 'x' (or data/images/inputs)")
                ykey = next((k for k in LABEL_KEYS if k in obj), None)
                y = obj[ykey] if ykey else None
                obj = obj[key]
            elif isinstance(obj, (tuple, list)) and obj:
                y = obj[1] if len(obj) > 1 else None
                obj = obj[0]
            if not isinstance(obj, torch.Tensor):
                raise BadInputError(f"{path}: expected a tensor of samples, found {type(obj).__name__}")
            x = obj.detach().cpu().numpy()
            if isinstance(y, torch.Tensor):
                y = y.detach().cpu().numpy()
        else:
            raise BadInputError(f"{path}: unknown sample format {suffix or '(none)'}; use .npy, .npz or .pt")
    except BadInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy/torch raise many types for corrupt files
        msg = first_line(exc)
        raise BadInputError(f"{path}: cannot read samples ({msg})") from None
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise BadInputError(f"{path}: samples must be numeric, found dtype {x.dtype}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise BadInputError(f"{path}: expected samples [B, ...], found shape {list(x.shape)}")
    if 0 in x.shape:
        raise BadInputError(f"{path}: samples of shape {list(x.shape)} have a zero-length axis "
                            f"(zero time steps or an empty image)")
    _check_header(path, "samples", x.shape, x.dtype)
    if not _all_finite(x):
        raise BadInputError(f"{path}: samples contain NaN or infinity")
    if y is not None:
        y = np.asarray(y)
        if y.shape != (x.shape[0],) or y.dtype.kind not in "biu":
            raise BadInputError(f"{path}: labels must be integers of shape [{x.shape[0]}], found "
                                f"{y.dtype} {list(y.shape)}")
    return x, y


def check_labels(y, num_classes: int | None, where: str = "labels") -> None:
    """Labels must be class indices in [0, num_classes) (when the number of classes is known): an
    out-of-range label would silently count as a wrong prediction."""
    if y is None or num_classes is None:
        return
    y = np.asarray(y)
    if y.size and (int(y.min()) < 0 or int(y.max()) >= int(num_classes)):
        bad = int(y.min()) if int(y.min()) < 0 else int(y.max())
        raise BadInputError(f"{where}: label {bad} is outside [0, {int(num_classes) - 1}] "
                            f"(the model has {int(num_classes)} classes)")


def load_samples(path: str | Path, limit: int | None = None) -> torch.Tensor:
    """Sample inputs as a float32 tensor [B, ...] (the first ``limit``)."""
    x, _ = _read(Path(path))
    return torch.as_tensor(float_batch(x, 0, limit))


def load_labeled_samples(path: str | Path, limit: int | None = None,
                         num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(samples float32 [B, ...], integer labels [B] or None), the first ``limit``; labels checked to lie in
    [0, num_classes) when that is given."""
    x, y = _read(Path(path))
    check_labels(y, num_classes, str(path))
    return float_batch(x, 0, limit), (None if y is None else y[:limit].astype(np.int64))


# --------------------------------------------------------------------------------------------------
# samples for a graph, in every layout (issue 13): what ``--data``, ``--input-domain`` and ``-T/--steps``
# mean for every command (neurodeploy.commands.common.add_data_arguments adds the three options)

INPUT_DOMAINS = ("binary", "counts", "real")


def graph_input_shape(graph) -> tuple[int, ...]:
    ins = input_names(graph)
    if len(ins) != 1:
        raise BadInputError(f"the graph needs exactly one Input node to take data, found {ins}")
    shape = node_shape(graph.nodes[ins[0]], "output") or node_shape(graph.nodes[ins[0]], "input")
    if shape is None:
        raise BadInputError(f"graph input {ins[0]!r} has no shape")
    return shape


def apply_input_domain(graph, input_domain: str | None) -> None:
    """``--input-domain``: record what the graph input carries in its metadata (binary spikes, integer
    counts, real values); None keeps the graph's own (its default is real for imported graphs)."""
    if input_domain is None:
        return
    if input_domain not in INPUT_DOMAINS:
        raise BadInputError(f"--input-domain {input_domain!r}: use one of {', '.join(INPUT_DOMAINS)}")
    graph.metadata = {**(graph.metadata or {}), "neurodeploy.input_domain": input_domain}


def apply_dt(graph, dt: float | None) -> None:
    """``--dt``: record the simulation step (seconds) of the graph's neuron equations in its metadata
    (``neurodeploy.dt``; NIR itself has no dt); None keeps the graph's own (default
    :data:`neurodeploy.graph.DT_DEFAULT`)."""
    if dt is None:
        return
    if not (np.isfinite(dt) and dt > 0):
        raise BadInputError(f"--dt must be > 0 and finite (seconds), got {dt!r}")
    graph.metadata = {**(graph.metadata or {}), "neurodeploy.dt": float(dt)}


def is_task(data) -> bool:
    """``--data digits``: the bundled task (neurodeploy.tasks), not a file (a file named so reads as
    ``./digits``)."""
    return isinstance(data, str) and data == tasks.TASK


def task_test_samples(shape, steps: int | None = None, limit: int | None = None):
    """(x float32, y int64): the first ``limit`` test samples of the digits task rendered for the input
    ``shape`` (one-line error for an input it has no rendering for)."""
    n = tasks.task_size("test")
    idx = None if limit is None or limit >= n else range(int(limit))
    return tasks.task_samples(tuple(shape), "test", steps=steps, indices=idx)


def graph_samples(graph, data, steps: int | None = None, input_domain: str | None = None,
                  limit: int | None = None) -> tuple[np.ndarray, np.ndarray | None, int | None]:
    """``(x, y, T)`` for ``graph`` from ``--data`` (a file path, ``"digits"`` or an array):

    * ``"digits"``: the bundled task's test split rendered for the graph input (:mod:`neurodeploy.tasks`);

    * static samples [N, *input] (images): T = ``steps``, else the graph's ``neurodeploy.time_steps``
      (None when neither fixes it: the caller asks for -T/--steps);
    * event tensors / sequences [N, T, *input] (e.g. [N, T, P, H, W] DVS frames, [N, T, features]):
      T = the file's time axis (``steps``, if given, must agree);
    * event files (``(x, y, t, p)`` events, :mod:`neurodeploy.events`): binned into T = ``steps`` frames
      (or the graph's time_steps), clipped to 0/1 when the input domain is binary.

    ``input_domain`` (binary/counts/real) is applied to the graph's metadata first and the samples are
    checked against it (binary: 0/1 only; counts: integers >= 0)."""
    if steps is not None and int(steps) < 1:
        raise BadInputError(f"-T/--steps must be >= 1, got {steps}")
    apply_input_domain(graph, input_domain)
    domain = str(meta(graph, "neurodeploy.input_domain", "real"))
    shape = graph_input_shape(graph)
    T_graph = int(meta(graph, "neurodeploy.time_steps", 0) or 0) or None
    y = None
    where = str(data) if isinstance(data, (str, Path)) else "data"
    events = read_event_file(data) if isinstance(data, (str, Path)) and Path(data).is_file() else None
    if is_task(data):
        # the bundled task rendered for this input (neurodeploy.tasks): [N, *input] images or [N, T, 2, H, W]
        # events (T = steps, else the graph's, else tasks.EVENT_STEPS); the test split, all 360 samples
        x, y = task_test_samples(shape, steps or T_graph, limit)
    elif events is not None:
        ev, y = events
        x = event_samples(ev, shape, steps or T_graph, where, binary=(domain == "binary"))
    elif isinstance(data, (str, Path)):
        x, y = _read(Path(data))
    else:
        x = np.asarray(data)
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    n = len(shape)
    if x.ndim == n + 1 and tuple(x.shape[1:]) == shape:
        T = int(steps) if steps is not None else T_graph
    elif x.ndim == n + 2 and tuple(x.shape[2:]) == shape:
        T = int(x.shape[1])
        if steps is not None and int(steps) != T:
            raise BadInputError(f"{where}: the samples have a time axis of {T} steps, -T/--steps says {steps}")
    else:
        dims = ", ".join(map(str, shape))
        raise BadInputError(f"{where}: samples of shape {list(x.shape)} do not fit the graph input [{dims}]: "
                            f"expected [N, {dims}] (static) or [N, T, {dims}] (events/sequences)")
    # memory-mapped samples stay mapped (sliced, not copied): the simulators convert one batch at a time
    x = x[:limit] if isinstance(x, np.memmap) else x[:limit].astype(np.float32)
    y = None if y is None else np.asarray(y)[:limit].astype(np.int64)
    rows = max(1, CHECK_CHUNK // max(1, int(np.prod(x.shape[1:]))))
    for i in range(0, len(x), rows):          # the input-domain checks in chunks (no full-size temporaries)
        xc = float_batch(x, i, i + rows)
        if domain == "binary" and not np.all((xc == 0) | (xc == 1)):
            raise BadInputError(f"{where}: the input domain is binary but the samples hold "
                                f"{xc[(xc != 0) & (xc != 1)][0]:g} (give --input-domain counts or real)")
        if domain == "counts" and not np.all((xc >= 0) & (xc == np.round(xc))):
            raise BadInputError(f"{where}: the input domain is counts but the samples hold "
                                f"{xc[(xc < 0) | (xc != np.round(xc))][0]:g}")
    return x, y, T
