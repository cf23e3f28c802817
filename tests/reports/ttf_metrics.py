"""Read advance widths from a TrueType font (hmtx + cmap format 4), enough to check badge.py's table.

Only what the badge width test needs: no fontTools dependency, printable ASCII lookups only.
"""

from __future__ import annotations

import struct
from pathlib import Path


def _tables(data: bytes) -> dict[bytes, tuple[int, int]]:
    num_tables = struct.unpack_from(">H", data, 4)[0]
    out = {}
    for i in range(num_tables):
        tag, _checksum, offset, length = struct.unpack_from(">4sIII", data, 12 + 16 * i)
        out[tag] = (offset, length)
    return out


def _cmap_format4(data: bytes, offset: int) -> dict[int, int]:
    """Map code points to glyph ids from the first format-4 subtable (BMP)."""
    _version, count = struct.unpack_from(">HH", data, offset)
    for i in range(count):
        _platform, _encoding, sub_off = struct.unpack_from(">HHI", data, offset + 4 + 8 * i)
        sub = offset + sub_off
        if struct.unpack_from(">H", data, sub)[0] != 4:
            continue
        seg_x2 = struct.unpack_from(">H", data, sub + 6)[0]
        segs = seg_x2 // 2
        ends = struct.unpack_from(f">{segs}H", data, sub + 14)
        starts = struct.unpack_from(f">{segs}H", data, sub + 16 + seg_x2)
        deltas = struct.unpack_from(f">{segs}h", data, sub + 16 + 2 * seg_x2)
        range_off_pos = sub + 16 + 3 * seg_x2
        range_offs = struct.unpack_from(f">{segs}H", data, range_off_pos)
        mapping: dict[int, int] = {}
        for s in range(segs):
            for cp in range(starts[s], min(ends[s], 0x2FF) + 1):
                if range_offs[s] == 0:
                    gid = (cp + deltas[s]) & 0xFFFF
                else:
                    addr = range_off_pos + 2 * s + range_offs[s] + 2 * (cp - starts[s])
                    gid = struct.unpack_from(">H", data, addr)[0]
                    if gid:
                        gid = (gid + deltas[s]) & 0xFFFF
                mapping[cp] = gid
        return mapping
    raise ValueError("no cmap format 4 subtable")


def advance_widths(path: Path, px: float, chars: str) -> dict[str, float]:
    """Advance width in pixels at ``px`` font size for each of ``chars``."""
    data = path.read_bytes()
    tables = _tables(data)
    units_per_em = struct.unpack_from(">H", data, tables[b"head"][0] + 18)[0]
    num_hmetrics = struct.unpack_from(">H", data, tables[b"hhea"][0] + 34)[0]
    hmtx = tables[b"hmtx"][0]
    cmap = _cmap_format4(data, tables[b"cmap"][0])
    out = {}
    for ch in chars:
        gid = cmap.get(ord(ch), 0)
        idx = min(gid, num_hmetrics - 1)
        advance = struct.unpack_from(">H", data, hmtx + 4 * idx)[0]
        out[ch] = advance * px / units_per_em
    return out
