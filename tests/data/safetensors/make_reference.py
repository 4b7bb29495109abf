# Writes reference.safetensors with the Python `safetensors` package (0.8.0, numpy API):
# one tensor of every dtype lrnn reads, an empty tensor, a scalar, names that need JSON
# escaping or are not ASCII, and one metadata key (the reference orders metadata keys by
# hash, so more than one would make its output vary). tests/io/safetensors_test.cpp checks
# lrnn's reader against it and lrnn's writer against its bytes. Run: python3 make_reference.py
import os

import numpy as np
from safetensors import TensorSpec, serialize


def bf16_bits(values):
    # Exactly representable values, so truncating float32 to its high 16 bits is exact.
    return (np.array(values, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)


arrays = {
    "a.f64": (np.array([[-1.5, 0.0, 1e-300], [3.25, 1e300, -7.0]], dtype=np.float64), None),
    "b.f32": (np.array([[0.5, -2.0], [3.140625, 1e-8], [-0.0, 65504.0]], dtype=np.float32), None),
    "c.bf16": (bf16_bits([1.0, -2.5, 0.0078125, 256.0]), "bfloat16"),
    "d.f16": (np.array([[1.0, -0.5], [65504.0, 6.103515625e-05]], dtype=np.float16), None),
    "e.i64": (np.array([-(2**63), 0, 2**63 - 1], dtype=np.int64), None),
    "f.u64": (np.array([0, 2**64 - 1], dtype=np.uint64), None),
    "g.i32": (np.array([[-(2**31), -1], [1, 2**31 - 1]], dtype=np.int32), None),
    "h.u32": (np.array([0, 1, 2**32 - 1], dtype=np.uint32), None),
    "i.i16": (np.array([-32768, 0, 32767], dtype=np.int16), None),
    "j.u16": (np.array([0, 65535], dtype=np.uint16), None),
    "k.i8": (np.array([-128, -1, 0, 127], dtype=np.int8), None),
    "l.u8": (np.array([0, 128, 255], dtype=np.uint8), None),
    "m.bool": (np.array([[True, False], [False, True]], dtype=bool), None),
    "empty": (np.zeros((0,), dtype=np.float32), None),
    "empty2d": (np.zeros((3, 0), dtype=np.int32), None),
    "scalar": (np.array(2.5, dtype=np.float64), None),
    'naïve "quoted"\\name\n': (np.array([42.0], dtype=np.float32), None),
    "模型.权重": (np.array([1, 2], dtype=np.uint8), None),
}

specs, keep_alive = {}, []  # serialize reads through raw pointers: keep the arrays alive
for name, (arr, dtype) in arrays.items():
    arr = arr.copy(order="C")
    keep_alive.append(arr)
    specs[name] = TensorSpec(dtype=dtype or arr.dtype.name, shape=arr.shape, data_ptr=arr.ctypes.data,
                             data_len=arr.nbytes)
data = bytes(serialize(specs, metadata={"note": 'línea\t"x"'}))
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference.safetensors"), "wb") as f:
    f.write(data)
