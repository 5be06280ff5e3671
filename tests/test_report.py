"""Experiment report: self-contained HTML, figure content, and the page as a user sees it in a
headless Chromium (skipped where Chromium is not installed)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pandas as pd
import pytest
from fixtures_experiment import (
    fake_arenas,
    fake_trial,
    plate_experiment,
    write_fake_video,
    write_manifest,
)

from fishtrack.config import Phase
from fishtrack.experiment import run_experiment
from fishtrack.report import main_phase, metric_differences, metric_values
from fishtrack.report.figures import STATE_COLOURS, estimation_figure, ethogram_figure, mean_ci

pytestmark = pytest.mark.timeout(180)

ODD_GROUP = "ket<b>amine</b> & co"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A run whose manifest has an excluded fish and a group name that needs escaping."""
    root = tmp_path_factory.mktemp("report")
    e = plate_experiment(root / "in")
    man = pd.read_csv(e["manifest"])
    man["group"] = man["group"].replace("ketamine", ODD_GROUP)
    man["exclude"] = ["", "", "", "", "", "", "dead"]
    write_fake_video(root / "in/videos/broken.mp4", {"A1": []}, fail="fishtrack")
    rows = [*man.to_dict("records"), {"video": "videos/broken.mp4", "arena": "A1",
                                      "group": "control"}]
    write_manifest(e["manifest"], rows)
    out = root / "out"
    res = run_experiment(e["manifest"], e["config"], out, trial_fn=fake_trial, arenas_fn=fake_arenas)
    html = (out / "report.html").read_text(encoding="utf-8")
    return SimpleNamespace(out=out, res=res, html=html, e=e)


def _embedded_pngs(html: str) -> dict[str, bytes]:
    figs = re.findall(r'<figure id="fig-([^"]+)"><img alt="[^"]*" src="data:image/png;base64,([^"]+)"', html)
    return {name: base64.b64decode(b64) for name, b64 in figs}


def test_report_is_self_contained(report):
    html = report.html
    # no external resource of any kind: every src is a data URI, every href an anchor
    srcs = re.findall(r'\bsrc\s*=\s*"([^"]*)"', html)
    hrefs = re.findall(r'\bhref\s*=\s*"([^"]*)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert hrefs and all(h.startswith("#") for h in hrefs)
    assert "<link" not in html and "<script" not in html and "@import" not in html
    assert "url(" not in html
    # every embedded figure is also written as PNG (same bytes) and SVG (valid XML)
    pngs = _embedded_pngs(html)
    assert len(pngs) == len(srcs)
    expected = {"detection_rate", "ethogram", "passive_fraction_bins", "survival_futility",
                *(f"estimation_{m}" for m in ("passive_fraction", "latency_to_first_passive_s",
                                              "n_passive_epochs", "bout_rate_hz",
                                              "mean_bout_vigour_rad_s")),
                # assay analyses present in this experiment (issue 16)
                "effort_n_bouts_before_giveup", "effort_effort_before_giveup_rad",
                "effort_curve", "struggle", "sensitivity", "onset_locked"}
    behaviour_qc = {n for n in pngs if n.startswith("behaviour_qc_")}  # one per trial
    assert behaviour_qc
    expected |= behaviour_qc
    assert set(pngs) == expected
    for name, data in pngs.items():
        assert (report.out / "figures" / f"{name}.png").read_bytes() == data
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape[0] > 100 and img.shape[1] > 100
        root = ET.parse(report.out / "figures" / f"{name}.svg").getroot()
        assert root.tag.endswith("svg")
    assert sorted(p.name for p in (report.out / "figures").iterdir()) == sorted(
        [f"{n}.png" for n in expected] + [f"{n}.svg" for n in expected])


def test_report_content(report):
    html = report.html
    assert ODD_GROUP not in html and "ket&lt;b&gt;amine&lt;/b&gt; &amp; co" in html
    for section in ("Summary", "Quality control", "Ethogram", "Metrics in open-loop phases",
                    "Give-up curves", "Passive fraction over time", "Statistics",
                    "Configuration and versions"):
        assert f">{section}" in html, section
    assert "Excluded fish" in html and "dead" in html
    assert "not in the manifest" in html  # plate2/B2 was tracked but not analysed
    assert len(report.res.failures) == 1
    assert re.search(r'class="bad">Trial <b>broken</b>', html)  # the failed trial is named
    assert "reference_group: control" in html  # the config
    assert re.search(r"<td>pandas</td><td>[0-9.]+</td>", html)  # versions
    # what the bout signal can see: these trials' bouts came from the tail (issue 17)
    pf = pd.read_csv(report.out / "per_fish.csv")
    assert (pf["bout_signal"] == "tail").all() and not pf["in_place_blind"].any()
    assert "were scored from a signal that sees struggles in place" in html


# ------------------------------------------------------------------------------------------
# figures


def test_ethogram_raster_shows_the_states():
    fish = pd.DataFrame({"fish_id": ["c1", "k1", "c2"], "group": ["control", "ket", "control"],
                         "exclude": [False, False, True]})
    states = {"c1": ["active", "passive", "passive", "unknown"],
              "c2": ["passive", "active", "active", "active"],
              "k1": ["passive", "passive", "excluded", "active"]}
    eth = pd.DataFrame([{"fish_id": f, "bin_start_s": 0.5 * i, "state": s}
                        for f, ss in states.items() for i, s in enumerate(ss)])
    eth = eth[~((eth["fish_id"] == "c2") & (eth["bin_start_s"] == 1.5))]  # a bin without data
    fig = ethogram_figure(eth, fish, bin_s=0.5, reference="control",
                          protocol=[Phase(name="ol", kind="open_loop", start_s=0, end_s=2)])
    img = fig.axes[0].images[0].get_array()
    codes = {s: i + 1 for i, s in enumerate(STATE_COLOURS)}
    # rows: reference group first, excluded fish last in their group
    want = np.array([[codes[s] for s in states[f]] for f in ("c1", "c2", "k1")], float)
    want[1, 3] = 0  # no data
    np.testing.assert_array_equal(np.asarray(img), want)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["c1", "c2 (excl.)", "k1"]


def test_mean_ci():
    m, lo, hi = mean_ci(np.full(5, 2.5))
    assert (m, lo, hi) == (2.5, 2.5, 2.5)
    rng = np.random.default_rng(1)
    v = rng.normal(10, 2, 400)
    m, lo, hi = mean_ci(v, n_boot=4000)
    half = 1.96 * v.std(ddof=1) / np.sqrt(v.size)
    assert m == pytest.approx(v.mean())
    assert lo == pytest.approx(m - half, abs=0.15 * half)
    assert hi == pytest.approx(m + half, abs=0.15 * half)
    assert np.isnan(mean_ci([1.0])[1]) and np.isnan(mean_ci([])[0])


def test_estimation_plot_draws_every_fish_and_the_difference():
    data = pd.DataFrame({"group": ["control"] * 4 + ["ket"] * 3,
                         "value": [0.1, 0.2, 0.2, np.nan, 0.5, 0.7, 0.9]})
    diffs = pd.DataFrame({"group": ["ket"], "difference": [0.53], "ci_low": [0.3], "ci_high": [0.8]})
    fig = estimation_figure(data, metric="passive_fraction", reference="control", differences=diffs)
    ax, ax2 = fig.axes
    pts = [c.get_offsets() for c in ax.collections]
    assert [len(p) for p in pts] == [3, 3]  # NaN dropped
    np.testing.assert_allclose(sorted(pts[1][:, 1]), [0.5, 0.7, 0.9])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["control\nn=4", "ket\nn=3"]
    ys = sorted(float(y) for line in ax2.get_lines() for y in np.atleast_1d(line.get_ydata()))
    assert 0.3 in ys and 0.8 in ys and 0.53 in ys


def test_png_and_svg_of_a_figure_share_one_layout():
    """The report writes each figure as PNG and SVG; the SVG is drawn in the layout the
    PNG's draw found (issue 15: constrained layout ran twice per figure, ~half the SVG's
    time), the PNG unchanged."""
    from fishtrack.report.figures import figure_bytes, figure_png_svg

    data = pd.DataFrame({"group": ["control"] * 4 + ["ket"] * 3,
                         "value": [0.1, 0.2, 0.2, 0.3, 0.5, 0.7, 0.9]})
    diffs = pd.DataFrame({"group": ["ket"], "difference": [0.53], "ci_low": [0.3],
                          "ci_high": [0.8]})

    def fig():
        return estimation_figure(data, metric="passive_fraction", reference="control",
                                 differences=diffs)

    def boxes(f):
        return np.array([ax.get_position().bounds for ax in f.axes])

    ref = fig()
    ref_png = figure_bytes(ref, "png")
    laid_out = boxes(ref)
    figure_bytes(ref, "svg")  # drawn a second time, the layout engine runs again
    assert np.abs(boxes(ref) - laid_out).max() > 1e-5  # (so the check below can fail)
    f = fig()
    png, svg = figure_png_svg(f)
    assert png == ref_png
    np.testing.assert_array_equal(boxes(f), laid_out)  # the SVG in the PNG's layout
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert float(root.get("width").removesuffix("pt")) == pytest.approx(f.get_figwidth() * 72)
    assert len(root.findall(".//{http://www.w3.org/2000/svg}path")) > 20


def test_metric_selection_uses_pooled_open_loop_rows():
    pf = pd.DataFrame({
        "fish_id": ["a", "a", "a", "b", "b", "b"], "group": ["control"] * 3 + ["ket"] * 3,
        "phase": ["ol1", "ol2", "open_loop"] * 2, "passive_fraction": [0.1, 0.3, 0.2, 0.5, 0.7, 0.6]})
    assert main_phase(pf) == "open_loop"
    v = metric_values(pf, "passive_fraction", "open_loop")
    assert list(v["value"]) == [0.2, 0.6]
    assert main_phase(pf.assign(phase="all")) == "all"
    gs = pd.DataFrame({"metric": ["passive_fraction"] * 2, "phase": ["ol1", "open_loop"],
                       "group": ["ket", "ket"], "diff": [0.4, 0.4], "ci_low": [0.1, 0.2],
                       "ci_high": [0.7, 0.6]})
    d = metric_differences(gs, "passive_fraction", "open_loop")
    assert d[["ci_low", "ci_high"]].to_numpy().tolist() == [[0.2, 0.6]]


# ------------------------------------------------------------------------------------------
# the page as a user sees it: headless Chromium


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


_CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var out = {
    n_images: imgs.length,
    not_loaded: imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                    .map(function (i) { return i.alt || i.src.slice(0, 60); }),
    sizes: imgs.map(function (i) { return [i.naturalWidth, i.naturalHeight]; }),
    resources: performance.getEntriesByType('resource').map(function (r) { return r.name; })
                 .filter(function (n) { return n.indexOf('data:') !== 0; }),
    external: Array.prototype.slice.call(document.querySelectorAll(
                'link[href], script[src], iframe, object, embed, video, audio, source'))
                .map(function (e) { return e.outerHTML.slice(0, 80); })
  };
  var pre = document.createElement('pre');
  pre.id = 'fishtrack-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _chromium_args(exe: str, profile: Path) -> list[str]:
    return [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}"]


def check_in_chromium(html_path: Path, tmp: Path) -> tuple[dict, list[str]]:
    """Open a page in headless Chromium: (image/resource check, console messages)."""
    exe = _chromium()
    assert exe is not None
    probe = tmp / "probe.html"  # a copy in another folder: nothing may come from next to it
    text = html_path.read_text(encoding="utf-8")
    probe.write_text(text.replace("</body>", _CHECK + "</body>"), encoding="utf-8")
    cmd = _chromium_args(exe, tmp / "profile") + [
        "--enable-logging=stderr", "--v=0", "--virtual-time-budget=15000", "--dump-dom",
        probe.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="fishtrack-check">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"Chromium did not run the page check:\n{proc.stderr[-2000:]}"
    check = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]
    return check, console


needs_chromium = pytest.mark.skipif(_chromium() is None, reason="Chromium not installed")


@needs_chromium
def test_report_in_chromium(report, tmp_path):
    n_img = len(_embedded_pngs(report.html))
    check, console = check_in_chromium(report.out / "report.html", tmp_path)
    assert check["n_images"] == n_img > 0
    assert check["not_loaded"] == []
    assert all(w > 100 and h > 100 for w, h in check["sizes"])
    assert check["resources"] == [] and check["external"] == []  # nothing fetched
    assert console == []
    # screenshot of the report as a user sees it
    shot = report.out / "report_screenshot.png"
    cmd = _chromium_args(_chromium(), tmp_path / "profile2") + [
        f"--screenshot={shot}", "--window-size=1280,2400", "--virtual-time-budget=15000",
        (report.out / "report.html").as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (2400, 1280)
    assert img.std() > 20  # not a blank page


@needs_chromium
def test_chromium_check_catches_broken_pages(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><img alt="gone" src="missing.png">'
                   '<img alt="web" src="https://example.invalid/x.png">'
                   '<link rel="stylesheet" href="style.css">'
                   "<script>undefined_function();</script></body></html>", encoding="utf-8")
    check, console = check_in_chromium(bad, tmp_path)
    assert check["not_loaded"] == ["gone", "web"]
    assert check["resources"] == ["https://example.invalid/x.png"]
    assert len(check["external"]) == 1 and "style.css" in check["external"][0]
    assert any("undefined_function" in ln for ln in console)


# ------------------------------------------------------------------------------------------
# issue 13: the headline, phase-aligned bins, the latency panel


def test_summary_opens_with_the_primary_endpoint_sentence(report):
    html = report.html
    m = re.search(r'<h2>Summary</h2>\s*<div class="primary"><p><b>([^<]*)</b>', html)
    assert m, "the summary does not open with the primary endpoint"
    text = m.group(1)
    r = report.res.group_stats.query("role == 'primary'").iloc[0]
    assert text.startswith("Primary endpoint, passive fraction in the open-loop phases (pooled)")
    assert f"difference {float(r['diff']):.3g}" in text
    assert "95% CI" in text  # here unbounded: 2 vs 4 fish cannot reach p <= 0.05
    assert "No confidence interval in this report is adjusted for multiplicity" in html
    assert re.search(r"exact permutation test p = [0-9.]+", text)
    assert "secondary" in html and "exploratory" in html  # every other row is labelled


def _two_protocol_bins(bin_s=5.0):
    """Video a: closed loop 0-20 s, open loop 20-40 s; video b: 0-10 s and 10-30 s. Every fish
    swims in closed loop and is passive in open loop."""
    from fishtrack.stats import binned_passive_fraction

    parts = []
    for video, cl_end, ol_end in (("a", 20.0, 40.0), ("b", 10.0, 30.0)):
        proto = [Phase(name="cl", kind="closed_loop", start_s=0, end_s=cl_end),
                 Phase(name="ol", kind="open_loop", start_s=cl_end, end_s=ol_end)]
        t = np.arange(0, ol_end, 0.5)
        tracks = pd.concat([pd.DataFrame({"frame": np.arange(len(t)), "time_s": t,
                                          "arena": a, "fish": a,
                                          "state": np.where(t < cl_end, "active", "passive")})
                            for a in ("A1", "A2", "B1", "B2")], ignore_index=True)
        fish = pd.DataFrame({"arena": ["A1", "A2", "B1", "B2"], "fish_id": [
            f"{video}{a}" for a in ("A1", "A2", "B1", "B2")],
            "group": ["control", "ket", "ket", "control"]})
        parts.append(binned_passive_fraction(tracks, proto, bin_s, fish))
    return pd.concat(parts, ignore_index=True), proto


def test_binned_passive_fraction_is_aligned_to_phase_onset():
    from fishtrack.report.figures import binned_figure

    bins, proto = _two_protocol_bins()
    ol = bins[bins["phase"] == "ol"]
    np.testing.assert_allclose(sorted(set(ol["time_in_phase_s"])), [0, 5, 10, 15])
    fig = binned_figure(bins, protocol=proto, reference="control")
    top = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    assert set(top) == {"cl", "ol"}
    # by time since onset, open loop is passive and closed loop active in both videos (pooled by
    # absolute time, a's closed loop 10-20 s fell into b's open loop: a bin at 0.5)
    for name, want in (("cl", 0.0), ("ol", 1.0)):
        lines = [ln for ln in top[name].get_lines() if len(ln.get_xdata())]
        assert len(lines) == 2  # one per group
        for ln in lines:
            np.testing.assert_allclose(ln.get_ydata(), want)
    # n per bin: 2 fish per group in both videos; closed loop 10-20 s exists only in video a
    strip = [ax for ax in fig.axes if ax.get_label() == "n_per_bin:cl"][0]
    for ln in strip.get_lines():
        x, n = np.asarray(ln.get_xdata()), np.asarray(ln.get_ydata())
        np.testing.assert_allclose(n[x < 10], 4)
        np.testing.assert_allclose(n[x > 10], 2)


def test_latency_panel_plots_the_restricted_mean_not_the_naive_mean():
    from fishtrack.report import _latency_estimation
    from fishtrack.stats import rmst

    # heavy censoring in the control group: the naive mean treats "at least 30 s" as 30 s
    vals = pd.DataFrame({"fish_id": [f"f{i}" for i in range(10)],
                         "group": ["control"] * 5 + ["ket"] * 5,
                         "value": [30, 30, 30, 12, 20, 5, 8, 10, 30, 6.0],
                         "event": [False, False, False, True, True, True, True, True, False,
                                   True]})
    diffs = pd.DataFrame({"group": ["ket"], "difference": [-9.0], "ci_low": [-15.0],
                          "ci_high": [-2.0]})
    fig, tau = _latency_estimation(vals, "control", diffs, 500, 0)
    assert tau == 30.0
    left, right = fig.axes
    marks = {ln.get_xdata()[0].round(): ln.get_ydata()[0] for ln in left.get_lines()
             if ln.get_marker() == "s"}
    for i, g in enumerate(["control", "ket"]):
        sub = vals[vals["group"] == g]
        want = rmst(sub["value"].to_numpy(), sub["event"].to_numpy(), tau)
        assert marks[round(i + 0.36)] == pytest.approx(want)
    # censored fish are open circles
    hollow = [c for c in left.collections if c.get_facecolor().size and
              np.allclose(c.get_facecolor()[0][:3], 1.0)]
    assert sum(len(c.get_offsets()) for c in hollow) == 4
    # the right panel is the table's RMST difference
    pts = [ln for ln in right.get_lines() if ln.get_marker() == "o"]
    assert pts[0].get_ydata()[0] == -9.0


# ------------------------------------------------------------------------------------------
# issue 16: the assay analyses' sections (dose, time course, recovery, co-recorded signal)

ASSAY_PROTOCOL = [{"name": "baseline", "kind": "closed_loop", "start_s": 0.0, "end_s": 6.0},
                  {"name": "futility", "kind": "open_loop", "start_s": 6.0, "end_s": 15.0},
                  {"name": "recovery", "kind": "closed_loop", "start_s": 15.0, "end_s": 20.0}]


@pytest.fixture(scope="module")
def assay_report(tmp_path_factory):
    """Three plates (clutches), vehicle and three ketamine doses, tested 1, 24 or 48 h after
    treatment (one plate each); the higher the dose, the earlier and longer the give-up; a
    dF/F signal aligned to plate 1 that steps up by 2 at every give-up."""
    from fishtrack.align import align_trial
    from fishtrack.experiment import compute_stats

    root = tmp_path_factory.mktemp("assay_report")
    rows = []
    doses = {"A1": 0, "A2": 1, "A3": 3, "B1": 0, "B2": 10, "B3": 3}
    for k, (plate, hours) in enumerate((("p1", 1), ("p2", 24), ("p3", 48))):
        wells = {}
        for arena, dose in doses.items():
            onset = round(12.0 - 1.5 * np.log10(1 + dose) - 0.3 * k, 1)  # on the frame grid
            wells[arena] = [(onset, min(onset + 2.5 + 0.4 * dose, 20.0))]
        write_fake_video(root / "in/videos" / f"{plate}.mp4", wells)
        for arena, dose in doses.items():
            rows.append({"video": f"videos/{plate}.mp4", "arena": arena,
                         "group": "control" if dose == 0 else "ketamine", "dose": dose,
                         "clutch": plate, "time_since_treatment_h": hours})
    manifest = write_manifest(root / "in/manifest.csv", rows)
    config = {"protocol": ASSAY_PROTOCOL, "stats": {"n_bootstrap": 200, "n_permutations": 200,
                                                    "bin_s": 4.0, "event_pre_s": 5,
                                                    "event_post_s": 5}}
    out = root / "out"
    run_experiment(manifest, config, out, trial_fn=fake_trial, arenas_fn=fake_arenas,
                   report=False)
    t = np.arange(0, 20, 0.05)
    sig = {"time": t - 2.0}  # the signal's clock starts 2 s before the video's
    for arena, dose in doses.items():
        onset = round(12.0 - 1.5 * np.log10(1 + dose), 1)
        sig[arena] = 1.0 + 2.0 * ((t >= onset) & (t < min(onset + 2.5 + 0.4 * dose, 20.0)))
    pd.DataFrame(sig).to_csv(root / "dff.csv", index=False)
    align_trial(out, root / "dff.csv", offset_s=2.0, trial="p1")
    res = compute_stats(out)
    html = (out / "report.html").read_text(encoding="utf-8")
    return SimpleNamespace(out=out, res=res, html=html)


def test_assay_sections_and_tables(assay_report):
    r, html = assay_report, assay_report.html
    for sid in ("effort", "struggle", "recovery", "sensitivity", "dose", "timecourse", "onset"):
        assert f'<section id="{sid}">' in html, sid
    pngs = _embedded_pngs(html)
    for name in ("dose_response", "time_course", "onset_locked", "sensitivity", "struggle",
                 "recovery_recovery", "effort_curve"):
        assert name in pngs, name
    for name in pngs:  # every figure also as SVG
        assert ET.parse(r.out / "figures" / f"{name}.svg").getroot().tag.endswith("svg")
    wide = pd.read_csv(r.out / "per_fish_wide.csv")
    assert len(wide) == 18 and wide["fish_id"].is_unique
    assert {"passive_fraction__futility", "n_bouts_before_giveup__open_loop",
            "recovery_s__recovery", "dose", "clutch"} <= set(wide.columns)
    pf = r.res.per_fish.set_index(["fish_id", "phase"])
    for fid in ("p1:A1", "p3:B2"):
        assert wide.set_index("fish_id").loc[fid, "passive_fraction__futility"] == \
            pytest.approx(pf.loc[(fid, "futility"), "passive_fraction"])
    dose = pd.read_csv(r.out / "dose_response.csv").set_index("metric")
    assert dose.loc["passive_fraction", "n_doses"] == 4
    assert dose.loc["passive_fraction", "slope"] > 0  # more passive with dose
    assert dose.loc["passive_fraction", "p_value"] < 0.05
    tc = pd.read_csv(r.out / "time_course_stats.csv")
    assert set(tc["test_kind"]) == {"groups at one time point", "group x time interaction"}
    locked = pd.read_csv(r.out / "onset_locked.csv")
    dff = locked[(locked["signal"] == "signal:dff") & (locked["event"] == "give-up onset")]
    assert dff.loc[dff["t_rel_s"] < 0, "mean"].to_numpy() == pytest.approx(1.0)
    assert dff.loc[(dff["t_rel_s"] >= 0) & (dff["t_rel_s"] < 2), "mean"].to_numpy() == \
        pytest.approx(3.0)
    sens = pd.read_csv(r.out / "sensitivity.csv")
    assert sorted(sens["min_passive_s"].unique()) == [1.0, 2.0, 3.0, 4.0, 6.0]
    # (the fake trials' states are drawn, not derived from the bouts, so the recomputed
    # comparison at the configured threshold equals the table's only in a real run:
    # tests/test_stats_assay_e2e.py checks that)
    gs = r.res.group_stats
    main = gs[(gs["metric"] == "passive_fraction") & (gs["role"] == "primary")].iloc[0]
    at2 = sens[(sens["min_passive_s"] == 2.0) & (sens["metric"] == "passive_fraction")].iloc[0]
    assert at2["role"] == "primary" and 0 < at2["p_value"] <= 1
    assert "within 3 blocks" in main["test"]  # clutch = plate: blocked


@needs_chromium
def test_assay_report_in_chromium(assay_report, tmp_path):
    check, console = check_in_chromium(assay_report.out / "report.html", tmp_path)
    assert check["n_images"] == len(_embedded_pngs(assay_report.html))
    assert check["not_loaded"] == [] and check["resources"] == [] and console == []


def test_struggle_figure_with_a_group_without_baseline_gives_no_warning():
    # every fish of one group lacks a closed-loop baseline (NaN): no "Mean of empty slice"
    # (the CLI prints every warning to the user), that group's mean is simply not drawn
    import warnings

    from fishtrack.report.figures import struggle_figure

    pf = pd.DataFrame({"group": ["control"] * 2 + ["ketamine"] * 2,
                       "baseline_bout_rate_hz": [1.0, 2.0, np.nan, np.nan],
                       "struggle_bout_rate_hz": [2.0, 3.0, np.nan, np.nan],
                       "baseline_vigour_rad_s": [5.0, 6.0, np.nan, np.nan],
                       "struggle_vigour_rad_s": [7.0, 8.0, np.nan, np.nan]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = struggle_figure(pf, reference="control")
    means = [ln for ln in fig.axes[0].get_lines() if ln.get_marker() == "s"]
    assert np.allclose(means[0].get_ydata(), [1.5, 2.5]) and np.isnan(means[1].get_ydata()).all()
