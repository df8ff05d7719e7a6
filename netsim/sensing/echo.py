"""Echo snapshots and the sample echo covariance, at two fidelities (design.md "Fidelity levels").

Model (spec 2.3, 5.1): ``y[l] = G x[l] + n[l]``, ``x[l] = R_x^{1/2} s[l]``, ``s ~ CN(0, I)``,
``n ~ CN(0, sigma^2 I)``; ``G`` from :func:`netsim.sensing.fim.echo_channel` with RCS
coefficients ``alpha ~ CN(0,1)`` per path. The CPU uses ``R_hat = Y Y^H / L`` (MN x MN).

Fidelities
----------
``"snapshots"``: draws X (MN x L) and Z and forms ``Y = G X + Z`` (cost O((MN)^2 L)).
``"wishart"``: draws ``R_hat = C^{1/2} W C^{1/2,H} / L`` with ``W ~ CW(L, I)`` by the complex
Bartlett decomposition (``W = T T^H``, ``T`` lower triangular, ``|T_ii|^2 ~ Gamma(L-i+1, 1)``,
``T_ij ~ CN(0,1)`` below the diagonal), where ``C = E[y y^H]``. Exact for Gaussian waveforms and
independent of L (cost O((MN)^3)). Needs ``L >= MN``; otherwise the snapshot path is used.

Residual synchronisation errors (coupling to seed 000)
------------------------------------------------------
AP m has a residual CFO ``f_m`` [Hz] and time offset ``tau_m`` [s]. The echo of the path
m (tx) -> k -> m' (rx) is multiplied by

* ``exp(j 2 pi (f_m - f_m') l T_u)`` in snapshot l (the CFO of the pair rotates the phase from
  snapshot to snapshot at the snapshot period T_u);
* ``exp(-j 2 pi f_c (tau_m - tau_m'))`` (carrier phase of the pair's timing offset) and the
  amplitude ``max(0, 1 - |tau_m - tau_m'| / T_p)`` (matched-filter mismatch of a rectangular
  pulse of length T_p, the "delay-induced loss"; T_p = T_u by default).

Monostatic paths (m = m') carry none of these. The CFO factor splits into a transmit phase,
absorbed by the circular waveform, and a receive phase ``exp(-j 2 pi f_m' l T_u)`` per receiving
AP; the Wishart fidelity therefore uses the time-averaged covariance
``C = Gamma o (G R_x G^H) + sigma^2 I`` with ``Gamma_{ab} = mean_l exp(-j 2 pi (f_a - f_b) l T_u)``
per receive block (exact in the mean; exact in distribution when the CFOs are zero).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from netsim.sensing.config import IsacGeometry
from netsim.sensing.fim import echo_channel

__all__ = [
    "EchoStatistics",
    "complex_wishart",
    "cross_cfo_factors",
    "echo_covariance",
    "sample_echo_covariance",
    "sample_echo_statistics",
    "sync_path_factors",
]


def _psd_sqrt(r: NDArray[np.complex128]) -> NDArray[np.complex128]:
    """Hermitian PSD square root of (..., n, n) matrices."""
    n = r.shape[-1]
    diag = np.real(np.diagonal(r, axis1=-2, axis2=-1))[..., :1]  # [..., 1]
    if np.array_equal(r, diag[..., None] * np.eye(n)) and np.all(diag >= 0):  # sigma I (isotropic)
        return np.sqrt(diag)[..., None] * np.eye(n, dtype=complex)
    w, v = np.linalg.eigh(0.5 * (r + np.conj(np.swapaxes(r, -1, -2))))
    return np.matmul(v * np.sqrt(np.maximum(w, 0.0))[..., None, :], np.conj(np.swapaxes(v, -1, -2)))


def _per_block(g: NDArray[np.complex128], f: NDArray[np.complex128], n: int) -> NDArray[np.complex128]:
    """``g * kron(f, ones((n, n)))`` for an (M N, M N) matrix and (M, M) block factors."""
    m = f.shape[0]
    return (g.reshape(m, n, m, n) * f[:, None, :, None]).reshape(m * n, m * n)


def _block_diag(r: NDArray[np.complex128]) -> NDArray[np.complex128]:
    m, n, _ = r.shape
    out = np.zeros((m * n, m * n), dtype=complex)
    for i in range(m):
        out[i * n : (i + 1) * n, i * n : (i + 1) * n] = r[i]
    return out


def sync_path_factors(
    n_aps: int,
    residual_to_s: ArrayLike | None,
    carrier_hz: float,
    pulse_s: float,
) -> NDArray[np.complex128]:
    """Static per-path factor of the residual time offsets, ``[m_rx, m_tx]`` (M, M) complex.

    ``F_{m', m} = max(0, 1 - |tau_m - tau_m'|/T_p) exp(-j 2 pi f_c (tau_m - tau_m'))``; 1 on the
    diagonal (monostatic paths).
    """
    if residual_to_s is None:
        return np.ones((n_aps, n_aps), dtype=complex)
    tau = np.asarray(residual_to_s, dtype=float)  # [M]
    dt = tau[None, :] - tau[:, None]  # [rx, tx] = tau_tx - tau_rx
    return np.maximum(0.0, 1.0 - np.abs(dt) / pulse_s) * np.exp(-2j * np.pi * carrier_hz * dt)


def complex_wishart(cov: NDArray[np.complex128], dof: int, rng: np.random.Generator) -> NDArray[np.complex128]:
    """Draw ``S = sum_{l=1}^{dof} y_l y_l^H`` with ``y_l ~ CN(0, cov)`` (complex Wishart, Bartlett).

    Parameters
    ----------
    cov : ndarray (n, n) complex, Hermitian PSD
    dof : int, >= n
    rng : numpy.random.Generator

    Returns
    -------
    ndarray (n, n) complex
    """
    n = cov.shape[0]
    if dof < n:
        raise ValueError("complex_wishart needs dof >= n")
    t = np.zeros((n, n), dtype=complex)
    t[np.diag_indices(n)] = np.sqrt(rng.gamma(shape=dof - np.arange(n), scale=1.0))
    il = np.tril_indices(n, -1)
    t[il] = (rng.standard_normal(il[0].size) + 1j * rng.standard_normal(il[0].size)) / np.sqrt(2)
    c = _psd_sqrt(cov)
    ct = c @ t
    return ct @ ct.conj().T


def echo_covariance(
    g: NDArray[np.complex128],
    r: NDArray[np.complex128],
    noise_w: float,
    n_antennas: int,
    cfo_gamma: NDArray[np.complex128] | None = None,
) -> NDArray[np.complex128]:
    """Expected echo covariance ``C = Gamma o (G R_x G^H) + sigma^2 I``, (MN, MN).

    Parameters
    ----------
    g : ndarray (MN, MN) complex
        Echo matrix (sync path factors already applied).
    r : ndarray (M, N, N) complex [W]
    noise_w : float
    cfo_gamma : ndarray (M, M) complex or None
        Receive-block coherence factors (None: 1).
    """
    c = g @ _block_diag(r) @ g.conj().T  # [MN, MN]
    if cfo_gamma is not None:
        c = _per_block(c, np.asarray(cfo_gamma), n_antennas)
    return c + noise_w * np.eye(c.shape[0])


def sample_echo_covariance(
    geom: IsacGeometry,
    user_pos_m: ArrayLike,
    r: ArrayLike,
    n_snapshots: int,
    noise_w: float,
    rng: np.random.Generator,
    residual_cfo_hz: ArrayLike | None = None,
    residual_to_s: ArrayLike | None = None,
    fidelity: str = "wishart",
    alpha: ArrayLike | None = None,
    model: str = "near",
    carrier_hz: float | None = None,
    snapshot_s: float = 1e-6,
    pulse_s: float | None = None,
) -> NDArray[np.complex128]:
    """Sample covariance of the multi-static echoes, ``R_hat = Y Y^H / L``.

    Parameters
    ----------
    geom : IsacGeometry
    user_pos_m : array_like (K, 2) [m]
        True user (target) positions.
    r : array_like (M, N, N) complex [W]
        Per-AP sensing covariances.
    n_snapshots : int
        L.
    noise_w : float
        sigma^2 [W].
    rng : numpy.random.Generator
    residual_cfo_hz, residual_to_s : array_like (M,) or None
        Residual per-AP CFO [Hz] and TO [s] after synchronisation (module docstring).
    fidelity : {"wishart", "snapshots"}
    alpha : array_like (K, M, M) complex or None
        RCS coefficients ``[k, m_tx, m_rx]``; None draws CN(0, 1) from ``rng`` (spec A3).
    model : {"near", "far"}
        Steering model of the echoes (the far-field benchmark uses "far" here and in MUSIC).
    carrier_hz : float or None
        f_c for the TO phase (default ``c / lambda``).
    snapshot_s : float
        Snapshot period T_u [s].
    pulse_s : float or None
        Pulse length T_p of the TO loss (default T_u).

    Returns
    -------
    ndarray (M*N, M*N) complex128, Hermitian.
    """
    p = np.asarray(user_pos_m, dtype=float).reshape(-1, 2)
    k_users, m, n = p.shape[0], geom.n_aps, geom.n_antennas
    rr = np.asarray(r, dtype=complex)
    if alpha is None:
        alpha = (rng.standard_normal((k_users, m, m)) + 1j * rng.standard_normal((k_users, m, m))) / np.sqrt(2)
    fc = carrier_hz if carrier_hz is not None else 299_792_458.0 / geom.wavelength_m
    g = echo_channel(geom, p, alpha, model)  # [MN, MN]
    fto = sync_path_factors(m, residual_to_s, fc, pulse_s if pulse_s is not None else snapshot_s)  # [M, M]
    g = _per_block(g, fto, n)
    big_l = int(n_snapshots)
    cfo = None if residual_cfo_hz is None else np.asarray(residual_cfo_hz, dtype=float)
    if fidelity == "wishart" and big_l >= m * n:
        gamma = None
        if cfo is not None:
            df = cfo[:, None] - cfo[None, :]  # [a, b]
            ph = -2 * np.pi * df * snapshot_s  # [a, b]
            # mean of exp(j ph l) over l, in closed form (Dirichlet kernel)
            with np.errstate(invalid="ignore", divide="ignore"):
                num = np.exp(1j * ph * big_l) - 1.0
                den = big_l * (np.exp(1j * ph) - 1.0)
                gamma = np.where(np.abs(den) > 1e-12 * big_l, num / np.where(den == 0, 1, den), 1.0)
        c = echo_covariance(g, rr, noise_w, n, gamma)
        return complex_wishart(c, big_l, rng) / big_l
    if fidelity not in ("wishart", "snapshots"):
        raise ValueError(f"fidelity must be 'wishart' or 'snapshots', got {fidelity!r}")
    rs = _psd_sqrt(rr)  # [M, N, N]
    s = (rng.standard_normal((m, n, big_l)) + 1j * rng.standard_normal((m, n, big_l))) / np.sqrt(2)
    x = np.matmul(rs, s).reshape(m * n, big_l)  # [MN, L]
    y = g @ x  # [MN, L]
    if cfo is not None:
        ls = np.arange(big_l) * snapshot_s  # [L]
        # per-path rotation exp(j 2 pi (f_tx - f_rx) l T_u): transmit part on x, receive part on y
        x_rot = np.exp(2j * np.pi * cfo[:, None] * ls[None, :])  # [M, L]
        y = g @ (x * np.repeat(x_rot, n, axis=0))
        y = y * np.repeat(np.exp(-2j * np.pi * cfo[:, None] * ls[None, :]), n, axis=0)
    z = (rng.standard_normal((m * n, big_l)) + 1j * rng.standard_normal((m * n, big_l))) * np.sqrt(noise_w / 2)
    y = y + z
    return (y @ y.conj().T) / big_l


@dataclass(frozen=True)
class EchoStatistics:
    """What the CPU holds after one sensing phase: echo covariance and echo-waveform correlation.

    Attributes
    ----------
    cov : ndarray (M*N, M*N) complex [W]
        ``R_yy = Y Y^H / L`` (MUSIC works on it).
    cross : ndarray (M*N, M*N) complex [W]
        ``R_yx = Y X^H / L`` (for ``"snapshots"``: ``R_yx R_x^+ blkdiag(R_m)``, see there): the
        matched-filter output of every receive element against every
        transmitted stream (the CPU knows the waveform it sent). With ``R_x = X X^H / L`` it is
        the sufficient statistic of the known-waveform model of eq. (2):
        ``||Y - G X||^2 = L (tr(G R_x G^H) - 2 Re tr(G^H R_yx)) + const``.
    tx_cov : ndarray (M, N, N) complex [W]
        Per-AP ``R_x`` blocks the cross term was formed with.
    n_snapshots : int
    """

    cov: NDArray[np.complex128]
    cross: NDArray[np.complex128]
    tx_cov: NDArray[np.complex128]
    n_snapshots: int


def _dirichlet(ph: NDArray[np.float64], n: int) -> NDArray[np.complex128]:
    """``mean_{l<n} exp(j ph l)`` elementwise (1 where ph = 0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        num = np.exp(1j * ph * n) - 1.0
        den = n * (np.exp(1j * ph) - 1.0)
        return np.where(np.abs(den) > 1e-12 * n, num / np.where(den == 0, 1, den), 1.0)


def cross_cfo_factors(residual_cfo_hz: ArrayLike | None, n_aps: int, n_snapshots: int,
                      snapshot_s: float) -> NDArray[np.complex128]:
    """Coherent-integration factor of each path in ``R_yx``, ``[m_rx, m_tx]`` (M, M) complex.

    The path m (tx) -> m' (rx) rotates by ``exp(j 2 pi (f_m - f_m') l T_u)`` in snapshot l; its
    mean over the L snapshots is a Dirichlet kernel (1 on the diagonal: monostatic paths).
    """
    if residual_cfo_hz is None:
        return np.ones((n_aps, n_aps), dtype=complex)
    f = np.asarray(residual_cfo_hz, dtype=float)  # [M]
    return _dirichlet(2 * np.pi * (f[None, :] - f[:, None]) * snapshot_s, int(n_snapshots))  # [rx, tx]


def sample_echo_statistics(
    geom: IsacGeometry,
    user_pos_m: ArrayLike,
    r: ArrayLike,
    n_snapshots: int,
    noise_w: float,
    rng: np.random.Generator,
    alpha: ArrayLike,
    residual_cfo_hz: ArrayLike | None = None,
    residual_to_s: ArrayLike | None = None,
    fidelity: str = "wishart",
    carrier_hz: float | None = None,
    snapshot_s: float = 1e-6,
    pulse_s: float | None = None,
) -> EchoStatistics:
    """Echo covariance and echo-waveform correlation of one sensing phase.

    Same model and arguments as :func:`sample_echo_covariance` (``alpha`` is required: the caller
    keeps it for the frame's bound). ``"snapshots"`` forms both from the same drawn ``X, Y``
    (``tx_cov`` holds the diagonal blocks of the drawn ``X X^H / L``, and the cross term is
    decorrelated across APs as ``R_yx (X X^H / L)^+ blkdiag(tx_cov)``). ``"wishart"`` draws ``R_yy`` from its Wishart
    law and, independently, ``R_yx = Gamma o (G R_x) + E`` with ``vec(E)`` the exact Gaussian
    noise term ``Z X^H / L`` for ``X X^H / L = R_x`` (``E = sqrt(sigma^2 / L) Xi R_x^{1/2}``,
    ``Xi`` iid CN(0, 1)) and ``Gamma`` the paths' mean CFO rotation
    (:func:`cross_cfo_factors`): each marginal is exact (the CFO one in the mean), their
    dependence is not modelled (MUSIC uses ``R_yy`` only as a starting point, the ML step
    ``R_yx`` only).

    Returns
    -------
    EchoStatistics
    """
    p = np.asarray(user_pos_m, dtype=float).reshape(-1, 2)
    m, n = geom.n_aps, geom.n_antennas
    rr = np.asarray(r, dtype=complex)  # [M, N, N]
    big_l = int(n_snapshots)
    if fidelity == "wishart" and big_l >= m * n:
        cov = sample_echo_covariance(
            geom, p, rr, big_l, noise_w, rng, residual_cfo_hz=residual_cfo_hz,
            residual_to_s=residual_to_s, fidelity="wishart", alpha=alpha, carrier_hz=carrier_hz,
            snapshot_s=snapshot_s, pulse_s=pulse_s)
        fc = carrier_hz if carrier_hz is not None else 299_792_458.0 / geom.wavelength_m
        g = echo_channel(geom, p, alpha)  # [MN, MN]
        fto = sync_path_factors(m, residual_to_s, fc, pulse_s if pulse_s is not None else snapshot_s)
        gam = cross_cfo_factors(residual_cfo_hz, m, big_l, snapshot_s)  # [rx, tx]
        g = _per_block(g, fto * gam, n)
        xi = (rng.standard_normal((m * n, m, n)) + 1j * rng.standard_normal((m * n, m, n))) / np.sqrt(2)
        # per transmit block m: Xi_m R_m^{1/2} and G_{., m} R_m (batched over m)
        e = np.sqrt(noise_w / big_l) * np.matmul(xi.transpose(1, 0, 2), _psd_sqrt(rr))  # [M, MN, N]
        gr = np.matmul(g.reshape(m * n, m, n).transpose(1, 0, 2), rr)  # [M, MN, N]
        cross = (gr + e).transpose(1, 0, 2).reshape(m * n, m * n)
        return EchoStatistics(cov, cross, rr, big_l)
    if fidelity not in ("wishart", "snapshots"):
        raise ValueError(f"fidelity must be 'wishart' or 'snapshots', got {fidelity!r}")
    fc = carrier_hz if carrier_hz is not None else 299_792_458.0 / geom.wavelength_m
    g = echo_channel(geom, p, alpha)  # [MN, MN]
    fto = sync_path_factors(m, residual_to_s, fc, pulse_s if pulse_s is not None else snapshot_s)
    g = _per_block(g, fto, n)
    rs = _psd_sqrt(rr)  # [M, N, N]
    s = (rng.standard_normal((m, n, big_l)) + 1j * rng.standard_normal((m, n, big_l))) / np.sqrt(2)
    x = np.matmul(rs, s).reshape(m * n, big_l)  # [MN, L]
    if residual_cfo_hz is not None:
        cfo = np.asarray(residual_cfo_hz, dtype=float)
        ls = np.arange(big_l) * snapshot_s  # [L]
        x_rot = np.repeat(np.exp(2j * np.pi * cfo[:, None] * ls[None, :]), n, axis=0)  # [MN, L]
        y = (g @ (x * x_rot)) * x_rot.conj()
    else:
        y = g @ x  # [MN, L]
    y = y + (rng.standard_normal((m * n, big_l)) + 1j * rng.standard_normal((m * n, big_l))) * np.sqrt(noise_w / 2)
    rx_full = x @ x.conj().T / big_l  # [MN, MN]
    xx = rx_full.reshape(m, n, m, n)
    tx_cov = np.stack([xx[i, :, i, :] for i in range(m)])  # [M, N, N]
    # finite L leaves the APs' streams correlated (X_m X_m'^H / L ~ 1/sqrt(L)), which leaks every
    # transmitter's paths into the others' matched filters; the CPU removes it with the
    # least-squares echo matrix G_ls = R_yx R_x^+, re-weighted by the per-AP blocks
    cross = (y @ x.conj().T / big_l) @ np.linalg.pinv(rx_full, hermitian=True) @ _block_diag(tx_cov)
    return EchoStatistics(y @ y.conj().T / big_l, cross, tx_cov, big_l)
