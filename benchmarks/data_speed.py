#!/usr/bin/env python
"""Data speed benchmarks: prints one JSON object per line; `--markdown` also prints the README table.

    python benchmarks/data_speed.py                # all benchmarks
    python benchmarks/data_speed.py --only parse   # benchmarks whose name contains 'parse'
    python benchmarks/data_speed.py --markdown     # JSON lines, then a markdown table of them

Each benchmark is a function in `BENCHMARKS` that takes the parsed arguments and returns a list of
result dicts (`name` plus measured fields). To add one, write `def bench_xxx(args) -> list[dict]` and
append it to `BENCHMARKS`; `TABLE_COLUMNS` says what the markdown table shows.

Raw `.skeleton` parsing is measured on the ten real NTU RGB+D files in ../shared/real_samples/ntu60
($MDR_REAL_SAMPLES/ntu60 when set; read in place; the conversion benchmark copies them to a temporary folder to have more files).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REAL_NTU = Path(os.environ.get("MDR_REAL_SAMPLES", ROOT.parent / "shared" / "real_samples")) / "ntu60"   # as the tests find them
NTU60_FILES = 56_578          # NTU RGB+D 60 files after removing the 302 with missing skeletons
NTU60_AVG_FRAMES = 100        # rough average length of an NTU60 recording (frames)


# ----------------------------------------------------------------------------- reference reader
def plain_read_skeleton(path):
    """The reference: a plain line-by-line Python reader returning the same arrays as `read_skeleton`."""
    counts, ids, infos, joints = [], [], [], []
    with open(path) as f:
        T = int(f.readline())
        for _ in range(T):
            nb = int(f.readline())
            counts.append(nb)
            for _ in range(nb):
                info = f.readline().split()
                ids.append(int(info[0]))
                infos.append([float(v) for v in info[1:]])
                nj = int(f.readline())
                joints.append([[float(v) for v in f.readline().split()] for _ in range(nj)])
    return dict(num_frames=T, body_count=np.array(counts, np.int64), body_id=np.array(ids, np.uint64),
                info=np.array(infos, np.float64).reshape(-1, 9), joints=np.array(joints, np.float64).reshape(-1, 25, 12))


def _files():
    files = sorted(REAL_NTU.glob("*.skeleton"))
    if not files:
        sys.exit(f"no .skeleton files in {REAL_NTU}")
    return files


def _time(fn, arg, number, clock=time.perf_counter):
    t = clock()
    for _ in range(number):
        fn(arg)
    return (clock() - t) / number


# ----------------------------------------------------------------------------- benchmarks
def bench_parse_skeleton(args):
    """Raw .skeleton parsing, fast reader vs the plain reference, interleaved rounds on the same files."""
    from mdr_gcn_nb.data.readers import read_skeleton
    files = _files()
    for p in files:                                         # same output, or the comparison means nothing
        a, b = read_skeleton(p), plain_read_skeleton(p)
        for k in ("body_count", "body_id", "info", "joints"):
            assert np.array_equal(a[k], b[k]), (p, k)
    nbytes = sum(p.stat().st_size for p in files)
    frames = sum(read_skeleton(p)["num_frames"] for p in files)
    nums = sum(len(p.read_bytes().split()) for p in files)
    rounds = 3 if args.quick else 15
    ref_t, fast_t, ref_cpu, fast_cpu = [], [], [], []
    for _ in range(rounds):                                 # interleave: both see the same machine load
        ref_t.append(sum(_time(plain_read_skeleton, p, 2) for p in files))
        fast_t.append(sum(_time(read_skeleton, p, 2) for p in files))
        # CPU time of this thread: not inflated by other processes waiting for the same cores
        ref_cpu.append(sum(_time(plain_read_skeleton, p, 2, time.thread_time) for p in files))
        fast_cpu.append(sum(_time(read_skeleton, p, 2, time.thread_time) for p in files))
    ratios = [r / f for r, f in zip(ref_t, fast_t)]
    out = []
    for name, t, c in (("parse_skeleton_plain_reference", ref_t, ref_cpu), ("parse_skeleton_read_skeleton", fast_t, fast_cpu)):
        med = statistics.median(t)
        out.append(dict(name=name, files=len(files), frames=frames, rounds=rounds,
                        ms_per_file=round(1e3 * med / len(files), 3), cpu_ms_per_file=round(1e3 * statistics.median(c) / len(files), 3),
                        files_per_s=round(len(files) / med, 1),
                        frames_per_s=round(frames / med), MB_per_s=round(nbytes / med / 1e6, 2),
                        numbers_per_s=round(nums / med)))
    out[1]["speedup_median"] = round(statistics.median(ratios), 2)
    out[1]["speedup_min_max"] = [round(min(ratios), 2), round(max(ratios), 2)]
    out[1]["speedup_best_times"] = round(min(ref_t) / min(fast_t), 2)
    out[1]["speedup_cpu_median"] = round(statistics.median([r / f for r, f in zip(ref_cpu, fast_cpu)]), 2)
    return out


def bench_convert_ntu(args):
    """Per-file conversion (parse + denoise + actors + centring) on 1 core, and preprocess_ntu on 2 workers;
    extrapolated to the 56,578 NTU60 files."""
    from mdr_gcn_nb.data.ntu import ntu_clip, preprocess_ntu
    from mdr_gcn_nb.data.readers import read_skeleton
    files = _files()
    frames = sum(read_skeleton(p)["num_frames"] for p in files)
    rounds = 3 if args.quick else 7
    t1 = statistics.median(sum(_time(ntu_clip, p, 1) for p in files) for _ in range(rounds))
    c1 = statistics.median(sum(_time(ntu_clip, p, 1, time.thread_time) for p in files) for _ in range(rounds))
    per_frame_1 = c1 / frames                               # CPU time: what one free core would take
    out = [dict(name="convert_ntu_clip_1core", files=len(files), frames=frames, ms_per_file=round(1e3 * t1 / len(files), 3),
                cpu_ms_per_file=round(1e3 * c1 / len(files), 3),
                files_per_s=round(len(files) / t1, 1),
                ntu60_minutes_1core=round(per_frame_1 * NTU60_AVG_FRAMES * NTU60_FILES / 60, 1),
                ntu60_minutes_2cores_ideal=round(per_frame_1 * NTU60_AVG_FRAMES * NTU60_FILES / 120, 1))]
    copies = 4 if args.quick else 20                        # 10 real files x copies, renamed to distinct samples
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "skeletons"
        src.mkdir()
        for k in range(copies):
            for p in files:
                dst = src / p.name.replace("P001", f"P{k + 1:03d}")
                if k % 2 == 0: shutil.copyfile(p, dst)
                else: _two_person_copy(p, dst)             # half the files: 2 persons + a short noise body
        n = copies * len(files)
        for workers in (1, 2):
            t = time.perf_counter()
            preprocess_ntu(src, Path(d) / f"out{workers}", benchmark="both", workers=workers)
            t = time.perf_counter() - t
            out.append(dict(name=f"preprocess_ntu_{workers}workers", files=n, two_person_files=n // 2,
                            frames=frames * copies, seconds=round(t, 2),
                            files_per_s=round(n / t, 1),
                            ntu60_minutes=round(t / (frames * copies) * NTU60_AVG_FRAMES * NTU60_FILES / 60, 1)))
    return out


def _two_person_copy(src, dst):
    """A real recording plus a second person (the same motion 0.8 m to the side, another bodyID) and an
    11-frame noise body, so that the conversion benchmark also runs the denoising and actor rules."""
    from mdr_gcn_nb.data.readers import read_skeleton, skeleton_frames, write_skeleton
    sk = read_skeleton(src)
    frames = skeleton_frames(sk)
    for t, bodies in enumerate(frames):
        bid, info, joints = bodies[0]
        other = joints.copy(); other[:, 0] += 0.8
        bodies.append((bid + 1, info, other))
        if 3 <= t < 14:
            bodies.append((bid + 2, info, joints[::-1].copy()))
    write_skeleton(dst, frames, crlf=sk["crlf"])


BENCHMARKS = [bench_parse_skeleton, bench_convert_ntu]
# the datasets helper appends clips/s benchmarks here, e.g. BENCHMARKS.append(bench_datasets)

TABLE_COLUMNS = ("name", "files", "ms_per_file", "cpu_ms_per_file", "files_per_s", "MB_per_s", "speedup_median", "speedup_cpu_median",
                 "ntu60_minutes_1core", "ntu60_minutes_2cores_ideal", "ntu60_minutes", "clips_per_s")


def markdown(rows):
    cols = [c for c in TABLE_COLUMNS if any(c in r for r in rows)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="run the benchmarks whose function name contains this")
    ap.add_argument("--quick", action="store_true", help="fewer rounds (a smoke test, noisier numbers)")
    ap.add_argument("--markdown", action="store_true", help="also print a markdown table")
    args = ap.parse_args(argv)
    env = dict(name="environment", python=platform.python_version(), numpy=np.__version__,
               cpus=os.cpu_count(), load_avg_1min=round(os.getloadavg()[0], 2))
    print(json.dumps(env), flush=True)
    rows = []
    for bench in BENCHMARKS:
        if args.only in bench.__name__:
            for r in bench(args):
                print(json.dumps(r), flush=True)
                rows.append(r)
    print(json.dumps(dict(name="environment_end", load_avg_1min=round(os.getloadavg()[0], 2))), flush=True)
    if args.markdown:
        print()
        print(markdown(rows))


if __name__ == "__main__":
    main()
