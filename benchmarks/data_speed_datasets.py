"""Clips per second through each Dataset with its transforms (one process, no DataLoader workers).

Usage: python benchmarks/data_speed_datasets.py [--samples data_samples] [--seconds 2]
Prints one JSON line per (kind, split, modality). Run from the repository root.
"""
import argparse
import json
import time
from pathlib import Path

from mdr_gcn_nb.data.datasets import DataConfig, build_dataset


def configs(samples: Path) -> dict:
    return {"fsd10": dict(kind="fsd10", path=str(samples / "fsd10")),
            "gym": dict(kind="gym", path=str(samples / "gym" / "gym_synth.pkl")),
            "ntu": dict(kind="ntu", path=str(samples / "ntu" / "NTU60_CS.npz"))}


def clips_per_second(cfg: DataConfig, split: str = "train", seconds: float = 2.0) -> dict:
    "Fetch items of `build_dataset(cfg, split)` in order (wrapping round) for about `seconds`; return the rate."
    ds = build_dataset(cfg, split)
    ds[0]                                                            # warm-up (file reads, caches)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        x, _, _ = ds[n % len(ds)]
        n += 1
    dt = time.perf_counter() - t0
    return {"kind": cfg.kind, "split": split, "modality": cfg.modality, "window": int(x.shape[1]),
            "shape": list(x.shape), "clips": n, "seconds": round(dt, 3), "clips_per_s": round(n / dt, 1)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", default="data_samples")
    ap.add_argument("--seconds", type=float, default=2.0)
    a = ap.parse_args(argv)
    for kind, base in configs(Path(a.samples)).items():
        for split in ("train", "test"):
            for modality in ("joint", "bone_motion"):
                print(json.dumps(clips_per_second(DataConfig(modality=modality, **base), split, a.seconds)), flush=True)


if __name__ == "__main__":
    main()
