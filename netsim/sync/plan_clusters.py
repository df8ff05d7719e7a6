"""Synchronization planning, clustering (seed 000 Algorithm 1 and Benchmarks 1-3; spec ``sync.md`` 5.3-5.4).

K-means with k-means++ seeding, medoid masters (eq 50), Algorithm 1 (increase ``K_C`` until
every master-member distance is within ``dis_max``, eq 46-47) and the Ward-linkage benchmark
(scipy, imported when used).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "kmeans",
    "medoid_masters",
    "random_masters",
    "cluster_distances",
    "alg1_clusters",
    "ward_clusters",
]


def kmeans(
    loc: NDArray, k: int, rng: np.random.Generator, restarts: int = 5, max_iter: int = 100
) -> NDArray[np.int64]:
    """Lloyd's K-means with k-means++ seeding; best of ``restarts`` (lowest inertia).

    Empty clusters are re-seeded with the point farthest from its centroid, so exactly ``k``
    non-empty clusters come back (``k <= n``).

    Parameters
    ----------
    loc : ndarray, shape (n, 2), metres
    k : int

    Returns
    -------
    ndarray, shape (n,), int: labels in ``0..k-1``.
    """
    n = loc.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    best, best_inertia = None, np.inf
    for _ in range(max(1, restarts)):
        c = np.empty((k, 2))
        c[0] = loc[rng.integers(n)]
        d2 = np.sum((loc - c[0]) ** 2, 1)
        for j in range(1, k):
            p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
            # rng.choice(n, p=p) without its argument checks: the same cdf and one random()
            cdf = np.cumsum(p)
            cdf /= cdf[-1]
            c[j] = loc[int(cdf.searchsorted(rng.random(), side="right"))]
            d2 = np.minimum(d2, np.sum((loc - c[j]) ** 2, 1))
        lab = np.zeros(n, dtype=np.int64)
        for it in range(max_iter):
            dist = np.sum((loc[:, None, :] - c[None]) ** 2, -1)  # [n, k]
            new = np.argmin(dist, 1)
            counts = np.bincount(new, minlength=k)
            for j in np.flatnonzero(counts == 0):  # re-seed empty clusters
                far = int(np.argmax(dist[np.arange(n), new]))
                new[far] = j
                dist[far] = 0.0
                counts = np.bincount(new, minlength=k)
            if it > 0 and np.array_equal(new, lab):
                break
            lab = new
            # centroids: per-cluster sums in index order (bincount adds sequentially, as
            # numpy's axis-0 mean does), divided by the counts; bit-identical to
            # loc[lab == j].mean(0) for every j (all clusters are non-empty here)
            cnt = np.bincount(lab, minlength=k)  # [k]
            c = np.stack([np.bincount(lab, loc[:, 0], k), np.bincount(lab, loc[:, 1], k)], 1)
            c /= cnt[:, None]  # [k, 2]
        inertia = float(np.sum((loc - c[lab]) ** 2))
        if inertia < best_inertia:
            best, best_inertia = lab.copy(), inertia
    return best


def medoid_masters(loc: NDArray, labels: NDArray, k: int) -> NDArray[np.int64]:
    """Master of each cluster by eq 50: ``argmin_{j in C_k} sum_{i in C_k} ||Loc_j - Loc_i||``."""
    masters = np.empty(k, dtype=np.int64)
    for j in range(k):
        mem = np.flatnonzero(labels == j)
        d = np.linalg.norm(loc[mem, None, :] - loc[None, mem, :], axis=-1)
        masters[j] = mem[int(np.argmin(d.sum(1)))]
    return masters


def random_masters(labels: NDArray, k: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """A uniformly random master per cluster (Benchmark 2 / Scheme 2)."""
    return np.array([rng.choice(np.flatnonzero(labels == j)) for j in range(k)], dtype=np.int64)


def cluster_distances(loc: NDArray, labels: NDArray, masters: NDArray) -> NDArray[np.float64]:
    """Largest master-member distance of each cluster (m), shape (k,)."""
    d = np.linalg.norm(loc - loc[masters[labels]], axis=1)
    return np.array([d[labels == j].max() for j in range(masters.size)])


def alg1_clusters(
    loc: NDArray, dis_max: float, rng: np.random.Generator, kc_start: int = 2, restarts: int = 5
) -> tuple[int, NDArray[np.int64], NDArray[np.int64]]:
    """Algorithm 1: increase ``K_C`` until every cluster's master-member distance is within
    ``dis_max`` (the pseudo-code's ``min`` read as ``max``, spec 5.4); masters by eq 50.

    Terminates at the latest at ``K_C = n`` (every AP alone).

    Returns
    -------
    (K_C, labels [n] int, masters [K_C] int)
    """
    n = loc.shape[0]
    kc = int(min(max(1, kc_start), n))
    while True:
        lab = kmeans(loc, kc, rng, restarts)
        mas = medoid_masters(loc, lab, kc)
        if kc >= n or cluster_distances(loc, lab, mas).max() <= dis_max:
            return kc, lab, mas
        kc += 1


def ward_clusters(loc: NDArray, k: int) -> NDArray[np.int64]:
    """Benchmark 3: agglomerative clustering, Ward linkage, ``k`` clusters. Labels (n,)."""
    if loc.shape[0] < 2 or k <= 1:
        return np.zeros(loc.shape[0], dtype=np.int64)
    from scipy.cluster.hierarchy import fcluster, linkage  # heavy; only Benchmark 3 needs it

    lab = fcluster(linkage(loc, "ward"), k, "maxclust") - 1
    _, lab = np.unique(lab, return_inverse=True)
    return lab.astype(np.int64)

