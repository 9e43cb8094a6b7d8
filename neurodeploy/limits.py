"""Declared resource limits: every reader checks its input against these before it allocates, and
refuses with a :class:`~neurodeploy.errors.ResourceLimitError` naming the limit.  The largest supported
model (Spikingformer-8-768 on ImageNet, 66 M parameters, T = 4; DVS inputs T <= 20) stays far below them."""
from __future__ import annotations

#: time steps per sample (graph metadata, --steps, -T, a data file's time axis)
MAX_TIME_STEPS = 100_000
#: elements of one array read from a file (a .nir dataset, a sample file): 2**31 (8 GiB as float32)
MAX_ARRAY_ELEMENTS = 2**31
#: one dimension of a shape (image side, channels, neurons of a layer)
MAX_DIM = 2**24
#: rank of an array
MAX_NDIM = 8
#: nodes in a NIR graph, nesting depth of subgraphs and of JSON documents
MAX_NODES = 100_000
MAX_NESTING = 64
#: model config caps (checked before a model is built)
MAX_EMBED_DIM = 8192
MAX_DEPTH = 128
MAX_HEADS = 256
MAX_IMG_SIZE = 4096
MAX_CHANNELS = 16384
MAX_CLASSES = 100_000
MAX_MLP_RATIO = 64
MAX_PARAMETERS = 2_000_000_000
#: a file name component (NAME_MAX on Linux)
NAME_MAX = 255
