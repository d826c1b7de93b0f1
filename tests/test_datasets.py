"Datasets: one interface over FSD-10, PYSKL gym and NTU npz; seeded, worker-independent; real files; bad inputs."
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mdr_gcn_nb.data.datasets import DataConfig, build_dataset, FSD10_CLASSES
from mdr_gcn_nb.graph import get_layout

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data_samples"
REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real_samples"

KINDS = {"fsd10": dict(path=str(SAMPLES / "fsd10")),
         "gym": dict(path=str(SAMPLES / "gym" / "gym_synth.pkl"), label_map=str(SAMPLES / "gym" / "gym_synth_label_map.txt")),
         "ntu": dict(path=str(SAMPLES / "ntu" / "NTU60_CS.npz"))}
SHAPES = {"fsd10": (3, 64, 25, 1), "gym": (3, 64, 17, 2), "ntu": (3, 64, 25, 2)}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("modality", ["joint", "bone", "motion", "bone_motion"])
def test_items_have_the_contract_shape(kind, modality):
    for split in ("train", "test"):
        ds = build_dataset(DataConfig(kind=kind, modality=modality, **KINDS[kind]), split)
        x, y, i = ds[3]
        assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and tuple(x.shape) == SHAPES[kind]
        assert isinstance(y, int) and 0 <= y < ds.num_classes and i == 3
        assert torch.isfinite(x).all() and x.abs().sum() > 0
        assert get_layout(ds.layout).num_joints == x.shape[2]
        assert len(ds.class_names) == ds.num_classes and len(ds.sample_names) == len(ds)


def test_attributes():
    f = build_dataset(DataConfig(kind="fsd10", **KINDS["fsd10"]), "test")
    assert (len(f), f.num_classes, f.layout, tuple(f.class_names)) == (100, 10, "openpose25", FSD10_CLASSES)
    g = build_dataset(DataConfig(kind="gym", **KINDS["gym"]), "test")
    assert (len(g), g.num_classes, g.layout, g.class_names[0]) == (40, 10, "coco17", "2Axel")
    assert g.sample_names[0].startswith("synthetic_gym_")
    n = build_dataset(DataConfig(kind="ntu", **KINDS["ntu"]), "train")
    assert (n.num_classes, n.layout, n.class_names[57]) == (60, "ntu25", "handshaking")


@pytest.mark.parametrize("kind", KINDS)
def test_seeded_per_sample_and_epoch(kind):
    cfg = DataConfig(kind=kind, seed=3, **KINDS[kind])
    a, b = build_dataset(cfg, "train"), build_dataset(cfg, "train")
    a.set_epoch(2); b.set_epoch(2)
    for i in (5, 0, 7):                                           # order does not matter
        assert torch.equal(a[i][0], b[i][0])
    b.set_epoch(3)
    assert not torch.equal(a[5][0], b[5][0])                     # a new epoch draws new augmentations
    t1, t2 = build_dataset(cfg, "test"), build_dataset(cfg, "test")
    t2.set_epoch(9)
    assert torch.equal(t1[4][0], t2[4][0])                       # the test split has no randomness


def test_workers_do_not_change_the_data():
    ds = build_dataset(DataConfig(kind="ntu", seed=1, **KINDS["ntu"]), "train")
    ds.set_epoch(4)
    one = torch.cat([x for x, _, _ in DataLoader(ds, batch_size=4, num_workers=0)])
    two = torch.cat([x for x, _, _ in DataLoader(ds, batch_size=4, num_workers=2)])
    assert torch.equal(one, two)


def test_noise_is_fixed_per_sample_and_has_the_asked_fraction():
    clean = build_dataset(DataConfig(kind="fsd10", **KINDS["fsd10"], random_move=False), "test")
    noisy = build_dataset(DataConfig(kind="fsd10", **KINDS["fsd10"], random_move=False, noise_p=0.1), "test")
    x0, x1 = clean[2][0][:2], noisy[2][0][:2]
    nz = int((x0 != 0).sum())
    assert int((x0 != 0).sum() - (x1 != 0).sum()) == round(0.1 * nz)
    noisy.set_epoch(5)
    assert torch.equal(noisy[2][0][:2], x1)                     # the same corruption in every epoch


def test_modalities_relate_as_defined():
    cfg = dict(kind="ntu", **KINDS["ntu"])
    j = build_dataset(DataConfig(**cfg), "test")[1][0].numpy()
    b = build_dataset(DataConfig(modality="bone", **cfg), "test")[1][0].numpy()
    m = build_dataset(DataConfig(modality="motion", **cfg), "test")[1][0].numpy()
    for v, p in get_layout("ntu25").bones:
        np.testing.assert_allclose(b[:, :, v], j[:, :, v] - j[:, :, p], atol=1e-6)
    np.testing.assert_allclose(m[:, 10, :, 0], j[:, 11, :, 0] - j[:, 10, :, 0], atol=1e-6)


def test_max_samples_and_val_alias():
    ds = build_dataset(DataConfig(kind="gym", max_samples=5, **KINDS["gym"]), "val")
    assert len(ds) == 5 and ds.split == "test"


# ---- real files, read in place ----
@pytest.mark.skipif(not REAL.exists(), reason="../shared/real_samples not present")
def test_real_fsd_sample(tmp_path):
    x = np.load(REAL / "fsd10" / "paddlevideo_fsd_example_skeleton.npy")        # (3, 2500, 25, 1)
    np.save(tmp_path / "test_data_25.npy", x[None, :, :1500].astype(np.float32))
    pickle.dump((["real_0"], [3]), open(tmp_path / "test_label_25.pkl", "wb"))
    ds = build_dataset(DataConfig(kind="fsd10", path=str(tmp_path), window=256), "test")
    v, y, _ = ds[0]
    assert tuple(v.shape) == (3, 256, 25, 1) and y == 3
    np.testing.assert_allclose(v[:, :117].numpy(), x[:, :117].astype(np.float32))
    assert v[:, 117:].abs().sum() == 0


@pytest.mark.skipif(not REAL.exists(), reason="../shared/real_samples not present")
def test_real_pyskl_annotation(tmp_path):
    anno = pickle.load(open(REAL / "pyskl" / "paddlevideo_example_UCF101_skeleton.pkl", "rb"))
    fd = anno["frame_dir"]
    pickle.dump({"split": {"train": [fd], "val": [fd]}, "annotations": [anno]}, open(tmp_path / "g.pkl", "wb"))
    ds = build_dataset(DataConfig(kind="gym", path=str(tmp_path / "g.pkl")), "test")
    x, y, _ = ds[0]
    assert tuple(x.shape) == (3, 64, 17, 2) and y == 0 and ds.sample_names == [fd]
    # (the real file's keypoints reach beyond img_shape (256, 340), so values can exceed 1)
    h, w = anno["img_shape"]
    kp0 = anno["keypoint"][0, 1, 0].astype(np.float32)                     # person 0, frame 1, nose
    raw = ds.raw(0)                                                         # (3, 163, 17, 2) before sampling
    np.testing.assert_allclose(raw[:2, 1, 0, 0], (kp0 - [w / 2, h / 2]) / [w / 2, h / 2], rtol=1e-3)


# ---- bad inputs: one-line errors naming the file or argument ----
def test_missing_path():
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        build_dataset(DataConfig(kind="ntu", path="/nowhere.npz"), "train")


def test_bad_split_and_config():
    with pytest.raises(ValueError, match="split must be"):
        build_dataset(DataConfig(kind="fsd10", **KINDS["fsd10"]), "dev")
    with pytest.raises(ValueError, match="window must be"):
        DataConfig(window=0)


def test_label_out_of_range(tmp_path):
    np.save(tmp_path / "train_data_25.npy", np.ones((2, 3, 8, 25, 1), np.float32))
    pickle.dump((["a", "b"], [0, 12]), open(tmp_path / "train_label_25.pkl", "wb"))
    with pytest.raises(ValueError, match=r"train_label_25.pkl: label out of range: 12"):
        build_dataset(DataConfig(kind="fsd10", path=str(tmp_path)), "train")


def test_empty_clip_names_the_sample(tmp_path):
    x = np.ones((2, 3, 8, 25, 1), np.float32); x[1] = 0
    np.save(tmp_path / "train_data_25.npy", x)
    pickle.dump((["a", "empty_one"], [0, 1]), open(tmp_path / "train_label_25.pkl", "wb"))
    ds = build_dataset(DataConfig(kind="fsd10", path=str(tmp_path)), "train")
    ds[0]
    with pytest.raises(ValueError, match="empty_one"):
        ds[1]


def test_gym_without_the_split(tmp_path):
    anno = pickle.load(open(SAMPLES / "gym" / "gym_synth.pkl", "rb"))["annotations"][0]
    pickle.dump({"split": {"train": [anno["frame_dir"]]}, "annotations": [anno]}, open(tmp_path / "g.pkl", "wb"))
    with pytest.raises(ValueError, match="no 'test' split"):
        build_dataset(DataConfig(kind="gym", path=str(tmp_path / "g.pkl")), "test")


@pytest.mark.parametrize("kind", KINDS)
def test_datasets_pickle_for_spawned_workers(kind):
    ds = build_dataset(DataConfig(kind=kind, **KINDS[kind]), "train")
    ds.set_epoch(2)
    blob = pickle.dumps(ds)
    assert len(blob) < 2_000_000                                  # arrays are re-opened, not copied (gym: annotations)
    back = pickle.loads(blob)
    assert torch.equal(back[4][0], ds[4][0])
