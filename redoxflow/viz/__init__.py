"""Pictures: off-screen pyvista scenes, orbit GIFs, matplotlib plots, an HTML report, and
exports for Fiji/ParaView (TIFF, VTI, PLY/STL/VTP meshes).

Imported lazily; needs the ``viz`` extra (pyvista, matplotlib, imageio).
"""

from __future__ import annotations

from .export import export
from .plots import density_maps, histograms, orientation_polar, time_series, tracks_plot
from .report import report
from .scene import (
    orbit,
    render_volume,
    scene_blockage,
    scene_cell,
    scene_halfcells,
    scene_property,
    screenshot,
)

__all__ = ["density_maps", "export", "histograms", "orbit", "orientation_polar", "render_volume",
           "report", "scene_blockage", "scene_cell", "scene_halfcells", "scene_property",
           "screenshot", "time_series", "tracks_plot"]
