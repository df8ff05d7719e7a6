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
    n_r = max(1, restarts)
    # k-means++ seeds of all restarts at once. The draws do not depend on the data, so they
    # are taken first, in the order restart-by-restart seeding takes them (one integers(n),
    # then k - 1 random(); the Lloyd iterations draw nothing); every per-restart quantity is
    # computed as in a single run (elementwise, row reductions, cumulative sums along rows)
    first = np.empty(n_r, dtype=np.int64)  # [R]
    u = np.empty((n_r, max(k - 1, 0)))  # [R, k-1]
    for r in range(n_r):
        first[r] = rng.integers(n)
        for j in range(k - 1):
            u[r, j] = rng.random()
    c = np.empty((n_r, k, 2))  # [R, k, 2]
    c[:, 0] = loc[first]
    d2 = np.sum((loc[None] - c[:, 0][:, None]) ** 2, -1)  # [R, n]
    uniform = np.full(n, 1.0 / n)
    for j in range(1, k):
        tot = d2.sum(1)  # [R]
        pos = tot > 0
        p = np.where(pos[:, None], d2 / np.where(pos, tot, 1.0)[:, None], uniform)  # [R, n]
        # rng.choice(n, p=p) without its argument checks: the same cdf and searchsorted
        cdf = np.cumsum(p, 1)
        cdf /= cdf[:, -1:]
        pick = np.sum(cdf <= u[:, j - 1][:, None], 1)  # [R] = searchsorted(side="right")
        c[:, j] = loc[pick]
        d2 = np.minimum(d2, np.sum((loc[None] - c[:, j][:, None]) ** 2, -1))
    # Lloyd's iterations of all restarts at once: every per-restart quantity is computed as
    # in a single run (elementwise, reductions over the same axes, bincount sums in index
    # order per restart), so each restart's labels and centroids are bit-identical to it
    lab = np.zeros((n_r, n), dtype=np.int64)  # [R, n]
    act = np.arange(n_r)  # restarts still iterating
    for it in range(max_iter):
        dist = np.sum((loc[None, :, None, :] - c[act][:, None]) ** 2, -1)  # [A, n, k]
        new = np.argmin(dist, -1)  # [A, n]
        n_a = act.size
        base = (np.arange(n_a) * k)[:, None]  # [A, 1]
        counts = np.bincount((new + base).reshape(-1), minlength=n_a * k).reshape(n_a, k)
        for a_ in np.flatnonzero((counts == 0).any(1)):  # re-seed empty clusters
            nw, ds = new[a_], dist[a_]
            cnt = counts[a_]
            for j in np.flatnonzero(cnt == 0):
                far = int(np.argmax(ds[np.arange(n), nw]))
                nw[far] = j
                ds[far] = 0.0
                cnt = np.bincount(nw, minlength=k)
        moving = np.ones(n_a, dtype=bool) if it == 0 else (new != lab[act]).any(1)  # [A]
        act, new = act[moving], new[moving]
        if act.size == 0:
            break
        lab[act] = new
        # centroids: per-cluster sums in index order (bincount adds sequentially, as
        # numpy's axis-0 mean does), divided by the counts; bit-identical to
        # loc[lab == j].mean(0) for every j (all clusters are non-empty here)
        n_a = act.size
        flat = (new + (np.arange(n_a) * k)[:, None]).reshape(-1)  # [A n]
        cnt = np.bincount(flat, minlength=n_a * k).reshape(n_a, k)  # [A, k]
        sx = np.bincount(flat, np.tile(loc[:, 0], n_a), n_a * k).reshape(n_a, k)
        sy = np.bincount(flat, np.tile(loc[:, 1], n_a), n_a * k).reshape(n_a, k)
        c[act] = np.stack([sx, sy], -1) / cnt[..., None]  # [A, k, 2]
    best, best_inertia = None, np.inf
    for r in range(n_r):
        inertia = float(np.sum((loc - c[r][lab[r]]) ** 2))
        if inertia < best_inertia:
            best, best_inertia = lab[r].copy(), inertia
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

