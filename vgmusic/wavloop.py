"""A WAV's loop points: the RIFF `smpl` chunk, written and read here (python-soundfile has no API for it).

The chunk is the sampler chunk of the RIFF standard (Microsoft/IBM multimedia, 1991): nine 32-bit header
fields, then one 24-byte record per loop (cue id, type 0 = forward, first sample, last sample, fraction,
play count 0 = for ever). Its last sample is *in* the loop, as the standard says ("this sample will also
be played"). Godot's WAV importer reads it (Godot 3 takes that number as the frame it loops at, so its
loops are one sample, 23 us, short of the file's: see tests/test_godot.py); so do samplers and many
engines' importers. The reader is a plain RIFF walk, so the tests check it against Python's `wave`.
"""
import struct
from pathlib import Path

SMPL_HEADER = struct.Struct("<9I")  # manufacturer, product, sample period (ns), MIDI unity note,
# pitch fraction, SMPTE format, SMPTE offset, number of loops, bytes of sampler data after the loops
SMPL_LOOP = struct.Struct("<6I")  # cue id, type, start, end (inclusive), fraction, play count
FORWARD = 0
UNITY_NOTE = 60  # middle C: a sampler plays the file at its own pitch on this key


def smpl_chunk(start, end, sample_rate):
    """The `smpl` chunk of a forward loop over frames start..end-1 (so its last sample is end - 1)."""
    if not 0 <= start < end:
        raise ValueError(f"a loop must start before it ends, got frames {start}..{end}")
    body = SMPL_HEADER.pack(0, 0, round(1e9 / sample_rate), UNITY_NOTE, 0, 0, 0, 1, 0)
    body += SMPL_LOOP.pack(0, FORWARD, start, end - 1, 0, 0)
    return b"smpl" + struct.pack("<I", len(body)) + body  # 60 bytes: even, so no pad byte


def append_chunks(path, chunks):
    """Append RIFF chunks to the WAV at `path` and correct the RIFF size (the `wave` module wrote it)."""
    with open(path, "r+b") as f:
        f.seek(0, 2)
        f.write(chunks)
        size = f.tell()
        f.seek(4)
        f.write(struct.pack("<I", size - 8))


def read_wav(path):
    """{"channels", "sample_rate", "bits", "frames", "loops": [(type, first, last), ...]} of a WAV, by
    walking its RIFF chunks; ValueError naming the file when it is not a WAV this can read."""
    path = Path(path)
    data = path.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF WAVE file")
    if struct.unpack_from("<I", data, 4)[0] != len(data) - 8:
        raise ValueError(f"{path}: its RIFF size is not its length")
    out, at = {"loops": []}, 12
    while at + 8 <= len(data):
        kind, size = data[at:at + 4], struct.unpack_from("<I", data, at + 4)[0]
        body = data[at + 8:at + 8 + size]
        if len(body) < size:
            raise ValueError(f"{path}: chunk {kind!r} cut short")
        if kind == b"fmt ":
            _, out["channels"], out["sample_rate"], _, _, out["bits"] = struct.unpack_from("<HHIIHH", body)
        elif kind == b"data":
            out["data_bytes"] = size
        elif kind == b"smpl":
            loops = SMPL_HEADER.unpack_from(body)[7]
            for i in range(loops):
                _, kind_, first, last, _, _ = SMPL_LOOP.unpack_from(body, SMPL_HEADER.size + i * SMPL_LOOP.size)
                out["loops"].append((kind_, first, last))
        at += 8 + size + (size & 1)  # chunks are word-aligned
    if "channels" not in out or "data_bytes" not in out:
        raise ValueError(f"{path}: no fmt or data chunk")
    out["frames"] = out.pop("data_bytes") // (out["channels"] * out["bits"] // 8)
    return out
