"`log.tensorboard: true`: the events hold log.csv's numbers per epoch, the confusion image and the config; off writes nothing; a missing package is one line."
import csv, shutil, sys
from pathlib import Path
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _toy
from mdr_gcn_nb.config import load_config
from mdr_gcn_nb.train import train
from mdr_gcn_nb import cli

ROOT = Path(__file__).resolve().parents[1]
# the tiny MDR-GCN on data_samples/fsd10 of tests/test_cli.py: 8-frame clips, 40 samples per split, 2 epochs
TINY = ["model.args.channels=[16,16,32,32]", "model.args.strides=[1,2,1,2]", "data.window=8",
        f"data.path={ROOT / 'data_samples' / 'fsd10'}", "data.max_samples=40", "optim.batch_size=8", "optim.epochs=2",
        "optim.milestones=[1]", "optim.warmup_epochs=0.5", "threads=1", "progress=false"]
CONFIG = ROOT / "configs" / "sample_fsd10_joint.yaml"


def _events(run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    return EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "tensors": 0}).Reload()


def _csv(run: Path) -> list:
    with open(run / "log.csv") as f: return list(csv.DictReader(f))


def test_events_match_log_csv(tmp_path):
    pytest.importorskip("tensorboard")
    s = train(load_config(CONFIG, TINY + [f"out_dir={tmp_path}", "log.tensorboard=true"]), log=lambda *a: None)
    run = Path(s["log"]).parent
    rows, acc = _csv(run), _events(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    tags = acc.Tags()
    from mdr_gcn_nb.metrics import tb_tag
    want = {tb_tag(k) for k in rows[0] if k != "epoch"}
    assert {"train/loss", "train/rdl", "train/ce", "train/top1", "test/top1", "test/top5", "test/loss", "lr/net"} <= want
    assert set(tags["scalars"]) == want | {"lr/centres"}
    for col in rows[0]:
        if col == "epoch": continue
        ev = acc.Scalars(tb_tag(col))
        assert [e.step for e in ev] == [1, 2], col
        assert [e.value for e in ev] == pytest.approx([float(r[col]) for r in rows], rel=1e-5, abs=1e-9), col
    assert [e.value for e in acc.Scalars("lr/centres")] == pytest.approx([0.1, 0.1])       # loss.centre_lr
    imgs = acc.Images("confusion")
    assert [i.step for i in imgs] == [1, 2] and all(i.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n" for i in imgs)
    assert imgs[0].width > 100 and imgs[0].height > 100
    text = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "tensorboard: true" in text and "name: sample_fsd10_joint" in text and "window: 8" in text


def test_off_writes_no_events(tmp_path):
    s = train(load_config(CONFIG, TINY + [f"out_dir={tmp_path}", "optim.epochs=1"]), log=lambda *a: None)
    run = Path(s["log"]).parent
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "config.yaml", "confusion_best.png", "last.pt", "log.csv",
                                                    "per_class_best.csv", "scores_best.npz"]
    assert not list(tmp_path.rglob("events.out.tfevents.*"))


def test_missing_package_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)      # `from torch.utils.tensorboard import ...` fails
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    rc = cli.main(["train", "--config", str(CONFIG), "--out-dir", str(tmp_path), "--no-progress", *TINY, "log.tensorboard=true"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert 'pip install "mdr_gcn_nb[tensorboard]"' in err and "log.tensorboard" in err
    assert not list(tmp_path.iterdir()), "nothing is written before the error"


def test_resume_rewrites_the_epochs_after_the_checkpoint(tmp_path):
    "A run that died after logging epoch 2 but before its last.pt: the resume from epoch 1 shows epoch 2 once, as log.csv has it."
    pytest.importorskip("tensorboard")
    run = tmp_path / "toy"
    _toy.toy_trainer(tmp_path, epochs=1, log={"tensorboard": True}).fit()
    shutil.copy(run / "last.pt", tmp_path / "epoch1.pt")
    _toy.toy_trainer(tmp_path, epochs=2, log={"tensorboard": True}, resume=run / "last.pt").fit()      # logs epoch 2
    _toy.toy_trainer(tmp_path, epochs=2, log={"tensorboard": True}, resume=tmp_path / "epoch1.pt").fit()  # and again
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 3                 # a new file per start
    rows, acc = _csv(run), _events(run)
    ev = acc.Scalars("train/loss")
    assert [e.step for e in ev] == [1, 2]                                                      # not [1, 2, 2]
    assert [e.value for e in ev] == pytest.approx([float(r["train_loss"]) for r in rows], rel=1e-5)
    assert [i.step for i in acc.Images("confusion")] == [1, 2]
