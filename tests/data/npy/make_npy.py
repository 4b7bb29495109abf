"""Writes the NumPy reference files used by tests/io/npy_test.cpp (run from this folder).

Values follow one rule per dtype kind so the test can recompute them: element i (row-major)
is i * 0.5 - 3 for floats, i - 3 for signed ints, i for unsigned ints, i % 3 == 0 for bool.
"""
import io

import numpy as np
from numpy.lib import format as npformat


def values(shape, dt):
    n = int(np.prod(shape)) if len(shape) else 1
    i = np.arange(n)
    kind = np.dtype(dt).kind
    if kind == "f":
        v = i * 0.5 - 3
    elif kind == "i":
        v = i - 3
    elif kind == "u":
        v = i
    else:
        v = i % 3 == 0
    return v.astype(dt).reshape(shape)


def save(name, arr, version=None):
    with open(name, "wb") as f:
        npformat.write_array(f, arr, version=version, allow_pickle=arr.dtype.hasobject)


for dt in ["f8", "f4", "f2", "i8", "i4", "i2", "i1", "u1", "u2", "u4", "u8", "b1"]:
    save(f"{dt}_2x3.npy", values((2, 3), dt))
save("f4_scalar.npy", values((), "f4"))
save("i8_5.npy", values((5,), "i8"))
save("f4_0x3.npy", values((0, 3), "f4"))
save("f4_1x1x1.npy", values((1, 1, 1), "f4"))
save("u1_123456789x0.npy", values((123456789, 0), "u1"))
save("u1_0x123456789.npy", values((0, 123456789), "u1"))
save("f4_fortran_2x3x4.npy", np.asfortranarray(values((2, 3, 4), "f4")))
save("i2_fortran_3x2.npy", np.asfortranarray(values((3, 2), "i2")))
save("f4_v2_2x3.npy", values((2, 3), "f4"), version=(2, 0))
save("i4_v3_2x3.npy", values((2, 3), "i4"), version=(3, 0))

# Malformed or unsupported: the test expects a parse_error naming the problem.
save("bad_big_endian.npy", values((2, 3), ">f4"))
save("bad_object.npy", np.array([1, "a", None], dtype=object))
save("bad_complex.npy", np.arange(3).astype("c8"))
save("bad_unicode.npy", np.array(["ab", "c"]))
save("bad_structured.npy", np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]))
good = open("f4_2x3.npy", "rb").read()
open("bad_truncated.npy", "wb").write(good[:-5])
open("bad_trailing.npy", "wb").write(good + b"\0\0\0\0")
