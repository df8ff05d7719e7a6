"""Location-aware CSI and the channel-error bound (seed 003 eqs. (1), (3)-(4), spec 2.2 and 2.5).

* Channel of user k at AP m: ``h_{m,k} = beta_{m,k} a_m(p_k)``,
  ``beta_{m,k} = sqrt(kappa0)/r_{m,k} exp(-j 2 pi r_{m,k}/lambda)`` (near-field LOS).
  The CPU rebuilds ``h_hat_k`` from an estimated position with the same formula.
* Error ball per AP-user pair (4): ``eps_{m,k}(rho) = delta sqrt(max_j CRLB_j(rho)) ||h_hat_{m,k}||``,
  ``CRLB_j(rho) = c_j / L(rho)``, ``delta = 4/lambda`` by default (Fig. 3 slope, spec A8, A17).
* :func:`mean_channel_error` is the Monte-Carlo curve of Fig. 3: ``E_phi ||h(p) - h(p + Delta u_phi)||``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:  # pragma: no cover
    from netsim.sensing.config import IsacGeometry

__all__ = ["channel_error_radius", "location_aware_channels", "mean_channel_error"]


def location_aware_channels(geom: IsacGeometry, pos_m: ArrayLike, model: str = "near") -> NDArray[np.complex128]:
    """Stacked LOS channels ``h_k = [h_{1,k}; ...; h_{M,k}]`` built from positions.

    Parameters
    ----------
    geom : IsacGeometry
    pos_m : array_like (..., K, 2) [m]
        True or estimated user positions.
    model : {"near", "far"}

    Returns
    -------
    ndarray (..., K, M*N) complex128 [sqrt(W/W)], amplitude gain per antenna.
    """
    # the sensing geometry is loaded where it is used (a run's engine needs only the radius)
    from netsim.sensing.steering import array_response, one_hop_gain

    p = np.asarray(pos_m, dtype=float)
    a = array_response(geom, p, model)  # [..., K, M, N]
    b = one_hop_gain(geom, p)  # [..., K, M]
    h = b[..., None] * a  # [..., K, M, N]
    return h.reshape(h.shape[:-2] + (-1,))


def channel_error_radius(
    h_hat: ArrayLike,
    n_aps: int,
    crlb_m2: ArrayLike,
    delta_per_m: float,
) -> NDArray[np.float64]:
    """Ball radii of eq. (4): ``eps_{m,k} = delta sqrt(max_j CRLB_j) ||h_hat_{m,k}||``.

    Parameters
    ----------
    h_hat : array_like (K, M*N) complex
        Estimated channels.
    n_aps : int
        M.
    crlb_m2 : array_like (K,) [m^2]
        Position CRLB of each user at the current time allocation (``c_k / L(rho)``).
    delta_per_m : float
        delta [1/m] (``IsacConfig.delta_per_m``).

    Returns
    -------
    ndarray (M, K) float, same unit as h.
    """
    h = np.asarray(h_hat)
    k = h.shape[0]
    norms = np.linalg.norm(h.reshape(k, n_aps, -1), axis=-1).T  # [M, K]
    return delta_per_m * np.sqrt(np.max(np.asarray(crlb_m2, dtype=float))) * norms


def mean_channel_error(
    geom: IsacGeometry,
    pos_m: ArrayLike,
    delta_m: ArrayLike,
    rng: np.random.Generator,
    n_draws: int = 2000,
) -> NDArray[np.float64]:
    """Fig. 3: ``E_phi ||h(p) - h(p + Delta [cos phi, sin phi])||`` with ``phi ~ U[0, 2 pi)``.

    Parameters
    ----------
    pos_m : array_like (2,) [m]
    delta_m : array_like (D,) [m]
        Error magnitudes.

    Returns
    -------
    ndarray (D,) float: mean error norm over the full stacked channel (all APs of ``geom``).
    """
    p = np.asarray(pos_m, dtype=float)
    dl = np.asarray(delta_m, dtype=float)  # [D]
    phi = rng.uniform(0, 2 * np.pi, n_draws)  # [S]
    u = np.stack([np.cos(phi), np.sin(phi)], axis=-1)  # [S, 2]
    h0 = location_aware_channels(geom, p[None])[0]  # [MN]
    pts = p + dl[:, None, None] * u[None]  # [D, S, 2]
    h = location_aware_channels(geom, pts)  # [D, S, MN]
    return np.linalg.norm(h - h0, axis=-1).mean(axis=-1)
