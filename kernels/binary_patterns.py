"""Temporal binary patterns and their masked Hamming distance (Yan et al., CVPR 2017, Sec. 4.2).

Digital displays and billboards change in arbitrary, non-periodic ways, so the
paper describes the temporal behaviour of a pixel (or of a region, through its
mean colour ``I(f)`` in frame ``f``) by a string of bits, each saying whether
the colour changed a lot between two frames a fixed distance apart:

    Delta(alpha, beta)_i = 1  if  || I(alpha * i + beta) - I(alpha * i) ||_2 > theta,

for ``i = 0, 1, ...`` while ``alpha * i + beta < N`` (``N`` frames, RGB,
``theta = 100``).  The descriptor concatenates ``Delta1 = Delta(4, 4)`` (short
range change) and ``Delta2 = Delta(2, floor(N / 2))`` (long range change).

Layout
------
Bit ``k`` of a descriptor lives in word ``k // 64`` at bit position ``k % 64``
(least significant bit first).  Bits ``0 .. n1-1`` are ``Delta1`` (bit ``i``
compares frames ``4i`` and ``4i + 4``), bits ``n1 .. n1+n2-1`` are ``Delta2``
(bit ``n1 + i`` compares frames ``2i`` and ``2i + N//2``).  See
:func:`descriptor_layout`.  Arrays always hold at least one word; bits at
positions ``>= n_bits`` are 0 in both the pattern and the validity words.

A parallel validity bit-array marks which bits are meaningful: a bit is invalid
when either of its two frames is not visible (the warp stage leaves holes where
the reference view was not seen).  The distance between two descriptors counts
only the bits valid in both (:func:`hamming_distance`).

Conventions chosen here (the paper does not say)
------------------------------------------------
* The comparison is done on squared norms, ``d^2 > theta^2``; for integer
  colours this is exactly ``d > theta``.
* ``beta = floor(N / 2)`` is 0 when ``N < 2``; a zero shift compares a frame
  with itself, so ``Delta2`` is then empty rather than a string of zeros.
* When no bit is valid in both descriptors the distance is **1.0** (the maximum):
  two regions about which nothing is known are not evidence of similarity, so
  the segmentation never merges them on temporal grounds before its threshold
  exceeds 1.  Choosing 0.0 would instead make invisible regions merge first
  with anything next to them.
* :func:`delta1_gamma` (the fraction of ones in ``Delta1``) is 0.0 when no
  ``Delta1`` bit is valid: no observed change.
"""

from __future__ import annotations

import numpy as np

from kernels._jit import jit, jit_leaf

__all__ = [
    "DELTA1_ALPHA",
    "DELTA1_BETA",
    "DELTA2_ALPHA",
    "descriptor_layout",
    "temporal_descriptors",
    "region_descriptor",
    "hamming_distance",
    "delta_fraction",
    "delta1_gamma",
]

#: ``Delta1 = Delta(4, 4)``.
DELTA1_ALPHA = 4
DELTA1_BETA = 4
#: ``Delta2 = Delta(2, floor(N / 2))``.
DELTA2_ALPHA = 2


# --------------------------------------------------------------------------
# jitted internals
# --------------------------------------------------------------------------


@jit
def _n_pairs(n_frames, alpha, beta):
    """Number of ``i >= 0`` with ``alpha * i + beta < n_frames`` (0 if ``beta < 1``)."""
    if beta < 1 or n_frames <= beta:
        return 0
    return (n_frames - 1 - beta) // alpha + 1


@jit
def _layout(n_frames):
    n1 = _n_pairs(n_frames, DELTA1_ALPHA, DELTA1_BETA)
    n2 = _n_pairs(n_frames, DELTA2_ALPHA, n_frames // 2)
    n_bits = n1 + n2
    n_words = max(1, (n_bits + 63) // 64)
    return n1, n2, n_words


@jit
def _pair_frames(k, n1, n_frames):
    """The two frames compared by bit ``k``: ``(f0, f1)`` with ``f1 = f0 + beta``."""
    if k < n1:
        f0 = DELTA1_ALPHA * k
        return f0, f0 + DELTA1_BETA
    i = k - n1
    f0 = DELTA2_ALPHA * i
    return f0, f0 + n_frames // 2


@jit_leaf
def _descriptor_from_sums(sums, counts, k, theta2, n1, n2, bits_out, valid_out):
    """Descriptor of region ``k`` from its per-frame colour sums and visible counts.

    ``sums`` (R, T, 3) and ``counts`` (R, T) may be any numeric dtype; the mean
    colour of frame ``f`` is ``sums[k, f] / counts[k, f]`` (float64) and frame
    ``f`` is usable when ``counts[k, f] > 0``.  Rows ``k`` of ``bits_out`` and
    ``valid_out`` (R, n_words) uint64 are overwritten.  Whole arrays and a row
    index rather than row views: a view is a new array, reference-counted
    (an atomic update) at every call of the segmentation's merge loop.
    """
    n_frames = sums.shape[1]
    for w in range(bits_out.shape[1]):
        bits_out[k, w] = np.uint64(0)
        valid_out[k, w] = np.uint64(0)
    one = np.uint64(1)
    for i in range(n1 + n2):
        f0, f1 = _pair_frames(i, n1, n_frames)
        c0 = counts[k, f0]
        c1 = counts[k, f1]
        if c0 <= 0 or c1 <= 0:
            continue
        d2 = 0.0
        if c0 == 1 and c1 == 1:
            # x / 1.0 is x: a single pixel's mean colour is its colour (same bits, no division)
            for c in range(3):
                diff = np.float64(sums[k, f1, c]) - np.float64(sums[k, f0, c])
                d2 += diff * diff
        else:
            for c in range(3):
                diff = np.float64(sums[k, f1, c]) / np.float64(c1) - np.float64(sums[k, f0, c]) / np.float64(c0)
                d2 += diff * diff
        word = i // 64
        mask = one << np.uint64(i % 64)
        valid_out[k, word] |= mask
        if d2 > theta2:
            bits_out[k, word] |= mask


@jit
def _pixel_descriptors(video, visible, has_visible, theta2, n1, n2, bits, valid):
    """Per-pixel descriptors of ``video`` (T, H, W, 3) into ``bits``/``valid`` (H, W, n_words)."""
    n_frames, height, width = video.shape[0], video.shape[1], video.shape[2]
    one = np.uint64(1)
    for y in range(height):
        for x in range(width):
            for w in range(bits.shape[2]):
                bits[y, x, w] = np.uint64(0)
                valid[y, x, w] = np.uint64(0)
            for k in range(n1 + n2):
                f0, f1 = _pair_frames(k, n1, n_frames)
                if has_visible and not (visible[f0, y, x] and visible[f1, y, x]):
                    continue
                d2 = 0.0
                for c in range(3):
                    diff = np.float64(video[f1, y, x, c]) - np.float64(video[f0, y, x, c])
                    d2 += diff * diff
                word = k // 64
                mask = one << np.uint64(k % 64)
                valid[y, x, word] |= mask
                if d2 > theta2:
                    bits[y, x, word] |= mask


@jit
def _popcount64(x):
    """Number of set bits of a uint64 (SWAR, no lookup table)."""
    m1 = np.uint64(0x5555555555555555)
    m2 = np.uint64(0x3333333333333333)
    m4 = np.uint64(0x0F0F0F0F0F0F0F0F)
    h01 = np.uint64(0x0101010101010101)
    x = x - ((x >> np.uint64(1)) & m1)
    x = (x & m2) + ((x >> np.uint64(2)) & m2)
    x = (x + (x >> np.uint64(4))) & m4
    # The wrapping multiply sums the byte counts.  Measured ~6x faster than
    # adding the bytes with shifts (presumably LLVM turns the idiom into one
    # popcnt).  Without the JIT numpy warns about the intended overflow.
    return np.int64((x * h01) >> np.uint64(56))


@jit_leaf
def _hamming_one(a_bits, a_valid, b_bits, b_valid):
    """Masked, normalised Hamming distance of two (n_words,) descriptors; 1.0 if no common bit."""
    n_diff = 0
    n_common = 0
    for w in range(a_bits.shape[0]):
        common = a_valid[w] & b_valid[w]
        n_common += _popcount64(common)
        n_diff += _popcount64((a_bits[w] ^ b_bits[w]) & common)
    if n_common == 0:
        return 1.0
    return n_diff / n_common


@jit
def _hamming_many(a_bits, a_valid, b_bits, b_valid, out):
    """Row-wise :func:`_hamming_one` over (P, n_words) arrays into ``out`` (P,)."""
    for p in range(a_bits.shape[0]):
        out[p] = _hamming_one(a_bits[p], a_valid[p], b_bits[p], b_valid[p])


@jit
def _fraction_many(bits, valid, start, stop, out):
    """Fraction of ones among the valid bits ``start .. stop-1`` of each row of (P, n_words)."""
    one = np.uint64(1)
    for p in range(bits.shape[0]):
        ones = 0
        n_valid = 0
        for k in range(start, stop):
            mask = one << np.uint64(k % 64)
            if valid[p, k // 64] & mask:
                n_valid += 1
                if bits[p, k // 64] & mask:
                    ones += 1
        out[p] = ones / n_valid if n_valid > 0 else 0.0


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------


def descriptor_layout(n_frames: int) -> tuple[int, int, int]:
    """Number of bits in ``Delta1``, in ``Delta2`` and of uint64 words for ``n_frames`` frames.

    Parameters
    ----------
    n_frames : int
        Length ``N`` of the analysed window, ``>= 1``.

    Returns
    -------
    n_delta1 : int
        ``floor((N - 5) / 4) + 1`` for ``N >= 5``, else 0.
    n_delta2 : int
        ``floor((N - 1 - N//2) / 2) + 1`` for ``N >= 2``, else 0.
    n_words : int
        ``max(1, ceil((n_delta1 + n_delta2) / 64))``.

    Examples
    --------
    >>> descriptor_layout(100)
    (24, 25, 1)
    >>> descriptor_layout(8)
    (1, 2, 1)
    """
    n_frames = _check_n_frames(n_frames)
    n1, n2, n_words = _layout(n_frames)
    return int(n1), int(n2), int(n_words)


def temporal_descriptors(
    video: np.ndarray, visible: np.ndarray | None = None, theta: float = 100.0
) -> tuple[np.ndarray, np.ndarray, int]:
    """Temporal binary pattern of every pixel.

    Parameters
    ----------
    video : ndarray, shape (T, H, W, 3), uint8 or float
        RGB frames in 0-255 units (the warped analysis window).
    visible : ndarray of bool, shape (T, H, W), optional
        Whether each pixel was seen in each frame; default all visible.
    theta : float, default 100.0
        Change threshold on the Euclidean RGB distance, in 0-255 units.

    Returns
    -------
    bits : ndarray, shape (H, W, n_words), uint64
        Packed ``Delta1 ++ Delta2`` bits (layout in the module docstring).
    valid : ndarray, shape (H, W, n_words), uint64
        1 where the bit's two frames are both visible.
    n_bits : int
        Number of meaningful bits, ``n_delta1 + n_delta2``.

    Notes
    -----
    Yan et al., CVPR 2017, Sec. 4.2: ``Delta(alpha, beta)_i = [||I(alpha i + beta)
    - I(alpha i)||_2 > theta]`` with ``(alpha, beta) = (4, 4)`` and
    ``(2, floor(N/2))``.  Cost O(H W N).

    Examples
    --------
    >>> video = np.zeros((8, 1, 2, 3), np.uint8)
    >>> video[4:, 0, 1] = 200               # pixel 1 jumps at frame 4
    >>> bits, valid, n_bits = temporal_descriptors(video)
    >>> n_bits, int(bits[0, 0, 0]), int(bits[0, 1, 0]), int(valid[0, 1, 0])
    (3, 0, 7, 7)
    """
    video = _check_video(video)
    n_frames, height, width = video.shape[:3]
    has_visible, visible = _check_visible(visible, (n_frames, height, width))
    theta2 = _check_theta(theta) ** 2
    n1, n2, n_words = _layout(n_frames)
    bits = np.empty((height, width, n_words), np.uint64)
    valid = np.empty((height, width, n_words), np.uint64)
    _pixel_descriptors(video, visible, has_visible, theta2, n1, n2, bits, valid)
    return bits, valid, int(n1 + n2)


def region_descriptor(
    mean_colour: np.ndarray, visible_frac: np.ndarray | None = None, theta: float = 100.0
) -> tuple[np.ndarray, np.ndarray, int]:
    """Temporal binary pattern of one region from its mean colour over time.

    Parameters
    ----------
    mean_colour : ndarray, shape (T, 3), float
        Mean RGB colour of the region's visible pixels in each frame, 0-255
        units.  Values in frames with ``visible_frac == 0`` are ignored.
    visible_frac : ndarray, shape (T,), optional
        Fraction (0-1) or bool of the region visible in each frame; a frame is
        usable when it is ``> 0``.  Default: every frame usable.
    theta : float, default 100.0
        Change threshold on the RGB distance, 0-255 units.

    Returns
    -------
    bits, valid : ndarray, shape (n_words,), uint64
        Packed pattern and validity bits (layout in the module docstring).
    n_bits : int

    Notes
    -----
    Same definition as :func:`temporal_descriptors`, applied to ``I(f) =
    mean_colour[f]``; the hierarchical segmentation recomputes it for every
    merged region (Yan et al., Sec. 4.2).

    Examples
    --------
    >>> colour = np.zeros((8, 3)); colour[4:] = 200.0
    >>> frac = np.array([1.0] * 6 + [0.0, 1.0])
    >>> bits, valid, n = region_descriptor(colour, visible_frac=frac)
    >>> n, int(bits[0]), int(valid[0])       # bit 2 compares frames 2 and 6: invalid
    (3, 3, 3)
    """
    mean_colour = np.asarray(mean_colour)
    if mean_colour.ndim != 2 or mean_colour.shape[1] != 3:
        raise ValueError(f"mean_colour must have shape (T, 3); got {mean_colour.shape}")
    if mean_colour.shape[0] < 1:
        raise ValueError("mean_colour needs at least one frame")
    if not np.issubdtype(mean_colour.dtype, np.number) or np.issubdtype(
        mean_colour.dtype, np.complexfloating
    ):
        raise TypeError(f"mean_colour must be real numeric; got {mean_colour.dtype}")
    mean_colour = mean_colour.astype(np.float64)
    n_frames = mean_colour.shape[0]
    if visible_frac is None:
        counts = np.ones(n_frames, np.float64)
    else:
        visible_frac = np.asarray(visible_frac)
        if visible_frac.shape != (n_frames,):
            raise ValueError(f"visible_frac must have shape ({n_frames},); got {visible_frac.shape}")
        if visible_frac.dtype != np.bool_ and not np.issubdtype(visible_frac.dtype, np.number):
            raise TypeError(f"visible_frac must be bool or numeric; got {visible_frac.dtype}")
        frac = visible_frac.astype(np.float64)
        if np.any(~np.isfinite(frac)) or np.any(frac < 0) or np.any(frac > 1):
            raise ValueError("visible_frac must lie in [0, 1]")
        counts = (frac > 0).astype(np.float64)
    usable = counts > 0
    if not np.all(np.isfinite(mean_colour[usable])):
        raise ValueError("mean_colour must be finite in usable frames")
    mean_colour = np.where(usable[:, None], mean_colour, 0.0)
    theta2 = _check_theta(theta) ** 2
    n1, n2, n_words = _layout(n_frames)
    bits = np.empty((1, n_words), np.uint64)
    valid = np.empty((1, n_words), np.uint64)
    _descriptor_from_sums(mean_colour[None], counts[None], 0, theta2, n1, n2, bits, valid)
    return bits[0], valid[0], int(n1 + n2)


def hamming_distance(
    a_bits: np.ndarray, a_valid: np.ndarray, b_bits: np.ndarray, b_valid: np.ndarray
) -> float | np.ndarray:
    """Hamming distance of two descriptors, normalised by the bits valid in both.

    Parameters
    ----------
    a_bits, a_valid, b_bits, b_valid : ndarray, shape (..., n_words), uint64
        Descriptors and validity words, all the same shape (as returned by
        :func:`temporal_descriptors` or :func:`region_descriptor`).

    Returns
    -------
    float or ndarray of float64, shape (...)
        ``popcount((a ^ b) & va & vb) / popcount(va & vb)``, in [0, 1]; 1.0 where
        no bit is valid in both (see the module docstring).  A float for 1-D
        inputs, else an array of the leading shape.

    Notes
    -----
    ``D_T`` of Yan et al., Sec. 4.2, with invisible samples masked out of both
    the count and the normaliser.

    Examples
    --------
    >>> a = np.array([0b1011], np.uint64); b = np.array([0b0001], np.uint64)
    >>> hamming_distance(a, np.array([0b1111], np.uint64), b, np.array([0b0111], np.uint64))
    0.3333333333333333
    """
    arrays = [np.asarray(v) for v in (a_bits, a_valid, b_bits, b_valid)]
    shape = arrays[0].shape
    for name, arr in zip(("a_bits", "a_valid", "b_bits", "b_valid"), arrays, strict=True):
        if arr.dtype != np.uint64:
            raise TypeError(f"{name} must be uint64; got {arr.dtype}")
        if arr.shape != shape:
            raise ValueError(f"all descriptors must share one shape; {name} has {arr.shape}, a_bits {shape}")
    if len(shape) < 1 or shape[-1] < 1:
        raise ValueError(f"descriptors need a trailing words axis of length >= 1; got shape {shape}")
    flat = [np.ascontiguousarray(arr.reshape(-1, shape[-1])) for arr in arrays]
    out = np.empty(flat[0].shape[0], np.float64)
    _hamming_many(flat[0], flat[1], flat[2], flat[3], out)
    if len(shape) == 1:
        return float(out[0])
    return out.reshape(shape[:-1])


def delta_fraction(bits: np.ndarray, valid: np.ndarray, n_frames: int, delta: int = 1) -> float | np.ndarray:
    """Fraction of ones among the valid bits of ``Delta1`` or ``Delta2``.

    Parameters
    ----------
    bits, valid : ndarray, shape (..., n_words), uint64
        Descriptors computed for ``n_frames`` frames.
    n_frames : int
        The window length ``N`` the descriptors were computed for.
    delta : {1, 2}, default 1
        Which half of the descriptor.

    Returns
    -------
    float or ndarray of float64, shape (...)
        In [0, 1]; 0.0 where the half has no valid bit.

    Examples
    --------
    >>> colour = np.zeros((8, 3)); colour[4:] = 200.0
    >>> bits, valid, _ = region_descriptor(colour)
    >>> delta_fraction(bits, valid, 8, delta=1), delta_fraction(bits, valid, 8, delta=2)
    (1.0, 1.0)
    """
    n_frames = _check_n_frames(n_frames)
    if delta not in (1, 2):
        raise ValueError(f"delta must be 1 or 2; got {delta!r}")
    bits = np.asarray(bits)
    valid = np.asarray(valid)
    if bits.dtype != np.uint64 or valid.dtype != np.uint64:
        raise TypeError(f"bits and valid must be uint64; got {bits.dtype}, {valid.dtype}")
    if bits.shape != valid.shape or bits.ndim < 1:
        raise ValueError(f"bits and valid must share a shape (..., n_words); got {bits.shape}, {valid.shape}")
    n1, n2, n_words = _layout(n_frames)
    if bits.shape[-1] != n_words:
        raise ValueError(f"{n_frames} frames give {n_words} words per descriptor; got {bits.shape[-1]}")
    start, stop = (0, n1) if delta == 1 else (n1, n1 + n2)
    flat_bits = np.ascontiguousarray(bits.reshape(-1, n_words))
    flat_valid = np.ascontiguousarray(valid.reshape(-1, n_words))
    out = np.empty(flat_bits.shape[0], np.float64)
    _fraction_many(flat_bits, flat_valid, start, stop, out)
    if bits.ndim == 1:
        return float(out[0])
    return out.reshape(bits.shape[:-1])


def delta1_gamma(bits: np.ndarray, valid: np.ndarray, n_frames: int) -> float | np.ndarray:
    """``gamma``: the fraction of ones in ``Delta1`` (short-range change), used by RPCA's lambda.

    Parameters
    ----------
    bits, valid : ndarray, shape (..., n_words), uint64
        Descriptors computed for ``n_frames`` frames.
    n_frames : int
        Window length ``N``.

    Returns
    -------
    float or ndarray of float64, shape (...)
        In [0, 1]; 0.0 where no ``Delta1`` bit is valid.

    Notes
    -----
    Yan et al., Sec. 5: the sparse weight of the robust PCA of a display region
    grows with how often its content changes, measured by ``gamma``.

    Examples
    --------
    >>> colour = np.zeros((12, 3)); colour[8:] = 255.0   # Delta1 compares (0,4), (4,8)
    >>> bits, valid, _ = region_descriptor(colour)
    >>> delta1_gamma(bits, valid, 12)
    0.5
    """
    return delta_fraction(bits, valid, n_frames, delta=1)


# --------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------


def _check_n_frames(n_frames) -> int:
    if isinstance(n_frames, bool) or not isinstance(n_frames, int | np.integer):
        raise TypeError(f"n_frames must be an int; got {type(n_frames).__name__}")
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1; got {n_frames}")
    return int(n_frames)


def _check_theta(theta) -> float:
    theta = float(theta)
    if not np.isfinite(theta) or theta < 0:
        raise ValueError(f"theta must be finite and >= 0; got {theta}")
    return theta


def _check_video(video) -> np.ndarray:
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[3] != 3:
        raise ValueError(f"video must have shape (T, H, W, 3); got {video.shape}")
    if min(video.shape[:3]) < 1:
        raise ValueError(f"video must be non-empty; got shape {video.shape}")
    if video.dtype == np.uint8:
        return np.ascontiguousarray(video)
    if video.dtype == np.bool_ or not np.issubdtype(video.dtype, np.floating):
        raise TypeError(f"video must be uint8 or float; got {video.dtype}")
    video = np.ascontiguousarray(video, dtype=np.float64)
    if not np.all(np.isfinite(video)):
        raise ValueError("video must be finite")
    return video


def _check_visible(visible, shape) -> tuple[bool, np.ndarray]:
    if visible is None:
        return False, np.ones((1, 1, 1), np.bool_)
    visible = np.asarray(visible)
    if visible.dtype != np.bool_:
        raise TypeError(f"visible must be bool; got {visible.dtype}")
    if visible.shape != tuple(shape):
        raise ValueError(f"visible must have shape {tuple(shape)}; got {visible.shape}")
    return True, np.ascontiguousarray(visible)
