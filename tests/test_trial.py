"""The trial folder (fishtrack.trial): one reader and writer of its files."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from fishtrack.config import Config, config_hash, parse_config
from fishtrack.errors import FishtrackError
from fishtrack.io.provenance import build_provenance, file_identity
from fishtrack.trial import (
    BOUTS,
    EPOCHS,
    PROVENANCE,
    TRACKS,
    Provenance,
    TrialFolder,
    TrialResult,
    input_identity,
)


def _tracks(n: int = 5) -> pd.DataFrame:
    return pd.DataFrame({
        "frame": np.tile(np.arange(n), 2),
        "time_s": np.tile(np.arange(n) / 10.0, 2),
        "arena": ["A1"] * n + ["A2"] * n,
        "fish": ["A1"] * n + ["A2"] * n,
        "x": np.arange(2 * n, dtype=np.float32),
        "y": np.arange(2 * n, dtype=np.float32),
        "detected": True,
    })


def _result(video, cfg: Config, *, bouts: bool = True) -> TrialResult:
    prov = build_provenance(config=cfg.model_dump(mode="json"), config_hash=config_hash(cfg),
                            inputs=file_identity(video), frames_read=5, damage=[],
                            timings={"total": 0.1}, extra={"video": {"fps": 10.0, "duration_s": 0.5},
                                                           "future_key": {"kept": True}})
    b = pd.DataFrame({"fish": ["01"], "arena": ["A1"], "start_s": [0.1], "end_s": [0.2]}) if bouts else None
    e = pd.DataFrame({"fish": ["A1"], "state": ["active"], "start_s": [0.0], "end_s": [0.5]}) if bouts else None
    return TrialResult(tracks=_tracks(), bouts=b, epochs=e, provenance=prov)


@pytest.fixture
def video(tmp_path):
    p = tmp_path / "v.avi"
    p.write_bytes(b"not really a video, but a file with an identity" * 100)
    return p


def test_write_then_read_back(tmp_path, video):
    folder = TrialFolder(tmp_path / "trial")
    folder.write(_result(video, Config()))
    assert folder.is_complete() and folder.missing() == []
    assert sorted(p.name for p in folder.path.iterdir()) == sorted([TRACKS, BOUTS, EPOCHS, PROVENANCE])
    prov = TrialFolder(folder.path).provenance()
    assert prov.outputs == folder.digests()  # recorded after the tables were written
    assert prov.data["future_key"] == {"kept": True}  # keys fishtrack does not know survive
    assert prov.fps == 10.0 and prov.duration_s == 0.5 and prov.frames_read == 5
    assert list(folder.tracks(columns=["fish", "frame", "nope"]).columns) == ["fish", "frame"]
    assert folder.bouts()["fish"].tolist() == ["01"]  # identifiers are text, never numbers
    assert folder.corrections().empty
    with pytest.raises(FishtrackError, match=r"missing column\(s\) heading"):
        folder.tracks(require=["x", "heading"])


def test_write_removes_stale_tables_and_the_old_provenance_first(tmp_path, video):
    folder = TrialFolder(tmp_path / "trial")
    folder.write(_result(video, Config()))
    folder.write(_result(video, Config(), bouts=False))
    assert folder.present() == [TRACKS, PROVENANCE]  # no bouts/epochs of the earlier run
    assert set(folder.provenance().outputs) == {TRACKS}


def test_status_tells_current_reclassify_stale_missing(tmp_path, video):
    cfg = Config()
    folder = TrialFolder(tmp_path / "trial")
    assert folder.status(video, cfg) == "missing"
    folder.write(_result(video, cfg))
    assert TrialFolder(folder.path).status(video, cfg) == "current"
    speed_only = cfg.model_copy(update={"video": cfg.video.model_copy(update={"chunk_size": 7})})
    assert TrialFolder(folder.path).status(video, speed_only) == "current"
    rescore = parse_config({"behaviour": {"min_passive_s": cfg.behaviour.min_passive_s + 1}})
    assert TrialFolder(folder.path).status(video, rescore) == "reclassify"
    retrack = parse_config({"tracking": {"min_area_px": cfg.tracking.min_area_px + 3}})
    assert TrialFolder(folder.path).status(video, retrack) == "stale"
    video.write_bytes(video.read_bytes() + b"more")
    assert TrialFolder(folder.path).status(video, cfg) == "stale"
    folder.provenance_path.unlink()
    assert TrialFolder(folder.path).status(video, cfg) == "missing"


def test_rescore_keeps_the_provenance_and_records_the_scoring(tmp_path, video):
    folder = TrialFolder(tmp_path / "trial")
    folder.write(_result(video, Config()))
    keys = list(json.loads(folder.provenance_path.read_text()))
    cfg = parse_config({"behaviour": {"min_passive_s": 9.0}})
    prov = folder.provenance()
    prov.record_scoring(cfg, 0.25)
    scores = SimpleNamespace(tracks=_tracks(), bouts=pd.DataFrame({"fish": ["A2"]}),
                             epochs=pd.DataFrame({"fish": ["A2"]}))
    folder.rescore(scores, prov)
    again = TrialFolder(folder.path).provenance()
    assert list(again.data)[:len(keys)] == keys  # the order of the keys already there is kept
    assert again.data["behaviour_config"]["min_passive_s"] == 9.0
    assert again.same_scoring(cfg) and not again.same_scoring(Config())
    assert again.same_tracking(Config())
    assert again.outputs == folder.digests()
    assert folder.bouts()["fish"].tolist() == ["A2"]


def test_provenance_errors_are_one_line(tmp_path):
    p = tmp_path / PROVENANCE
    p.write_text("[1, 2]")
    with pytest.raises(FishtrackError, match="does not hold a JSON object"):
        Provenance.read(p)
    p.write_text("{not json")
    with pytest.raises(FishtrackError, match="not valid JSON"):
        TrialFolder(tmp_path).provenance()
    assert Provenance({"arenas": "garbage", "video": [1]}).arena_names == []  # damaged: empty


def test_imported_folder_is_identified_by_content(tmp_path, video):
    folder = TrialFolder(tmp_path / "imported")
    folder.write(TrialResult(tracks=_tracks(), provenance={"source": "import"}), digests=False)
    assert folder.is_imported() and not TrialFolder(tmp_path).is_imported()
    first = input_identity(folder.path)
    assert first == folder.content_identity() and "sha256_content" in first
    folder.write(TrialResult(tracks=_tracks(6), provenance={"source": "import"}), digests=False)
    assert input_identity(folder.path)["sha256_content"] != first["sha256_content"]
    assert "sha256_first_mib" in input_identity(video)  # a video: its file identity
