"""Draw docs/figures/napari_widget.png: napari with a fishtrack trial and the dock widget.

    xvfb-run -a python docs/make_napari_figure.py      # needs a display with OpenGL

A simulated 2x2-well futility assay (the one the napari tests use,
``tests/fixtures_napari.tracked_simulation``) is tracked end to end; napari opens the trial
(``fishtrack.napari.viewer.open_trial``), the fish with the most passive epochs is shown, one
passive epoch is relabelled ``exclude`` in the widget (the correction goes to a scratch copy of
the trial) and selected, and the whole window is saved.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "figures" / "napari_widget.png"


def main(out: Path = OUT) -> Path:
    import napari
    import napari._qt.qt_main_window as qt_main_window
    import numpy as np
    from qtpy.QtWidgets import QApplication

    sys.path.insert(0, str(ROOT / "tests"))
    from fixtures_napari import tracked_simulation

    from fishtrack.napari.viewer import open_trial

    with tempfile.TemporaryDirectory() as tmp:
        folder, _ = tracked_simulation(Path(tmp))
        trial = Path(tmp) / "shown"
        shutil.copytree(folder, trial)
        qt_main_window.SHOW_QT_WARNING = False  # no deprecation toast over the canvas
        viewer = napari.Viewer(show=True)
        try:
            w = open_trial(viewer, trial)
            viewer.window.resize(1400, 820)
            fish = w.trial.epochs.query("state == 'passive'")["fish"].value_counts().index[0]
            w.set_fish(fish)
            passive = np.flatnonzero(w.epochs["state"].to_numpy() == "passive")
            k = int(passive[min(1, len(passive) - 1)])
            w.select_epoch(k)
            w.relabel("exclude")
            w.select_epoch(k)
            viewer.dims.set_current_step(0, int(w.epochs.iloc[k]["start_frame"]) + 10)
            for _ in range(10):
                QApplication.processEvents()
            viewer.reset_view()  # fit the plate to the resized canvas
            for _ in range(10):
                QApplication.processEvents()
            out.parent.mkdir(parents=True, exist_ok=True)
            viewer.screenshot(str(out), canvas_only=False, flash=False)
        finally:
            viewer.close()
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    print(main(ap.parse_args().out))
