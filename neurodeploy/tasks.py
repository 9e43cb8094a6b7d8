"""The bundled ``digits`` task at every architecture's input size (issue 24; docs/data.md).

No real data set can be downloaded here, so every architecture trains and is measured on one public,
deterministic task built in memory from scikit-learn's 8x8 digits (1797 images, 10 classes) and its fixed
stratified split (80/20, ``random_state=0``: 1437 train / 360 test):

* ``[1, 8, 8]`` (the digits demo models): the digits themselves, standardised with the training mean/std;
* ``[C, H, W]`` images (``[3, 32, 32]`` CIFAR, ``[3, 224, 224]`` ImageNet; any C, H, W): the digit drawn
  on a canvas of that size with a random scale, rotation and position, a random foreground and background
  colour and Gaussian pixel noise (:func:`render_images`), values in [0, 1];
* ``[T, 2, H, W]`` events (``[2, 128, 128]`` DVS inputs; T = ``steps``, default :data:`EVENT_STEPS`): the
  digit, drawn as above, moved along a triangle of three saccades as N-MNIST was recorded (Orchard et al.
  2015, Front. Neurosci. 9:437), seen by the DVS pixel model of the emulators ESIM (Rebecq et al. 2018,
  CoRL) and v2e (Hu et al. 2021, CVPRW): each pixel emits an ON (OFF) event each time its log intensity
  rises (falls) by its contrast threshold from its last reference level, thresholds drawn once per pixel
  around :data:`THRESHOLD` with v2e's default mismatch, plus shot-noise events; events are counted per time
  bin and polarity (:func:`render_events`).  tonic has no video-to-events emulator (its transforms act on
  recorded events), so the pixel model is written here (about 20 lines).

The test split is rendered once, always the same way (``epoch=0``); the training split is rendered again
each epoch (new placements: augmentation), seeded by the epoch.  Every random draw comes from
``numpy.random.default_rng`` seeded with (:data:`SEED`, kind, split, epoch), so the same call gives the same
array on every machine; rendering is float32 torch on CPU.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from .errors import BadInputError

TASK = "digits"
SPLIT_SEED = 0
TEST_FRACTION = 0.2
SEED = 24                       # the rendering seed (issue 24)
#: time bins of an event rendering when neither -T/--steps nor the model fixes them
EVENT_STEPS = 8
#: intensity frames per time bin of the event emulator (the motion is sampled this finely)
SUBSTEPS = 4
#: mean ON/OFF contrast threshold (log intensity) and its per-pixel spread: v2e's defaults (0.2, 0.03)
THRESHOLD, THRESHOLD_SIGMA = 0.2, 0.03
#: shot-noise events per pixel, polarity and time bin
NOISE_RATE = 2e-3
#: intensity floor before the log (v2e/ESIM take log(I + eps) so that black pixels stay finite)
LOG_EPS = 1e-2

_KIND_CODE = {"image": 1, "events": 2}
_SPLIT_CODE = {"train": 0, "test": 1}


@lru_cache(maxsize=1)
def digit_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fixed split of the raw digits: (img_train [1437, 8, 8] in [0, 1], y_train, img_test [360, 8, 8],
    y_test); read-only arrays (cached)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.images.astype(np.float32) / 16.0
    y = d.target.astype(np.int64)
    parts = train_test_split(x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y)
    for a in parts:
        a.setflags(write=False)
    return parts[0], parts[2], parts[1], parts[3]


def digits_split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 8x8 rendering: (x_train [1437,1,8,8], y_train, x_test [360,1,8,8], y_test), standardised with the
    training-set mean/std."""
    x_tr, y_tr, x_te, y_te = digit_split()
    mean, std = float(x_tr.mean()), float(x_tr.std())
    x_tr = (x_tr - mean) / std
    x_te = (x_te - mean) / std
    return (torch.from_numpy(x_tr).unsqueeze(1), torch.from_numpy(y_tr.copy()),
            torch.from_numpy(x_te).unsqueeze(1), torch.from_numpy(y_te.copy()))


def task_kind(shape) -> str:
    """``digits8`` for [1, 8, 8], ``events`` for [2, H, W] (two polarities), ``image`` for [C, H, W]."""
    shape = tuple(int(d) for d in shape)
    if shape == (1, 8, 8):
        return "digits8"
    if len(shape) != 3 or min(shape) < 1 or shape[1] < 8 or shape[2] < 8 or shape[0] > 4:
        raise BadInputError(f"--data digits: no rendering of the digits task for the input {list(shape)} "
                            f"(it renders [1, 8, 8], [C, H, W] images with C <= 4, H, W >= 8, and "
                            f"[T, 2, H, W] events)")
    return "events" if shape[0] == 2 else "image"


def _params(kind: str, split: str, epoch: int, n: int) -> dict:
    """The per-sample draws of one rendering (all samples of the split at once: a subset renders the same)."""
    rng = np.random.default_rng([SEED, _KIND_CODE[kind], _SPLIT_CODE[split], int(epoch)])
    if kind == "image":
        p = {"scale": rng.uniform(0.45, 0.85, n), "angle": rng.uniform(-30, 30, n),
             "fg": rng.uniform(0.55, 1.0, (n, 3)), "bg": rng.uniform(0.0, 0.4, (n, 3)),
             "noise": rng.uniform(0.03, 0.15, n)}
    else:
        p = {"scale": rng.uniform(0.5, 0.75, n), "angle": rng.uniform(-20, 20, n),
             "fg": rng.uniform(0.6, 1.0, (n, 1)), "bg": rng.uniform(0.05, 0.3, (n, 1)),
             "amp": rng.uniform(0.06, 0.12, n), "phase": rng.uniform(0, 2 * math.pi, n)}
    room = np.maximum(0.0, 1.0 - p["scale"] - (2 * p["amp"] if kind == "events" else 0.0))
    p["cx"], p["cy"] = rng.uniform(-1, 1, n) * room, rng.uniform(-1, 1, n) * room
    p["noise_seed"] = rng.integers(0, 2 ** 63 - 1, n)
    return p


def _place(digits: torch.Tensor, size: tuple[int, int], scale, angle_deg, cx, cy) -> torch.Tensor:
    """Each 8x8 digit [B, 8, 8] drawn (bilinear) on an empty canvas [B, H, W]: the padded 10x10 patch spans
    ``scale`` of the canvas side, turned by ``angle_deg``, centred at (cx, cy) in [-1, 1] canvas units."""
    B = digits.shape[0]
    patch = F.pad(digits.reshape(B, 1, 8, 8), (1, 1, 1, 1))
    a = torch.as_tensor(np.deg2rad(angle_deg), dtype=torch.float32)
    s = torch.as_tensor(scale, dtype=torch.float32)
    cos, sin = torch.cos(a) / s, torch.sin(a) / s
    c = torch.stack([torch.as_tensor(cx, dtype=torch.float32), torch.as_tensor(cy, dtype=torch.float32)], 1)
    A = torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1)      # [B, 2, 2]
    H, W = size
    # the sampling grid, input = A (out - c), written out (F.affine_grid's batched matmul is slower here)
    ox = ((torch.arange(W, dtype=torch.float32) * 2 + 1) / W - 1)[None, None, :] - c[:, 0, None, None]
    oy = ((torch.arange(H, dtype=torch.float32) * 2 + 1) / H - 1)[None, :, None] - c[:, 1, None, None]
    grid = torch.stack([A[:, 0, 0, None, None] * ox + A[:, 0, 1, None, None] * oy,
                        A[:, 1, 0, None, None] * ox + A[:, 1, 1, None, None] * oy], 3)
    return F.grid_sample(patch, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]


def render_images(digits: np.ndarray, shape, p: dict) -> np.ndarray:
    """[B, C, H, W] float32 in [0, 1]: the digits placed on coloured canvases with pixel noise."""
    C, H, W = shape
    mask = _place(torch.from_numpy(np.ascontiguousarray(digits)), (H, W), p["scale"], p["angle"], p["cx"], p["cy"])
    fg = torch.as_tensor(p["fg"], dtype=torch.float32)[:, [i % 3 for i in range(C)]] if C != 1 else \
        torch.as_tensor(p["fg"].mean(1, keepdims=True), dtype=torch.float32)
    bg = torch.as_tensor(p["bg"], dtype=torch.float32)[:, [i % 3 for i in range(C)]] if C != 1 else \
        torch.as_tensor(p["bg"].mean(1, keepdims=True), dtype=torch.float32)
    img = bg[:, :, None, None] + (fg - bg)[:, :, None, None] * mask[:, None]
    noise = np.stack([np.random.default_rng(int(s)).standard_normal((C, H, W), dtype=np.float32)
                      for s in p["noise_seed"]])
    img = img + torch.from_numpy(noise) * torch.as_tensor(p["noise"], dtype=torch.float32)[:, None, None, None]
    return img.clamp_(0.0, 1.0).numpy()


@lru_cache(maxsize=4)
def _thresholds(H: int, W: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The sensor's ON and OFF contrast thresholds per pixel (one sensor for every sample)."""
    rng = np.random.default_rng([SEED, 99, H, W])
    on, off = (np.maximum(0.05, THRESHOLD + THRESHOLD_SIGMA * rng.standard_normal((H, W))) for _ in range(2))
    return torch.as_tensor(on, dtype=torch.float32), torch.as_tensor(off, dtype=torch.float32)


def render_events(digits: np.ndarray, shape, steps: int, p: dict) -> np.ndarray:
    """[B, T, 2, H, W] float32 event counts (channel 0 ON, 1 OFF): the digit moved along three saccades
    (a triangle, as N-MNIST) over T bins of :data:`SUBSTEPS` intensity frames, through the DVS pixel model."""
    _, H, W = shape
    B, T, S = len(digits), int(steps), SUBSTEPS
    K = T * S
    # the triangle path: vertex k at angle phase + 2 pi k / 3, radius amp; frame j at fraction j / K of it
    frac = np.arange(K + 1) / K * 3.0
    leg, t = np.minimum(frac.astype(int), 2), frac - np.minimum(frac.astype(int), 2)
    ang = p["phase"][:, None] + 2 * math.pi * np.stack([leg, leg + 1])[:, None, :] / 3      # [2, B, K+1]
    vx, vy = p["amp"][None, :, None] * np.cos(ang), p["amp"][None, :, None] * np.sin(ang)
    dx, dy = vx[0] + (vx[1] - vx[0]) * t, vy[0] + (vy[1] - vy[0]) * t                     # [B, K+1]
    rep = lambda a: np.repeat(a, K + 1)                                                     # noqa: E731
    mask = _place(torch.from_numpy(np.repeat(np.ascontiguousarray(digits), K + 1, axis=0)), (H, W),
                  rep(p["scale"]), rep(p["angle"]), rep(p["cx"]) + dx.reshape(-1), rep(p["cy"]) + dy.reshape(-1))
    fg = torch.as_tensor(p["fg"][:, 0], dtype=torch.float32)[:, None, None, None]
    bg = torch.as_tensor(p["bg"][:, 0], dtype=torch.float32)[:, None, None, None]
    logI = torch.log(bg + (fg - bg) * mask.reshape(B, K + 1, H, W) + LOG_EPS)
    on_th, off_th = _thresholds(H, W)
    ref = logI[:, 0].clone()
    out = torch.zeros(B, T, 2, H, W)
    for j in range(1, K + 1):
        d = logI[:, j] - ref
        n_on = torch.floor(d / on_th).clamp_(min=0)
        n_off = torch.floor(-d / off_th).clamp_(min=0)
        ref += n_on * on_th - n_off * off_th
        # at most one event per pixel and intensity frame (a refractory period of one frame, as v2e's)
        out[:, (j - 1) // S, 0] += n_on.clamp_(max=1)
        out[:, (j - 1) // S, 1] += n_off.clamp_(max=1)
    noise = np.stack([np.random.default_rng(int(s)).random((T, 2, H, W), dtype=np.float32) < NOISE_RATE
                      for s in p["noise_seed"]])
    out += torch.from_numpy(noise)
    return out.numpy()


def task_size(split: str) -> int:
    return len(digit_split()[0 if split == "train" else 2])


def task_samples(shape, split: str = "test", steps: int | None = None, epoch: int = 0,
                 indices=None) -> tuple[np.ndarray, np.ndarray]:
    """(x float32, y int64) of the digits task rendered for a model input ``shape`` ([C, H, W]):
    [N, C, H, W] images, or [N, T, 2, H, W] events (T = ``steps`` or :data:`EVENT_STEPS`), for the samples
    ``indices`` (default all) of ``split`` (train/test); the training split is rendered anew for each
    ``epoch``, the test split always as for epoch 0."""
    if split not in _SPLIT_CODE:
        raise ValueError(f"split must be train or test, got {split!r}")
    kind = task_kind(shape)
    x_tr, y_tr, x_te, y_te = digit_split()
    raw, y = (x_tr, y_tr) if split == "train" else (x_te, y_te)
    idx = np.arange(len(raw)) if indices is None else np.asarray(indices, dtype=np.int64)
    if kind == "digits8":
        s = digits_split()
        return (s[0] if split == "train" else s[2]).numpy()[idx], y[idx].copy()
    if steps is not None and int(steps) < 1:
        raise BadInputError(f"-T/--steps must be >= 1, got {steps}")
    p = _params(kind, split, epoch if split == "train" else 0, len(raw))
    p = {k: v[idx] for k, v in p.items()}
    if kind == "image":
        return render_images(raw[idx], tuple(shape), p), y[idx].copy()
    return render_events(raw[idx], tuple(shape), int(steps or EVENT_STEPS), p), y[idx].copy()
