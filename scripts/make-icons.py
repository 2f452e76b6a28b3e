#!/usr/bin/env python3
"""Draws the web app's PNG icons (web/icon-192.png, web/icon-512.png) from
the same shapes as web/icon.svg: five rounded bars on a navy square.
Standard library only; run again after changing the design."""
import struct
import zlib
from pathlib import Path

NAVY = (0x23, 0x39, 0x5B)
GOLD = (0xF7, 0xC5, 0x48)
# (x, y, width, height) of each bar on the 512-pixel grid of icon.svg.
BARS = [(96, 216, 40, 80), (166, 156, 40, 200), (236, 96, 40, 320), (306, 176, 40, 160), (376, 226, 40, 60)]


def inside_rounded(x, y, left, top, w, h, r):
    if not (left <= x < left + w and top <= y < top + h):
        return False
    cx = min(max(x, left + r), left + w - r)
    cy = min(max(y, top + r), top + h - r)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def pixel(x, y):
    # Full-bleed square: platforms mask icons themselves.
    for left, top, w, h in BARS:
        if inside_rounded(x, y, left, top, w, h, 20):
            return GOLD
    return NAVY


def png(size):
    scale = 512 / size
    rows = []
    for j in range(size):
        row = bytearray([0])
        for i in range(size):
            row.extend(pixel((i + 0.5) * scale, (j + 0.5) * scale))
        rows.append(bytes(row))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b"")


web = Path(__file__).resolve().parent.parent / "web"
for size in (192, 512):
    (web / f"icon-{size}.png").write_bytes(png(size))
