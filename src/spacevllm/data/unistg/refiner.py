"""Refiner for time boundaries (paper section 3.2.1).

Caption time ranges are imprecise (DiDeMo's are multiples of five seconds), so the range is tightened to the
frames where the detector actually sees the object, and implausible lengths are dropped.
"""

from __future__ import annotations

from spacevllm.data.unistg.sample import BOX_THRESHOLD, EPS, MAX_DURATION, MIN_DURATION, Drop, Sample

NO_DETECTION = "no detected frame"
TOO_SHORT = "too short"
TOO_LONG = "too long"


class Refiner:
    """Move ``start`` / ``end`` to the first / last *detected frame* and drop implausible durations.

    A detected frame is a source frame ``f`` with ``start * fps <= f <= end * fps`` (inclusive) holding at least
    one box of score ``>= score_threshold``. The refined range is ``[f_first / fps, f_last / fps]`` seconds
    (closed). The sample is dropped when there is no detected frame, or when the refined ``end - start`` is
    ``< min_duration`` or ``> max_duration`` seconds (both bounds kept). Frames outside the original range are
    ignored entirely; the returned sample keeps only the detections of its detected frames.
    """

    name = "refiner"

    def __init__(self, min_duration: float = MIN_DURATION, max_duration: float = MAX_DURATION,
                 score_threshold: float = BOX_THRESHOLD):  # fmt: skip
        if not 0 <= min_duration <= max_duration:
            raise ValueError(f"need 0 <= min_duration <= max_duration, got {min_duration}, {max_duration}")
        self.min_duration, self.max_duration, self.score_threshold = min_duration, max_duration, score_threshold

    def detected_frames(self, sample: Sample) -> list[int]:
        """Sorted detected frames of ``sample`` inside its current ``[start, end]``."""
        dets = sample.detections or {}
        return [f for f in sample.frames_in_range() if any(d.score >= self.score_threshold for d in dets[f])]

    def process(self, sample: Sample) -> Sample | Drop:
        frames = self.detected_frames(sample)
        if not frames:
            return Drop(NO_DETECTION, f"no box of score >= {self.score_threshold} in [{sample.start}, {sample.end}] s")
        first, last = frames[0], frames[-1]
        duration = (last - first) / sample.fps
        if duration < self.min_duration - EPS:
            return Drop(TOO_SHORT, f"refined range {duration:.3f} s < {self.min_duration} s")
        if duration > self.max_duration + EPS:
            return Drop(TOO_LONG, f"refined range {duration:.3f} s > {self.max_duration} s")
        meta = {**sample.meta, "caption_start": sample.start, "caption_end": sample.end}
        detections = {f: sample.detections[f] for f in frames}
        return sample.replace(start=first / sample.fps, end=last / sample.fps, detections=detections, meta=meta)
