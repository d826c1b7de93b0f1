"`mdr-gcn predict` equals `mdr-gcn test` on the same clips (FSD-10 .npy, raw NTU .skeleton, PYSKL pickle); `--json`; one-line errors; export round trips."
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from test_cli import SAMPLES, main_in_process

TINY = ["model.args.channels=[16,16,32,32]", "model.args.strides=[1,2,1,2]", "optim.batch_size=8", "optim.epochs=1",
        "optim.warmup_epochs=0", "optim.milestones=[]", "threads=1"]


def _train(tmp, config, *over):
    rc, out, err = main_in_process("train", "--config", config, "--out-dir", tmp, "--no-progress", *TINY, *over)
    assert rc == 0, err
    ck = next(Path(tmp).glob("*/best.pt"))
    rc, out, err = main_in_process("test", "--checkpoint", ck, "--out", Path(tmp) / "scores.npz", "--no-progress")
    assert rc == 0, err
    from mdr_gcn_nb.metrics import load_scores
    return ck, load_scores(Path(tmp) / "scores.npz")


def _predict_json(ck, *inputs, extra=()):
    rc, out, err = main_in_process("predict", "--checkpoint", ck, "--json", *extra, *inputs)
    assert rc == 0, err
    return json.loads(out)["predictions"]


@pytest.fixture(scope="module")
def fsd_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fsd")
    return _train(tmp, "configs/sample_fsd10_joint.yaml", "data.max_samples=16", "data.window=16")


def test_predict_equals_test_on_fsd10_npy(fsd_run):
    ck, ref = fsd_run
    recs = _predict_json(ck, SAMPLES / "fsd10" / "test_data_25.npy")
    assert len(recs) == 100 and recs[0]["clip"] == "test_data_25.npy[0]"
    mine = np.array([r["scores"] for r in recs])[ref["indices"]]
    np.testing.assert_allclose(mine, ref["scores"], atol=1e-4, rtol=0)
    # one clip saved on its own as (C, T, V, M) and as (T, V, C): the same scores
    from mdr_gcn_nb.predict import Predictor
    pred = Predictor.from_checkpoint(ck)
    x = np.load(SAMPLES / "fsd10" / "test_data_25.npy")[3]
    np.testing.assert_allclose(pred.scores(x)[0], ref["scores"][3], atol=1e-4, rtol=0)
    from mdr_gcn_nb.predict import npy_clips
    tvc = x[..., 0].transpose(1, 2, 0)                                                  # (T, V, C)
    np.testing.assert_allclose(pred.scores(npy_clips(tvc, 3, 25))[0], ref["scores"][3], atol=1e-4, rtol=0)
    top = pred(x, k=3)
    assert len(top) == 3 and top[0][0] in pred.class_names and top[0][1] >= top[1][1] >= top[2][1]


def test_predict_text_output_and_json_shape(fsd_run):
    ck, _ = fsd_run
    f = SAMPLES / "fsd10" / "test_data_25.npy"
    rc, out, err = main_in_process("predict", "--checkpoint", ck, "--top", "2", f)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == f"{f}: test_data_25.npy[0]" and lines[1].lstrip().startswith("1. ") and lines[2].lstrip().startswith("2. ")
    assert len(lines) == 300
    recs = _predict_json(ck, f, extra=("--top", "5"))
    r = recs[0]
    assert set(r) == {"input", "clip", "top", "scores"} and len(r["top"]) == 5 and len(r["scores"]) == 10
    probs = torch.tensor(r["scores"]).softmax(0)
    assert r["top"][0]["index"] == int(probs.argmax()) and abs(r["top"][0]["prob"] - float(probs.max())) < 1e-6


def test_test_time_augmentation_averages_probabilities(fsd_run):
    from mdr_gcn_nb.predict import Predictor
    pred = Predictor.from_checkpoint(fsd_run[0])
    x = np.load(SAMPLES / "fsd10" / "test_data_25.npy")[0]
    p3 = pred.scores(x, clips_per_sample=3)[0]
    assert abs(p3.sum() - 1) < 1e-5
    np.testing.assert_allclose(p3, pred.scores(x, clips_per_sample=3)[0])              # the draws are fixed
    draws = np.stack([pred.preprocess(x, draw=k) for k in range(3)])
    assert not np.allclose(draws[0], draws[1])                                          # and differ from each other
    expect = pred.net(torch.from_numpy(draws)).softmax(1).mean(0).detach().numpy()
    np.testing.assert_allclose(p3, expect, atol=1e-6)


def test_predict_equals_test_on_raw_ntu_skeletons(tmp_path):
    "NTU60_CS.npz of data_samples was made from data_samples/ntu/skeletons by preprocess_ntu: predict reads the raw files."
    from mdr_gcn_nb.data.ntu import NTU60_MISSING, load_name_list, split_indices
    from mdr_gcn_nb.data.readers import parse_ntu_name
    ck, ref = _train(tmp_path, "configs/sample_ntu60_xsub_joint.yaml")
    skip = load_name_list(NTU60_MISSING)
    files = [f for f in sorted((SAMPLES / "ntu" / "skeletons").glob("*.skeleton")) if f.name.split(".")[0] not in skip]
    test_idx = split_indices([parse_ntu_name(f) for f in files], "xsub")[1]            # npz test row -> file
    chosen = [files[i] for i in test_idx[ref["indices"]]]
    recs = _predict_json(ck, *chosen)
    assert [r["clip"] for r in recs] == [f.stem for f in chosen]
    np.testing.assert_allclose(np.array([r["scores"] for r in recs]), ref["scores"], atol=1e-4, rtol=0)


def test_predict_equals_test_on_pyskl_pickle(tmp_path):
    ck, ref = _train(tmp_path, "configs/sample_gym_joint.yaml", "data.max_samples=12")
    recs = _predict_json(ck, SAMPLES / "gym" / "gym_synth.pkl", extra=("--split", "val"))
    by_name = {r["clip"]: r["scores"] for r in recs}
    mine = np.array([by_name[n] for n in ref["sample_names"]])
    np.testing.assert_allclose(mine, ref["scores"], atol=1e-4, rtol=0)


def _tiny_pyskl(tmp, dims: int, n: int = 8, T: int = 12) -> Path:
    "A small PYSKL file of COCO-17 clips: 2-D pixels with scores and img_shape, or 3-D (x, y, z) without."
    import pickle
    rng, annos = np.random.default_rng(dims), []
    for i in range(n):
        a = dict(frame_dir=f"clip{i}", label=i % 2, total_frames=T)
        if dims == 2:
            a.update(keypoint=rng.uniform(0, 320, (1, T, 17, 2)).astype(np.float16), img_shape=(240, 320),
                     keypoint_score=rng.uniform(0.5, 1, (1, T, 17)).astype(np.float16))
        else: a["keypoint"] = rng.normal(0, 1, (1, T, 17, 3)).astype(np.float32)
        annos.append(a)
    names = [a["frame_dir"] for a in annos]
    p = Path(tmp) / f"tiny{dims}d.pkl"
    pickle.dump({"split": {"train": names[:6], "val": names[6:]}, "annotations": annos}, open(p, "wb"))
    return p


def _pyskl_run(tmp, dims: int, modality: str):
    "Train on a tiny PYSKL file (kind pyskl), then `mdr-gcn test` and `mdr-gcn predict` on its val clips."
    f = _tiny_pyskl(tmp, dims)
    conf = Path(tmp) / "c.yaml"
    conf.write_text(f"name: p{dims}\nseed: 0\nthreads: 1\n"
                    f"data: {{kind: pyskl, path: {f}, layout: coco17, window: 12, modality: {modality}}}\n"
                    "model: {name: mdrgcn}\nloss: {name: softmax}\n"
                    "optim: {epochs: 1, batch_size: 4, lr: 0.1, weight_decay: 1.0e-4, warmup_epochs: 0, milestones: []}\n")
    ck, ref = _train(tmp, conf)
    recs = _predict_json(ck, f, extra=("--split", "val"))
    by_name = {r["clip"]: r["scores"] for r in recs}
    return ck, ref, np.array([by_name[n] for n in ref["sample_names"]])


def test_predict_normalizes_2d_pyskl_as_the_dataset(tmp_path):
    "kind pyskl, normalize_2d unset: the dataset normalises 2-D pixels with img_shape, and so must predict."
    ck, ref, mine = _pyskl_run(tmp_path, 2, "joint")
    np.testing.assert_allclose(mine, ref["scores"], atol=1e-4, rtol=0)


def test_predict_3d_pyskl_is_3d(tmp_path):
    "A 3-D PYSKL file: the bones subtract z too (coords=3) in predict as in the dataset."
    from mdr_gcn_nb.predict import Predictor
    ck, ref, mine = _pyskl_run(tmp_path, 3, "bone")
    np.testing.assert_allclose(mine, ref["scores"], atol=1e-4, rtol=0)
    from mdr_gcn_nb.predict import read_clips
    pred = Predictor.from_checkpoint(ck)
    assert read_clips(_tiny_pyskl(tmp_path, 3), pred.C, pred.V, pred.M, pred.data)[1] == 3


def test_openpose_folder(fsd_run, tmp_path):
    from mdr_gcn_nb.predict import Predictor, read_input
    pred = Predictor.from_checkpoint(fsd_run[0])
    x = np.load(SAMPLES / "fsd10" / "test_data_25.npy")[0]                              # (3, 64, 25, 1), in [-0.5, 0.5]
    w, h = 1280, 720
    d = tmp_path / "op"; d.mkdir()
    for t in range(x.shape[1]):
        k = x[:, t, :, 0].T.astype(np.float64).copy()                                  # (25, 3)
        k[:, 0], k[:, 1] = (k[:, 0] + 0.5) * w, (k[:, 1] + 0.5) * h
        k[x[2, t, :, 0] == 0] = 0
        (d / f"clip_{t:012d}_keypoints.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": k.ravel().tolist()}]}))
    (name, raw), = read_input(d, pred.C, pred.V, pred.M, pred.data, image_size=(w, h))
    assert name == "op"
    np.testing.assert_allclose(raw, x, atol=1e-4)
    recs = _predict_json(fsd_run[0], d, extra=("--image-size", "1280", "720"))
    np.testing.assert_allclose(recs[0]["scores"], pred.scores(x)[0], atol=1e-3)


def _one_line_error(*args):
    rc, out, err = main_in_process(*args)
    assert rc == 2 and len(err.strip().splitlines()) == 1, (rc, err)
    return err


def test_bad_inputs_are_one_line(fsd_run, tmp_path):
    ck, _ = fsd_run
    assert "nothing.npy: not found" in _one_line_error("predict", "--checkpoint", ck, tmp_path / "nothing.npy")
    np.save(tmp_path / "coco.npy", np.ones((3, 16, 17, 1), np.float32))
    err = _one_line_error("predict", "--checkpoint", ck, tmp_path / "coco.npy")
    assert "coco.npy: shape (3, 16, 17, 1) does not fit this model (C=3, V=25)" in err
    np.save(tmp_path / "two_d.npy", np.ones((16, 25), np.float32))
    assert "two_d.npy: shape (16, 25) does not fit" in _one_line_error("predict", "--checkpoint", ck, tmp_path / "two_d.npy")
    (tmp_path / "clip.txt").write_text("1 2 3")
    assert "clip.txt: unreadable format" in _one_line_error("predict", "--checkpoint", ck, tmp_path / "clip.txt")
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    assert "bad.npy: not a readable .npy" in _one_line_error("predict", "--checkpoint", ck, tmp_path / "bad.npy")
    np.save(tmp_path / "zeros.npy", np.zeros((3, 16, 25, 1), np.float32))
    assert "empty clip" in _one_line_error("predict", "--checkpoint", ck, tmp_path / "zeros.npy")
    nan = np.ones((3, 16, 25, 1), np.float32); nan[0, 3, 4, 0] = np.nan; np.save(tmp_path / "nan.npy", nan)
    assert "nan.npy: contains NaN" in _one_line_error("predict", "--checkpoint", ck, tmp_path / "nan.npy")
    assert "no_ckpt.pt: checkpoint not found" in _one_line_error("predict", "--checkpoint", tmp_path / "no_ckpt.pt", tmp_path / "coco.npy")
    assert "--top must be >= 1" in _one_line_error("predict", "--checkpoint", ck, "--top", "0", tmp_path / "coco.npy")
    err = _one_line_error("predict", "--checkpoint", ck, SAMPLES / "gym" / "gym_synth.pkl")     # COCO-17 clips
    assert "gym_synth.pkl[0]: clip of shape (3, " in err and "takes (C=3, T, V=25, M)" in err


# ---------------------------------------------------------------- export
@pytest.mark.parametrize("fmt", ["pt2", "torchscript", "onnx"])
def test_export_round_trip(fsd_run, tmp_path, fmt):
    if fmt == "onnx": pytest.importorskip("onnxruntime"); pytest.importorskip("onnxscript")
    from mdr_gcn_nb.predict import Predictor, load_exported
    ck, ref = fsd_run
    out = tmp_path / f"model.{fmt}"
    rc, stdout, err = main_in_process("export", "--checkpoint", ck, "--format", fmt, "--out", out)
    assert rc == 0, err
    assert out.is_file() and "max |exported - eager|" in stdout, stdout
    d = float(stdout.split("max |exported - eager| = ")[1].split()[0])
    assert d < 1e-4, stdout
    # the exported file on the real test clips after the test-time pipeline, at two batch sizes: the scores of `test`
    pred = Predictor.from_checkpoint(ck)
    run = load_exported(out, fmt)
    clips = np.load(SAMPLES / "fsd10" / "test_data_25.npy")[ref["indices"]]
    xs = np.stack([pred.preprocess(c) for c in clips])                                  # (16, 3, 16, 25, 1)
    np.testing.assert_allclose(run(xs), ref["scores"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(run(xs[:1]), ref["scores"][:1], atol=1e-4, rtol=0)
    # another frame count (32, dynamic) against eager
    x32 = np.random.default_rng(0).normal(size=(3, 3, 32, 25, 1)).astype(np.float32)
    with torch.no_grad(): eager = pred.net(torch.from_numpy(x32)).numpy()
    np.testing.assert_allclose(run(x32), eager, atol=1e-4, rtol=0)


def test_export_errors(fsd_run, tmp_path, monkeypatch):
    ck, _ = fsd_run
    err = _one_line_error("export", "--checkpoint", ck, "--format", "pt2", "--out", tmp_path / "m.pt2", "--frames", "30")
    assert "frames=30" in err and "multiples of 4" in err
    import importlib
    orig = importlib.import_module
    def without_onnxscript(name, *a, **k):
        if name == "onnxscript": raise ImportError(name)
        return orig(name, *a, **k)
    monkeypatch.setattr(importlib, "import_module", without_onnxscript)
    err = _one_line_error("export", "--checkpoint", ck, "--format", "onnx", "--out", tmp_path / "m.onnx")
    monkeypatch.undo()
    assert 'onnxscript: pip install "mdr_gcn_nb[export]"' in err
    assert not (tmp_path / "m.onnx").exists()


def test_a_failed_export_leaves_the_old_file_and_no_temporary_file(fsd_run, tmp_path, monkeypatch):
    "export_model writes through core.atomic_path: an exporter that fails half-way changes nothing in the folder."
    from mdr_gcn_nb.predict import Predictor, export_model
    ck, _ = fsd_run
    out = tmp_path / "m.pt"; out.write_bytes(b"old")
    def broken(obj, f, *a, **k): Path(f).write_bytes(b"half"); raise RuntimeError("disk full")
    monkeypatch.setattr(torch.jit, "save", broken)
    with pytest.raises(RuntimeError, match="disk full"): export_model(Predictor.from_checkpoint(ck), "torchscript", out)
    assert out.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]



def test_checkpoint_knows_the_dims_of_its_pyskl_data(tmp_path):
    "A model trained on a 3-D PYSKL file reads clips given without their file (an array) as 3-D too: the dims are in the checkpoint."
    from mdr_gcn_nb.predict import Predictor, read_clips
    ck, _, _ = _pyskl_run(tmp_path, 3, "bone")
    pred = Predictor.from_checkpoint(ck)
    assert pred.data.dims == 3
    clips = [c for _, c in read_clips(_tiny_pyskl(tmp_path, 3), pred.C, pred.V, pred.M, pred.data)[0]]
    np.testing.assert_allclose(pred.scores(clips), pred.scores(clips, dims=3), atol=1e-6, rtol=0)
