"Datasets: one interface over FSD-10, PYSKL gym and NTU npz; seeded, worker-independent; real files; bad inputs."
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mdr_gcn_nb.data.datasets import DataConfig, build_dataset, FSD10_CLASSES
from mdr_gcn_nb.data.readers import DataFormatError
from mdr_gcn_nb.graph import get_layout

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data_samples"
REAL = Path(os.environ.get("MDR_REAL_SAMPLES", ROOT.parent / "shared" / "real_samples"))

KINDS = {"fsd10": dict(path=str(SAMPLES / "fsd10")),
         "gym": dict(path=str(SAMPLES / "gym" / "gym_synth.pkl"), label_map=str(SAMPLES / "gym" / "gym_synth_label_map.txt")),
         "ntu": dict(path=str(SAMPLES / "ntu" / "NTU60_CS.npz"))}
SHAPES = {"fsd10": (3, 64, 25, 1), "gym": (3, 64, 17, 1), "ntu": (3, 64, 25, 2)}   # FineGym: one person (facts.DATASETS)


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
    assert tuple(x.shape) == (3, 64, 17, 1) and y == 0 and ds.sample_names == [fd]      # the first of its 2 persons
    # (the real file's keypoints reach beyond img_shape (256, 340), so values can exceed 1)
    h, w = anno["img_shape"]
    kp0 = anno["keypoint"][0, 1, 0].astype(np.float32)                     # person 0, frame 1, nose
    raw = ds.raw(0)                                                         # (3, 163, 17, 1) before sampling
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
    pickle.dump({"split": {"train": ["not_there"]}, "annotations": [anno]}, open(tmp_path / "h.pkl", "wb"))
    with pytest.raises(DataFormatError, match=r"h.pkl: split 'train' names none of the annotations"):
        build_dataset(DataConfig(kind="gym", path=str(tmp_path / "h.pkl")), "train")


@pytest.mark.parametrize("kind", KINDS)
def test_datasets_pickle_for_spawned_workers(kind):
    ds = build_dataset(DataConfig(kind=kind, **KINDS[kind]), "train")
    ds.set_epoch(2)
    blob = pickle.dumps(ds)
    assert len(blob) < 2_000_000                                  # arrays are re-opened, not copied (gym: annotations)
    back = pickle.loads(blob)
    assert torch.equal(back[4][0], ds[4][0])


# each bad input of issue 5, through build_dataset: the readers' (or the dataset's) error reaches the user
# as one line "<file>: <problem>"
def _fsd(d: Path, x, names, labels):
    np.save(d / "train_data_25.npy", x)
    if names is not None:
        pickle.dump((names, labels), open(d / "train_label_25.pkl", "wb"))
    return DataConfig(kind="fsd10", path=str(d))


def _fsd_none(d: Path):
    np.save(d / "train_data_25.npy", OK5)
    pickle.dump((None, [0, 1]), open(d / "train_label_25.pkl", "wb"))
    return DataConfig(kind="fsd10", path=str(d))


def _gym(d: Path, **change):
    a = {**pickle.load(open(SAMPLES / "gym" / "gym_synth.pkl", "rb"))["annotations"][0], **change}
    pickle.dump({"split": {"train": [a["frame_dir"]], "val": [a["frame_dir"]]}, "annotations": [a]}, open(d / "g.pkl", "wb"))
    return DataConfig(kind="gym", path=str(d / "g.pkl"), label_map=str(SAMPLES / "gym" / "gym_synth_label_map.txt"))


def _ntu(d: Path, x, y):
    np.savez(d / "n.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    return DataConfig(kind="ntu", path=str(d / "n.npz"))


OK5 = np.ones((2, 3, 8, 25, 1), np.float32)
NAN5 = OK5.copy(); NAN5[1, 0, 3, 4, 0] = np.nan
XN, YN = np.ones((2, 300, 150), np.float32), np.eye(60)[[0, 1]]
BAD = {  # case: (make the files and the config, the file the message must name, the problem it must state)
    "fsd10 label out of range": (lambda d: _fsd(d, OK5, ["a", "b"], [0, 10]), "train_label_25.pkl", "label out of range: 10"),
    "fsd10 names/labels lengths": (lambda d: _fsd(d, OK5, ["a", "b", "c"], [0, 1]), "train_label_25.pkl", "3 sample names but 2 labels"),
    "fsd10 wrong rank": (lambda d: _fsd(d, OK5[..., 0], ["a", "b"], [0, 1]), "train_data_25.npy", "expected rank 5"),
    "fsd10 missing label file": (lambda d: _fsd(d, OK5, None, None), "train_label_25.pkl", "file not found"),
    "fsd10 NaN": (lambda d: _fsd(d, NAN5, ["a", "b"], [0, 1]), "train_data_25.npy", "clip 1 (b) contains NaN"),
    "fsd10 empty clip": (lambda d: _fsd(d, np.concatenate([OK5[:1], 0 * OK5[:1]]), ["a", "b"], [0, 1]), "", "(b) is an empty clip"),
    "gym label out of range": (lambda d: _gym(d, label=12), "g.pkl", "label out of range: 12"),
    "gym wrong rank": (lambda d: _gym(d, keypoint=np.zeros((9, 17, 2), np.float16)), "g.pkl", "keypoint must have rank 4"),
    "gym NaN": (lambda d: _gym(d, keypoint=np.full((1, 9, 17, 2), np.nan, np.float16),
                               keypoint_score=np.ones((1, 9, 17), np.float16)), "g.pkl", "NaN or infinite keypoint"),
    "gym empty clip": (lambda d: _gym(d, keypoint=np.zeros((1, 0, 17, 2), np.float16),
                                      keypoint_score=np.zeros((1, 0, 17), np.float16)), "g.pkl", "empty clip"),
    "gym missing file": (lambda d: DataConfig(kind="gym", path=str(d / "none.pkl")), "none.pkl", "not found"),
    "ntu label out of range": (lambda d: _ntu(d, XN, np.array([0, 75])), "n.npz", "label 75 is out of range 0..59"),
    "ntu x/y lengths": (lambda d: _ntu(d, XN, YN[:1]), "n.npz", "2 clips but y_train has 1 labels"),
    "ntu wrong rank": (lambda d: _ntu(d, XN.reshape(2, 300, 2, 75), YN), "n.npz", "must have rank 3"),
    "ntu NaN": (lambda d: _ntu(d, np.where(np.arange(150) == 3, np.nan, XN).astype(np.float32), YN), "n.npz", "clip 0 of x_train contains NaN"),
    "ntu empty clip": (lambda d: _ntu(d, np.concatenate([XN[:1], 0 * XN[:1]]), YN), "n.npz", "is an empty clip"),
    "ntu non-integer labels": (lambda d: _ntu(d, XN, np.array([0, 1.5])), "n.npz", "non-integer labels (e.g. 1.5)"),
    "fsd10 labels not a sequence": (lambda d: _fsd(d, OK5, ["a", "b"], 5), "train_label_25.pkl", "expected a pair (sample_names, labels) of sequences"),
    "fsd10 names a string": (lambda d: _fsd(d, OK5, "ab", [0, 1]), "train_label_25.pkl", "sample_names is one string"),
    "fsd10 names None": (_fsd_none, "train_label_25.pkl", "of sequences"),
    "gym ragged keypoint": (lambda d: _gym(d, keypoint=[np.zeros((9, 17, 2)), np.zeros((8, 17, 2))]), "g.pkl", "keypoint is not a rectangular array"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_naming_file_and_problem(tmp_path, case):
    make, culprit, problem = BAD[case]
    cfg = make(tmp_path)
    with pytest.raises((DataFormatError, FileNotFoundError)) as e:
        ds = build_dataset(cfg, "train")
        for i in range(len(ds)):
            ds[i]
    msg = str(e.value)
    where = msg.split(": ")[0]
    assert "\n" not in msg and where.startswith(str(tmp_path)) and where.endswith(culprit) and problem in msg, msg


def test_in_memory_fsd10_is_not_a_memory_map():
    ds = build_dataset(DataConfig(kind="fsd10", mmap=False, **KINDS["fsd10"]), "test")
    arr = ds._get_raw._cache
    assert not isinstance(arr, np.memmap) and not isinstance(arr.base, np.memmap)
    assert torch.equal(ds[7][0], build_dataset(DataConfig(kind="fsd10", **KINDS["fsd10"]), "test")[7][0])


def test_centring_ntu_per_frame_keeps_the_first_frame():
    "NTU's npz puts SpineMid (joint 1) at exactly (0, 0, 0) in frame 0; that joint is present, not missing."
    cfg = DataConfig(kind="ntu", temporal="none", center_joint=1, center_mode="frame", **KINDS["ntu"])
    x = build_dataset(cfg, "test")[0][0]
    assert x[:, 0, :, 0].abs().sum() > 0 and x[:, 0, 1, 0].abs().sum() == 0
    raw = build_dataset(DataConfig(kind="ntu", temporal="none", **KINDS["ntu"]), "test")[0][0]
    torch.testing.assert_close(x[:, 5, :, 0], raw[:, 5, :, 0] - raw[:, 5, 1:2, 0])


def test_random_move_keeps_undetected_openpose_joints_at_zero():
    cfg = DataConfig(kind="fsd10", temporal="none", **KINDS["fsd10"])
    tr, te = build_dataset(cfg, "train"), build_dataset(cfg, "test")
    tr.labels, tr.sample_names, tr._get_raw = te.labels, te.sample_names, te._get_raw   # test clips, train-time move
    for i in range(5):
        raw, moved = te[i][0], tr[i][0]
        missing = (raw == 0).all(0)                                        # (T, V, M): undetected joints and padding
        assert missing.any() and (moved[:, missing] == 0).all()
        assert (moved[:2, ~missing] != raw[:2, ~missing]).any()


def test_min_frames_must_be_positive():
    with pytest.raises(ValueError, match="min_frames must be >= 1, got 0"):
        DataConfig(kind="ntu", min_frames=0)


def test_coco_bones_are_the_graph_tree():
    "FineGym's bones: the graph's tree from the nose (the authors' intended gym_pairs), hips from the shoulders."
    bones = dict(get_layout("coco17").bones)
    assert bones[11] == 5 and bones[12] == 6 and bones[13] == 11 and bones[5] == 0 and bones[0] == 0


# ---- one table of dataset facts
def test_one_table_of_facts_feeds_data_model_and_synth():
    "DataConfig's defaults, the model's PRESETS and the synthetic generator read facts.DATASETS; nothing restates it."
    from mdr_gcn_nb import synth
    from mdr_gcn_nb.data.datasets import KIND_FACTS
    from mdr_gcn_nb.facts import DATASETS
    from mdr_gcn_nb.model import PRESETS
    for k, p in PRESETS.items():
        f = DATASETS[k]
        assert p == dict(num_classes=f.num_classes, layout=f.layout, num_persons=f.num_persons), k
    for kind, key in KIND_FACTS.items():
        f, r = DATASETS[key], DataConfig(kind=kind).resolved()
        assert (r.layout, r.num_persons, r.window, r.temporal, r.coords) == (f.layout, f.num_persons, f.window, f.temporal, f.coords), kind
    assert DATASETS["gym"].num_persons == 1 == PRESETS["gym"]["num_persons"]      # FineGym: the authors' num_person
    assert synth.SKATE_CLASSES == DATASETS["fsd10"].class_names
    assert all(DATASETS["ntu60"].class_names[a - 1] == n for a, n in synth.NTU_SYNTH_ACTIONS.items())
    x = np.load(SAMPLES / "fsd10" / "test_data_25.npy", mmap_mode="r")           # (N, C, T, V, M)
    f = DATASETS["fsd10"]
    assert (x.shape[1], x.shape[3], x.shape[4]) == (f.in_channels, f.joints, f.num_persons)


def test_real_samples_folder_is_read_when_used(monkeypatch):
    "MDR_REAL_SAMPLES set after the import still moves the default MSR Action3D / UTKinect paths."
    monkeypatch.setenv("MDR_REAL_SAMPLES", "/elsewhere/real")
    assert DataConfig(kind="msr3d").resolved().path == "/elsewhere/real/msr_action3d"
    assert DataConfig(kind="utkinect").resolved().path == "/elsewhere/real/utkinect"
