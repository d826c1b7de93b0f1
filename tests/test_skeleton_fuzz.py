"""Seeded mutation fuzz of the NTU `.skeleton` readers: for any bytes, `read_skeleton` either reads the file or
raises a one-line `DataFormatError` starting with the path, and whenever the fast reader accepts a file its
arrays are bit for bit those of the careful reader."""
import os
import random
from pathlib import Path

import numpy as np
import pytest

from mdr_gcn_nb.data import readers as R
from mdr_gcn_nb.data import skeleton_parser as SP

ROOT = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("MDR_REAL_SAMPLES", ROOT.parent / "shared" / "real_samples"))
SOURCES = sorted((REAL / "ntu60").glob("*.skeleton")) + \
          sorted((ROOT / "data_samples" / "ntu" / "skeletons").glob("*.skeleton"))[:6]
FILES_PER_SEED = int(os.environ.get("MDR_FUZZ_FILES", 500))   # x 8 seeds; e.g. MDR_FUZZ_FILES=3000 for a longer run
PIECES = [b"\r", b"\0", b"\t", b" ", b"\n", b"\r\n", b"\n\n", "é".encode(), "\u2028".encode(), "\xa0".encode(),
          b"\x0b", b"+", b"-", b".", b"e", b"E-", b"0", b"9", b"_", b"nan", b"inf", "٣".encode(), b"\xff", b"25"]
NUMBERS = ["9007199254740993", "1.401298E-45", "1e23", "-0", "+2", ".5", "5.", "0" * 30 + "1.5", "1e-400",
           "1" * 25, "9" * 5000, "0" * 5000 + "7", "999999999", "1000000000", "12345678.123456789", "8.157031E-05"]


def first_frames(buf: bytes, k: int) -> bytes:
    "The first k frames of a file, with its frame count rewritten: a small valid file to mutate."
    eol = b"\r\n" if b"\r\n" in buf[:10] else b"\n"
    lines = buf.replace(b"\r\n", b"\n").split(b"\n")
    out, i = [str(k).encode()], 1
    for _ in range(k):
        nb = int(lines[i]); out += lines[i:i + 1 + 27 * nb]; i += 1 + 27 * nb
    return eol.join(out) + eol


def mutate(rng: random.Random, buf: bytes) -> bytes:
    b = bytearray(buf)
    for _ in range(rng.randint(1, 4)):
        k, i = rng.random(), rng.randrange(len(b) + 1)
        if k < 0.25: del b[i:i + rng.randint(1, 3)]
        elif k < 0.5: b[i:i] = rng.choice(PIECES)
        elif k < 0.75:                                   # replace a whole field by an odd number
            toks = bytes(b).split(b" ")
            j = rng.randrange(len(toks)); end = toks[j][len(toks[j].rstrip(b"\r\n")):]
            toks[j] = rng.choice(NUMBERS).encode() + end
            b = bytearray(b" ".join(toks))
        elif k < 0.85:                                   # swap, drop or repeat a line
            lines = bytes(b).split(b"\n"); j = rng.randrange(len(lines)); m = rng.randrange(len(lines))
            op = rng.randrange(3)
            if op == 0: lines[j], lines[m] = lines[m], lines[j]
            elif op == 1: del lines[j]
            else: lines.insert(j, lines[m])
            b = bytearray(b"\n".join(lines))
        elif k < 0.95: b = b[:rng.randrange(len(b) + 1)]  # truncate
        else: b = bytearray(bytes(b).replace(b"\n", b"\r\n") if b"\r\n" not in b else bytes(b).replace(b"\r\n", b"\n"))
    return bytes(b)


@pytest.mark.skipif(not SOURCES, reason="no sample files")
@pytest.mark.parametrize("seed", range(8))
def test_mutated_files_read_identically_or_fail_in_one_line(tmp_path, seed):
    rng = random.Random(seed)
    bases = [first_frames(p.read_bytes(), rng.randint(1, 3)) for p in SOURCES]
    fast_accepted = 0
    for it in range(FILES_PER_SEED):
        buf = mutate(rng, rng.choice(bases)) if rng.random() < 0.85 else rng.choice(bases)
        p = tmp_path / f"m{it}.skeleton"
        p.write_bytes(buf)
        status, *fast = SP._skeleton_kernel(np.frombuffer(buf + b"\0", np.uint8), SP._P10)
        if status == 0:
            fast_accepted += 1
            careful = R._read_lines(p, buf.decode("utf-8", "replace"))   # must not raise: same file, same result
            for f, c in zip(fast, careful):
                assert (f.dtype, f.shape, f.tobytes()) == (c.dtype, c.shape, c.tobytes()), f"m{it}: fast != careful"
        try:
            R.read_skeleton(p, allow_empty=True)
        except R.DataFormatError as e:
            msg = str(e)
            assert msg.startswith(f"{p}: ") and "\n" not in msg and "\r" not in msg and len(msg) < 400, msg[:400]
    assert fast_accepted >= FILES_PER_SEED // 12, fast_accepted   # the fast path itself is exercised
