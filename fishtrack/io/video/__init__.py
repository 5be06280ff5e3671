"""Streaming video sources: containers, TIFF stacks and image folders, read as 8-bit grey.

``open_video(path, crop=None, fps=None)`` returns a :class:`VideoSource`::

    with open_video("run1.avi", crop=(0, 0, 512, 512)) as src:
        print(src.meta.n_frames, src.meta.fps)
        for chunk in src.chunks(64):
            chunk.indices, chunk.times, chunk.frames   # int64 (N,), float64 (N,), uint8 (N, H, W)
        background = np.median(src.sample(np.linspace(0, len(src) - 1, 50).astype(int)), axis=0)

Formats
-------
* Containers read with PyAV (FFmpeg): AVI (MJPG, raw, FFV1, ...), MP4/MOV/M4V, MKV, and anything
  else FFmpeg can demux and decode (H.264, H.265, ...).
* Multi-page TIFF stacks (``.tif``/``.tiff``, tifffile): every page is one frame.
* Folders of images (``.png .tif .tiff .jpg .jpeg .bmp``), in natural sort order
  (``frame_2`` before ``frame_10``, natsort); hidden files are ignored.

Grey conversion (documented rules, all tested)
----------------------------------------------
* YUV video: the luma plane is used directly (no colour conversion is computed). Limited-range
  ("TV", 16-235) luma is expanded to 0-255 with ``floor((Y - 16) * 255 / 219 + 0.5)`` clipped --
  bit-identical to FFmpeg's ``gray`` conversion (``to_ndarray(format="gray")``) and within 2 grey
  levels of OpenCV's BGR->grey; full-range (``yuvj*``, MJPEG) luma is used as is.
  Grey video (``gray``) is used as is. Anything else (RGB, palette, >8-bit YUV) goes through
  FFmpeg's ``gray`` conversion (``VideoFrame.to_ndarray(format="gray")``).
* Colour images and TIFF pages: ITU-R BT.601 luma (``cv2.cvtColor`` ``*2GRAY``); alpha is dropped.
* 16-bit (and float) TIFF/PNG: linear min..max scaling with one rule for the whole source, so that
  every frame is scaled identically (background subtraction depends on that). ``lo``/``hi`` are
  the minimum and maximum grey value of up to 16 frames spread evenly over the source (always
  including the first and the last); then ``v8 = floor((v - lo) * 255 / (hi - lo) + 0.5)``,
  clipped to 0..255 (values outside the sampled range saturate). ``meta.grey_rule`` states the
  numbers used.

Frames, times and counts
------------------------
Frame numbers are 0-based positions in presentation order of the frames the file holds, and are
never renumbered: a frame that cannot be decoded is simply absent from the chunk
(``chunk.indices`` skips it) and a :class:`DamageRecord` says why. Frames that the container's
own index lists but that cannot be read (an AVI chunk with a damaged header), and frames lost at
a cut-off end between frames that are still present (B-frames are stored after the frame that
follows them), keep their slots, so every frame after them keeps its number. ``timestamps[i]``
is the presentation time of frame ``i`` in seconds from the first frame, taken from the
container's pts (variable frame rate and dropped camera frames keep their real times). With
``fps=`` the container's times are replaced by ``i / fps`` (and timestamp gaps are no longer
reported). For containers the exact frame count and every pts come from one demux-only pass over
the packets (no decoding; it reads the whole file once, typically well under 1 % of the decode
time: ~100-200 thousand packets/s from a warm page cache). The pass runs lazily on the first use
of ``meta``, ``timestamps``, ``len()``, ``damage`` or any read, and is cached (about 40 bytes
per frame, e.g. 14 MB for one hour at 100 fps). Packets without pts
use their dts; if a stream has neither (raw elementary streams), frames are numbered in decode
order and times come from the packet durations or, failing that, from the nominal rate. TIFF
stacks count pages and image folders count files; they carry no frame rate, so ``meta.fps`` and
the timestamps are NaN unless ``fps=`` is given (ImageJ TIFFs with ``finterval`` excepted). In a
folder whose file names end in a frame counter (``img_0007.png``) with gaps, the counter gives the
times (``(counter - first counter) / fps``) and each gap is reported as ``missing_frames``.

Chunks, random access and cost
------------------------------
Decoded pictures are copied (and range-expanded) straight from FFmpeg's luma plane into
preallocated chunk arrays, which are recycled once the consumer has dropped every reference to
them. ``chunks(n)`` decodes in a background thread (PyAV releases the GIL; FFmpeg decodes with its
own frame threads) ``prefetch`` chunks ahead of the consumer, so decoding overlaps the consumer's
processing; memory is bounded by about ``(prefetch + 3) * n * H * W`` bytes whatever the video
length. A frame-threaded decoder that meets a damaged packet can drop the neighbouring frames
in flight without a word, so when a wanted frame does not come out its GOP is decoded again
single-threaded before the frame is declared undecodable. Chunk ``k`` holds the frames whose
indices lie in ``[start + k*n, start + (k+1)*n)``; a window with no decodable frame yields no
chunk.

Random access (``read``, ``read_range``, ``sample``) seeks to the last keyframe at or before the
requested frame (in both presentation and decode order) and decodes forward, matching decoded
frames to frame numbers by their pts -- never by counting after a seek, so H.264/H.265 with
B-frames and open GOPs are handled. A random read therefore costs up to one GOP of decoding
(intra-only codecs such as MJPG, FFV1, raw, TIFF and image files cost one frame). ``sample``
sorts the requested frames and decodes forward instead of seeking when the next requested frame is
in the same GOP or at most 2 frames ahead (a seek costs about as much as decoding one frame).
Demuxers differ in what a seek timestamp means (MP4 and Matroska look up presentation times,
others decode times; with B-frames a keyframe's dts lies before its pts), so the keyframe's pts
is tried first, then its dts, and the kind that lands exactly on the keyframe is remembered for the
file. If a seek lands after the wanted keyframe it is retried from an earlier keyframe, and after
three failures the file is decoded from the start. Streams without timestamps cannot seek: every
random read decodes from the first frame.

Opening a container costs about as much as decoding a frame or two (FFmpeg probes the stream), so
the handle opened by ``open_video`` is reused for the index pass and then by the first reader.

Damaged input
-------------
A truncated or partly corrupt file yields every frame that can be decoded; what was lost is
appended to ``src.damage`` (``DamageRecord(frame, kind, detail)``) and reported by a
:class:`DamagedVideoWarning` naming the file and the frames, once per record, at the end of the
read that found it. Kinds:

* ``truncated`` -- the file ends before the length its header declares; ``frame`` is the first
  frame number past the last one in the file (``n_frames``), or a packet cut short by the end.
* ``corrupt_packet`` -- the demuxer flagged a packet as damaged or could not parse part of the
  file, or the decoder reported errors in a picture. Such frames are not returned: a picture
  known to be wrong would mislead the tracker. (Frames that depend on a damaged one until the next
  keyframe may carry artefacts the decoder does not report.)
* ``undecodable_frame`` -- the decoder produced no picture for this frame (it is skipped), or an
  image file in a folder cannot be read (skipped, not fatal).
* ``missing_frames`` -- frames absent from the file: a gap in the timestamps longer than 1.5
  nominal frame intervals (dropped camera frames), a packet listed in the container index whose
  data cannot be read, a gap in an image folder's frame counter, or a part of the file after
  unreadable data.

An MP4 cut off inside a box (fragmented MP4 from robust recorders) is read up to its last complete
box. Not recovered: data the container does not index that follows unreadable bytes (e.g. a
damaged Matroska cluster ends the stream there; reported as ``missing_frames``).

Every retry loop is bounded, so a damaged file never hangs the reader. What cannot be read at all
raises :class:`fishtrack.errors.VideoError` with a one-line message naming the file: missing,
empty or unreadable file, not a video, no video stream, unsupported codec, an MP4/MOV whose index
(``moov`` atom) is missing because the recording was cut off, a folder without images, a TIFF
whose pages change shape, or an image in a folder whose size differs from the first image (fatal:
frames of different sizes cannot be tracked together). FFmpeg's own exceptions never escape.
"""


from fishtrack.io.video.folder import IMAGE_SUFFIXES
from fishtrack.io.video.records import (
    Chunk,
    DamagedVideoWarning,
    DamageKind,
    DamageRecord,
    VideoMeta,
)
from fishtrack.io.video.source import VideoSource, open_video
from fishtrack.io.video.tiff import TIFF_SUFFIXES

__all__ = [
    "open_video",
    "VideoSource",
    "VideoMeta",
    "Chunk",
    "DamageRecord",
    "DamageKind",
    "DamagedVideoWarning",
    "IMAGE_SUFFIXES",
    "TIFF_SUFFIXES",
]
