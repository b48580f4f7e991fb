"""Synthetic moving-camera clip with known geometry, poses and depth.

The scene is a handful of textured planes seen by a pinhole camera that
translates and turns: a slanted back wall and two nearer rectangular cards that
occlude it.  Two rectangles on the wall blink (a periodic light) and one
rectangle shows texture that scrolls over time (a "changing" region, e.g. a
display or running water).  Every frame is rendered by ray casting: for each
pixel the nearest plane hit by the pixel's ray is found and its texture is
sampled bilinearly (inverse warping), so the true depth of every pixel is known
exactly.

Conventions used everywhere in this project's geometry code:

* pixel ``(row i, column j)`` has its centre at image coordinates
  ``(x, y) = (j, i)`` (so the principal point of a centred camera is
  ``((W - 1) / 2, (H - 1) / 2)``);
* camera frame: x right, y down, z forward (OpenCV);
* ``cam_from_world[t]`` is the 3 x 4 matrix ``[R | t]`` with
  ``X_cam = R @ X_world + t``;
* depth is the z coordinate in the camera frame (not the ray length), in the
  scene's length unit (metres here).

The clip is used by the tests and the benchmarks of the moving-camera stage
(SfM, plane sweep, alpha-expansion depth, z-buffer warp).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

__all__ = ["Plane", "SyntheticClip", "render_synthetic_clip", "write_mp4", "look_rotation"]


@dataclass(frozen=True)
class Plane:
    """A textured plane (or rectangle) of the synthetic scene.

    Attributes
    ----------
    origin : ndarray, shape (3,)
        A point of the plane (the centre of the rectangle), world units.
    axis_s, axis_t : ndarray, shape (3,)
        Orthonormal in-plane directions; the texture coordinates of a world
        point ``X`` are ``s = (X - origin) . axis_s`` and
        ``t = (X - origin) . axis_t``.
    half_extent : tuple of float
        Half sizes along ``axis_s`` and ``axis_t``; ``inf`` for an unbounded plane.
    texture : ndarray, shape (Ht, Wt, 3), float32 in [0, 1]
        Texture image; texel ``(0, 0)`` is at ``(s, t) = (s0, t0)``.
    texel : float
        Size of one texel in world units.
    s0, t0 : float
        Texture coordinates of texel ``(0, 0)``.
    """

    origin: np.ndarray
    axis_s: np.ndarray
    axis_t: np.ndarray
    half_extent: tuple[float, float]
    texture: np.ndarray
    texel: float
    s0: float
    t0: float

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.axis_s, self.axis_t)


@dataclass(frozen=True)
class _Region:
    """Axis-aligned rectangle in the texture coordinates of one plane."""

    plane: int
    s_range: tuple[float, float]
    t_range: tuple[float, float]
    period: float = 0.0  # frames; blinking regions only
    phase: float = 0.0  # radians; blinking regions only
    speed: float = 0.0  # texture units per frame; changing regions only
    lift: float = 0.0  # texture shown as lift + (1 - lift) texture (a bright lamp)

    def contains(self, s: np.ndarray, t: np.ndarray) -> np.ndarray:
        return (s >= self.s_range[0]) & (s <= self.s_range[1]) & (t >= self.t_range[0]) & (t <= self.t_range[1])


@dataclass
class SyntheticClip:
    """A rendered clip with its ground truth.

    Attributes
    ----------
    frames : ndarray, shape (T, H, W, 3), uint8
        RGB frames.
    K : ndarray, shape (3, 3), float64
        Shared intrinsics (pixel-centre convention of the module docstring).
    cam_from_world : ndarray, shape (T, 3, 4), float64
        True poses, ``X_cam = R X_world + t``.
    depth : ndarray, shape (T, H, W), float32
        True z-depth of every pixel, world units.
    plane_index : ndarray, shape (T, H, W), int8
        Index into :attr:`planes` of the surface seen by each pixel.
    reference_index : int
        Index of the reference frame the masks below refer to.
    blink_masks : ndarray, shape (R, H, W), bool
        Pixels of each blinking region in the reference view.
    blink_periods : ndarray, shape (R,), float64
        Period of each blinking region, frames.
    change_mask : ndarray, shape (H, W), bool
        Pixels of the changing (scrolling) region in the reference view.
    planes : list of Plane
        Scene description, for re-rendering from other cameras.
    """

    frames: np.ndarray
    K: np.ndarray
    cam_from_world: np.ndarray
    depth: np.ndarray
    plane_index: np.ndarray
    reference_index: int
    blink_masks: np.ndarray
    blink_periods: np.ndarray
    change_mask: np.ndarray
    planes: list[Plane] = field(repr=False)
    _regions: list[_Region] = field(repr=False, default_factory=list)

    @property
    def blink_mask(self) -> np.ndarray:
        """Union of :attr:`blink_masks`, shape (H, W), bool."""
        return self.blink_masks.any(axis=0)

    @property
    def static_mask(self) -> np.ndarray:
        """Reference pixels whose appearance never changes, shape (H, W), bool."""
        return ~(self.blink_mask | self.change_mask)

    @property
    def path_length(self) -> float:
        """Length of the camera-centre path, world units."""
        centres = camera_centres(self.cam_from_world)
        return float(np.linalg.norm(np.diff(centres, axis=0), axis=1).sum())

    def render(self, cam_from_world: np.ndarray, frame_time: float) -> tuple[np.ndarray, np.ndarray]:
        """Render the scene from any camera at time ``frame_time`` (frames).

        Returns ``(image (H, W, 3) uint8, depth (H, W) float32)``.
        """
        h, w = self.frames.shape[1:3]
        image, depth, _, _ = _render(self.planes, self._regions, self.K, cam_from_world, (h, w), frame_time)
        return image, depth


def camera_centres(cam_from_world: np.ndarray) -> np.ndarray:
    """Camera centres ``C = -R^T t`` of poses of shape (T, 3, 4); returns (T, 3)."""
    rot = cam_from_world[:, :, :3]
    trans = cam_from_world[:, :, 3]
    return -np.einsum("tji,tj->ti", rot, trans)


def look_rotation(yaw: float, pitch: float, roll: float = 0.0) -> np.ndarray:
    """World-from-camera rotation for yaw (about y), pitch (about x), roll (about z), radians."""
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    r_yaw = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    r_pitch = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    r_roll = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
    return r_yaw @ r_pitch @ r_roll


def _make_texture(rng: np.random.Generator, height: int, width: int, blur_sigma: float) -> np.ndarray:
    """Feature-rich, band-limited colour texture (float32 in [0, 1]).

    Multi-octave value noise plus random discs and rectangles, blurred so that
    bilinear resampling of the rendered frames stays accurate.
    """
    tex = np.zeros((height, width, 3), np.float32)
    amplitude = 0.5
    for cell in (48, 16, 6):
        gh, gw = max(2, height // cell + 2), max(2, width // cell + 2)
        grid = rng.random((gh, gw, 3)).astype(np.float32)
        tex += amplitude * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        amplitude *= 0.8
    tex /= tex.max()
    n_shapes = max(20, height * width // 300)
    for _ in range(n_shapes):
        colour = tuple(float(c) for c in rng.random(3))
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.integers(2, 9))
        if rng.random() < 0.5:
            cv2.circle(tex, (cx, cy), size, colour, -1)
        else:
            cv2.rectangle(tex, (cx, cy), (cx + size + 1, cy + int(rng.integers(2, 9))), colour, -1)
    tex = cv2.GaussianBlur(tex, (0, 0), blur_sigma)
    return np.clip(tex, 0.0, 1.0).astype(np.float32)


def _intersect(plane: Plane, centre: np.ndarray, rays: np.ndarray):
    """Ray parameter and texture coordinates of ``centre + lam * rays`` on ``plane``.

    ``rays`` has shape (3, N); returns three (N,) arrays, ``lam = inf`` on a miss.
    """
    rel = centre - plane.origin
    denom = plane.normal @ rays
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = -(rel @ plane.normal) / denom
    s = rel @ plane.axis_s + lam * (plane.axis_s @ rays)
    t = rel @ plane.axis_t + lam * (plane.axis_t @ rays)
    ok = np.isfinite(lam) & (lam > 1e-6)
    ok &= (np.abs(s) <= plane.half_extent[0]) & (np.abs(t) <= plane.half_extent[1])
    return np.where(ok, lam, np.inf), s, t


def _render(planes, regions, K, cam_from_world, shape, frame_time):
    h, w = shape
    rot = np.asarray(cam_from_world[:, :3], np.float64)
    trans = np.asarray(cam_from_world[:, 3], np.float64)
    centre = -rot.T @ trans
    jj, ii = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    pix = np.stack([jj.ravel(), ii.ravel(), np.ones(h * w)], axis=0)
    # Ray directions scaled so that their camera z component is 1: the ray
    # parameter of a hit is then its z-depth.
    rays = (rot.T @ np.linalg.inv(K)) @ pix
    best = np.full(h * w, np.inf)
    which = np.full(h * w, -1, np.int8)
    coords = []
    for k, plane in enumerate(planes):
        lam, s, t = _intersect(plane, centre, rays)
        closer = lam < best
        best[closer] = lam[closer]
        which[closer] = k
        coords.append((s, t))
    if np.any(which < 0):
        raise ValueError("some rays hit no plane; the camera looks past the back wall")
    image = np.zeros((h * w, 3), np.float32)
    region_id = np.full(h * w, -1, np.int16)
    for k, plane in enumerate(planes):
        sel = which == k
        if not np.any(sel):
            continue
        s, t = coords[k][0].copy(), coords[k][1].copy()
        factor = np.ones(h * w, np.float32)
        lift = np.zeros(h * w, np.float32)
        for r, region in enumerate(regions):
            if region.plane != k:
                continue
            inside = sel & region.contains(s, t)
            region_id[inside] = r
            lift[inside] = region.lift
            if region.period > 0:
                value = 0.3 + 0.7 * (0.5 + 0.5 * math.cos(2 * math.pi * frame_time / region.period + region.phase))
                factor[inside] = value
            if region.speed != 0:
                width = region.s_range[1] - region.s_range[0]
                shifted = s[inside] - region.s_range[0] + region.speed * frame_time
                s[inside] = region.s_range[0] + np.mod(shifted, width)
        map_x = ((s - plane.s0) / plane.texel).astype(np.float32).reshape(h, w)
        map_y = ((t - plane.t0) / plane.texel).astype(np.float32).reshape(h, w)
        map_x[~sel.reshape(h, w)] = 0
        map_y[~sel.reshape(h, w)] = 0
        sampled = cv2.remap(plane.texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        texture = sampled.reshape(-1, 3)[sel]
        image[sel] = (lift[sel, None] + (1.0 - lift[sel, None]) * texture) * factor[sel, None]
    frame = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8).reshape(h, w, 3)
    return frame, best.astype(np.float32).reshape(h, w), which.reshape(h, w), region_id.reshape(h, w)


def render_synthetic_clip(
    n_frames: int = 30,
    height: int = 240,
    width: int = 320,
    *,
    reference_index: int | None = None,
    path_length: float = 0.8,
    yaw_degrees: float = 8.0,
    focal_factor: float = 0.85,
    blink_periods: tuple[float, float] = (8.0, 12.0),
    bright_lights: bool = False,
    cards: int = 2,
    seed: int = 0,
) -> SyntheticClip:
    """Render a synthetic hand-held clip with known geometry.

    Parameters
    ----------
    n_frames : int, default 30
        Number of frames T.
    height, width : int, default 240, 320
        Frame size in pixels.
    reference_index : int, optional
        Frame the masks refer to; default the middle frame ``T // 2``.
    path_length : float, default 0.8
        Sideways travel of the camera over the clip, metres (the camera also
        moves 0.25 x this forward and bobs 3 cm vertically).
    yaw_degrees : float, default 8.0
        Total turn of the camera about the vertical axis over the clip, degrees
        (it turns towards the scene centre while translating).
    focal_factor : float, default 0.85
        Focal length in pixels divided by ``width``.
    blink_periods : tuple of float, default (8, 12)
        Periods of the two blinking regions, frames.
    bright_lights : bool, default False
        Render the blinking regions as lamps: their texture is lifted to
        ``0.6 + 0.4 texture`` before blinking, so that their luminance passes
        the cyclicity stage's brightness test (80th percentile > 127).
    cards : int, default 2
        Number of cards in front of the wall: 2 (both), 1 (only the card at
        4.2 m: a mostly planar scene) or 0 (the wall alone: a planar scene).
    seed : int, default 0
        Seed of the random textures.

    Returns
    -------
    SyntheticClip
        Frames, intrinsics, poses, depth maps and reference-view masks.

    Notes
    -----
    Scene (world units are metres, the reference camera is near the origin
    looking along +z): a back wall at about 6 m slanted by 15 degrees about the
    vertical axis, a card at 3 m on the left and a card at 4.2 m on the right;
    both occlude the wall.  The blinking regions follow
    ``0.3 + 0.7 (1 + cos(2 pi t / period + phase)) / 2``; the changing region
    scrolls its texture by 1.5 texels (about 1.5 reference pixels) per frame.  Textures are pre-blurred at about
    one output pixel so that images are nearly band-limited.

    Examples
    --------
    >>> clip = render_synthetic_clip(n_frames=3, height=24, width=32)
    >>> clip.frames.shape, clip.depth.dtype
    ((3, 24, 32, 3), dtype('float32'))
    """
    if n_frames < 1 or height < 8 or width < 8:
        raise ValueError("need at least one frame of at least 8 x 8 pixels")
    rng = np.random.default_rng(seed)
    focal = focal_factor * width
    K = np.array([[focal, 0.0, (width - 1) / 2.0], [0.0, focal, (height - 1) / 2.0], [0.0, 0.0, 1.0]])
    if reference_index is None:
        reference_index = n_frames // 2
    if not 0 <= reference_index < n_frames:
        raise ValueError(f"reference_index {reference_index} outside [0, {n_frames})")

    planes: list[Plane] = []

    def add_plane(origin, axis_s, axis_t, half_extent, depth_hint, extent_s, extent_t):
        texel = depth_hint / focal  # about one output pixel at the reference view
        tex_w = int(math.ceil(2 * extent_s / texel)) + 4
        tex_h = int(math.ceil(2 * extent_t / texel)) + 4
        texture = _make_texture(rng, tex_h, tex_w, blur_sigma=1.0)
        planes.append(
            Plane(np.asarray(origin, float), np.asarray(axis_s, float), np.asarray(axis_t, float),
                  half_extent, texture, texel, -extent_s - 2 * texel, -extent_t - 2 * texel)
        )

    wall_angle = math.radians(15.0)
    wall_s = np.array([math.cos(wall_angle), 0.0, math.sin(wall_angle)])
    # Visible extent of the wall in metres (half sizes), with margin for motion.
    half_w = 6.0 * (width / 2) / focal * 1.6 + path_length
    half_h = 6.0 * (height / 2) / focal * 1.4 + 0.2
    add_plane([0.0, 0.0, 6.0], wall_s, [0.0, 1.0, 0.0], (math.inf, math.inf), 6.0, half_w, half_h)
    if cards not in (0, 1, 2):
        raise ValueError(f"cards must be 0, 1 or 2, got {cards}")
    card_specs = [
        ([-0.75, 0.1, 3.0], (0.5, 0.65), 3.0),
        ([1.0, -0.35, 4.2], (0.55, 0.5), 4.2),
    ][2 - cards:]
    for origin, half, depth_hint in card_specs:
        add_plane(origin, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], half, depth_hint, *half)

    lamp = 0.6 if bright_lights else 0.0
    regions = [
        _Region(0, (0.35, 0.85), (0.75, 1.15), period=float(blink_periods[0]), phase=0.0, lift=lamp),
        _Region(0, (-1.9, -1.45), (-1.3, -0.85), period=float(blink_periods[1]), phase=1.0, lift=lamp),
        _Region(0, (-0.55, 0.2), (-1.25, -0.85), speed=1.5 * planes[0].texel),
    ]

    frames = np.empty((n_frames, height, width, 3), np.uint8)
    depth = np.empty((n_frames, height, width), np.float32)
    plane_index = np.empty((n_frames, height, width), np.int8)
    poses = np.empty((n_frames, 3, 4))
    ref_regions = None
    for k in range(n_frames):
        tau = (k / (n_frames - 1) - 0.5) if n_frames > 1 else 0.0
        centre = np.array([path_length * tau, 0.03 * math.sin(2 * math.pi * tau), 0.25 * path_length * tau])
        world_from_cam = look_rotation(-math.radians(yaw_degrees) * tau, math.radians(1.5) * math.sin(math.pi * tau))
        rot = world_from_cam.T
        poses[k, :, :3] = rot
        poses[k, :, 3] = -rot @ centre
        frames[k], depth[k], plane_index[k], region_id = _render(planes, regions, K, poses[k], (height, width), k)
        if k == reference_index:
            ref_regions = region_id
    blink_masks = np.stack([ref_regions == r for r, reg in enumerate(regions) if reg.period > 0])
    change_mask = np.any(np.stack([ref_regions == r for r, reg in enumerate(regions) if reg.speed != 0]), axis=0)
    return SyntheticClip(
        frames=frames,
        K=K,
        cam_from_world=poses,
        depth=depth,
        plane_index=plane_index,
        reference_index=reference_index,
        blink_masks=blink_masks,
        blink_periods=np.array([r.period for r in regions if r.period > 0]),
        change_mask=change_mask,
        planes=planes,
        _regions=regions,
    )


def write_mp4(
    frames: np.ndarray, path: str | Path, *, fps: float = 30.0, crf: int = 18, lossless: bool = False
) -> Path:
    """Encode RGB frames (T, H, W, 3) uint8 to an H.264 mp4 with PyAV.

    Height and width must be even (yuv420p).  With ``lossless`` the frames are
    stored exactly (libx264rgb, RGB 4:4:4, crf 0): yuv420p halves the colour
    resolution, which costs a colourful synthetic texture about 30 dB of PSNR
    whatever the crf, and would hide the accuracy of a warp measured on it.
    Returns the path written.
    """
    import av  # local import: only this helper needs PyAV

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError("H.264 with yuv420p needs even height and width")
    path = Path(path)
    from fractions import Fraction

    with av.open(str(path), mode="w") as container:
        codec = "libx264rgb" if lossless else "libx264"
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width = frames.shape[2]
        stream.height = frames.shape[1]
        stream.pix_fmt = "rgb24" if lossless else "yuv420p"
        stream.options = {"crf": "0"} if lossless else {"crf": str(crf)}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
