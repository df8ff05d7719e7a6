"""Near-field LOS channels of ULAs, far-field steering, and Gauss-Markov NLOS fading.

Model (spec/isac.md sections 2.1-2.2, seed 003 eq. (1)):

* near-field response of AP m at point p:
  ``[a_m(p)]_n = exp(-j 2 pi / lambda (r_n(p) - r(p)))``, with ``r_n`` the distance from
  element n and ``r`` the distance from the array centre (exact spherical wavefront);
* far-field (planar) steering: ``[a^FF(theta)]_n = exp(+j 2 pi / lambda delta_n cos theta)``,
  theta the angle between the array axis and the direction to the point;
* LOS channel ``h_{m,k} = beta_{m,k} a_m(p_k)``,
  ``beta = g0 / r^(ple/2) exp(-j 2 pi r / lambda)`` with ``g0 = lambda / (4 pi)`` by
  default (Friis amplitude; spec A2 notes that the code of [29] uses
  ``sqrt(lambda / (4 pi))`` instead: pass ``reference_amplitude`` to choose);
* NLOS small-scale fading: first-order Gauss-Markov (AR(1)) process with one-step
  correlation given by Jakes' model, ``rho = J0(2 pi f_D dt)``;
* Rician combination with K-factor ``K``:
  ``h = sqrt(K/(K+1)) h_LOS + sqrt(1/(K+1)) |beta| g``, ``g ~ CN(0, 1)`` per element.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from netsim.phy.bessel import bessel_j0
from netsim.phy.geometry import ula_element_offsets

__all__ = [
    "angle_from_axis",
    "far_field_response",
    "jakes_correlation",
    "LosChannel",
    "los_channel",
    "near_field_response",
    "nlos_initial",
    "nlos_step",
    "nlos_steps",
    "path_gain",
    "rician_channel",
]


def near_field_response(
    element_pos_m: ArrayLike, center_m: ArrayLike, point_m: ArrayLike, wavelength_m: float
) -> NDArray[np.complex128]:
    """Exact (spherical-wave) array response ``exp(-j 2 pi/lambda (r_n - r))``.

    Parameters
    ----------
    element_pos_m : array_like (..., N, 2), float, [m]
        Element positions q_n.
    center_m : array_like (..., 2), float, [m]
        Array centre c (reference for the phase; response is 1 at an element sitting on c).
    point_m : array_like (..., 2), float, [m]
        Point p (user or target). Leading axes of the three inputs broadcast.
    wavelength_m : float, [m]

    Returns
    -------
    ndarray (..., N), complex128
        Unit-modulus response (spec/isac.md 2.1).
    """
    q = np.asarray(element_pos_m, dtype=float)  # [..., N, 2]
    c = np.asarray(center_m, dtype=float)  # [..., 2]
    p = np.asarray(point_m, dtype=float)  # [..., 2]
    r_n = _distance(p[..., 0, None], p[..., 1, None], q[..., 0], q[..., 1])  # [..., N]
    r = _distance(p[..., 0], p[..., 1], c[..., 0], c[..., 1])  # [...]
    return np.exp(-2j * np.pi / wavelength_m * (r_n - r[..., None]))  # [..., N]


def _distance(px: np.ndarray, py: np.ndarray, qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
    """``sqrt((px - qx)^2 + (py - qy)^2)`` (broadcast), m.

    The same floating-point operations as ``np.linalg.norm(p - q, axis=-1)`` on the stacked
    (x, y) pairs (squares, one addition, the square root), hence bit-identical to it, without
    the (..., 2) intermediate and its strided reduction.
    """
    dx = np.asarray(px - qx)  # [...]
    dy = py - qy  # [...]
    dx *= dx
    dy *= dy
    dx += dy
    return np.sqrt(dx, out=dx)


def far_field_response(
    n_antennas: int, spacing_m: float, angle_rad: ArrayLike, wavelength_m: float
) -> NDArray[np.complex128]:
    """Planar-wave ULA steering vector ``exp(+j 2 pi/lambda delta_n cos theta)``.

    Parameters
    ----------
    n_antennas : int
    spacing_m : float, [m]
    angle_rad : array_like (...), float, [rad]
        Angle theta between the array axis and the direction to the point.
    wavelength_m : float, [m]

    Returns
    -------
    ndarray (..., N), complex128
    """
    delta = ula_element_offsets(n_antennas, spacing_m)  # [N]
    cos_t = np.cos(np.asarray(angle_rad, dtype=float))  # [...]
    return np.exp(2j * np.pi / wavelength_m * cos_t[..., None] * delta)  # [..., N]


def angle_from_axis(
    center_m: ArrayLike, axis_angle_rad: ArrayLike, point_m: ArrayLike
) -> NDArray[np.float64]:
    """Angle theta in [0, pi] between the array axis ``(cos a, sin a)`` and ``p - c``.

    Parameters
    ----------
    center_m : array_like (..., 2), [m]
    axis_angle_rad : array_like (...), [rad]
    point_m : array_like (..., 2), [m]

    Returns
    -------
    ndarray (...), float64, [rad]
    """
    c = np.asarray(center_m, dtype=float)  # [..., 2]
    p = np.asarray(point_m, dtype=float)  # [..., 2]
    a = np.asarray(axis_angle_rad, dtype=float)  # [...]
    v = p - c  # [..., 2]
    along = v[..., 0] * np.cos(a) + v[..., 1] * np.sin(a)  # [...]
    across = -v[..., 0] * np.sin(a) + v[..., 1] * np.cos(a)  # [...]
    return np.arctan2(np.abs(across), along)


def path_gain(
    distance_m: ArrayLike,
    wavelength_m: float,
    path_loss_exponent: float = 2.0,
    reference_amplitude: float | None = None,
) -> NDArray[np.complex128]:
    """Complex LOS gain ``beta = g0 / r^(ple/2) exp(-j 2 pi r / lambda)``.

    Parameters
    ----------
    distance_m : array_like (...), [m], > 0
    wavelength_m : float, [m]
    path_loss_exponent : float, default 2
    reference_amplitude : float, optional
        g0; default ``lambda / (4 pi)`` (Friis). ``sqrt(lambda/(4 pi))`` reproduces [29].

    Returns
    -------
    ndarray (...), complex128
    """
    r = np.asarray(distance_m, dtype=float)  # [...]
    if np.any(r <= 0):
        raise ValueError("distances must be > 0 (a point sits on an array centre)")
    g0 = wavelength_m / (4 * np.pi) if reference_amplitude is None else float(reference_amplitude)
    return g0 * r ** (-0.5 * path_loss_exponent) * np.exp(-2j * np.pi * r / wavelength_m)


def los_channel(
    element_pos_m: ArrayLike,
    center_m: ArrayLike,
    user_pos_m: ArrayLike,
    wavelength_m: float,
    path_loss_exponent: float = 2.0,
    reference_amplitude: float | None = None,
) -> NDArray[np.complex128]:
    """Near-field LOS channels of all AP-user pairs, ``h_{m,k} = beta_{m,k} a_m(p_k)``.

    Parameters
    ----------
    element_pos_m : array_like (M, N, 2), [m]
    center_m : array_like (M, 2), [m]
    user_pos_m : array_like (K, 2), [m]
    wavelength_m : float, [m]
    path_loss_exponent : float, default 2
    reference_amplitude : float, optional
        See :func:`path_gain`.

    Returns
    -------
    ndarray (K, M, N), complex128
        Seed 003 eq. (1), spec/isac.md 2.2.
    """
    los = LosChannel(element_pos_m, center_m, wavelength_m, path_loss_exponent,
                     reference_amplitude)
    return los(user_pos_m)


class LosChannel:
    """Near-field LOS channels of fixed arrays to moving users (:func:`los_channel`).

    The array geometry is split into contiguous coordinate arrays once, so that a channel
    evaluation per subframe is only the distances, the phases and the path gains.
    The result is bit-identical to :func:`los_channel` (same floating-point operations).

    Parameters
    ----------
    element_pos_m : array_like (M, N, 2), [m]
    center_m : array_like (M, 2), [m]
    wavelength_m : float, [m]
    path_loss_exponent : float, default 2
    reference_amplitude : float, optional
        See :func:`path_gain`.
    """

    def __init__(
        self,
        element_pos_m: ArrayLike,
        center_m: ArrayLike,
        wavelength_m: float,
        path_loss_exponent: float = 2.0,
        reference_amplitude: float | None = None,
    ) -> None:
        q = np.asarray(element_pos_m, dtype=float)  # [M, N, 2]
        c = np.asarray(center_m, dtype=float)  # [M, 2]
        if q.ndim != 3 or q.shape[-1] != 2 or c.shape != (q.shape[0], 2):
            raise ValueError(f"element_pos_m must be (M, N, 2) and center_m (M, 2), got "
                             f"{q.shape} and {c.shape}")
        self.qx = np.ascontiguousarray(q[..., 0])  # [M, N]
        self.qy = np.ascontiguousarray(q[..., 1])  # [M, N]
        self.cx = np.ascontiguousarray(c[:, 0])  # [M]
        self.cy = np.ascontiguousarray(c[:, 1])  # [M]
        self.wavelength_m = float(wavelength_m)
        self.path_loss_exponent = float(path_loss_exponent)
        self.reference_amplitude = reference_amplitude
        self._phase = -2j * np.pi / wavelength_m  # the constant of near_field_response

    def __call__(self, user_pos_m: ArrayLike) -> NDArray[np.complex128]:
        """Channels (K, M, N), complex128, of users at ``user_pos_m`` (K, 2), m."""
        p = np.asarray(user_pos_m, dtype=float)  # [K, 2]
        px, py = p[:, 0, None], p[:, 1, None]  # [K, 1]
        r_n = _distance(px[..., None], py[..., None], self.qx, self.qy)  # [K, M, N]
        r = _distance(px, py, self.cx, self.cy)  # [K, M]
        r_n -= r[..., None]
        a = np.exp(self._phase * r_n)  # [K, M, N] near-field response
        beta = path_gain(r, self.wavelength_m, self.path_loss_exponent,
                         self.reference_amplitude)  # [K, M]
        # beta * a in this operand order: numpy's complex product is not bitwise symmetric
        return np.multiply(beta[..., None], a, out=a)  # [K, M, N]


def jakes_correlation(doppler_hz: ArrayLike, dt_s: ArrayLike) -> NDArray[np.float64]:
    """Jakes (Clarke) time correlation ``J0(2 pi f_D dt)`` (broadcast; J0 of
    :mod:`netsim.phy.bessel`, so that a run never imports ``scipy.special``)."""
    return bessel_j0(2 * np.pi * np.asarray(doppler_hz, dtype=float) * np.asarray(dt_s, dtype=float))


def _cn01(shape: tuple[int, ...], rng: np.random.Generator) -> NDArray[np.complex128]:
    z = rng.standard_normal((2, *shape))
    return (z[0] + 1j * z[1]) / np.sqrt(2.0)


def nlos_initial(shape: int | tuple[int, ...], rng: np.random.Generator) -> NDArray[np.complex128]:
    """Stationary start of the NLOS fading: i.i.d. CN(0, 1) array of ``shape``."""
    shp = (shape,) if isinstance(shape, int | np.integer) else tuple(shape)
    return _cn01(shp, rng)


def nlos_step(
    state: ArrayLike, correlation: ArrayLike, rng: np.random.Generator
) -> NDArray[np.complex128]:
    """One Gauss-Markov (AR(1)) step ``rho g + sqrt(1 - rho^2) w``, ``w ~ CN(0, 1)``.

    Keeps the CN(0, 1) marginal; the lag-n correlation of the process is ``rho^n``
    (with ``rho = jakes_correlation(f_D, dt)`` the one-step lag matches Jakes exactly).

    Parameters
    ----------
    state : array_like (...), complex
    correlation : array_like, broadcastable to ``state``, real in [-1, 1]
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, same shape as ``state``, complex128
    """
    g = np.asarray(state, dtype=complex)  # [...]
    rho = np.asarray(correlation, dtype=float)  # broadcastable
    if np.any(np.abs(rho) > 1):
        raise ValueError("correlation must lie in [-1, 1]")
    return rho * g + np.sqrt(1.0 - rho * rho) * _cn01(g.shape, rng)


def nlos_steps(
    state: ArrayLike, correlations: ArrayLike, rng: np.random.Generator
) -> NDArray[np.complex128]:
    """``S`` successive :func:`nlos_step` calls at once; returns every state, (S, ...).

    Draws the same numbers in the same order (one ``(S, 2, ...)`` block is the ``S``
    ``(2, ...)`` blocks of the single steps), and each state comes from the same operations,
    so the result is bit-identical to the loop of single steps.

    Parameters
    ----------
    state : array_like (...), complex
    correlations : array_like (S, ...) broadcastable per step to ``state``, real in [-1, 1]
    rng : numpy.random.Generator
    """
    g = np.asarray(state, dtype=complex)  # [...]
    rho = np.asarray(correlations, dtype=float)  # [S, ...]
    if np.any(np.abs(rho) > 1):
        raise ValueError("correlation must lie in [-1, 1]")
    n_steps = rho.shape[0]
    z = rng.standard_normal((n_steps, 2, *g.shape))  # [S, 2, ...]
    w = (z[:, 0] + 1j * z[:, 1]) / np.sqrt(2.0)  # [S, ...] the CN(0, 1) draws of _cn01
    scale = np.sqrt(1.0 - rho * rho)  # [S, ...]
    out = np.empty((n_steps, *g.shape), dtype=complex)  # [S, ...]
    for s in range(n_steps):
        g = rho[s] * g + scale[s] * w[s]
        out[s] = g
    return out


def rician_channel(
    h_los: ArrayLike, nlos: ArrayLike, k_factor_linear: float
) -> NDArray[np.complex128]:
    """Rician channel ``sqrt(K/(K+1)) h_LOS + sqrt(1/(K+1)) |beta| g``.

    ``|beta|`` is the LOS path amplitude of each AP-user pair, taken as the RMS of
    ``h_los`` over the antenna axis (the LOS response has unit-modulus entries).

    Parameters
    ----------
    h_los : array_like (K, M, N) (or (..., N)), complex
    nlos : array_like, same shape, complex, CN(0, 1) entries
    k_factor_linear : float, >= 0; ``inf`` gives pure LOS.

    Returns
    -------
    ndarray, same shape as ``h_los``, complex128
    """
    h = np.asarray(h_los, dtype=complex)  # [K, M, N]
    g = np.asarray(nlos, dtype=complex)  # [K, M, N]
    kf = float(k_factor_linear)
    if not kf >= 0:
        raise ValueError(f"k_factor_linear must be >= 0, got {k_factor_linear}")
    if np.isinf(kf):
        return h.copy()
    amp = np.sqrt(np.mean(np.abs(h) ** 2, axis=-1, keepdims=True))  # [K, M, 1]
    return np.sqrt(kf / (kf + 1)) * h + np.sqrt(1 / (kf + 1)) * amp * g
