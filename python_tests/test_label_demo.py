"""`pyface demo label --quick`: the embedded end-to-end job runs and reports."""
import json

import pytest

from pyface.cli import main


@pytest.mark.slow
def test_label_demo_quick(tmp_path, capsys):
    assert main(["demo", "label", "--out", str(tmp_path), "--quick", "--seeds", "1"]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert (tmp_path / "labeled.png").stat().st_size > 1000
    assert (tmp_path / "nets" / "fld_hpe" / "model.pt").is_file()
    assert (tmp_path / "nets" / "eyeblink" / "model.pt").is_file()
    r = m["runs"][0]
    assert r["images"] == 24 and 0.0 <= r["acceptance_rate"] <= 1.0 and r["nme_single_view_all"] > 0
    assert set(m["checks"]) >= {"accepts_some", "alg1_nme_better_than_single_view"}
    assert "acceptance_rate" in capsys.readouterr().out
    # a second run reuses the trained nets and the labeled shards
    assert main(["demo", "label", "--out", str(tmp_path), "--quick", "--seeds", "1"]) == 0
    assert "reusing" in capsys.readouterr().out
