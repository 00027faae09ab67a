"""k-means with k-means++ seeding (SPEC.md §2, eq. 10) and the nearest-to-mean pick (eq. 11).

Pure functions over float32 arrays. Backends: FAISS (CPU or GPU), torch (CUDA or CPU) and plain
numpy; every backend starts from the same k-means++ seeds, so for one seed they usually reach
the same partition (FAISS always runs `iters` rounds, the others stop once nothing moves). Each
backend is deterministic for a seed. Rows should arrive in a fixed order (the caller sorts
them): D² sampling and the training subsample both walk the rows in order.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
from dataclasses import dataclass

import numpy as np

from taast_ray.errors import ConfigError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "faiss", "faiss-gpu", "torch", "torch-cuda", "torch-cpu", "numpy")  # config names these
# k-means++ reads every seeding row once per centre (about 50 ms per centre at 200k×768 on 2 cores,
# 13 s for k = 256); a seeded sample of 32 rows per centre keeps it near 1-2 s and moved the
# inertia after 20 Lloyd iterations by under 0.3% in our runs (§8 allows 1% against sklearn).
SEED_POINTS_PER_CENTROID = 32
SEED_MIN_POINTS = 4096
_CHUNK_ELEMENTS = 1 << 24  # rows × centroids per distance block: 64 MiB of float32


@dataclass
class KMeansResult:
    centroids: np.ndarray   # (k, d) float32, final Lloyd centroids
    assignment: np.ndarray  # (n,) int64, nearest final centroid per point
    inertia: float          # sum of squared distances to the assigned centroid
    backend: str            # "faiss", "faiss-gpu", "torch-cuda", "torch-cpu", "numpy"
    iterations: int


# ---------------------------------------------------------------------------------------------
# backend choice


@functools.lru_cache(maxsize=None)
def _faiss_gpus() -> int | None:
    """Number of GPUs FAISS sees, or None when FAISS is not installed."""
    try:
        import faiss
    except ImportError:
        return None
    return int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0


def _torch_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_backend(name: str = "auto", gpu_allowed: bool = True) -> str:
    """Map a configured backend name to the one that will run; ConfigError if it can't.

    ``gpu_allowed`` False (a Ray actor granted no GPU: Ray does not hide the node's GPUs from it)
    keeps "auto" and "torch" on the CPU and refuses the GPU backends.
    """
    if name not in BACKENDS:
        raise ConfigError(f"selection.kmeans_backend: unknown backend {name!r}, "
                          f"expected one of {', '.join(BACKENDS)}")
    if not gpu_allowed and name in ("faiss-gpu", "torch-cuda"):
        raise ConfigError(f"selection.kmeans_backend: {name} asked for, but the central actor was "
                          "granted no GPU (set ray.aggregator_gpus)")
    gpus = _faiss_gpus()  # None: FAISS is not installed
    if gpus is not None and not gpu_allowed:
        gpus = 0
    if name == "auto":
        if gpus:
            chosen = "faiss-gpu"
        elif gpu_allowed and _torch_cuda():  # a CUDA machine with faiss-cpu: the GPU still beats FAISS on CPU
            chosen = "torch-cuda"
        else:
            chosen = "faiss" if gpus is not None else "numpy"
    elif name in ("faiss", "faiss-gpu"):
        if gpus is None:
            raise ConfigError(f"selection.kmeans_backend: {name} needs the faiss package "
                              "(pip install 'taast-ray[cpu]' or 'taast-ray[gpu]')")
        if name == "faiss-gpu" and not gpus:
            raise ConfigError("selection.kmeans_backend: faiss-gpu asked for, but FAISS sees no "
                              "GPU (is faiss-gpu-cu12 installed and a GPU visible?)")
        chosen = name
    elif name == "torch":
        chosen = "torch-cuda" if gpu_allowed and _torch_cuda() else "torch-cpu"
    elif name == "torch-cuda" and not _torch_cuda():
        raise ConfigError("selection.kmeans_backend: torch-cuda asked for, but torch sees no GPU")
    else:
        chosen = name
    log.info("k-means backend: %s (asked for %s)", chosen, name)
    return chosen


# ---------------------------------------------------------------------------------------------
# k-means++ seeding


def _as_f32(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array of points, got shape {x.shape}")
    return x


def _check_k(n: int, k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > n:
        raise ValueError(f"k = {k} is larger than the number of points ({n})")


def _sq_dist_to(x: np.ndarray, nrm: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Squared distances (m, t) of rows x to the rows of c, by BLAS, float32.

    Values within rounding error of zero become exactly zero so a duplicate of a chosen centre
    has no D² weight at all.
    """
    cn = np.einsum("ij,ij->i", c, c)
    d2 = x @ np.ascontiguousarray(c.T)  # BLAS is faster with the skinny operand contiguous
    d2 *= -2.0
    d2 += nrm[:, None]
    d2 += cn[None, :]
    d2[d2 <= 1e-6 * (nrm[:, None] + cn[None, :])] = 0.0
    return d2


def _d2_sample(closest: np.ndarray, rng: np.random.Generator, t: int) -> np.ndarray | None:
    """t indices drawn with probability ∝ closest (D²); None when every weight is zero."""
    cum = np.cumsum(closest, dtype=np.float64)
    if cum[-1] <= 0:
        return None
    # side="right" lands only on rows whose weight is > 0; the clip covers r rounding up to cum[-1]
    idx = np.searchsorted(cum, rng.random(t) * cum[-1], side="right")
    return np.minimum(idx, np.flatnonzero(closest)[-1])


def _kmeanspp_rows(x: np.ndarray, k: int, rng: np.random.Generator, trials: int) -> np.ndarray:
    """Greedy k-means++ (as scikit-learn): per step, the best of `trials` D² draws."""
    m = len(x)
    nrm = np.einsum("ij,ij->i", x, x)
    chosen = np.empty(k, np.int64)
    taken = np.zeros(m, bool)
    chosen[0] = rng.integers(m)
    taken[chosen[0]] = True
    closest = _sq_dist_to(x, nrm, x[chosen[:1]])[:, 0]
    closest[chosen[0]] = 0.0
    for step in range(1, k):
        cand = _d2_sample(closest, rng, trials)
        if cand is None:  # all remaining rows coincide with centres: any unused row will do
            chosen[step] = rng.choice(np.flatnonzero(~taken))
            taken[chosen[step]] = True
            continue
        cand_d2 = np.minimum(_sq_dist_to(x, nrm, x[cand]), closest[:, None])
        best = int(np.argmin(cand_d2.sum(axis=0, dtype=np.float64)))
        chosen[step] = cand[best]
        taken[cand[best]] = True
        closest = cand_d2[:, best]
        closest[cand[best]] = 0.0
    return chosen


def kmeans_plus_plus(x: np.ndarray, k: int, seed: int, *, trials: int | None = None,
                     max_points: int | None = None) -> np.ndarray:
    """k distinct row indices of x chosen by k-means++ (D² sampling) from `seed`.

    trials: D² draws per step, the best kept (greedy k-means++); default 2 + ⌊ln k⌋ as
    scikit-learn; 1 is the original rule. max_points: seeding runs on a seeded uniform sample of
    this many rows (default max(32·k, 4096)); pass len(x) to seed on every row.
    """
    x = _as_f32(x)
    n = len(x)
    _check_k(n, k)
    rng = np.random.default_rng(seed)
    trials = trials or 2 + int(math.log(k))
    if max_points is None:
        max_points = max(SEED_POINTS_PER_CENTROID * k, SEED_MIN_POINTS)
    if n > max(max_points, k):
        rows = np.sort(rng.choice(n, size=max(max_points, k), replace=False))
        return rows[_kmeanspp_rows(x[rows], k, rng, trials)]
    return _kmeanspp_rows(x, k, rng, trials)


# ---------------------------------------------------------------------------------------------
# Lloyd iterations


def _training_rows(n: int, k: int, max_points_per_centroid: int, seed: int) -> np.ndarray | None:
    """The seeded subsample Lloyd trains on when n > k · max_points_per_centroid (as FAISS)."""
    cap = k * max_points_per_centroid
    if n <= cap:
        return None
    return np.sort(np.random.default_rng([seed, 1]).choice(n, size=cap, replace=False))


def _chunk_rows(k: int) -> int:
    return max(256, _CHUNK_ELEMENTS // max(k, 1))


def _segment_sums(x: np.ndarray, labels: np.ndarray, k: int):
    """Per-cluster float64 sums and counts: sort rows by cluster, one contiguous sum per cluster.

    A loop over clusters, but each step is one vectorised gather-and-sum, so it costs O(n·d)
    in all: 0.2 s at 200k×768, k = 256, where np.add.reduceat took 2 s and torch's CPU
    index_add_ 3 s. Rows are added in index order, so the sums are reproducible.
    """
    order, sizes = np.argsort(labels, kind="stable"), np.bincount(labels, minlength=k)
    ends = np.cumsum(sizes)
    sums = np.zeros((k, x.shape[1]), np.float64)
    for j in np.flatnonzero(sizes).tolist():
        sums[j] = x[order[ends[j] - sizes[j]:ends[j]]].sum(0, dtype=np.float64)
    return sums, sizes.astype(np.int64)


def _to_numpy(a):
    return a if isinstance(a, np.ndarray) else a.cpu().numpy()


class _NumpyOps:
    """Array operations of the Lloyd loop for numpy; _TorchOps mirrors them."""

    xp = np

    def to_device(self, a):
        return a

    def to_numpy(self, a):
        return a

    def assign(self, x, c):
        """Nearest centroid (ties → lowest id) and squared distance, in row chunks."""
        labels = np.empty(len(x), np.int64)
        d2 = np.empty(len(x), np.float32)
        cn = np.einsum("ij,ij->i", c, c)
        step = _chunk_rows(len(c))
        for s in range(0, len(x), step):
            xb = x[s:s + step]
            dist = (xb @ c.T) * -2.0 + cn[None, :]
            lab = np.argmin(dist, axis=1)
            labels[s:s + step] = lab
            d2[s:s + step] = dist[np.arange(len(xb)), lab] + np.einsum("ij,ij->i", xb, xb)
        return labels, np.maximum(d2, 0.0)

    def sums(self, x, labels, k):
        return _segment_sums(x, labels, k)

    def divide(self, sums, counts):
        return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)

    def same(self, a, b):
        return bool(np.array_equal(a, b))

    def full_precision(self):
        return contextlib.nullcontext()


class _TorchOps:
    """Lloyd's array operations on torch tensors (CUDA or CPU)."""

    def __init__(self, device: str):
        import torch

        self.torch = torch
        self.xp = torch
        self.device = torch.device(device)
        # index_add_ uses float atomics on CUDA (order-dependent sums); a one-hot GEMM gives the
        # same bits on every run
        self.onehot_sums = self.device.type == "cuda"

    def to_device(self, a):
        return self.torch.as_tensor(a, device=self.device)

    def to_numpy(self, a):
        return _to_numpy(a)

    def assign(self, x, c):
        torch = self.torch
        labels = torch.empty(len(x), dtype=torch.int64, device=self.device)
        d2 = torch.empty(len(x), dtype=torch.float32, device=self.device)
        cn = (c * c).sum(1)
        step = _chunk_rows(len(c))
        for s in range(0, len(x), step):
            xb = x[s:s + step]
            dist = torch.addmm(cn[None, :], xb, c.T, alpha=-2.0)
            best, lab = dist.min(dim=1)
            labels[s:s + step] = lab
            d2[s:s + step] = best + (xb * xb).sum(1)
        return labels, d2.clamp_min_(0.0)

    def sums(self, x, labels, k):
        torch = self.torch
        if not self.onehot_sums:  # CPU tensors share memory with numpy, which is faster here
            sums, counts = _segment_sums(x.numpy(), labels.numpy(), k)
            return torch.from_numpy(sums), torch.from_numpy(counts)
        sums = torch.zeros((k, x.shape[1]), dtype=torch.float64, device=self.device)
        step = _chunk_rows(k)
        for s in range(0, len(x), step):
            xb, lab = x[s:s + step].double(), labels[s:s + step]
            onehot = torch.zeros((len(lab), k), dtype=torch.float64, device=self.device)
            onehot[torch.arange(len(lab), device=self.device), lab] = 1.0
            sums += onehot.T @ xb
        return sums, torch.bincount(labels, minlength=k)

    def divide(self, sums, counts):
        return (sums / counts.clamp_min(1)[:, None]).float()

    def same(self, a, b):
        return bool(self.torch.equal(a, b))

    @contextlib.contextmanager
    def full_precision(self):
        """Keep float32 matmuls in full precision even if the process allowed TF32 elsewhere."""
        before = self.torch.get_float32_matmul_precision()
        self.torch.set_float32_matmul_precision("highest")
        try:
            yield
        finally:
            self.torch.set_float32_matmul_precision(before)


def _reseed_empty(ops, x, labels, d2, sums, counts) -> None:
    """Give each empty cluster (by id) the member farthest from its centroid in the biggest one.

    Deterministic: argmax returns the first maximum, so ties go to the lowest id / row.
    """
    xp = ops.xp
    for e in np.flatnonzero(ops.to_numpy(counts == 0)).tolist():
        b = int(xp.argmax(counts))
        if int(counts[b]) < 2:
            return
        i = int(xp.argmax(xp.where(labels == b, d2, -1.0)))
        sums[b] -= x[i]
        counts[b] -= 1
        sums[e] = x[i]
        counts[e] = 1
        labels[i] = e
        d2[i] = 0.0


def _lloyd(ops, x, init: np.ndarray, iters: int, train_rows: np.ndarray | None):
    """Lloyd from `init` on the training rows; stops early once the assignment is stable."""
    with ops.full_precision():
        return _lloyd_loop(ops, x, init, iters, train_rows)


def _lloyd_loop(ops, x, init, iters, train_rows):
    xt = ops.to_device(x if train_rows is None else x[train_rows])
    c = ops.to_device(init)
    prev, done = None, 0
    for _ in range(iters):
        labels, d2 = ops.assign(xt, c)
        if prev is not None and ops.same(labels, prev):
            break  # the means of an unchanged partition are the current centroids
        sums, counts = ops.sums(xt, labels, len(c))
        _reseed_empty(ops, xt, labels, d2, sums, counts)
        c, prev, done = ops.divide(sums, counts), labels, done + 1
    if train_rows is not None:  # the final assignment covers every point
        del xt
        xt = ops.to_device(x)
    labels, d2 = ops.assign(xt, c)
    return (ops.to_numpy(c), ops.to_numpy(labels).astype(np.int64),
            float(d2.sum(dtype=ops.xp.float64)), done)


def _faiss_kmeans(x, init: np.ndarray, iters: int, seed: int, max_points_per_centroid: int,
                  gpu: bool):
    import faiss

    km = faiss.Kmeans(x.shape[1], len(init), niter=iters, seed=seed, verbose=False,
                      max_points_per_centroid=max_points_per_centroid,
                      min_points_per_centroid=1,  # silences FAISS's "too few points" warning
                      gpu=gpu)
    km.train(x, init_centroids=init)
    d2, labels = km.assign(x)
    return (np.ascontiguousarray(km.centroids, dtype=np.float32), labels.astype(np.int64),
            float(np.maximum(d2, 0).sum(dtype=np.float64)), iters)


def run_kmeans(x: np.ndarray, k: int, *, seed: int, iters: int = 20, backend: str = "auto",
               max_points_per_centroid: int = 1024) -> KMeansResult:
    """k-means++ seeding then `iters` Lloyd iterations; the assignment covers every point.

    Training uses a seeded sample of k · max_points_per_centroid rows when n is larger.
    """
    x = _as_f32(x)
    n = len(x)
    _check_k(n, k)
    chosen = resolve_backend(backend)
    if k == n:  # every point its own cluster; nothing to iterate
        return KMeansResult(x.copy(), np.arange(n, dtype=np.int64), 0.0, chosen, 0)
    init = x[kmeans_plus_plus(x, k, seed)]
    if chosen.startswith("faiss"):
        out = _faiss_kmeans(x, init, iters, seed, max_points_per_centroid, chosen == "faiss-gpu")
    else:
        ops = _NumpyOps() if chosen == "numpy" else _TorchOps(
            "cuda" if chosen == "torch-cuda" else "cpu")
        out = _lloyd(ops, x, init, iters, _training_rows(n, k, max_points_per_centroid, seed))
    centroids, assignment, inertia, done = out
    return KMeansResult(centroids, assignment, inertia, chosen, done)


# ---------------------------------------------------------------------------------------------
# eq. 11: the member nearest each cluster's mean


def pick_nearest_to_means(x: np.ndarray, assignment: np.ndarray, k: int,
                          tie_rank: np.ndarray) -> np.ndarray:
    """Per non-empty cluster (in id order), the row nearest the mean of its members.

    Compares ‖n_j·x_i − S_j‖² (S_j the member sum, n_j the count): n_j² times the squared
    distance to the mean, so the order within a cluster is the same, without the division that
    would make mathematically equal distances differ in the last bit. Ties → smallest tie_rank.
    """
    x = _as_f32(x)
    labels = np.asarray(assignment, dtype=np.int64)
    tie_rank = np.asarray(tie_rank)
    if labels.shape != (len(x),) or tie_rank.shape != (len(x),):
        raise ValueError("assignment and tie_rank need one entry per row of x")
    if len(x) == 0:
        return np.zeros(0, np.int64)
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"assignment values must lie in [0, {k})")
    order = np.argsort(labels, kind="stable")
    sizes = np.bincount(labels, minlength=k)
    ends = np.cumsum(sizes)
    picks = []
    # one vectorised pass per cluster over its (sorted) members: O(n·d) in all, 0.3 s at
    # 200k×768, k = 256; a row-wise gather of the means would move n·d float64s instead
    for j in np.flatnonzero(sizes).tolist():
        rows = order[ends[j] - sizes[j]:ends[j]]
        members = x[rows].astype(np.float64)
        diff = members * sizes[j] - members.sum(0)
        d2 = np.einsum("ij,ij->i", diff, diff)
        picks.append(rows[np.lexsort((tie_rank[rows], d2))[0]])
    return np.array(picks, np.int64)
