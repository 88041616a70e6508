"""Malformed strings: typos, mojibake, wrong format.

Typos work on the Arrow data buffer of the selected values: one swap of two
adjacent bytes per string with a single fancy-index operation.  Swapping two
ASCII bytes keeps UTF-8 valid, so only strings whose chosen pair is not ASCII
take the slow path (a Python swap of two code points, on those strings
only).  This is what makes string corruption run at tens of millions of rows
per second where the libraries loop over every row.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlchaos.data.kernels import CellContext, require_string

__all__ = ["FORMAT_STYLES", "mojibake", "typos", "wrong_format"]


def _offsets(arr: pa.Array) -> np.ndarray:
    dtype = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    buf = arr.buffers()[1]
    off = np.frombuffer(buf, dtype=dtype) if buf is not None else np.zeros(1, dtype=dtype)
    return off[arr.offset : arr.offset + len(arr) + 1].astype(np.int64)


def typos(sub: pa.Array, ctx: CellContext) -> pa.Array:
    """Swap two adjacent characters at a random position (strings shorter than 2 stay)."""
    sub = require_string(sub, ctx, "typos")
    k = len(sub)
    if k == 0:
        return sub
    if sub.offset:
        sub = pc.take(sub, pa.array(np.arange(k)))  # offset-0 buffers, so buffer positions are row positions
    off = _offsets(sub)
    lengths = np.diff(off)
    valid = np.asarray(sub.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    ok = valid & (lengths >= 2)
    pos = off[:-1] + np.floor(ctx.rng.random(k) * np.maximum(lengths - 1, 1)).astype(np.int64)
    data_buf = sub.buffers()[2]
    data = np.frombuffer(data_buf, dtype=np.uint8).copy() if data_buf is not None else np.zeros(0, np.uint8)
    p = pos[ok]
    a = data[p]
    b = data[p + 1]
    ascii_pair = (a < 128) & (b < 128)
    fast = p[ascii_pair]
    data[fast], data[fast + 1] = data[fast + 1], data[fast].copy()
    out = pa.Array.from_buffers(sub.type, k, [sub.buffers()[0], sub.buffers()[1], pa.py_buffer(data)])
    slow = np.flatnonzero(ok)[~ascii_pair]
    if slow.size:
        # Only strings whose chosen pair is not ASCII: swap two code points in Python.
        texts = sub.take(pa.array(slow)).to_pylist()
        fixed = []
        for s, r in zip(texts, ctx.rng.random(slow.size), strict=True):
            if len(s) < 2:
                fixed.append(s)
                continue
            i = int(r * (len(s) - 1))
            fixed.append(s[:i] + s[i + 1] + s[i] + s[i + 2 :])
        m = np.zeros(k, dtype=bool)
        m[slow] = True
        out = pc.replace_with_mask(out, pa.array(m), pa.array(fixed, type=sub.type))
    return out


def mojibake(sub: pa.Array, ctx: CellContext) -> pa.Array:
    """UTF-8 bytes decoded as ``encoding`` (default latin-1): 'café' becomes 'cafÃ©'.

    ASCII strings have no multi-byte characters and come out unchanged (the
    mask says so); use ``typos`` or ``wrong_format`` to break ASCII text.
    """
    sub = require_string(sub, ctx, "mojibake")
    encoding = str(ctx.params.get("encoding", "latin-1"))
    try:
        b"x".decode(encoding)
    except LookupError:
        raise ValueError(f"encoding: unknown codec {encoding!r}") from None
    non_ascii = np.flatnonzero(~np.asarray(pc.fill_null(pc.string_is_ascii(sub), True).to_numpy(zero_copy_only=False)))
    if non_ascii.size == 0:
        return sub
    texts = sub.take(pa.array(non_ascii)).to_pylist()
    broken = [t.encode("utf-8").decode(encoding, errors="replace") for t in texts]
    m = np.zeros(len(sub), dtype=bool)
    m[non_ascii] = True
    return pc.replace_with_mask(sub, pa.array(m), pa.array(broken, type=sub.type))


_ISO_DATE = r"^(\d{4})-(\d{2})-(\d{2})"
FORMAT_STYLES = ("upper", "lower", "whitespace", "truncate", "date_dmy", "date_mdy")


def wrong_format(sub: pa.Array, ctx: CellContext) -> pa.Array:
    """Same information, wrong shape: case, padding, truncation, or ISO dates as d/m/Y or m/d/Y."""
    sub = require_string(sub, ctx, "wrong_format")
    style = ctx.params.get("style", "whitespace")
    if style == "upper":
        return pc.utf8_upper(sub)
    if style == "lower":
        return pc.utf8_lower(sub)
    if style == "whitespace":
        pad = pa.scalar(" ", type=sub.type)
        return pc.binary_join_element_wise(pad, sub, pad, pa.scalar("", type=sub.type))
    if style == "truncate":
        keep = int(ctx.params.get("keep", 3))
        if keep < 0:
            raise ValueError(f"keep must be >= 0, got {keep}")
        return pc.utf8_slice_codeunits(sub, 0, keep)
    if style == "date_dmy":
        return pc.replace_substring_regex(sub, _ISO_DATE, r"\3/\2/\1")
    if style == "date_mdy":
        return pc.replace_substring_regex(sub, _ISO_DATE, r"\2/\3/\1")
    raise ValueError(f"style must be one of {FORMAT_STYLES}, got {style!r}")
