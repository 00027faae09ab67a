"""TAAST scoring, SPEC.md §2 eqs. 1–7, over flat per-box score rows and image offsets.

Every function is pure and vectorised: no Python loop per box or per image. Boxes of image i
are rows ``offsets[i]:offsets[i + 1]`` of the (m, C) score matrix.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

_CHUNK_BOXES = 1 << 14  # 16k boxes × C floats stay in cache between the passes over a chunk


_BUFFERS = threading.local()  # each worker thread's s·ln s scratch block, reused chunk after chunk
_EXECUTOR: tuple[int, ThreadPoolExecutor] | None = None  # (pid, pool): a forked child makes its own
_EXECUTOR_LOCK = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """One pool of worker threads for the process (a pool per record batch cost its start-up)."""
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None or _EXECUTOR[0] != os.getpid():
            _EXECUTOR = (os.getpid(), ThreadPoolExecutor(min(os.cpu_count() or 1, 8),
                                                         thread_name_prefix="taast-score"))
        return _EXECUTOR[1]


def _scratch(shape) -> np.ndarray:
    size = shape[0] * shape[1]
    buf = getattr(_BUFFERS, "block", None)
    if buf is None or buf.size < size:
        buf = _BUFFERS.block = np.empty(max(size, _CHUNK_BOXES * shape[1]), np.float32)
    return buf[:size].reshape(shape)


def _chunk_statistics(chunk: np.ndarray, row_min: bool = True):
    """(conf_b, H(p_b), argmax_k s_{k,b}, min_k s_{k,b}) for a block of score rows.

    H = ln S − (Σ_k s_k ln s_k) / S with S = Σ_k s_k, so p_b is never materialised; s ln s is
    taken in float32 (s = 0 contributes 0 through the 1e-30 floor) and summed in float64.
    The max and min are gathered at argmax / argmin, which numpy runs several times faster
    along a short row than max / min (the same element, NaN included: both find the first NaN).
    ``row_min`` False: the last item is instead whether the whole block is ≥ 0 (one flat
    reduction; NaN fails it), for callers that need the row minima only to name a bad row.
    """
    rows = np.arange(len(chunk))
    best = chunk.argmax(axis=1)
    confidence = chunk[rows, best]
    minimum = chunk[rows, chunk.argmin(axis=1)] if row_min else bool(chunk.min(initial=np.inf) >= 0)
    total = chunk.sum(axis=1, dtype=np.float64)
    s_log_s = np.maximum(chunk, np.float32(1e-30), out=_scratch(chunk.shape))
    np.log(s_log_s, out=s_log_s)
    s_log_s *= chunk
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = np.log(total) - s_log_s.sum(axis=1, dtype=np.float64) / total
    entropy = np.where(total > 0, np.maximum(entropy, 0.0), np.log(chunk.shape[1]))
    return confidence, entropy, best, minimum


def box_statistics(scores: np.ndarray, with_class: bool = False, row_min: bool = True):
    """conf_b and H(p_b) for every box, in cache-sized chunks spread over the cores;
    ``with_class`` adds argmax_k s_{k,b} and min_k s_{k,b} (for the contract's range check).
    ``row_min`` False computes the row minima only when some score is negative or NaN (else
    the fourth item is None): the range check needs them only to name the first bad row."""
    scores = np.asarray(scores, dtype=np.float32)
    confidence = np.empty(len(scores), dtype=np.float32)
    entropy = np.empty(len(scores), dtype=np.float64)
    best = np.empty(len(scores), dtype=np.int32)
    minimum = np.empty(len(scores), dtype=np.float32) if row_min else None
    starts = range(0, len(scores), _CHUNK_BOXES)
    block_ok = [True] * len(starts)

    def work(i: int) -> None:
        start = starts[i]
        stop = start + _CHUNK_BOXES
        (confidence[start:stop], entropy[start:stop], best[start:stop],
         low) = _chunk_statistics(scores[start:stop], row_min)
        if row_min:
            minimum[start:stop] = low
        else:
            block_ok[i] = low

    if len(starts) > 1 and (os.cpu_count() or 1) > 1:  # numpy's ufuncs release the GIL
        list(_executor().map(work, range(len(starts))))
    else:
        for i in range(len(starts)):
            work(i)
    if not row_min and not all(block_ok):  # a bad input: the minima, to name its first bad row
        minimum = scores.min(axis=1)
    return (confidence, entropy, best, minimum) if with_class else (confidence, entropy)


def image_entropy(box_entropies: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """E(x) = Σ_b H(p_b); 0 for an image without boxes (eq. 2)."""
    counts = np.diff(offsets)
    box_image = np.repeat(np.arange(len(counts)), counts)
    return np.bincount(box_image, weights=box_entropies, minlength=len(counts))


def least_confident_box(confidence: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """b* = argmin_b conf_b per image as a global box row; −1 for images without boxes (eq. 3).

    Ties go to the lowest box index: the first box equal to its image's minimum.
    """
    counts = np.diff(offsets)
    result = np.full(len(counts), -1, dtype=np.int64)
    has_boxes = counts > 0
    if not has_boxes.any():
        return result
    segment_min = np.minimum.reduceat(confidence, offsets[:-1][has_boxes])
    per_box_min = np.repeat(segment_min, counts[has_boxes])
    at_min = np.flatnonzero(confidence == per_box_min)
    box_image = np.repeat(np.arange(len(counts)), counts)[at_min]
    first = np.r_[True, box_image[1:] != box_image[:-1]]
    result[box_image[first]] = at_min[first]
    return result


def candidate_class(scores: np.ndarray, least_confident: np.ndarray) -> np.ndarray:
    """c(x) = argmax_k s_{k,b*}, ties → lowest class index; −1 where x has no boxes (eq. 4)."""
    result = np.full(len(least_confident), -1, dtype=np.int64)
    has = least_confident >= 0
    result[has] = np.argmax(scores[least_confident[has]], axis=1)
    return result


def pseudo_labelled(confidence: np.ndarray, offsets: np.ndarray, tau: float) -> np.ndarray:
    """x ∈ P when x has ≥ 1 box and every box is confident, conf_b ≥ τ (eq. 1)."""
    counts = np.diff(offsets)
    has_boxes = counts > 0
    result = np.zeros(len(counts), dtype=bool)
    if has_boxes.any():
        segment_min = np.minimum.reduceat(confidence, offsets[:-1][has_boxes])
        result[has_boxes] = segment_min >= tau
    return result


def class_thresholds(tau: float, labelled_counts: np.ndarray, tau_rare: float | None,
                     rare_below: int) -> float | np.ndarray:
    """Eq. 1's threshold, tail-aware: τ_k = ``tau_rare`` for the classes with fewer than
    ``rare_below`` images in L (the paper's rare group), τ for the others; ``tau`` itself when
    ``tau_rare`` is None (the paper's rule). A detector trained on a long-tailed L is rarely
    confident on a rare class, so eq. 1 leaves the tail out of P; a lower τ_k lets its boxes in."""
    if tau_rare is None:
        return tau
    return np.where(np.asarray(labelled_counts) < rare_below, float(tau_rare), float(tau))


def rarity_weight(class_counts: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """w_c = 1 / ln(max(n_c + β, 2)): finite for unseen classes, same as singletons (eq. 6)."""
    return 1.0 / np.log(np.maximum(np.asarray(class_counts, dtype=np.float64) + beta, 2.0))


def image_value(entropy: np.ndarray, cand_class: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """φ(x) = w_{c(x)} · E(x); 0 when x has no boxes (eq. 7)."""
    phi = np.zeros(len(entropy), dtype=np.float64)
    has = cand_class >= 0
    phi[has] = weights[cand_class[has]] * entropy[has]
    return phi


# Rarity rules (a strategy's record names its own, registry.py): the image weight w(x) in
# φ = w(x) · E(x). "class" is the paper's w_{c(x)} (eq. 7); "expected" the rarity expected under
# the least confident box's distribution, Σ_k p_{k,b*} w_k. w depends on P's counts, known only
# once the pass is over, so the reduction keeps one C-row per image (s_{b*}) and w(x) is taken
# afterwards. (A "max" rule, the rarest plausible class max_{b,k} w_k · s_{k,b}, tied taast in
# study (a) and was dropped.) "box-balanced" is the literature's box-level class-balanced score
# (arXiv 2508.17849), a comparison arm rather than a weight on E(x): see class_balanced_value.
# A rule's row function takes (scores, b*, each box's image, H(p_b), argmax_k s_{k,b}) of one
# block, all of which the reduction has already computed.
def weakest_box_scores(scores: np.ndarray, least_confident: np.ndarray, *_box_stats) -> np.ndarray:
    """s_{b*} per image, (n, C) float32; a zero row for an image without boxes."""
    rows = np.zeros((len(least_confident), scores.shape[1]), np.float32)
    has = least_confident >= 0
    rows[has] = scores[least_confident[has]]
    return rows


# The class-balanced rule, a(b) = u(b) · exp(−σ · p(l̂_b)) (arXiv 2508.17849, read through its
# HTML page and a summary of it; the passage on σ's value and on u(b) was not reachable): the paper
# takes u(b) from the consistency of a box's predictions over augmented copies of the image
# (after CALD), which the detections contract does not hold, so u(b) = H(p_b), the box term of
# eq. 2; p comes "from the pseudo labels", which there cover every confident box of the pool and
# so nearly all the training data: here P holds only wholly confident images, so p is the class
# share over L ∪ P (eq. 5's n_c, the same counts taast's w reads; the arms differ in the rule
# alone); the paper picks boxes, so an image ranks by its best box (top boxes → their images).
# σ: its value was not found; 10 puts a class holding a tenth of the counts at e^−1 of an unseen
# class's factor, a head class holding a third at e^−3.3; the configuration's selection.balance_sigma.
BALANCE_SIGMA = 10.0


def class_max_uncertainty(scores: np.ndarray, least_confident: np.ndarray, box_image: np.ndarray,
                          box_entropy: np.ndarray, box_class: np.ndarray) -> np.ndarray:
    """Per image and predicted class k, max u(b) over its boxes b with l̂_b = argmax_j s_{j,b} = k,
    u(b) = H(p_b) (§2's box entropy, eq. 2's term); (n, C) float32, −1 where the image has no box
    of class k (so a class without boxes never wins the max, even against boxes with u = 0)."""
    rows = np.full((len(least_confident), scores.shape[1]), -1.0, np.float32)
    np.maximum.at(rows, (box_image, np.asarray(box_class, np.int64)), np.asarray(box_entropy, np.float32))
    return rows


RULE_VECTOR = {"expected": weakest_box_scores, "box-balanced": class_max_uncertainty}
# "exemplar" keeps a row per image too, v_k(x) = max_b q_{k,b} (selection/exemplar.py), but the
# detector computes it (its posteriors need the box features, which the contract does not hold):
# the reduction takes it from the detections' ``exemplar`` column instead of the scores
EXEMPLAR = "exemplar"
VECTOR_RULES = (*RULE_VECTOR, EXEMPLAR)  # the rules whose pass keeps one C-row per image
_RULE_CHUNK = 1 << 16  # image rows of a memory-mapped (n, C) file read at a time


def image_rarity(vectors, weights: np.ndarray, rule: str, has_boxes: np.ndarray) -> np.ndarray:
    """w(x) from the rule's (n, C) rows, chunk by chunk; 0 for an image without boxes.

    "expected": Σ_k p_k w_k with p = s_{b*} / Σ_k s_{k,b*} (uniform where the sum is 0, as for
    p_b in §2); "exemplar": max_k v_k w_k with v_k = max_b q_{k,b}, the exemplar posterior's
    largest share of class k over the image's boxes (selection/exemplar.py)."""
    weights = np.asarray(weights, np.float64)
    out = np.zeros(len(has_boxes), np.float64)
    for start in range(0, len(out), _RULE_CHUNK):
        v = np.asarray(vectors[start:start + _RULE_CHUNK], np.float64)
        if rule == "expected":
            total = v.sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                w = np.where(total > 0, (v @ weights) / total, weights.mean())
        elif rule == EXEMPLAR:
            w = (v * weights).max(axis=1) if v.shape[1] else np.zeros(len(v))
        else:
            raise ValueError(f"unknown rarity rule {rule!r}")
        out[start:start + len(v)] = w
    out[~np.asarray(has_boxes, bool)] = 0.0
    return out


def class_frequency(class_counts: np.ndarray) -> np.ndarray:
    """p(k) = n_k / Σ_j n_j over L ∪ P's counts (eq. 5's n_c, in the pass's count mode: boxes gives
    the share of boxes); uniform when every count is 0."""
    counts = np.asarray(class_counts, np.float64)
    total = counts.sum()
    return counts / total if total > 0 else np.full(len(counts), 1.0 / len(counts))


def class_balanced_value(vectors, factors: np.ndarray, has_boxes: np.ndarray):
    """a(x) = max_b u(b) · exp(−σ · p(l̂_b)) = max_k v_k · f_k from the (n, C) rows v of
    :func:`class_max_uncertainty` and f_k = exp(−σ p(k)), chunk by chunk; with it the factor f of
    the class that gives the max (lowest class index on ties), the image's "weight". Both 0 for an
    image without boxes. Ranking images by the max over their boxes is ranking the pool's boxes
    by a(b) and taking each box's image until B images are taken (the paper's box-level pick
    under an image budget)."""
    factors = np.asarray(factors, np.float64)
    value = np.zeros(len(has_boxes), np.float64)
    weight = np.zeros(len(has_boxes), np.float64)
    for start in range(0, len(value), _RULE_CHUNK):
        a = np.array(vectors[start:start + _RULE_CHUNK], np.float64)  # a copy, scaled in place
        absent = a < 0
        a *= factors
        a[absent] = -1.0  # a class without boxes never wins (even where f underflows to 0)
        best = a.argmax(axis=1)
        value[start:start + len(a)] = a[np.arange(len(a)), best]
        weight[start:start + len(a)] = factors[best]
    has = np.asarray(has_boxes, bool)
    value[~has] = 0.0
    weight[~has] = 0.0
    return value, weight


def variant_value(entropy: np.ndarray, image_weight: np.ndarray, has_boxes: np.ndarray) -> np.ndarray:
    """φ(x) = w(x) · E(x); 0 when x has no boxes."""
    return np.where(has_boxes, image_weight * entropy, 0.0)


@dataclass
class ImageScores:
    """Everything §2 defines per image, in the detections table's row order."""
    entropy: np.ndarray          # E(x)
    candidate_class: np.ndarray  # class index c(x), −1 for none
    least_confident: np.ndarray | None  # global box row of b*, −1 for none (None when streamed)
    pseudo: np.ndarray           # x ∈ P
    class_counts: np.ndarray     # n_c over L ∪ P
    weights: np.ndarray          # w_c (the class-balanced rule: its factors exp(−σ p(c)))
    value: np.ndarray            # φ(x)
    confidence: np.ndarray | None  # conf_b per box (None when streamed: the rows are gone)
    image_weight: np.ndarray | None = None  # a variant's w(x) (class-balanced: the winning box's
                                            # factor), 0 without boxes; None: w_{c(x)}

    def weight_of(self, rows) -> np.ndarray:
        """The weight φ multiplies E(x) by for these rows: w_{c(x)}, or a variant's w(x); 0 where
        x has no candidate class."""
        rows = np.asarray(rows)
        cls = self.candidate_class[rows]
        own = self.weights[np.maximum(cls, 0)] if self.image_weight is None else self.image_weight[rows]
        return np.where(cls >= 0, own, 0.0)


@dataclass
class ImageReduction:
    """The per-image scalars of eqs. 1–4 and P's class counts (both count modes) for one block of
    images: all that eqs. 5–8 need once the score rows are dropped."""
    entropy: np.ndarray          # (n,) float64 E(x)
    candidate_class: np.ndarray  # (n,) int32 c(x), −1 for none
    pseudo: np.ndarray           # (n,) bool
    box_count: np.ndarray        # (n,) int32
    pseudo_counts: dict          # {"images": (C,) int64, "boxes": (C,) int64}
    confidence: np.ndarray       # (m,) float32 conf_b of the block's boxes
    least_confident: np.ndarray  # (n,) int64 box row of b* within the block, −1 for none
    box_class: np.ndarray        # (m,) int32 argmax_k s_{k,b}
    box_min: np.ndarray | None   # (m,) float32 min_k s_{k,b}; None when not asked for and all ≥ 0
    image_vector: np.ndarray | None = None  # (n, C) float32 the rarity rule's score row, or None


def reduce_images(scores: np.ndarray, offsets: np.ndarray, tau: float = 0.8,
                  rule: str = "class", row_min: bool = True, exemplar=None) -> ImageReduction:
    """Eqs. 1–4 for a block of images whose boxes are rows offsets[i]:offsets[i + 1] of scores.

    Every quantity is per image, so reducing the pool block by block gives the same bits as
    reducing it whole (E's float64 sum runs over each image's boxes in order either way).
    ``rule``: a variant's rarity rule adds the one score row per image it needs (RULE_VECTOR).
    The per-image segment minimum of conf_b and each box's image are computed once and shared
    by eqs. 1–3 (the same values as :func:`least_confident_box` and :func:`pseudo_labelled`).
    ``row_min`` False: ``box_min`` is None unless some score is negative or NaN (see
    :func:`box_statistics`). ``exemplar``: the (n, C) rows v(x) the "exemplar" rule keeps.
    ``tau``: eq. 1's τ, or one τ_k per class (:func:`class_thresholds`): x ∈ P when each of its
    boxes b has conf_b ≥ τ at its class argmax_k s_{k,b}.
    """
    confidence, box_entropies, box_class, row_minimum = box_statistics(scores, with_class=True,
                                                                       row_min=row_min)
    counts = np.diff(offsets)
    n = len(counts)
    box_image = np.repeat(np.arange(n, dtype=np.int64), counts)
    has_boxes = counts > 0
    pseudo = np.zeros(n, dtype=bool)
    b_star = np.full(n, -1, dtype=np.int64)
    if has_boxes.any():
        segment_min = np.minimum.reduceat(confidence, offsets[:-1][has_boxes])
        if np.ndim(tau):  # class-aware τ_k: every box clears its own class's threshold
            slack = confidence - np.asarray(tau, np.float64)[box_class]
            pseudo[has_boxes] = np.minimum.reduceat(slack, offsets[:-1][has_boxes]) >= 0
        else:
            pseudo[has_boxes] = segment_min >= tau                      # eq. 1
        per_box_min = np.empty(n, confidence.dtype)
        per_box_min[has_boxes] = segment_min
        at_min = np.flatnonzero(confidence == per_box_min[box_image])   # eq. 3: first minimum
        owner = box_image[at_min]
        first = np.r_[True, owner[1:] != owner[:-1]]
        b_star[owner[first]] = at_min[first]
    cand_class = np.full(n, -1, dtype=np.int32)
    cand_class[b_star >= 0] = box_class[b_star[b_star >= 0]]  # = argmax_k s_{k,b*} (eq. 4)
    entropy = np.bincount(box_image, weights=box_entropies, minlength=n)  # eq. 2, as image_entropy
    in_p = pseudo[box_image]
    classes = box_class[in_p].astype(np.int64)
    pairs = np.unique(box_image[in_p] * scores.shape[1] + classes)
    pseudo_counts = {"boxes": np.bincount(classes, minlength=scores.shape[1]).astype(np.int64),
                     "images": np.bincount(pairs % scores.shape[1], minlength=scores.shape[1]).astype(np.int64)}
    if rule == EXEMPLAR:
        if exemplar is None or np.shape(exemplar) != (n, scores.shape[1]):
            raise ValueError(f"rarity rule {rule!r} needs one row of {scores.shape[1]} exemplar "
                             f"posteriors per image")
        vector = np.asarray(exemplar, np.float32)
    else:
        vector = (RULE_VECTOR[rule](scores, b_star, box_image, box_entropies, box_class)
                  if rule in RULE_VECTOR else None)
    return ImageReduction(entropy, cand_class, pseudo, counts.astype(np.int32), pseudo_counts,
                          confidence, b_star, box_class, row_minimum, vector)


def finish_scores(entropy: np.ndarray, cand_class: np.ndarray, pseudo: np.ndarray,
                  pseudo_counts: np.ndarray, labelled_counts: np.ndarray, num_classes: int, *,
                  beta: float = 1.0, use_rarity: bool = True, least_confident=None,
                  confidence=None, rule: str = "class", image_vectors=None,
                  balance_sigma: float = BALANCE_SIGMA) -> ImageScores:
    """Eqs. 5–7 from the per-image scalars: n_c = L's counts + P's, w_c, φ.

    ``rule`` "expected" (a variant's rarity rule) replaces w_{c(x)} by w(x) read from
    ``image_vectors``, the (n, C) rows the reduction kept (a memory map when streamed).
    ``rule`` "box-balanced" (the class-balanced comparison arm) ranks by
    a(x) = max_b H(p_b) · exp(−σ · p(l̂_b)) instead of φ, σ = ``balance_sigma``, p the class shares
    of the same n_c (:func:`class_frequency`); its ``weights`` are the factors exp(−σ p(k)) and its
    ``image_weight`` the factor of the box that gives a(x)."""
    counts = np.asarray(labelled_counts, dtype=np.int64) + np.asarray(pseudo_counts, dtype=np.int64)
    weights = rarity_weight(counts, beta) if use_rarity else np.ones(num_classes)
    if rule == "class":
        return ImageScores(entropy, cand_class, least_confident, pseudo, counts, weights,
                           image_value(entropy, cand_class, weights), confidence)
    if image_vectors is None:
        raise ValueError(f"rarity rule {rule!r} needs the per-image score rows of the reduction")
    has_boxes = np.asarray(cand_class) >= 0
    if rule == "box-balanced":
        factors = np.exp(-float(balance_sigma) * class_frequency(counts))
        value, image_weight = class_balanced_value(image_vectors, factors, has_boxes)
        return ImageScores(entropy, cand_class, least_confident, pseudo, counts, factors, value,
                           confidence, image_weight)
    image_weight = image_rarity(image_vectors, weights, rule, has_boxes)
    return ImageScores(entropy, cand_class, least_confident, pseudo, counts, weights,
                       variant_value(entropy, image_weight, has_boxes), confidence, image_weight)


def score_images(scores: np.ndarray, offsets: np.ndarray, labelled_counts: np.ndarray, *,
                 tau: float = 0.8, beta: float = 1.0, count_mode: str = "images",
                 use_rarity: bool = True, rule: str = "class",
                 balance_sigma: float = BALANCE_SIGMA, exemplar=None) -> ImageScores:
    """Eqs. 1–7 in one pass. ``labelled_counts`` is n_c over L (same count mode); ``exemplar``:
    the "exemplar" rule's (n, C) rows."""
    r = reduce_images(scores, offsets, tau, rule, exemplar=exemplar)
    return finish_scores(r.entropy, r.candidate_class.astype(np.int64), r.pseudo,
                         r.pseudo_counts[count_mode], labelled_counts, scores.shape[1], beta=beta,
                         use_rarity=use_rarity, least_confident=r.least_confident,
                         confidence=r.confidence, rule=rule, image_vectors=r.image_vector,
                         balance_sigma=balance_sigma)
