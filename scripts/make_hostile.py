#!/usr/bin/env python3
"""Writes the hostile corpus from the one-second bases made by make-hostile.sh.

Usage: make_hostile.py BASE_DIR OUT_DIR

Every edit is at a fixed offset or driven by a seeded PRNG, so the output is a
pure function of the bases. The expected outcome of each file is in the table
of codecs/tests/hostile.rs (and docs/RELIABILITY.md).
"""

import os
import random
import struct
import sys

BASE, OUT = sys.argv[1], sys.argv[2]


def read(name):
    with open(os.path.join(BASE, name), "rb") as f:
        return bytearray(f.read())


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes(data))


# ---------------------------------------------------------------- CRCs


def crc_table(poly, width):
    top = 1 << (width - 1)
    mask = (1 << width) - 1
    table = []
    for i in range(256):
        crc = i << (width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) if crc & top else (crc << 1)
        table.append(crc & mask)
    return table


OGG_TABLE = crc_table(0x04C11DB7, 32)
CRC8_TABLE = crc_table(0x07, 8)
CRC16_TABLE = crc_table(0x8005, 16)


def crc(table, width, data):
    value = 0
    mask = (1 << width) - 1
    for byte in data:
        value = ((value << 8) ^ table[((value >> (width - 8)) ^ byte) & 0xFF]) & mask
    return value


# ---------------------------------------------------------------- Ogg


def ogg_pages(data):
    """(start, end) of every page."""
    pages, pos = [], 0
    while pos + 27 <= len(data) and data[pos:pos + 4] == b"OggS":
        segments = data[pos + 26]
        body = sum(data[pos + 27:pos + 27 + segments])
        end = pos + 27 + segments + body
        pages.append((pos, end))
        pos = end
    return pages


def ogg_fix_crc(data, start, end):
    data[start + 22:start + 26] = b"\0\0\0\0"
    value = crc(OGG_TABLE, 32, data[start:end])
    struct.pack_into("<I", data, start + 22, value)


def opus_head_edit(data, offset, value):
    """Sets byte `offset` of the OpusHead (first page) and re-signs the page."""
    start, end = ogg_pages(data)[0]
    head = data.index(b"OpusHead", start)
    data[head + offset] = value
    ogg_fix_crc(data, start, end)
    return data


# ---------------------------------------------------------------- MP4


MP4_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def mp4_find(data, kind, start=0, end=None):
    """Offset of the first atom of `kind`, searching inside containers."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, typ = struct.unpack(">I4s", data[pos:pos + 8])
        if typ == kind:
            return pos
        if typ in MP4_CONTAINERS:
            hit = mp4_find(data, kind, pos + 8, pos + size)
            if hit is not None:
                return hit
        if size < 8:
            return None
        pos += size
    return None


def mp4_top_level(data):
    order, pos = [], 0
    while pos + 8 <= len(data):
        size, typ = struct.unpack(">I4s", data[pos:pos + 8])
        order.append((typ, pos, size))
        if size < 8:
            break
        pos += size
    return order


# ---------------------------------------------------------------- FLAC


def flac_streaminfo(min_block, max_block, rate, channels, bits, total, last=True):
    """The fLaC marker and a STREAMINFO block (frame sizes and MD5 unknown)."""
    header = struct.pack(">B", (0x80 if last else 0) | 0) + (34).to_bytes(3, "big")
    packed = (rate << 44) | ((channels - 1) << 41) | ((bits - 1) << 36) | total
    body = struct.pack(">HH", min_block, max_block) + b"\0" * 6 + packed.to_bytes(8, "big")
    return b"fLaC" + header + body + b"\0" * 16


def utf8_number(n):
    """FLAC's UTF-8-like coding of a frame number."""
    if n < 0x80:
        return bytes([n])
    out = []
    limit = 0x3F
    while n > limit >> 0:
        out.insert(0, 0x80 | (n & 0x3F))
        n >>= 6
        limit >>= 1
    lead = (0xFF << (7 - len(out))) & 0xFF
    return bytes([lead | n] + out)


def flac_constant_frame(number, block):
    """A mono 8 kHz 16-bit frame whose one subframe is CONSTANT zero."""
    header = bytearray(b"\xFF\xF8")
    header.append(0x70 | 0x04)  # block size: 16-bit field follows; 8 kHz
    header.append(0x00 | 0x08)  # mono; 16 bits per sample
    header += utf8_number(number)
    header += struct.pack(">H", block - 1)
    header.append(crc(CRC8_TABLE, 8, header))
    frame = header + b"\x00" + b"\x00\x00"  # CONSTANT subframe, value 0
    return frame + struct.pack(">H", crc(CRC16_TABLE, 16, frame))


def flac_silence(seconds, declare_total):
    rate, block = 8000, 65535
    total = seconds * rate
    out = bytearray(flac_streaminfo(block, block, rate, 1, 16, total if declare_total else 0))
    done, number = 0, 0
    while done < total:
        size = min(block, total - done)
        if size < 16:
            break
        out += flac_constant_frame(number, size)
        done += size
        number += 1
    return out


def flac_without_padding(data):
    """Drops the PADDING block ffmpeg reserves (8 KiB of zeros per copy)."""
    blocks, pos, last = [], 4, False
    while not last:
        kind, size = data[pos] & 0x7F, int.from_bytes(data[pos + 1:pos + 4], "big")
        last = bool(data[pos] & 0x80)
        if kind != 1:
            blocks.append(bytearray(data[pos:pos + 4 + size]))
        pos += 4 + size
    for block in blocks:
        block[0] &= 0x7F
    blocks[-1][0] |= 0x80
    return bytearray(b"fLaC" + b"".join(blocks) + data[pos:])


def flac_streaminfo_edit(data, **fields):
    """Rewrites STREAMINFO fields of a real FLAC file in place."""
    info = 8  # after "fLaC" and the block header
    min_block, max_block = struct.unpack(">HH", data[info:info + 4])
    packed = int.from_bytes(data[info + 10:info + 18], "big")
    rate = fields.get("rate", packed >> 44)
    channels = fields.get("channels", ((packed >> 41) & 7) + 1)
    bits = fields.get("bits", ((packed >> 36) & 31) + 1)
    total = fields.get("total", packed & ((1 << 36) - 1))
    packed = (rate << 44) | ((channels - 1) << 41) | ((bits - 1) << 36) | total
    data[info + 10:info + 18] = packed.to_bytes(8, "big")
    if "block" in fields:
        data[info:info + 4] = struct.pack(">HH", *fields["block"])
    return data


# ---------------------------------------------------------------- WAV


def wav(rate=8000, channels=1, bits=16, block_align=None, byte_rate=None, data_size=None,
        fmt_size=16, frames=2000):
    """A PCM WAV of a 400 Hz square wave with any header fields forced."""
    sample_bytes = max(bits // 8, 1)
    block_align = channels * sample_bytes if block_align is None else block_align
    byte_rate = rate * block_align if byte_rate is None else byte_rate
    pcm = bytearray()
    for i in range(frames):
        value = 8000 if (i // 10) % 2 else -8000
        pcm += struct.pack("<h", value)
    fmt = struct.pack("<HHIIHH", 1, channels, rate, byte_rate, block_align, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", fmt_size) + fmt
    body += b"data" + struct.pack("<I", len(pcm) if data_size is None else data_size) + pcm
    return b"RIFF" + struct.pack("<I", len(body)) + body


def wav_float_poisoned(rate=8000, frames=2000):
    """A float WAV of a 400 Hz square wave with NaN, infinities and 1e30 in it."""
    poison = [float("nan"), float("inf"), float("-inf"), 1e30, -1e30]
    pcm = bytearray()
    for i in range(frames):
        value = 0.25 if (i // 10) % 2 else -0.25
        if i % 97 == 0:
            value = poison[(i // 97) % len(poison)]
        pcm += struct.pack("<f", value)
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
    body += b"data" + struct.pack("<I", len(pcm)) + pcm
    return b"RIFF" + struct.pack("<I", len(body)) + body


# ---------------------------------------------------------------- CAF


def patched(data, fmt, offset, value):
    """A copy of `data` with `value` packed (struct format `fmt`) at `offset`."""
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return out


def caf_desc_edit(data, fmt, offset, value):
    """Overwrites a field of the `desc` chunk (offsets from its payload)."""
    assert data[8:12] == b"desc"
    struct.pack_into(fmt, data, 20 + offset, value)
    return data


def caf_data_size(data, value):
    pos = 8
    while pos + 12 <= len(data):
        kind = data[pos:pos + 4]
        size = struct.unpack(">q", data[pos + 4:pos + 12])[0]
        if kind == b"data":
            struct.pack_into(">q", data, pos + 4, value)
            return data
        pos += 12 + size
    raise SystemExit("no data chunk in the CAF base")


# ---------------------------------------------------------------- bits


def flip_bits(data, count, start, end, seed):
    """Flips `count` seeded bits in data[start:end]."""
    rng = random.Random(seed)
    for _ in range(count):
        at = rng.randrange(start, end)
        data[at] ^= 1 << rng.randrange(8)
    return data


def main():
    m4a, flac, opus = read("base.m4a"), flac_without_padding(read("base.flac")), read("base.opus")
    mp3, caf, webm = read("base.mp3"), read("base.caf"), read("base.webm")

    order = [t for t, _, _ in mp4_top_level(read_out("valid-m4a-moov-after-mdat.m4a"))]
    assert order.index(b"mdat") < order.index(b"moov"), order
    assert b"\x1c\x53\xbb\x6b" not in read_out("valid-webm-no-cues.webm"), "live WebM has Cues"

    # Zero length.
    write("empty.m4a", b"")

    # Truncations at structural offsets (and one in the middle of the audio).
    tops = {t: (pos, size) for t, pos, size in mp4_top_level(m4a)}
    moov_pos, moov_size = tops[b"moov"]
    mdat_pos, mdat_size = tops[b"mdat"]
    write("trunc-m4a-at-6.m4a", m4a[:6])
    write("trunc-m4a-in-moov.m4a", m4a[:moov_pos + moov_size // 2])
    write("trunc-m4a-before-mdat-data.m4a", m4a[:mdat_pos + 8])
    write("trunc-m4a-mid-audio.m4a", m4a[:mdat_pos + mdat_size // 2])
    write("trunc-flac-at-4.flac", flac[:4])
    write("trunc-flac-in-streaminfo.flac", flac[:20])
    first_frame = flac.index(b"\xFF\xF8", 42)
    write("trunc-flac-before-frames.flac", flac[:first_frame])
    write("trunc-flac-mid-audio.flac", flac[:len(flac) // 2])
    pages = ogg_pages(opus)
    write("trunc-opus-in-first-page.opus", opus[:20])
    write("trunc-opus-after-headers.opus", opus[:pages[1][1]])
    write("trunc-opus-mid-audio.opus", opus[:len(opus) // 2])
    write("trunc-mp3-at-3.mp3", mp3[:3])
    write("trunc-webm-in-header.webm", webm[:60])
    write("trunc-caf-in-desc.caf", caf[:30])

    # Bit flips: in the magic, in the headers, in the audio.
    write("flip-flac-magic.flac", flip_bits(bytearray(flac), 1, 0, 1, 1))
    write("flip-m4a-moov-dense.m4a", flip_bits(bytearray(m4a), 400, moov_pos + 8,
                                               moov_pos + moov_size, 2))
    write("flip-flac-audio.flac", flip_bits(bytearray(flac), 40, first_frame, len(flac), 3))
    write("flip-opus-audio.opus", flip_bits(bytearray(opus), 20, pages[2][0], len(opus), 4))
    write("flip-mp3-audio.mp3", flip_bits(bytearray(mp3), 40, 1000, len(mp3), 5))
    write("flip-m4a-every-byte.m4a", flip_bits(bytearray(m4a), len(m4a) // 2, mdat_pos + 8,
                                               mdat_pos + mdat_size, 6))

    # Headers claiming absurd sample rates, channel counts, sizes and durations.
    write("wav-rate-0.wav", wav(rate=0))
    write("wav-rate-1hz.wav", wav(rate=1))
    write("wav-rate-4ghz.wav", wav(rate=0xFFFFFFFF, byte_rate=0xFFFFFFFF))
    write("wav-channels-0.wav", wav(channels=0, block_align=2))
    write("wav-channels-65535.wav", wav(channels=65535, block_align=2))
    write("wav-bits-0.wav", wav(bits=0, block_align=2))
    write("wav-block-align-0.wav", wav(block_align=0))
    write("wav-fmt-size-4gb.wav", wav(fmt_size=0xFFFFFFF0))
    write("wav-data-4gb-8khz.wav", wav(data_size=0xFFFFFFF0))
    write("wav-float-nan-inf.wav", wav_float_poisoned())
    write("flac-rate-1hz.flac", flac_streaminfo_edit(bytearray(flac), rate=1))
    write("flac-rate-1mhz.flac", flac_streaminfo_edit(bytearray(flac), rate=(1 << 20) - 1))
    write("flac-total-samples-max.flac", flac_streaminfo_edit(bytearray(flac), total=(1 << 36) - 1))
    write("flac-block-size-0.flac", flac_streaminfo_edit(bytearray(flac), block=(0, 0)))
    write("caf-rate-nan.caf", caf_desc_edit(bytearray(caf), ">d", 0, float("nan")))
    write("caf-rate-1e12.caf", caf_desc_edit(bytearray(caf), ">d", 0, 1e12))
    write("caf-rate-negative.caf", caf_desc_edit(bytearray(caf), ">d", 0, -8000.0))
    write("caf-channels-4g.caf", caf_desc_edit(bytearray(caf), ">I", 24, 0xFFFFFFFF))
    write("caf-bytes-per-packet-0.caf", caf_desc_edit(bytearray(caf), ">I", 16, 0))
    write("caf-data-size-huge.caf", caf_data_size(bytearray(caf), (1 << 62)))
    mdhd = mp4_find(m4a, b"mdhd")
    stsd = mp4_find(m4a, b"stsd")
    write("m4a-mdhd-duration-74h.m4a", patched(m4a, ">I", mdhd + 8 + 16, 0xFFFFFFFF))
    write("m4a-mdhd-timescale-0.m4a", patched(m4a, ">I", mdhd + 8 + 12, 0))
    write("m4a-stsd-channels-65535.m4a", patched(m4a, ">H", stsd + 16 + 24, 65535))
    write("m4a-stsd-rate-0.m4a", patched(m4a, ">I", stsd + 16 + 32, 0))
    write("opus-head-channels-0.opus", opus_head_edit(bytearray(opus), 9, 0))
    write("opus-head-channels-255.opus", opus_head_edit(bytearray(opus), 9, 255))
    write("opus-head-version-255.opus", opus_head_edit(bytearray(opus), 8, 255))
    edited = bytearray(webm)
    edited[edited.index(b"OpusHead") + 9] = 8
    write("webm-opus-head-channels-8.webm", edited)

    # A tiny file that decodes to hours: FLAC of silence, 3 hours at 8 kHz,
    # once with its length in the header and once without (as a streaming
    # encoder writes it), so the limit must hold while decoding.
    write("flac-silence-3h.flac", flac_silence(3 * 3600, declare_total=True))
    write("flac-silence-3h-no-length.flac", flac_silence(3 * 3600, declare_total=False))


def read_out(name):
    with open(os.path.join(OUT, name), "rb") as f:
        return f.read()


if __name__ == "__main__":
    main()
