"""Lengths on the WGS84 ellipsoid: what one degree of longitude and latitude measures in metres.

Geographic grids and DEMs (EPSG:4326) have pixel sizes in degrees; the grid's default resolution and the
slope need them in metres, at the latitude of each row.
"""

from __future__ import annotations

import math

import numpy as np

# WGS84 ellipsoid
_A = 6378137.0
_E2 = 6.69437999014e-3


def metres_per_degree(lat_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Length of one degree of longitude and of latitude, in metres, at ``lat_deg``."""
    lat = np.radians(lat_deg)
    sin2 = np.sin(lat) ** 2
    denom = np.sqrt(1.0 - _E2 * sin2)
    per_lon = (math.pi / 180.0) * _A * np.cos(lat) / denom
    per_lat = (math.pi / 180.0) * _A * (1.0 - _E2) / denom**3
    return per_lon, per_lat
