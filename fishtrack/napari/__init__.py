"""napari plugin of fishtrack (manifest: ``napari.yaml``).

* :mod:`fishtrack.napari.convert` — trial tables -> layer data (no Qt, no napari);
* :mod:`fishtrack.napari._reader` — reader for trial folders, ``tracks.parquet`` and videos;
* :mod:`fishtrack.napari._widget` — the dock widget (ethogram, tail trace, corrections);
* :mod:`fishtrack.napari._sample` — sample data from ``sample_videos/``;
* :func:`fishtrack.napari.viewer.view` — open napari on a trial folder (``fishtrack view``).

Importing this package imports neither napari nor Qt.
"""

from fishtrack.napari.viewer import view

__all__ = ["view"]
