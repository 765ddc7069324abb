"""Filter for bounding boxes (paper section 3.2.1): complex scenes out, one box per frame, stable object size."""

from __future__ import annotations

from spacevllm.data.unistg.sample import (
    BOX_THRESHOLD,
    EPS,
    MAX_AREA_RATIO,
    MAX_BOXES,
    MIN_AREA_RATIO,
    Drop,
    Sample,
)

ALL_COMPLEX = "no frame kept"
AREA_JUMP = "area jump"


class BoxFilter:
    """Keep one box per frame and drop samples whose object size jumps.

    Inside ``[start, end]`` (``start * fps <= f <= end * fps``, inclusive), only boxes of score
    ``>= score_threshold`` count. A frame with none is skipped; a frame with more than ``max_boxes`` is a complex
    scene and is discarded; every other frame keeps its highest-score box (the first one on ties). Walking the
    kept frames in numeric order, the sample is dropped when a kept box's area is ``< min_area_ratio`` or
    ``> max_area_ratio`` times the area of the previous kept frame's box (ratios exactly on a bound are kept), or
    when no frame is kept. The returned sample has ``boxes`` = {kept frame: pixel xyxy}; ``start`` / ``end``
    are unchanged. ``meta["complex_frames"]`` counts the discarded frames.
    """

    name = "filter"

    def __init__(self, max_boxes: int = MAX_BOXES, min_area_ratio: float = MIN_AREA_RATIO,
                 max_area_ratio: float = MAX_AREA_RATIO, score_threshold: float = BOX_THRESHOLD):  # fmt: skip
        if not 0 < min_area_ratio <= 1 <= max_area_ratio:
            raise ValueError(f"need 0 < min_area_ratio <= 1 <= max_area_ratio, got {min_area_ratio}, {max_area_ratio}")
        self.max_boxes, self.score_threshold = max_boxes, score_threshold
        self.min_area_ratio, self.max_area_ratio = min_area_ratio, max_area_ratio

    def process(self, sample: Sample) -> Sample | Drop:
        kept, complex_frames, previous = {}, 0, None
        for f in sample.frames_in_range():
            boxes = [d for d in sample.detections[f] if d.score >= self.score_threshold]
            if not boxes:
                continue
            if len(boxes) > self.max_boxes:
                complex_frames += 1
                continue
            best = max(boxes, key=lambda d: d.score)
            if previous is not None and not self._stable(previous.area, best.area):
                ratio = best.area / previous.area if previous.area > 0 else float("inf")
                return Drop(AREA_JUMP, f"frame {f}: box area {ratio:.3f}x the previous kept frame's")
            kept[f], previous = list(best.box), best
        if not kept:
            return Drop(ALL_COMPLEX, f"all {complex_frames} detected frames have > {self.max_boxes} boxes")
        return sample.replace(boxes=kept, meta={**sample.meta, "complex_frames": complex_frames})

    def _stable(self, previous: float, area: float) -> bool:
        """``min_area_ratio * previous <= area <= max_area_ratio * previous`` with a 1e-6 relative tolerance."""
        tol = EPS * previous
        return self.min_area_ratio * previous - tol <= area <= self.max_area_ratio * previous + tol
