"Synthetic samples: regenerating gives identical bytes, the files have the real formats, and the FSD-10 classes are learnable."
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from mdr_gcn_nb import synth
from mdr_gcn_nb.data import readers

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data_samples"


def _tree(d: Path) -> dict:
    return {p.relative_to(d).as_posix(): p for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("samples")
    synth.make_samples(out, seed=0)
    return out


def test_regenerating_gives_identical_bytes(regenerated):
    have, new = _tree(SAMPLES), _tree(regenerated)
    assert sorted(have) == sorted(new), f"file sets differ: {sorted(set(have) ^ set(new))}"
    differ = [k for k in have if have[k].read_bytes() != new[k].read_bytes()]
    assert not differ, f"files differ from data_samples/: {differ}"


def test_other_seed_gives_other_data(tmp_path):
    synth.make_samples(tmp_path, seed=1, parts=("fsd10",))
    a = np.load(tmp_path / "fsd10" / "train_data_25.npy")
    b = np.load(SAMPLES / "fsd10" / "train_data_25.npy")
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_size_and_readme():
    total = sum(p.stat().st_size for p in _tree(SAMPLES).values())
    assert total <= 20 * 2**20, f"data_samples/ is {total / 2**20:.1f} MB (limit 20 MB)"
    assert "synthetic" in (SAMPLES / "README.md").read_text().lower()


def test_fsd10_format():
    for split, n in (("train", 240), ("test", 100)):
        x = np.load(SAMPLES / "fsd10" / f"{split}_data_25.npy", mmap_mode="r")
        names, labels = pickle.load(open(SAMPLES / "fsd10" / f"{split}_label_25.pkl", "rb"))
        assert x.shape == (n, 3, synth.FSD_T, 25, 1) and x.dtype == np.float32
        assert len(names) == len(labels) == n and len(set(names)) == n
        assert sorted(set(labels)) == list(range(10)) and all(isinstance(l, int) for l in labels)
        conf = x[:, 2]
        assert conf.min() >= 0 and conf.max() < 1
        valid = (np.abs(x).sum((1, 3, 4)) > 0).sum(1)                   # valid frames per clip
        assert valid.min() >= 44 and valid.max() <= synth.FSD_T
        data, names2, labels2 = readers.load_fsd10(SAMPLES / "fsd10" / f"{split}_data_25.npy",
                                                   SAMPLES / "fsd10" / f"{split}_label_25.pkl")
        assert list(names2) == list(names) and np.array_equal(labels2, labels)


def test_gym_format():
    d = pickle.load(open(SAMPLES / "gym" / "gym_synth.pkl", "rb"))
    assert set(d) == {"split", "annotations"} and set(d["split"]) == {"train", "val"}
    fds = [a["frame_dir"] for a in d["annotations"]]
    assert sorted(d["split"]["train"] + d["split"]["val"]) == sorted(fds)
    ms = set()
    for a in d["annotations"]:
        M, T, V, C = a["keypoint"].shape
        assert (V, C) == (17, 2) and a["keypoint"].dtype == np.float16 and a["keypoint_score"].dtype == np.float16
        assert a["keypoint_score"].shape == (M, T, 17) and a["total_frames"] == T and 40 <= T <= 100
        h, w = a["img_shape"]
        assert a["keypoint"][..., 0].max() < w and a["keypoint"][..., 1].max() < h and a["keypoint"].min() >= 0
        ms.add(M)
    assert ms == {1, 2}                                                  # some clips have a second person
    assert len(readers.load_pyskl(SAMPLES / "gym" / "gym_synth.pkl")["annotations"]) == len(fds)


def test_ntu_files_cover_the_conversion_rules():
    files = sorted((SAMPLES / "ntu" / "skeletons").glob("*.skeleton"))
    assert [f.stem for f in files] == sorted(synth.ntu_sample_names())
    for f in files:
        crlf = b"\r\n" in f.read_bytes()
        assert crlf == ("C002" in f.name), f.name                         # camera 2 files use CRLF
    counts = {}
    for f in files:
        lines = f.read_text().splitlines()
        n_frames, i, per_frame = int(lines[0]), 1, []
        for _ in range(n_frames):
            nb = int(lines[i]); i += 1; per_frame.append(nb); i += nb * 27
        counts[f.stem] = per_frame
    assert all(max(v) >= 2 for k, v in counts.items() if k.endswith(("A050", "A058")))      # two persons
    assert all(v[0] == 0 for k, v in counts.items() if k.endswith("A023"))                # 0-body frames
    assert max(counts["S001C003P002R001A026"]) == 2                                        # the noisy extra body
    assert max(counts["S001C001P003R001A010"]) == 2                                        # the short-lived body


def test_ntu_npz():
    for fname in ("NTU60_CS.npz", "NTU60_CV.npz"):
        z = np.load(SAMPLES / "ntu" / fname)
        assert set(z.files) == {"x_train", "y_train", "x_test", "y_test"}
        assert z["x_train"].shape == (12, 300, 150) and z["y_train"].shape == (12, 60)
        assert z["x_test"].shape == (12, 300, 150)
        assert set(np.argmax(z["y_train"], 1)) == {a - 1 for a in synth.NTU_SYNTH_ACTIONS}
        x, y = readers.load_ntu_npz(SAMPLES / "ntu" / fname, "train")
        assert x.shape == (12, 3, 300, 25, 2)
    x, y = readers.load_ntu_npz(SAMPLES / "ntu" / "NTU60_CS.npz", "train")
    two = np.isin(y, [49, 57])
    assert (np.abs(x[two][..., 1]).sum((1, 2, 3)) > 0).all()                              # second actor filled
    assert (np.abs(x[~two][..., 1]).sum((1, 2, 3)) == 0).all()                            # noise bodies dropped


def test_fsd10_samples_are_learnable_but_not_trivially():
    "A tiny temporal conv net on the FSD-10 samples: well above chance, below perfect."
    def load(split):
        x = torch.from_numpy(np.load(SAMPLES / "fsd10" / f"{split}_data_25.npy")[..., 0])    # (N, 3, T, 25)
        y = torch.tensor(pickle.load(open(SAMPLES / "fsd10" / f"{split}_label_25.pkl", "rb"))[1])
        return torch.nn.functional.avg_pool1d(x.permute(0, 1, 3, 2).reshape(len(x), 75, -1), 2), y  # (N, 75, T/2)
    (xtr, ytr), (xte, yte) = load("train"), load("test")
    threads = torch.get_num_threads(); torch.set_num_threads(1)          # tiny model: one thread is fastest
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv1d(75, 32, 5, padding=2), torch.nn.BatchNorm1d(32), torch.nn.ReLU(), torch.nn.MaxPool1d(2),
                              torch.nn.Conv1d(32, 32, 5, padding=2), torch.nn.BatchNorm1d(32), torch.nn.ReLU(),
                              torch.nn.AdaptiveMaxPool1d(1), torch.nn.Flatten(), torch.nn.Linear(32, 10))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for epoch in range(25):
        net.train(); perm = torch.randperm(len(xtr))
        for k in range(0, len(xtr), 24):
            b = perm[k:k + 24]
            loss = torch.nn.functional.cross_entropy(net(xtr[b]), ytr[b]); opt.zero_grad(); loss.backward(); opt.step()
    net.eval()
    with torch.no_grad(): acc = (net(xte).argmax(1) == yte).float().mean().item()
    torch.set_num_threads(threads)
    assert 0.3 <= acc < 1.0, f"held-out top-1 {acc:.2f}"
