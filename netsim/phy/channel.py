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

Fast forms used by the engine (issue 10; the exact forms stay for the paper reproductions and
as test oracles):

* :meth:`LosChannel.polar` writes ``h_LOS = |beta| exp(-j 2 pi r_n / lambda)`` (the phases of
  ``beta`` and of ``a`` combined, since ``(r_n - r) + r = r_n``): the wavelength count
  ``r_n / lambda`` is reduced to its fractional part in float64 and only the last step,
  ``cos``/``sin`` of an angle in [0, 2 pi), runs in float32 (SIMD, ~10x cheaper). The phase
  error is below 1e-6 rad (a path-length error of 1e-9 wavelengths);
* :func:`fading_steps_polar` draws the CN(0, 1) innovations in polar form,
  ``|w|^2 = -ln U1 ~ Exp(1)``, ``arg w = 2 pi U2`` (exact in distribution; float32 log and
  trig), two uniforms per entry instead of two normals.

The fast LOS entries keep ``|beta|`` to float64 precision; their modulus and phase are exact to
float32 precision of the unit phasor (modulus within 2e-7 relative, phase within 1e-6 rad).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from netsim.phy.bessel import bessel_j0
from netsim.phy.geometry import ula_element_offsets

__all__ = [
    "angle_from_axis",
    "cn01_polar",
    "fading_steps_polar",
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
    "rician_fading_polar",
    "rician_polar",
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

    def polar(self, user_pos_m: ArrayLike
              ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """The LOS channels of :meth:`__call__` in polar form, ``h = amp (cos - j sin)``.

        ``h_{m,k,n} = |beta_{m,k}| exp(-j 2 pi r_n / lambda)``: the phase of ``beta``
        (``-2 pi r / lambda``) and of the near-field response (``-2 pi (r_n - r) / lambda``)
        add up to the element distance alone. The wavelength count is reduced to [0, 1) in
        float64, and cos/sin of the angle run in float32: phase error < 1e-6 rad.

        Parameters
        ----------
        user_pos_m : array_like (K, 2), [m]

        Returns
        -------
        amp : ndarray (K, M), float64
            ``|beta| = g0 / r^(ple/2)`` (r: distance to the array centre).
        cos, sin : ndarray (K, M, N), float64 (computed in float32)
            ``cos`` and ``sin`` of ``2 pi r_n / lambda``.
        """
        p = np.asarray(user_pos_m, dtype=float)  # [K, 2]
        px, py = p[:, 0, None], p[:, 1, None]  # [K, 1]
        r_n = _distance(px[..., None], py[..., None], self.qx, self.qy)  # [K, M, N]
        r = _distance(px, py, self.cx, self.cy)  # [K, M]
        if np.any(r <= 0):
            raise ValueError("distances must be > 0 (a point sits on an array centre)")
        cycles = np.multiply(r_n, 1.0 / self.wavelength_m, out=r_n)  # [K, M, N] wavelengths
        cycles -= np.floor(cycles)  # [0, 1)
        angle = cycles.astype(np.float32)  # [K, M, N]
        angle *= np.float32(2.0 * np.pi)
        g0 = (self.wavelength_m / (4 * np.pi) if self.reference_amplitude is None
              else float(self.reference_amplitude))
        amp = g0 * r ** (-0.5 * self.path_loss_exponent)  # [K, M]
        # back to float64 once: mixed float32/float64 operands make later ufuncs slow
        return amp, np.cos(angle).astype(float), np.sin(angle).astype(float)

    def fast(self, user_pos_m: ArrayLike) -> NDArray[np.complex128]:
        """:meth:`polar` assembled: the channels (K, M, N), complex128 (phase error < 1e-6 rad
        against :meth:`__call__`)."""
        amp, c, s = self.polar(user_pos_m)
        return _assemble(amp[..., None] * c, -amp[..., None] * s)  # [K, M, N]


def _assemble(re: np.ndarray, im: np.ndarray) -> NDArray[np.complex128]:
    out = np.empty(re.shape, dtype=complex)
    out.real = re
    out.imag = im
    return out


def rician_polar(
    amp: NDArray[np.float64], cos: NDArray[np.float64], sin: NDArray[np.float64],
    nlos: NDArray[np.complex128], k_factor_linear: float
) -> NDArray[np.complex128]:
    """:func:`rician_channel` of a LOS channel given in polar form (:meth:`LosChannel.polar`).

    ``h = sqrt(K/(K+1)) amp (cos - j sin) + sqrt(1/(K+1)) amp g``, with ``amp = |beta|`` the
    LOS amplitude itself (:func:`rician_channel` takes the RMS over the antennas of the
    unit-modulus response times ``|beta|``: the same number up to rounding).

    Parameters
    ----------
    amp : ndarray (..., M), float64
    cos, sin : ndarray (..., M, N), float64
    nlos : ndarray (..., M, N), complex128, CN(0, 1) entries
    k_factor_linear : float, >= 0 and finite

    Returns
    -------
    ndarray (..., M, N), complex128
    """
    kf = float(k_factor_linear)
    if not 0 <= kf < np.inf:
        raise ValueError(f"k_factor_linear must be finite and >= 0, got {k_factor_linear}")
    a_los = (np.sqrt(kf / (kf + 1)) * amp)[..., None]  # [..., M, 1]
    a_nlos = (np.sqrt(1 / (kf + 1)) * amp)[..., None]  # [..., M, 1]
    return _assemble(a_los * cos + a_nlos * nlos.real, a_nlos * nlos.imag - a_los * sin)


def jakes_correlation(doppler_hz: ArrayLike, dt_s: ArrayLike) -> NDArray[np.float64]:
    """Jakes (Clarke) time correlation ``J0(2 pi f_D dt)`` (broadcast; J0 of
    :mod:`netsim.phy.bessel`, so that a run never imports ``scipy.special``)."""
    return bessel_j0(2 * np.pi * np.asarray(doppler_hz, dtype=float) * np.asarray(dt_s, dtype=float))


def _cn01(shape: tuple[int, ...], rng: np.random.Generator) -> NDArray[np.complex128]:
    z = rng.standard_normal((2, *shape))
    return (z[0] + 1j * z[1]) / np.sqrt(2.0)


def _polar_draws(u1: NDArray[np.float64], u2: NDArray[np.float64]
                 ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Real and imaginary parts (float64) of CN(0, 1) draws from uniforms ``u1``, ``u2`` in
    [0, 1): ``|w|^2 = -ln(1 - U1)`` is Exp(1) and ``arg w = 2 pi U2`` is uniform and
    independent of it, which is exactly the CN(0, 1) law (float32 log and trig)."""
    mag = (1.0 - u1).astype(np.float32)  # [...] in (0, 1]
    np.log(mag, out=mag)
    np.negative(mag, out=mag)
    np.sqrt(mag, out=mag)  # Rayleigh, E|w|^2 = 1
    ang = (u2 * (2.0 * np.pi)).astype(np.float32)  # [...] rad
    re = np.cos(ang)
    re *= mag
    np.sin(ang, out=ang)
    ang *= mag
    return re.astype(float), ang.astype(float)


def cn01_polar(shape: int | tuple[int, ...], rng: np.random.Generator) -> NDArray[np.complex128]:
    """CN(0, 1) array of ``shape`` in polar form (two uniforms per entry; see
    :func:`fading_steps_polar`)."""
    shp = (shape,) if isinstance(shape, int | np.integer) else tuple(shape)
    u = rng.random((2, *shp))
    return _assemble(*_polar_draws(u[0], u[1]))


def fading_steps_polar(
    state: ArrayLike, correlations: ArrayLike, rng: np.random.Generator
) -> NDArray[np.complex128]:
    """``S`` Gauss-Markov steps ``g <- rho g + sqrt(1 - rho^2) w`` with polar CN(0, 1) ``w``.

    The same process as :func:`nlos_steps` (CN(0, 1) marginal, lag-n correlation rho^n), with
    innovations drawn by :func:`cn01_polar`'s polar form from one ``(S, 2, ...)`` block of
    uniforms: a batch of ``S`` steps draws the same numbers as ``S`` single-step calls and
    does the same element-wise operations, so the two give the same bits.

    Parameters
    ----------
    state : array_like (...), complex
    correlations : array_like (S, ...) broadcastable per step to ``state``, real in [-1, 1]
    rng : numpy.random.Generator

    Returns
    -------
    ndarray (S, ...), complex128
        The state after each step.
    """
    g = np.asarray(state, dtype=complex)  # [...]
    rho, w_re, w_im = _innovations(g.shape, correlations, rng)
    out = np.empty((rho.shape[0], *g.shape), dtype=complex)  # [S, ...]
    g_re, g_im = g.real.copy(), g.imag.copy()  # [...] contiguous
    for s in range(rho.shape[0]):
        g_re *= rho[s]
        g_re += w_re[s]
        g_im *= rho[s]
        g_im += w_im[s]
        out[s].real = g_re
        out[s].imag = g_im
    return out


def _innovations(shape: tuple[int, ...], correlations: ArrayLike, rng: np.random.Generator
                 ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Per-step correlations aligned with ``shape`` (S, 1.., *) and the scaled innovations
    ``sqrt(1 - rho^2) w`` (real, imaginary parts, (S, *shape)) of :func:`fading_steps_polar`."""
    rho = np.asarray(correlations, dtype=float)  # [S, ...]
    if np.any(np.abs(rho) > 1):
        raise ValueError("correlation must lie in [-1, 1]")
    n_steps = rho.shape[0]
    # per-step factors aligned with the state's trailing axes: (S, 1, ..., *rho.shape[1:])
    rho = rho.reshape((n_steps,) + (1,) * max(0, len(shape) - rho.ndim + 1) + rho.shape[1:])
    u = rng.random((n_steps, 2, *shape))  # [S, 2, ...] the blocks of S single steps
    w_re, w_im = _polar_draws(u[:, 0], u[:, 1])  # [S, ...] each
    scale = np.sqrt(1.0 - rho * rho)  # [S, ...]
    w_re *= scale
    w_im *= scale
    return rho, w_re, w_im


def rician_fading_polar(
    amp: NDArray[np.float64], cos: NDArray[np.float64], sin: NDArray[np.float64],
    state: NDArray[np.complex128], correlations: ArrayLike, stepped: list[bool],
    k_factor_linear: float, rng: np.random.Generator,
) -> tuple[NDArray[np.complex128], NDArray[np.complex128]]:
    """Rician channels of ``S`` times with the fading advanced in between, fused.

    For each time ``s`` (in order): when ``stepped[s]``, one :func:`fading_steps_polar` step
    with the next entry of ``correlations``; then ``h[s] = rician_polar(amp[s], cos[s],
    sin[s], g, K)``. The same draws and element-wise operations as those calls (hence the
    same bits), without the intermediate complex arrays.

    Parameters
    ----------
    amp : ndarray (S, ..., M), float64
    cos, sin : ndarray (S, ..., M, N), float64
    state : ndarray (..., M, N), complex128
        Fading state before the first time.
    correlations : array_like (steps, ...), one entry per True of ``stepped``
    stepped : list of bool (S,)
    k_factor_linear : float, finite, >= 0
    rng : numpy.random.Generator

    Returns
    -------
    h : ndarray (S, ..., M, N), complex128
    state : ndarray (..., M, N), complex128
        Fading state after the last time.
    """
    kf = float(k_factor_linear)
    if not 0 <= kf < np.inf:
        raise ValueError(f"k_factor_linear must be finite and >= 0, got {k_factor_linear}")
    g = np.asarray(state, dtype=complex)  # [..., M, N]
    g_re, g_im = g.real.copy(), g.imag.copy()
    if sum(stepped):
        rho, w_re, w_im = _innovations(g.shape, correlations, rng)
    a_los = (np.sqrt(kf / (kf + 1)) * amp)[..., None]  # [S, ..., M, 1]
    a_nlos = (np.sqrt(1 / (kf + 1)) * amp)[..., None]  # [S, ..., M, 1]
    # the fading state at each time (the recursion is sequential), then every time's channel
    # in a few whole-array operations: the same element-wise products and sums as per time
    gs_re = np.empty((len(stepped), *g.shape))  # [S, ..., M, N]
    gs_im = np.empty_like(gs_re)
    done = 0
    for s, step in enumerate(stepped):
        if step:
            np.multiply(g_re, rho[done], out=gs_re[s])
            gs_re[s] += w_re[done]
            np.multiply(g_im, rho[done], out=gs_im[s])
            gs_im[s] += w_im[done]
            done += 1
        else:
            gs_re[s] = g_re
            gs_im[s] = g_im
        g_re, g_im = gs_re[s], gs_im[s]
    state_out = _assemble(g_re, g_im)  # [..., M, N] (a copy: gs_* are overwritten below)
    h_re = a_los * cos  # [S, ..., M, N]
    h_re += np.multiply(a_nlos, gs_re, out=gs_re)
    h_im = np.multiply(a_nlos, gs_im, out=gs_im)  # [S, ..., M, N]
    h_im -= a_los * sin
    return _assemble(h_re, h_im), state_out



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
