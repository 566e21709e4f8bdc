"""CF metadata of the analysis outputs: ``units`` and ``long_name`` everywhere, honestly.

:func:`finish` runs once over a finished result tree, so every output written from it
(``results.zarr``, ``results.nc``, ``bubbles.nc``/``.csv``) carries the same attributes:
UDUNITS units (``"1"`` for counts, ratios, ids and voxel indices, whose name says "voxel"),
none on booleans, a ``long_name`` on every variable and coordinate, ``axis`` on z/y/x and
``Conventions`` at the root.
"""

from __future__ import annotations

import datetime as _dt

from .. import __version__

CONVENTIONS = "CF-1.10"
#: units of the summary's scalars (micrometre-based; compat mode works in voxels: "1")
SUMMARY_UNITS = {
    "bubble_volume": "micrometer^3", "bubble_volume_mm3": "mm^3",
    "membrane_blocked_area": "micrometer^2", "membrane_facing_area": "micrometer^2",
}
AXES = {"z": "Z", "y": "Y", "x": "X"}


def finish(tree, *, compat: bool):
    """Complete the CF attributes of every group of an analysis tree (in place) -> tree.

    Examples
    --------
    >>> import numpy as np, redoxflow as rf
    >>> v = np.zeros((8, 16, 16), np.uint8); v[:, :, 8] = 2; v[2:5, 4:7, 10:13] = 1
    >>> tree = rf.analyze(v, negative_side="high", spacing=2.0)
    >>> tree.attrs["Conventions"], tree["summary/bubble_volume"].attrs["units"]
    ('CF-1.10', 'micrometer^3')
    >>> tree["bubbles/touches_membrane"].attrs.get("units"), tree["density/x"].attrs["units"]
    (None, 'micrometer')
    """
    length = "1" if compat else "micrometer"
    for node in tree.subtree:
        ds = node.to_dataset()
        for name, var in ds.variables.items():
            attrs = dict(var.attrs)
            if node.name == "summary" and name in ds.data_vars and "units" not in attrs:
                attrs["units"] = "1" if compat else SUMMARY_UNITS.get(name, "1")
            if name in AXES and var.ndim == 1:
                attrs.setdefault("units", length)
                attrs.setdefault("axis", AXES[name])
                attrs.setdefault("long_name", f"{name} position of the voxel centre")
            attrs.setdefault("long_name", name.replace("_", " "))
            units = attrs.get("units")
            if var.dtype.kind == "b" or var.dtype.kind in "OUS" or "flag_values" in attrs:
                attrs.pop("units", None)  # no units on flags and names
            elif units is None and name not in ds.dims:
                attrs["units"] = "1"  # ratios, shape factors, unit vectors, ids
            elif units is not None and "voxel" in units:  # not a UDUNITS unit
                attrs["units"] = "1"
                attrs["long_name"] += f" ({units}s)" if units == "voxel" else f" ({units})"
            var.attrs = attrs
        node.dataset = ds
    tree.attrs["Conventions"] = CONVENTIONS
    return tree


def history_line(command: str) -> str:
    """A CF ``history`` entry: UTC time, program, command.

    Examples
    --------
    >>> history_line("analyze scan.zarr").split(" ", 1)[1].startswith("redoxflow")
    True
    """
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{now} redoxflow {__version__}: {command}"
