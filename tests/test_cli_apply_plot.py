"""`pba apply` and `pba plot` on real images and the reference schedule."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from pba.cli.main import main

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "rcifar10_16_wrn.txt"
PNG = b"\x89PNG\r\n\x1a\n"


def test_apply_draws_a_grid_of_real_images(tmp_path, cifar_images, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(cifar_images[i].permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    out = tmp_path / "grid.png"
    assert main(["apply", "--schedule", str(REFERENCE), "--schedule-epochs", "200",
                 "--epoch", "150", "--images", str(folder), "--samples", "4",
                 "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG
    assert "epoch 150/200" in capsys.readouterr().out


def test_apply_and_plot_errors_are_clear(tmp_path, capsys):
    assert main(["apply", "--schedule", str(REFERENCE), "--schedule-epochs", "200",
                 "--images", str(tmp_path / "missing"), "--out", str(tmp_path / "g.png")]) == 2
    assert "no such image file or folder" in capsys.readouterr().err
    assert main(["apply", "--schedule", str(REFERENCE), "--schedule-epochs", "200",
                 "--epoch", "200", "--images", str(tmp_path),
                 "--out", str(tmp_path / "g.png")]) == 2
    assert "epoch 200 asked of a schedule with 200 epochs" in capsys.readouterr().err
    assert main(["plot", str(REFERENCE), "--out", str(tmp_path / "p.png")]) == 2
    assert "does not record how long" in capsys.readouterr().err


def test_plot_draws_the_reference_schedule(tmp_path):
    out = tmp_path / "schedule.png"
    assert main(["plot", str(REFERENCE), "--schedule-epochs", "200", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG
