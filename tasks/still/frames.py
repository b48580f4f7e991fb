"""Step 4c of the method: the frames of the loop (Halperin et al. 2021, Sec. 4.5).

For a time t in [-1, 1] let u = (t + 1) / 2 be the loop phase.  V_s is the
texture-extended image E moved by s flows: for s >= 0 the content moves forward
by s F1 (E sampled at y + s F2(y), F2 the inverse field), for s < 0 it moves
back by |s| F2 (E sampled at y + |s| F1(y)).  A frame blends V_u with its copy
shifted by one period in time, V_{u-1}, by the piecewise-linear

    alpha(u) = 0 for u <= a,  (u - a) / (b - a) for a < u < b,  1 for u >= b

(a = ``blend_start``, b = ``blend_end``): frame(t) = (1 - alpha) V_u + alpha V_{u-1}
inside the mask (feathered inwards), the input outside it.  At t = -1 (u = 0)
the frame is V_0 = the input, at t = 1 (u = 1) it is V_0 again, so the loop
closes exactly; both V are continuous in u, so no frame is taken across a
discontinuity of the time mapping.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import distance_transform_edt

from schemas.still import FrameParams


def alpha(u, start, end):
    """The blend weight of the time-shifted copy at loop phase ``u`` in [0, 1]."""
    return float(np.clip((u - start) / (end - start), 0.0, 1.0))


def soft_mask(mask, feather):
    """1 inside the mask, falling to 0 at its border over ``2 * feather`` pixels, 0 outside (float32)."""
    if feather <= 0:
        return mask.astype(np.float32)
    dist = distance_transform_edt(mask)
    return np.clip(dist / (2.0 * feather), 0.0, 1.0).astype(np.float32)


class FrameRenderer:
    """Renders frame(t) of a region set; holds the padded extended image and the fields.

    Works on the mask's bounding box in uint8 with OpenCV (bicubic resampling, blends by
    ``cv2.addWeighted`` and ``cv2.blendLinear``); frames of a loop are rendered by a few threads
    (OpenCV releases the GIL).
    """

    def __init__(self, image, mask, extended, fwd, bwd, margin, params: FrameParams | None = None):
        self.params = params or FrameParams()
        self.image = image
        self.margin = margin
        ys, xs = np.nonzero(mask)
        if len(ys):
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        else:
            y0 = y1 = x0 = x1 = 0
        self.box = (y0, y1, x0, x1)
        soft = soft_mask(mask, self.params.feather)[y0:y1, x0:x1]
        self.soft = np.ascontiguousarray(soft)
        self.still = np.ascontiguousarray(1.0 - soft)
        # where the box is not fully inside the mask (its feathered edge and the outside): blended per pixel
        self.edge = np.nonzero(soft < 1.0)
        self.edge_soft = soft[self.edge][:, None]
        self.extended = extended
        gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        self.base_x = gx + margin
        self.base_y = gy + margin
        self.fwd = [np.ascontiguousarray(fwd[y0 + margin : y1 + margin, x0 + margin : x1 + margin, c]) for c in (0, 1)]
        self.bwd = [np.ascontiguousarray(bwd[y0 + margin : y1 + margin, x0 + margin : x1 + margin, c]) for c in (0, 1)]

    def moved(self, s):
        """V_s on the mask's bounding box, uint8 (H_box, W_box, 3)."""
        y0, y1, x0, x1 = self.box
        m = self.margin
        if s == 0:
            return self.extended[y0 + m : y1 + m, x0 + m : x1 + m].copy()
        field = self.bwd if s > 0 else self.fwd
        a = abs(float(s))
        mx = cv2.scaleAdd(field[0], a, self.base_x)
        my = cv2.scaleAdd(field[1], a, self.base_y)
        return cv2.remap(self.extended, mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)

    def frame(self, t, out=None):
        """frame(t), t in [-1, 1]: (H, W, 3) uint8, written into ``out`` when given."""
        if not -1.0 <= t <= 1.0:
            raise ValueError(f"t must lie in [-1, 1], got {t}")
        u = (t + 1.0) / 2.0
        al = alpha(u, self.params.blend_start, self.params.blend_end)
        if al <= 0.0:
            blend = self.moved(u)
        elif al >= 1.0:
            blend = self.moved(u - 1.0)
        else:
            blend = cv2.addWeighted(self.moved(u), 1.0 - al, self.moved(u - 1.0), al, 0.0)
        if out is None:
            out = self.image.copy()
        else:
            np.copyto(out, self.image)
        y0, y1, x0, x1 = self.box
        if y1 <= y0:
            return out
        orig = self.image[y0:y1, x0:x1]
        if len(self.edge[0]) > 0.25 * self.soft.size:
            out[y0:y1, x0:x1] = cv2.blendLinear(blend, orig, self.soft, self.still)
        else:  # mostly inside the mask: the moved image, then its edge blended with the input
            w = self.edge_soft
            mixed = w * blend[self.edge] + (1.0 - w) * orig[self.edge]
            blend[self.edge] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
            out[y0:y1, x0:x1] = blend
        return out

    def times(self, n_frames):
        """The loop's times: n_frames values from -1 (included) to 1 (excluded: it equals -1)."""
        return -1.0 + 2.0 * np.arange(n_frames) / n_frames

    def loop(self, n_frames, threads=2):
        from concurrent.futures import ThreadPoolExecutor

        out = np.empty((n_frames, *self.image.shape), np.uint8)

        def render(k_t):
            k, t = k_t
            self.frame(float(t), out[k])

        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            list(pool.map(render, enumerate(self.times(n_frames))))
        return out


def step_sizes(loop, mask):
    """Mean |frame k+1 - frame k| over the mask (levels, averaged over channels) for every k, and the wrap step."""
    m = mask.astype(np.uint8)
    if not m.any():
        return np.zeros(max(len(loop) - 1, 0)), 0.0

    def step(a, b):
        return float(np.mean(cv2.mean(cv2.absdiff(a, b), mask=m)[:3]))

    steps = np.array([step(loop[k], loop[k + 1]) for k in range(len(loop) - 1)])
    return steps, step(loop[-1], loop[0])


def end_frame_errors(renderer, loop, image):
    """Largest |frame(t=-1) - input| and |frame(t=1) - input| (levels): the loop's first frame is frame(-1)."""
    def err(frame):
        return float(cv2.absdiff(frame, image).max())

    return err(loop[0]), err(renderer.frame(1.0))
