"""The IDX format of MNIST-style files: a 4-byte magic number (0, 0, element type, number of dimensions), one
big-endian uint32 per dimension, then the elements in C order. Files may be gzipped."""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from edflow.data.dataset import CorruptDataError

IDX_DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
IDX_TYPE_CODES = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}
GZIP_MAGIC = b"\x1f\x8b"


def idx_magic(dtype: np.dtype, ndim: int) -> int:
    """The magic number of an IDX file holding ``ndim``-dimensional ``dtype`` data (2051 for uint8 images)."""
    return (IDX_TYPE_CODES[np.dtype(dtype).newbyteorder("=")] << 8) | ndim


def read_file_bytes(path: Path) -> bytes:
    """The file's content, decompressed if it is gzipped (recognised by its first bytes, not its name)."""
    with open(path, "rb") as f:
        compressed = f.read(2) == GZIP_MAGIC
    if not compressed:
        return Path(path).read_bytes()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise CorruptDataError(f"{path} is a truncated or corrupt gzip file ({error}); delete it and provide "
                               f"the file again") from error


def read_idx(path: str | os.PathLike, expected_magic: int | None = None) -> np.ndarray:
    """The array stored in an IDX file, in native byte order, as a writable copy."""
    path = Path(path)
    raw = read_file_bytes(path)
    if len(raw) < 4:
        raise CorruptDataError(f"{path} is truncated: it holds {len(raw)} bytes, not even an IDX header; delete it "
                               f"and provide the file again")
    magic = int.from_bytes(raw[:4], "big")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise CorruptDataError(f"{path} is not an IDX file (magic number {magic:#010x}); expected MNIST-style "
                               f"files such as train-images-idx3-ubyte(.gz)")
    if expected_magic is not None and magic != expected_magic:
        raise CorruptDataError(f"{path} has IDX magic number {magic}, expected {expected_magic} "
                               f"(2051 = uint8 images, 2049 = uint8 labels); is it the wrong file of the pair?")
    ndim, dtype = raw[3], IDX_DTYPES[raw[2]]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise CorruptDataError(f"{path} is truncated inside its header; delete it and provide the file again")
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    expected_size = header_size + math.prod(shape) * dtype.itemsize
    if len(raw) != expected_size:
        state = "truncated" if len(raw) < expected_size else "longer than its header says"
        raise CorruptDataError(f"{path} is {state}: its header promises shape {shape} ({expected_size} bytes "
                               f"uncompressed) but it holds {len(raw)} bytes; delete it and provide the file again")
    array = np.frombuffer(raw, dtype=dtype, count=math.prod(shape), offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file; gzipped when ``compress`` is true (default: when the name ends in .gz)."""
    path = Path(path)
    array = np.asarray(array)
    code = IDX_TYPE_CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX files cannot hold dtype {array.dtype}; use one of "
                         f"{sorted(str(d) for d in IDX_TYPE_CODES)}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        payload = gzip.compress(payload, compresslevel=1, mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path
