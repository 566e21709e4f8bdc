"""A NumPy-backed STAND-IN for ``cupy`` and ``cupyx.scipy.ndimage``: a test fixture only.

It is not a GPU and not CuPy. Every operation runs in NumPy on the host. It exists so that CI
machines without a GPU run redoxflow's ``backend="cupy"`` code path, and so that the mistakes
that break that path on a real GPU break it here too:

- the array type is ``cupy.ndarray`` (``type(a).__module__ == "cupy"``, as CuPy's), so
  ``redoxflow._backend.backend_of`` and dask's cupy dispatch treat it as a device array;
- ``a.get()`` / ``cupy.asnumpy(a)`` return a NumPy copy, ``cupy.asarray(host)`` copies in;
- implicit conversion to NumPy raises ``TypeError`` like CuPy's: ``np.asarray(a)``,
  ``a.__array__()``, indexing a NumPy array with a device array, writing device values into
  a NumPy array;
- mixing host and device arrays in arithmetic, comparisons or ufuncs raises ``TypeError``
  (CuPy's "Unsupported type <class 'numpy.ndarray'>"), and so do stand-in functions given a
  NumPy array (except ``asarray``/``array``/``asnumpy``);
- NumPy functions called on device arrays dispatch (``__array_function__``) to the stand-in's
  function of the same name, and fail when the stand-in has none;
- reductions return 0-d device arrays (``int()``/``float()``/``bool()`` work, as in CuPy);
- ``ufunc.at`` does not exist (CuPy has no ``minimum.at``);
- ``cupyx.scipy.ndimage.label`` rejects host input with ``TypeError('input must be
  cupy.ndarray')`` and returns int32 device labels numbered like ``scipy.ndimage.label``
  (CuPy's kernel roots each component at its smallest raster index and numbers the roots in
  sorted order, which is scipy's numbering).

Use it through the ``cupy_standin`` fixture (:mod:`tests.gpu_standin`), which puts these
modules in ``sys.modules`` for one test and clears ``redoxflow._backend.has_gpu``'s cache.
"""

from __future__ import annotations

import functools
import types
from typing import Any

import numpy as np
from scipy import ndimage as _host_ndimage

STANDIN_VERSION = "0.0.0+numpy-standin"

_MODULES: dict[str, types.ModuleType] = {}  # filled by modules()

_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
             "construct a NumPy array explicitly.")


def _unsupported(value: Any) -> TypeError:
    return TypeError(f"Unsupported type {type(value)}")


def _unwrap(value: Any, *, allow_host: bool = False) -> Any:
    """Device arrays -> their NumPy data; host arrays -> TypeError unless allowed."""
    if isinstance(value, ndarray):
        return value._data
    if isinstance(value, np.ndarray):
        if allow_host:
            return value
        raise _unsupported(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v, allow_host=allow_host) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v, allow_host=allow_host) for k, v in value.items()}
    return value


def _wrap(value: Any) -> Any:
    """NumPy results -> device arrays (NumPy scalars become 0-d device arrays, as in CuPy)."""
    if isinstance(value, np.ndarray):
        return ndarray(value)
    if isinstance(value, np.generic):
        return ndarray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _index_key(key: Any) -> Any:
    """Index keys may hold device arrays, host index arrays (CuPy copies them in) or slices."""
    return _unwrap(key, allow_host=True)


# --- the array type --------------------------------------------------------------------------

_METHODS = {
    "all", "any", "argmax", "argmin", "argsort", "astype", "clip", "copy", "cumsum", "fill",
    "flatten", "item", "max", "mean", "min", "nonzero", "prod", "ravel", "repeat", "reshape",
    "sort", "squeeze", "std", "sum", "swapaxes", "take", "tolist", "transpose", "var", "view",
}


class ndarray:  # noqa: N801 - the name CuPy's array type has
    """Stand-in device array: a NumPy array that refuses to be used as a host array."""

    __array_priority__ = 100
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, data: np.ndarray):
        if not isinstance(data, np.ndarray):
            raise TypeError(f"stand-in ndarray wraps numpy arrays, not {type(data)}")
        self._data = data

    # host <-> device -------------------------------------------------------------------------
    def get(self, stream: Any = None, order: str = "C", out: Any = None) -> np.ndarray:
        """Copy to the host (the only way out, as in CuPy)."""
        if out is not None:
            out[...] = self._data
            return out
        return np.array(self._data, order=order, copy=True)

    def __array__(self, dtype: Any = None, copy: Any = None):
        raise TypeError(_IMPLICIT)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__":  # no ufunc.at / reduce / accumulate on the stand-in
            return NotImplemented
        args = _unwrap(inputs)
        if "out" in kwargs:
            kwargs["out"] = _unwrap(kwargs["out"])
        return _wrap(ufunc(*args, **kwargs))

    def __array_function__(self, func, types, args, kwargs):
        impl = _FUNCTIONS.get(func.__name__)
        if impl is None:
            return NotImplemented
        return impl(*args, **kwargs)

    # attributes --------------------------------------------------------------------------------
    shape = property(lambda self: self._data.shape)
    dtype = property(lambda self: self._data.dtype)
    ndim = property(lambda self: self._data.ndim)
    size = property(lambda self: self._data.size)
    nbytes = property(lambda self: self._data.nbytes)
    itemsize = property(lambda self: self._data.itemsize)
    strides = property(lambda self: self._data.strides)
    T = property(lambda self: ndarray(self._data.T))
    flags = property(lambda self: self._data.flags)
    device = property(lambda self: "stand-in device 0")

    def __getattr__(self, name: str):
        if name not in _METHODS:
            raise AttributeError(f"'cupy.ndarray' stand-in has no attribute {name!r}")
        method = getattr(self._data, name)

        @functools.wraps(method)
        def call(*args, **kwargs):
            if name == "tolist":
                return method()
            if name in ("item",):
                return method(*args)
            return _wrap(method(*_unwrap(args), **_unwrap(kwargs)))

        return call

    def __repr__(self) -> str:
        return repr(self._data).replace("array(", "stand-in cupy array(", 1)

    __str__ = __repr__

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self):
        return (_wrap(row) for row in self._data)

    def __getitem__(self, key):
        return _wrap(self._data[_index_key(key)])

    def __setitem__(self, key, value):
        self._data[_index_key(key)] = _unwrap(value, allow_host=True)

    def __bool__(self) -> bool:
        return bool(self._data)

    def __int__(self) -> int:
        return int(self._data)

    def __float__(self) -> float:
        return float(self._data)

    def __complex__(self) -> complex:
        return complex(self._data)


def _operator(ufunc, reflected: bool = False):
    def op(self, other):
        a, b = (other, self) if reflected else (self, other)
        return _wrap(ufunc(*_unwrap((a, b))))

    return op


def _inplace(ufunc):
    def op(self, other):
        ufunc(self._data, _unwrap(other), out=self._data)
        return self

    return op


for _name, _ufunc in {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "truediv": np.true_divide,
    "floordiv": np.floor_divide, "mod": np.remainder, "pow": np.power, "and": np.bitwise_and,
    "or": np.bitwise_or, "xor": np.bitwise_xor, "lshift": np.left_shift,
    "rshift": np.right_shift, "matmul": np.matmul,
}.items():
    setattr(ndarray, f"__{_name}__", _operator(_ufunc))
    setattr(ndarray, f"__r{_name}__", _operator(_ufunc, reflected=True))
    setattr(ndarray, f"__i{_name}__", _inplace(_ufunc))
for _name, _ufunc in {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
                      "gt": np.greater, "ge": np.greater_equal}.items():
    setattr(ndarray, f"__{_name}__", _operator(_ufunc))
ndarray.__neg__ = lambda self: ndarray(-self._data)
ndarray.__pos__ = lambda self: ndarray(+self._data)
ndarray.__abs__ = lambda self: ndarray(abs(self._data))
ndarray.__invert__ = lambda self: ndarray(~self._data)
ndarray.__module__ = "cupy"


# --- module functions ------------------------------------------------------------------------

def asarray(a: Any, dtype: Any = None, order: Any = None, *, blocking: bool = False) -> ndarray:
    """Host (or device) data -> a device array (a copy, as a host-to-device transfer is)."""
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == dtype else a.astype(dtype)
    return ndarray(np.array(a, dtype=dtype, order=order or "K", copy=True))


def array(obj: Any, dtype: Any = None, copy: bool = True, order: str = "K", **_: Any) -> ndarray:
    if isinstance(obj, ndarray):
        return ndarray(np.array(obj._data, dtype=dtype, copy=True, order=order))
    return ndarray(np.array(obj, dtype=dtype, copy=True, order=order))


def asnumpy(a: Any, stream: Any = None, order: str = "C", out: Any = None) -> np.ndarray:
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order, out=out)
    return np.asarray(a, order=order)


def get_array_module(*args: Any):
    return _MODULES["cupy"] if any(isinstance(a, ndarray) for a in args) else np


def _device_function(name: str):
    host = getattr(np, name)

    @functools.wraps(host)
    def call(*args, **kwargs):
        return _wrap(host(*_unwrap(args), **_unwrap(kwargs)))

    call.__module__ = "cupy"
    return call


_DEVICE_FUNCTIONS = [
    "abs", "all", "allclose", "any", "arange", "argmax", "argmin", "argsort", "array_equal",
    "bincount", "broadcast_to", "ceil", "clip", "concatenate", "count_nonzero", "cumsum", "diff",
    "einsum", "empty", "empty_like", "equal", "expand_dims", "flatnonzero", "floor", "full",
    "full_like", "indices", "isnan", "lexsort", "logical_and", "logical_not", "logical_or",
    "max", "maximum", "mean", "min", "minimum", "nonzero", "ones", "ones_like", "pad",
    "ravel", "ravel_multi_index", "repeat", "reshape", "searchsorted", "sort", "sqrt",
    "squeeze", "stack", "sum", "take", "tensordot", "transpose", "unique", "unravel_index",
    "where", "zeros", "zeros_like",
]
_FUNCTIONS: dict[str, Any] = {name: _device_function(name) for name in _DEVICE_FUNCTIONS}
_FUNCTIONS.update(asarray=asarray, array=array, asnumpy=asnumpy)
_DTYPES = ["bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
           "float16", "float32", "float64", "intp", "uintp", "dtype", "iinfo", "finfo",
           "newaxis", "nan", "inf", "pi"]


# --- cupyx.scipy.ndimage ---------------------------------------------------------------------

def label(input: Any, structure: Any = None, output: Any = None):  # noqa: A002 - CuPy's name
    """``cupyx.scipy.ndimage.label``: device input only; int32 labels numbered as scipy's."""
    if not isinstance(input, ndarray):
        raise TypeError("input must be cupy.ndarray")
    if isinstance(structure, ndarray):
        structure = structure.get()
    if output is not None:
        raise NotImplementedError("the stand-in's label() does not take output=")
    labels, n = _host_ndimage.label(input._data, structure=structure)
    return ndarray(labels.astype(np.int32)), int(n)


# --- the module objects ----------------------------------------------------------------------

def _module(name: str, doc: str) -> types.ModuleType:
    module = types.ModuleType(name, doc)
    module.__standin__ = True
    module.__version__ = STANDIN_VERSION
    return module


@functools.lru_cache(maxsize=1)
def modules() -> dict[str, types.ModuleType]:
    """The stand-in modules by ``sys.modules`` name, built once per process.

    Built once so that dask's lazy cupy dispatch (registered on the first device array it
    sees) keeps pointing at the same ``ndarray`` type for every test.
    """
    cupy = _module("cupy", "NumPy-backed stand-in of cupy (test fixture; not CuPy)")
    cupy.ndarray = ndarray
    for name, fn in _FUNCTIONS.items():
        setattr(cupy, name, fn)
    cupy.get_array_module = get_array_module
    for name in _DTYPES:
        setattr(cupy, name, getattr(np, name))
    cuda = _module("cupy.cuda", "stand-in of cupy.cuda: one always-available device")
    cuda.is_available = lambda: True
    runtime = _module("cupy.cuda.runtime", "stand-in of cupy.cuda.runtime")
    runtime.getDeviceCount = lambda: 1
    runtime.deviceSynchronize = lambda: None
    cuda.runtime = runtime

    class Device:
        def __init__(self, device: int = 0):
            self.id = device

        def synchronize(self) -> None:
            return None

    cuda.Device = Device
    cupy.cuda = cuda
    cupyx = _module("cupyx", "NumPy-backed stand-in of cupyx (test fixture)")
    scipy = _module("cupyx.scipy", "stand-in of cupyx.scipy")
    nd = _module("cupyx.scipy.ndimage", "stand-in of cupyx.scipy.ndimage (label only)")
    nd.label = label
    scipy.ndimage = nd
    cupyx.scipy = scipy
    found = {"cupy": cupy, "cupy.cuda": cuda, "cupy.cuda.runtime": runtime, "cupyx": cupyx,
             "cupyx.scipy": scipy, "cupyx.scipy.ndimage": nd}
    _MODULES.update(found)
    return found
