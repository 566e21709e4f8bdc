"""Porous-electrode microstructure at scale: fractions, surfaces, distance maps, pore sizes,
percolation and correlation, exact for any chunking (see ``microstructure_reference.md``).

:func:`microstructure` gathers them in one ``xarray.Dataset``; each metric is also a
function of its own. Inputs are numpy, dask, xarray or store paths (coerced with
:func:`redoxflow.io.as_volume`), ``spacing=`` in micrometres (anisotropic allowed), label
volumes with any integer phase values (``phases={"pore": 0, "NMC": 85, "CBD": 170}``).
"""

from __future__ import annotations

import sys
import types

from .connectivity import percolation
from .correlation import rev, two_point_correlation
from .dataset import METRICS, microstructure
from .fractions import fraction_profile, volume_fractions
from .options import parse_phases
from .surface import interfacial_area, specific_surface_area, triple_phase_boundary
from .thickness import (
    constrictivity,
    distance_transform,
    intrusion,
    intrusion_distribution,
    local_thickness,
    pore_size_distribution,
)
from .tortuosity import tortuosity

__all__ = ["METRICS", "constrictivity", "distance_transform", "fraction_profile",
           "interfacial_area", "intrusion", "intrusion_distribution", "local_thickness",
           "microstructure", "parse_phases", "percolation", "pore_size_distribution", "rev",
           "specific_surface_area", "tortuosity", "triple_phase_boundary", "two_point_correlation",
           "volume_fractions"]


class _CallablePackage(types.ModuleType):
    """``rf.microstructure(volume, ...)`` calls :func:`microstructure`; the other metrics
    stay attributes of the package (``rf.microstructure.tortuosity``)."""

    def __call__(self, *args, **kwargs):
        return microstructure(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
