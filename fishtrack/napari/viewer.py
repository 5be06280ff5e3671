"""``fishtrack view DIR``: open napari on a trial folder with every layer and the dock widget."""

from __future__ import annotations

from pathlib import Path

from fishtrack.errors import FishtrackError
from fishtrack.napari import convert as cv
from fishtrack.napari._reader import read_video_layers, trial_layers

__all__ = ["view", "open_trial"]


def open_trial(viewer, path: str | Path):
    """Add a trial's layers and the fishtrack dock widget to an existing ``viewer``.

    ``path`` is a trial folder or its ``tracks.parquet``. Returns the
    :class:`~fishtrack.napari._widget.FishtrackWidget`.
    """
    from fishtrack.napari._widget import FishtrackWidget  # imports Qt

    trial = cv.read_trial(path)
    for data, kwargs, kind in trial_layers(trial):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    widget = FishtrackWidget(viewer, trial)
    viewer.window.add_dock_widget(widget, name="fishtrack trial", area="right")
    viewer.reset_view()
    if viewer.dims.ndim:
        viewer.dims.set_current_step(0, 0)
    return widget


def view(folder: str | Path, *, block: bool = True):
    """Open napari on ``folder`` (a trial folder, its ``tracks.parquet``, or a plain video).

    Parameters
    ----------
    folder
        What to open.
    block
        Run the Qt event loop until the window is closed (what the CLI wants). With
        ``block=False`` the viewer is returned at once (scripts, notebooks, tests).

    Returns
    -------
    napari.Viewer
    """
    path = Path(folder)
    if not path.exists():
        raise FishtrackError(f"{path}: no such file or folder")
    try:
        import napari
    except ImportError:
        raise FishtrackError(
            "napari is not installed; install it with `pip install 'fishtrack[napari]'`"
        ) from None
    if cv.trial_folder_of(path) is not None:
        viewer = napari.Viewer(title=f"fishtrack — {cv.trial_folder_of(path).name}")
        open_trial(viewer, path)
    elif path.is_file() and path.suffix.lower() in cv.VIDEO_SUFFIXES:
        viewer = napari.Viewer(title=f"fishtrack — {path.name}")
        for data, kwargs, kind in read_video_layers(path):
            getattr(viewer, f"add_{kind}")(data, **kwargs)
    else:
        raise FishtrackError(f"{path}: not a trial folder (no tracks.parquet) or a video")
    if block:
        napari.run()
    return viewer
