"""The pixel checks that confirm a pair of similar embeddings as copies of one photo.

- Perceptual hashes (imagehash's pHash: the signs of the low 8 x 8 frequencies of a 32 x 32
  grey-level DCT): a resized, re-encoded or recoloured copy keeps nearly all 64 bits.
- Keypoint matches (OpenCV's ORB, ratio test, then a RANSAC fit of one similarity transform):
  a cropped copy shifts the frequencies but keeps its keypoints, which one scale, rotation
  and shift map onto the other image; two photos of one kind of flower do not.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

KEYPOINTS = 500  # ORB keypoints per image
RATIO = 0.75  # Lowe's ratio test
REPROJECTION = 4.0  # px: RANSAC's inlier distance


class PerceptualHashes:
    """pHash of each image, computed on first use; ``load(key)`` gives its RGB pixels."""

    def __init__(self, load: Callable[[object], np.ndarray]) -> None:
        self.load = load
        self.known: dict = {}

    def __getitem__(self, key):
        if key not in self.known:
            import imagehash
            from PIL import Image
            self.known[key] = imagehash.phash(Image.fromarray(np.asarray(self.load(key))))
        return self.known[key]

    def distance(self, a, b) -> int:
        """Bits (of 64) in which the hashes of ``a`` and ``b`` differ."""
        return int(self[a] - self[b])


class KeypointMatches:
    """ORB keypoints of each image, computed on first use; :meth:`inliers` counts the matches one
    similarity transform explains."""

    def __init__(self, load: Callable[[object], np.ndarray]) -> None:
        self.load = load
        self.known: dict = {}
        self.orb = cv2.ORB_create(KEYPOINTS)
        self.matcher = cv2.BFMatcher(cv2.NORM_HAMMING)

    def _features(self, key):
        if key not in self.known:
            grey = cv2.cvtColor(np.ascontiguousarray(self.load(key)), cv2.COLOR_RGB2GRAY)
            self.known[key] = self.orb.detectAndCompute(grey, None)
        return self.known[key]

    def inliers(self, a, b) -> int:
        """Keypoint matches between ``a`` and ``b`` that survive the ratio test and fit one
        scale + rotation + shift (RANSAC)."""
        (points_a, desc_a), (points_b, desc_b) = self._features(a), self._features(b)
        if desc_a is None or desc_b is None or len(desc_a) < 2 or len(desc_b) < 2:
            return 0
        good = [m for m, *rest in self.matcher.knnMatch(desc_a, desc_b, k=2)
                if rest and m.distance < RATIO * rest[0].distance]
        if len(good) < 3:
            return 0
        source = np.float32([points_a[m.queryIdx].pt for m in good])
        target = np.float32([points_b[m.trainIdx].pt for m in good])
        _, mask = cv2.estimateAffinePartial2D(source, target, method=cv2.RANSAC, ransacReprojThreshold=REPROJECTION)
        return int(mask.sum()) if mask is not None else 0
