"""The fishtrack dock widget: ethogram strip, tail-angle trace and epoch corrections.

The only module of fishtrack that imports Qt. It draws with ``QPainter`` (no matplotlib), so
repaints are cheap; reading a trial folder runs in a worker thread. All numbers come from the
Qt-free :mod:`fishtrack.napari.convert` and :mod:`fishtrack.corrections`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from qtpy.QtCore import QPointF, QRectF, Qt, Signal
from qtpy.QtGui import QBrush, QColor, QFont, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from fishtrack import corrections as corr_mod
from fishtrack.errors import FishtrackError
from fishtrack.napari import convert as cv
from fishtrack.napari._reader import trial_layers

__all__ = ["FishtrackWidget", "EthogramStrip", "TracePlot"]

_LEFT, _RIGHT = 8, 8


def _qcolor(hex_or_name: str, alpha: int = 255) -> QColor:
    c = QColor(hex_or_name)
    c.setAlpha(alpha)
    return c


class _TimeAxisWidget(QWidget):
    """Shared x <-> time mapping for the strip and the trace."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.t0, self.t1 = 0.0, 1.0

    def _plot_width(self) -> float:
        return max(1.0, self.width() - _LEFT - _RIGHT)

    def x_at_time(self, t: float | np.ndarray):
        return _LEFT + (np.asarray(t, float) - self.t0) / max(self.t1 - self.t0, 1e-9) * self._plot_width()

    def time_at_x(self, x: float) -> float:
        t = self.t0 + (float(x) - _LEFT) / self._plot_width() * (self.t1 - self.t0)
        return float(np.clip(t, self.t0, self.t1))

    def paintEvent(self, event):  # noqa: N802 - Qt API
        """White background and a small font, then the subclass's ``_paint``."""
        p = QPainter(self)
        try:
            p.fillRect(0, 0, self.width(), self.height(), QColor("white"))
            font = QFont(p.font())
            font.setPointSizeF(7.5)
            p.setFont(font)
            self._paint(p)
        finally:
            p.end()

    def _paint(self, p: QPainter) -> None:
        raise NotImplementedError


class EthogramStrip(_TimeAxisWidget):
    """Whole-record strip: protocol phases, state epochs, bouts, cursor and selection.

    Click (or drag) to move the viewer to that time: emits ``clicked(time_s)``.
    """

    clicked = Signal(float)
    ROW_PHASE = (0, 14)
    ROW_STATE = (16, 46)
    ROW_BOUT = (49, 59)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(78)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.setMouseTracking(False)
        self.setCursor(Qt.PointingHandCursor)
        self.phases = cv.protocol_spans([])
        self.epochs = pd.DataFrame(columns=["start_s", "end_s", "state", "corrected"])
        self.bout_starts = np.zeros(0)
        self.bout_ends = np.zeros(0)
        self.cursor_time: float | None = None
        self.selected: int | None = None
        self.setToolTip("Ethogram: click or drag to move the time slider; the epoch under the "
                        "click is selected for correction")

    def set_data(self, *, t0: float, t1: float, phases: pd.DataFrame, epochs: pd.DataFrame,
                 bouts: pd.DataFrame) -> None:
        self.t0, self.t1 = float(t0), float(max(t1, t0 + 1e-6))
        self.phases = phases
        self.epochs = epochs
        self.bout_starts = bouts["start_s"].to_numpy(float) if len(bouts) else np.zeros(0)
        self.bout_ends = bouts["end_s"].to_numpy(float) if len(bouts) else np.zeros(0)
        self.update()

    def set_cursor(self, t: float | None) -> None:
        self.cursor_time = t
        self.update()

    def cursor_x(self) -> float | None:
        """Pixel x of the cursor line (None when there is no cursor)."""
        return None if self.cursor_time is None else float(self.x_at_time(self.cursor_time))

    # -- painting
    def _paint(self, p: QPainter) -> None:
        w = self.width()
        # protocol phases: a band on top and light shading behind the states
        y0, y1 = self.ROW_PHASE
        for ph in self.phases.itertuples(index=False):
            xa, xb = float(self.x_at_time(ph.start_s)), float(self.x_at_time(ph.end_s))
            if xb < _LEFT or xa > w - _RIGHT:
                continue
            xa, xb = max(xa, _LEFT), min(xb, w - _RIGHT)
            p.fillRect(QRectF(xa, y0, xb - xa, y1 - y0), _qcolor(ph.colour, 200))
            p.fillRect(QRectF(xa, self.ROW_STATE[0], xb - xa, self.ROW_BOUT[1] - self.ROW_STATE[0]),
                       _qcolor(ph.colour, 40))
            p.setPen(QColor("black"))
            p.drawText(QRectF(xa + 2, y0, xb - xa - 2, y1 - y0), Qt.AlignVCenter | Qt.AlignLeft, str(ph.name))
        # state epochs
        s0, s1 = self.ROW_STATE
        ep = self.epochs
        if len(ep):
            xa = self.x_at_time(ep["start_s"].to_numpy(float))
            xb = self.x_at_time(ep["end_s"].to_numpy(float))
            states = ep["state"].astype(str).to_numpy()
            corrected = ep["corrected"].to_numpy(bool) if "corrected" in ep else np.zeros(len(ep), bool)
            p.setPen(Qt.NoPen)
            for name, colour in cv.STATE_COLOURS.items():
                brush = QBrush(QColor(colour))
                for i in np.flatnonzero(states == name):
                    p.fillRect(QRectF(xa[i], s0, max(xb[i] - xa[i], 1.0), s1 - s0), brush)
            hatch = QBrush(QColor("white"), Qt.BDiagPattern)
            for i in np.flatnonzero(corrected):
                p.fillRect(QRectF(xa[i], s0, max(xb[i] - xa[i], 1.0), s1 - s0), hatch)
            if self.selected is not None and 0 <= self.selected < len(ep):
                i = self.selected
                p.setPen(QPen(QColor("black"), 2))
                p.setBrush(Qt.NoBrush)
                p.drawRect(QRectF(xa[i], s0 - 1, max(xb[i] - xa[i], 2.0), s1 - s0 + 2))
        # bouts: one tick per pixel column that holds a bout
        b0, b1 = self.ROW_BOUT
        if self.bout_starts.size:
            xs = np.unique(np.round(self.x_at_time((self.bout_starts + self.bout_ends) / 2)).astype(int))
            p.setPen(QPen(QColor("#222222"), 1))
            for x in xs:
                p.drawLine(int(x), b0, int(x), b1)
        # time axis
        p.setPen(QColor("#444444"))
        ay = self.ROW_BOUT[1] + 2
        p.drawLine(_LEFT, ay, w - _RIGHT, ay)
        for t in _nice_ticks(self.t0, self.t1, max(2, int(self._plot_width() // 70))):
            x = float(self.x_at_time(t))
            p.drawLine(QPointF(x, ay), QPointF(x, ay + 3))
            p.drawText(QRectF(x - 30, ay + 3, 60, 12), Qt.AlignHCenter | Qt.AlignTop, f"{t:g} s")
        # cursor
        if self.cursor_time is not None:
            x = self.cursor_x()
            p.setPen(QPen(QColor("#d00000"), 2))
            p.drawLine(QPointF(x, 0), QPointF(x, self.ROW_BOUT[1]))

    # -- mouse
    def mousePressEvent(self, event):  # noqa: N802 - Qt API
        if event.button() == Qt.LeftButton:
            self.clicked.emit(self.time_at_x(event.pos().x()))

    def mouseMoveEvent(self, event):  # noqa: N802 - Qt API
        if event.buttons() & Qt.LeftButton:
            self.clicked.emit(self.time_at_x(event.pos().x()))


class TracePlot(_TimeAxisWidget):
    """Tail angle in a window centred on the cursor, with bouts shaded."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(110)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.t = np.zeros(0)
        self.v = np.zeros(0)
        self.bouts = np.zeros((0, 2))
        self.window_s = 10.0
        self.centre: float | None = None
        self.ylim = 1.0
        self.label = "tail angle (rad)"

    def set_data(self, t: np.ndarray, v: np.ndarray, bouts: pd.DataFrame) -> None:
        self.t, self.v = np.asarray(t, float), np.asarray(v, float)
        fin = np.abs(self.v[np.isfinite(self.v)])
        self.ylim = float(max(0.2, np.quantile(fin, 0.999) * 1.1)) if fin.size else 1.0
        self.bouts = bouts[["start_s", "end_s"]].to_numpy(float) if len(bouts) else np.zeros((0, 2))
        self.update()

    def set_centre(self, t: float | None) -> None:
        self.centre = t
        if t is not None:
            self.t0, self.t1 = t - self.window_s / 2, t + self.window_s / 2
        self.update()

    def set_window(self, seconds: float) -> None:
        self.window_s = float(seconds)
        self.set_centre(self.centre)

    def y_at(self, v):
        top, bottom = 4, self.height() - 16
        return top + (self.ylim - np.asarray(v, float)) / (2 * self.ylim) * (bottom - top)

    def _paint(self, p: QPainter) -> None:
        w, h = self.width(), self.height()
        top, bottom = 4, h - 16
        if self.centre is None:
            return
        # bouts
        m = (self.bouts[:, 1] > self.t0) & (self.bouts[:, 0] < self.t1) if len(self.bouts) else np.zeros(0, bool)
        for s, e in self.bouts[m]:
            xa, xb = float(self.x_at_time(s)), float(self.x_at_time(e))
            p.fillRect(QRectF(xa, top, max(xb - xa, 1.0), bottom - top), _qcolor(cv.STATE_COLOURS["active"], 60))
        # zero line and labels
        p.setPen(QPen(QColor("#bbbbbb"), 1, Qt.DashLine))
        y0 = float(self.y_at(0.0))
        p.drawLine(QPointF(_LEFT, y0), QPointF(w - _RIGHT, y0))
        p.setPen(QColor("#444444"))
        p.drawText(QRectF(_LEFT + 2, top, 200, 12), Qt.AlignLeft, f"{self.label}  ±{self.ylim:.2f}")
        for t in _nice_ticks(self.t0, self.t1, max(2, int(self._plot_width() // 70))):
            x = float(self.x_at_time(t))
            p.drawText(QRectF(x - 30, bottom + 2, 60, 12), Qt.AlignHCenter | Qt.AlignTop, f"{t:g} s")
        # the trace (min/max envelope per pixel column when dense)
        xs_t, vmin, vmax = cv.trace_envelope(self.t, self.v, self.t0, self.t1, int(self._plot_width()))
        if xs_t.size:
            x = self.x_at_time(xs_t)
            ya, yb = self.y_at(vmin), self.y_at(vmax)
            p.setPen(QPen(QColor("#1f3b73"), 1.2))
            ok = np.isfinite(ya)
            # split the polyline at gaps (undetected frames)
            breaks = np.flatnonzero(~ok)
            start = 0
            for stop in [*breaks.tolist(), len(x)]:
                seg = slice(start, stop)
                if stop - start > 1:
                    pts = np.column_stack([np.repeat(x[seg], 2), np.column_stack([ya[seg], yb[seg]]).ravel()])
                    p.drawPolyline(QPolygonF([QPointF(float(a), float(b)) for a, b in pts]))
                start = stop + 1
        # cursor
        p.setPen(QPen(QColor("#d00000"), 1.5))
        xc = float(self.x_at_time(self.centre))
        p.drawLine(QPointF(xc, top), QPointF(xc, bottom))


def _nice_ticks(t0: float, t1: float, n: int) -> list[float]:
    span = max(t1 - t0, 1e-9)
    raw = span / max(n, 1)
    mag = 10 ** np.floor(np.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = np.ceil(t0 / step) * step
    return [float(round(v, 6)) for v in np.arange(first, t1 + 1e-9, step)]


class FishtrackWidget(QWidget):
    """Dock widget for one trial: fish chooser, ethogram, tail-angle trace, corrections.

    Parameters
    ----------
    napari_viewer
        The viewer; the widget follows its time slider (axis 0 = frame) and moves it when the
        ethogram is clicked.
    trial
        A :class:`~fishtrack.napari.convert.Trial`, a trial folder, or None to use the trial
        whose layers are (or later get) opened in the viewer.
    """

    RELABEL_STATES = corr_mod.CORRECTION_STATES

    def __init__(self, napari_viewer, trial: cv.Trial | str | Path | None = None, *, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.trial: cv.Trial | None = None
        self.fish: str | None = None
        self.epochs = pd.DataFrame()
        self.bouts = pd.DataFrame()
        self._frames = np.zeros(0, np.int64)
        self._times = np.zeros(0)
        self._fps: float | None = None
        self._worker = None
        self._loading: str | None = None
        self._build()
        self.viewer.dims.events.current_step.connect(self._on_step)
        self.viewer.layers.events.inserted.connect(self._on_layer_inserted)
        if isinstance(trial, cv.Trial):
            self.set_trial(trial)
        elif trial is not None:
            self.load_folder(trial, background=False)
        else:
            folder = self._folder_from_layers()
            if folder is not None:
                self.load_folder(folder)

    # -- layout
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        top = QHBoxLayout()
        self.trial_label = QLabel("no trial loaded")
        self.trial_label.setWordWrap(True)
        self.open_button = QPushButton("Open trial…")
        self.open_button.clicked.connect(self._ask_folder)
        top.addWidget(self.trial_label, 1)
        top.addWidget(self.open_button)
        lay.addLayout(top)
        row = QHBoxLayout()
        row.addWidget(QLabel("fish"))
        self.fish_combo = QComboBox()
        self.fish_combo.currentTextChanged.connect(self._on_fish_changed)
        row.addWidget(self.fish_combo, 1)
        row.addWidget(QLabel("trace window (s)"))
        self.window_spin = QDoubleSpinBox()
        self.window_spin.setRange(0.5, 600)
        self.window_spin.setValue(10.0)
        self.window_spin.valueChanged.connect(lambda v: self.trace.set_window(v))
        row.addWidget(self.window_spin)
        lay.addLayout(row)
        self.strip = EthogramStrip(self)
        self.strip.clicked.connect(self.jump_to_time)
        lay.addWidget(self.strip)
        legend = QLabel(" ".join(
            f'<span style="color:{c}">&#9632;</span> {n}' for n, c in cv.STATE_COLOURS.items()
        ) + " &nbsp; ▮ bouts &nbsp; hatched = corrected")
        legend.setTextFormat(Qt.RichText)
        lay.addWidget(legend)
        self.trace = TracePlot(self)
        lay.addWidget(self.trace)
        self.table = QTableWidget(0, 6)
        self.table.setHorizontalHeaderLabels(["state", "start s", "end s", "dur s", "phase", "was"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.table.itemSelectionChanged.connect(self._on_table_selection)
        lay.addWidget(self.table, 1)
        self.epoch_label = QLabel("select an epoch (click the ethogram or the table)")
        self.epoch_label.setWordWrap(True)
        lay.addWidget(self.epoch_label)
        buttons = QHBoxLayout()
        buttons.addWidget(QLabel("relabel as"))
        self.relabel_buttons: dict[str, QPushButton] = {}
        for state in (*self.RELABEL_STATES, "revert"):
            b = QPushButton(state)
            b.clicked.connect(lambda _=False, s=state: self.relabel(s))
            b.setEnabled(False)
            buttons.addWidget(b)
            self.relabel_buttons[state] = b
        lay.addLayout(buttons)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)

    # -- loading
    def _folder_from_layers(self) -> str | None:
        for layer in self.viewer.layers:
            f = layer.metadata.get("fishtrack_folder") if hasattr(layer, "metadata") else None
            if f:
                return f
        return None

    def _on_layer_inserted(self, event) -> None:
        f = event.value.metadata.get("fishtrack_folder") if hasattr(event.value, "metadata") else None
        if not f or f == self._loading or (self.trial is not None and Path(f) == self.trial.folder):
            return  # one trial opens as several layers: load it once
        self.load_folder(f)

    def _ask_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a fishtrack trial folder")
        if folder:
            if cv.trial_folder_of(folder) is None:
                self.status.setText(f"{folder}: not a trial folder (no tracks.parquet)")
                return
            self.load_folder(folder, background=False)
            if self.trial is not None:
                for data, kwargs, kind in trial_layers(self.trial):
                    getattr(self.viewer, f"add_{kind}")(data, **kwargs)

    def load_folder(self, folder: str | Path, *, background: bool = True) -> None:
        """Read a trial folder (in a worker thread unless ``background=False``)."""
        self._loading = str(folder)
        self.status.setText(f"reading {folder} …")
        if not background:
            try:
                self.set_trial(cv.read_trial(folder))
            except FishtrackError as err:
                self._on_load_error(err)
            return
        from napari.qt.threading import create_worker

        worker = create_worker(cv.read_trial, folder, _start_thread=False)
        worker.returned.connect(self.set_trial)
        worker.errored.connect(self._on_load_error)
        self._worker = worker
        worker.start()

    def _on_load_error(self, err: Exception) -> None:
        self._loading = None
        self.status.setText(str(err))

    def set_trial(self, trial: cv.Trial) -> None:
        """Show ``trial`` (called in the GUI thread)."""
        self.trial = trial
        self._loading = None
        self._frames, self._times = trial.frame_times()
        self._fps = trial.fps
        n_fish = len(trial.fish)
        self.trial_label.setText(f"<b>{trial.folder.name}</b> — {n_fish} fish, "
                                 f"{len(self._frames)} frames, {0 if trial.corrections is None else len(trial.corrections)} corrections")
        self.fish_combo.blockSignals(True)
        self.fish_combo.clear()
        self.fish_combo.addItems(trial.fish)
        self.fish_combo.blockSignals(False)
        self.status.setText("")
        if trial.fish:
            self.set_fish(trial.fish[0])

    # -- fish and time
    def set_fish(self, fish: str) -> None:
        """Show fish ``fish``."""
        if self.trial is None:
            return
        fish = str(fish)
        if self.fish_combo.currentText() != fish:
            self.fish_combo.setCurrentText(fish)  # re-enters through _on_fish_changed
            return
        self.fish = fish
        tr = self.trial
        self.epochs = cv.fish_epochs(tr, fish)
        self.bouts = cv.fish_bouts(tr, fish)
        t, v = cv.fish_series(tr, fish, "tail_angle")
        dt = float(np.median(np.diff(self._times))) if len(self._times) > 1 else 0.0
        t0 = float(self._times[0]) if len(self._times) else 0.0
        t1 = float(self._times[-1]) + dt if len(self._times) else 1.0
        self.strip.selected = None
        self.strip.set_data(t0=t0, t1=t1, phases=cv.protocol_spans(tr.protocol), epochs=self.epochs,
                            bouts=self.bouts)
        self.trace.set_data(t, v, self.bouts)
        self._fill_table()
        self._select(None)
        self._on_step()

    def _on_fish_changed(self, text: str) -> None:
        if text:
            self.set_fish(text)

    @property
    def current_frame(self) -> int:
        return int(self.viewer.dims.current_step[0]) if self.viewer.dims.ndim else 0

    def time_of_frame(self, frame: int) -> float:
        return cv.time_at_frame(self._frames, self._times, frame, self._fps)

    def frame_of_time(self, time_s: float) -> int:
        return cv.frame_at_time(self._frames, self._times, time_s)

    def _on_step(self, event=None) -> None:
        if self.trial is None:
            return
        t = self.time_of_frame(self.current_frame)
        try:
            self.strip.set_cursor(t)
            self.trace.set_centre(t)
        except RuntimeError:  # the dock widget was closed and Qt deleted it
            self._disconnect()

    def jump_to_time(self, time_s: float) -> int:
        """Move the viewer to the frame nearest ``time_s`` and select the epoch there."""
        frame = self.frame_of_time(time_s)
        self.viewer.dims.set_current_step(0, frame)
        self._select(cv.epoch_at(self.epochs, time_s), jump=False)
        return frame

    def on_strip_click(self, x: float) -> int:
        """Handle a click at pixel ``x`` of the ethogram strip; returns the new frame."""
        return self.jump_to_time(self.strip.time_at_x(x))

    # -- epochs
    def _fill_table(self) -> None:
        ep = self.epochs
        self.table.blockSignals(True)
        self.table.setRowCount(len(ep))
        for i, r in enumerate(ep.itertuples(index=False)):
            phase = "" if r.phase is None or (isinstance(r.phase, float) and np.isnan(r.phase)) else str(r.phase)
            was = str(r.original_state) if bool(r.corrected) else ""
            cells = [str(r.state), f"{r.start_s:.2f}", f"{r.end_s:.2f}", f"{r.end_s - r.start_s:.2f}", phase, was]
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if j == 0:
                    item.setBackground(_qcolor(cv.STATE_COLOURS.get(str(r.state), "#ffffff"), 110))
                self.table.setItem(i, j, item)
        self.table.blockSignals(False)

    def _on_table_selection(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self._select(rows[0].row(), jump=True)

    def select_epoch(self, index: int | None) -> None:
        """Select epoch ``index`` (row of :attr:`epochs`) and move the viewer to its start."""
        self._select(index, jump=True)

    @property
    def selected_epoch(self) -> pd.Series | None:
        i = self.strip.selected
        return None if i is None or i >= len(self.epochs) else self.epochs.iloc[i]

    def _select(self, index: int | None, *, jump: bool = False) -> None:
        self.strip.selected = index
        self.strip.update()
        for b in self.relabel_buttons.values():
            b.setEnabled(index is not None)
        if index is None:
            self.epoch_label.setText("select an epoch (click the ethogram or the table)")
            return
        r = self.epochs.iloc[index]
        text = (f"{self.fish}: <b>{r['state']}</b> {r['start_s']:.2f}–{r['end_s']:.2f} s "
                f"({r['end_s'] - r['start_s']:.2f} s)")
        if bool(r.get("corrected", False)):
            text += f" — corrected, classifier said {r['original_state']}"
        self.epoch_label.setText(text)
        if self.table.currentRow() != index:
            self.table.blockSignals(True)
            self.table.selectRow(index)
            self.table.blockSignals(False)
        if jump:
            frame = int(r["start_frame"]) if "start_frame" in r and pd.notna(r["start_frame"]) \
                else self.frame_of_time(float(r["start_s"]))
            self.viewer.dims.set_current_step(0, frame)

    def relabel(self, state: str) -> pd.DataFrame:
        """Relabel the selected epoch as ``state`` (active, passive, exclude) or ``revert`` it.

        Saves ``corrections.csv`` in the trial folder at once (atomically) and returns the
        corrections table.
        """
        r = self.selected_epoch
        if self.trial is None or r is None:
            raise FishtrackError("no epoch selected; click the ethogram first")
        index = self.strip.selected
        corr = self.trial.corrections if self.trial.corrections is not None else corr_mod.empty_corrections()
        if state == "revert":
            corr = corr_mod.remove_correction(corr, fish=self.fish, start_s=float(r["start_s"]),
                                              end_s=float(r["end_s"]))
        else:
            corr = corr_mod.add_correction(corr, fish=self.fish, start_s=float(r["start_s"]),
                                           end_s=float(r["end_s"]), state=state,
                                           original_state=str(r["original_state"]))
        path = corr_mod.save_corrections(corr, self.trial.folder)
        self.trial.corrections = corr
        self.status.setText(f"saved {path.name}: {len(corr)} correction(s)")
        self.epochs = cv.fish_epochs(self.trial, self.fish)
        self.strip.epochs = self.epochs
        self._fill_table()
        self._select(index)
        self._recolour_layers(float(r["start_s"]), float(r["end_s"]))
        self.trial_label.setText(self.trial_label.text().rsplit(",", 1)[0] + f", {len(corr)} corrections")
        return corr

    def _recolour_layers(self, start_s: float, end_s: float) -> None:
        """Show corrected states in the tracks and heads layers of this trial."""
        tr = self.trial
        rows = tr.tracks[tr.tracks["fish"] == self.fish]
        if "state" not in rows.columns:
            return
        fixed = corr_mod.apply_corrections(rows[["fish", "time_s", "state", "frame"]],
                                           tr.corrections[tr.corrections["fish"] == self.fish])
        f0, f1 = self.frame_of_time(start_s), self.frame_of_time(end_s)
        sel = fixed[(fixed["frame"] >= f0) & (fixed["frame"] <= f1)]
        by_frame = pd.Series(cv.state_codes(sel["state"]), index=sel["frame"].to_numpy())
        folder = str(tr.folder)
        for layer in self.viewer.layers:
            if layer.metadata.get("fishtrack_folder") != folder:
                continue
            try:
                if layer.name == "tracks" and "state_code" in layer.features:
                    fish_ix = tr.fish.index(self.fish)
                    d = layer.data
                    m = (d[:, 0] == fish_ix) & np.isin(d[:, 1], by_frame.index.to_numpy())
                    feats = layer.features.copy()
                    codes = by_frame.reindex(d[m, 1].astype(np.int64)).to_numpy()
                    feats.loc[m, "state_code"] = codes
                    feats.loc[m, "state"] = cv.state_colour_values(codes)
                    layer.features = feats
                    layer.color_by = "state"
                    layer.refresh()
                elif layer.name == "heads" and "fish" in layer.features:
                    d = layer.data
                    m = (layer.features["fish"].to_numpy() == self.fish) & np.isin(d[:, 0], by_frame.index.to_numpy())
                    feats = layer.features.copy()
                    codes = by_frame.reindex(d[m, 0].astype(np.int64)).to_numpy()
                    st = feats["state"].astype(object).to_numpy()
                    st[m] = np.asarray(cv.STATE_NAMES, object)[codes]
                    feats["state"] = pd.Categorical(st, categories=list(cv.STATE_NAMES))
                    layer.features = feats
                    layer.refresh_colors()
            except Exception as err:  # noqa: BLE001 - colouring is cosmetic; never lose a save
                self.status.setText(f"{self.status.text()} (layer {layer.name} not recoloured: {err})")

    def closeEvent(self, event):  # noqa: N802 - Qt API
        self._disconnect()
        super().closeEvent(event)

    def _disconnect(self) -> None:
        try:
            self.viewer.dims.events.current_step.disconnect(self._on_step)
            self.viewer.layers.events.inserted.disconnect(self._on_layer_inserted)
        except Exception:  # noqa: BLE001
            pass
