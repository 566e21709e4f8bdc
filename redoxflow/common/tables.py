"""The one flattener of per-object tables (``xarray.Dataset`` with dim ``bubble``)."""

from __future__ import annotations

from typing import Any

import numpy as np


def bubble_frame(ds: Any, *, dim: str = "bubble"):
    """The table as a pandas DataFrame, one row per object.

    Vector variables ``(bubble, axis)`` become columns ``name_z``, ``name_y``, ...; coded
    variables (with ``flag_meanings``) are decoded to their names.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"volume": ("bubble", [1.0, 2.0]),
    ...                  "centroid": (("bubble", "axis"), [[0, 1, 2], [3, 4, 5]])},
    ...                 coords={"bubble": [1, 2], "axis": ["z", "y", "x"]})
    >>> list(bubble_frame(ds).columns)
    ['volume', 'centroid_z', 'centroid_y', 'centroid_x']
    """
    import pandas as pd

    cols = {}
    for name, var in ds.data_vars.items():
        if var.dims == (dim,):
            values = var.values
            if "flag_meanings" in var.attrs:
                names = np.array(var.attrs["flag_meanings"].split())
                values = names[values.astype(int)]
            cols[name] = values
        elif var.ndim == 2 and var.dims[0] == dim:
            for j, c in enumerate(ds[var.dims[1]].values):
                cols[f"{name}_{c}"] = var.values[:, j]
    return pd.DataFrame(cols, index=pd.Index(ds[dim].values, name=dim))
