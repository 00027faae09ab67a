"""Exemplar rarity: a class posterior for every pool box from its similarity to L's own boxes.

The paper's rarity weight acts through c(x), the class the detector names for its least
confident box, and a detector trained on a long-tailed L almost never names a rare class: its
linear classifier's rare-class logits are pushed down by the few positives they saw. Exemplar
rarity asks a different question of the same forward pass: which labelled boxes does this box
*look like*? Every box's feature is the input of the detector's final classification layer at
the anchor that produced it (the vector the class logits are a linear function of; the same
width at every level); L's boxes give each class a prototype in that space, and a pool box's
posterior over classes comes from its cosine similarity to the prototypes. This is SimpleShot's
nearest-class-mean rule (Wang et al. 2019: centre by the exemplars' mean, L2-normalise, nearest
class mean), known to treat tail classes better than the learnt linear layer (Kang et al. 2020,
"Decoupling representation and classifier").

    x̃ = (x − μ) / ‖x − μ‖,  μ the mean of L's box features
    m_k = normalise(mean of x̃ over L's boxes of class k)        (classes without a box: absent)
    q_{k,b} = softmax_k(x̃_b · m_k / T) over the present classes, 0 for the absent ones
    v_k(x) = max_b q_{k,b}                                         (the image's row, C floats)
    w(x) = max_k v_k(x) · w_k,  φ(x) = w(x) · E(x)                (scoring.image_rarity "exemplar")

w_k is eq. 6's weight over L ∪ P's counts, so a box that resembles a rare class's exemplars lifts
its image even when the detector calls it something common. Pure numpy; the detector
(``models/detector.py``) extracts the features, in the pass it already makes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TEMPERATURE = 0.1  # softmax temperature over cosine similarities (selection.exemplar_temperature)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


@dataclass(frozen=True)
class Prototypes:
    """Class prototypes in the detector's classification feature space."""
    mean: np.ndarray        # (D,) float32 μ
    vectors: np.ndarray     # (C, D) float32 unit rows m_k; zero rows for absent classes
    counts: np.ndarray      # (C,) int64 exemplar boxes per class
    temperature: float = TEMPERATURE

    @property
    def present(self) -> np.ndarray:
        return self.counts > 0

    def to_dict(self) -> dict:
        """Plain lists: a Ray actor's constructor arguments, the run's exemplars.json."""
        return {"mean": self.mean.tolist(), "vectors": self.vectors.tolist(),
                "counts": self.counts.tolist(), "temperature": float(self.temperature)}

    @classmethod
    def from_dict(cls, d: dict) -> "Prototypes":
        return cls(np.asarray(d["mean"], np.float32), np.asarray(d["vectors"], np.float32),
                   np.asarray(d["counts"], np.int64), float(d.get("temperature", TEMPERATURE)))


def centred(features: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """x̃ = (x − μ) / ‖x − μ‖ row by row (a row equal to μ stays 0)."""
    return _unit_rows(np.asarray(features, np.float32) - np.asarray(mean, np.float32))


def class_prototypes(features: np.ndarray, classes: np.ndarray, num_classes: int,
                     temperature: float = TEMPERATURE) -> Prototypes:
    """μ and m_k from L's box features (m, D) and their class indices (m,)."""
    features = np.asarray(features, np.float32)
    classes = np.asarray(classes, np.int64)
    if len(features) == 0:
        raise ValueError("exemplar rarity needs at least one labelled box")
    mean = features.mean(axis=0)
    x = centred(features, mean)
    sums = np.zeros((num_classes, features.shape[1]), np.float64)
    np.add.at(sums, classes, x)
    counts = np.bincount(classes, minlength=num_classes).astype(np.int64)
    return Prototypes(mean.astype(np.float32), _unit_rows(sums).astype(np.float32), counts, float(temperature))


def box_posterior(features: np.ndarray, protos: Prototypes) -> np.ndarray:
    """q_{k,b}: softmax over the present classes of cos(x̃_b, m_k) / T; (m, C) float32, rows sum
    to 1 (0 for absent classes)."""
    present = protos.present
    out = np.zeros((len(features), len(present)), np.float32)
    if len(features) == 0 or not present.any():
        return out
    logits = centred(features, protos.mean) @ protos.vectors[present].T / np.float32(protos.temperature)
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    out[:, present] = logits / logits.sum(axis=1, keepdims=True)
    return out


def image_max(posterior: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """v_k(x) = max over x's boxes of q_{k,b}; (n, C) float32, a zero row for an image without boxes."""
    offsets = np.asarray(offsets, np.int64)
    counts = np.diff(offsets)
    rows = np.zeros((len(counts), posterior.shape[1]), np.float32)
    has = counts > 0
    if has.any():
        rows[has] = np.maximum.reduceat(posterior, offsets[:-1][has], axis=0)
    return rows
