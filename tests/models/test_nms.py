"""Batched NMS keeps exactly the boxes Ultralytics' per-image loop keeps, in the same order."""
import math

import numpy as np
import pytest
import torch

import taast_ray  # noqa: F401  (before Ultralytics)
from taast_ray.models.nms import kept_boxes, rank_in_group, row_groups


def head_output(batch=5, classes=6, anchors=400, seed=0) -> torch.Tensor:
    """Boxes crowded around a few centres (so NMS has work), scores mostly low, one empty image."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(batch, 2, 12, generator=g) * 300
    pick = torch.randint(0, 12, (batch, anchors), generator=g)
    xy = torch.gather(centres, 2, pick[:, None].expand(-1, 2, -1)) + torch.randn(batch, 2, anchors, generator=g) * 6
    wh = 20 + torch.rand(batch, 2, anchors, generator=g) * 40
    scores = torch.rand(batch, classes, anchors, generator=g) ** 3
    scores[2] *= 0.01  # nothing above the thresholds below
    return torch.cat([xy, wh, scores], 1)


def ultralytics_kept(pred, conf, iou, max_det, max_nms=30000):
    from ultralytics.utils.nms import non_max_suppression

    _, idxs = non_max_suppression(pred.clone(), conf, iou, max_det=max_det, max_nms=max_nms,
                                  return_idxs=True, max_time_img=math.inf)
    return [i.long().view(-1).tolist() for i in idxs]


def per_image(image, anchor, batch):
    return [anchor[image == b].tolist() for b in range(batch)]


@pytest.mark.parametrize("conf, iou, max_det, per_call", [
    (0.25, 0.7, 300, 16384), (0.1, 0.45, 300, 100), (0.05, 0.5, 7, 1), (0.5, 0.3, 300, 250)])
def test_same_boxes_and_order_as_ultralytics(conf, iou, max_det, per_call):
    pred = head_output()
    image, anchor = kept_boxes(pred, conf, iou, max_det=max_det, boxes_per_call=per_call)
    ours = per_image(image, anchor, len(pred))
    assert ours == ultralytics_kept(pred, conf, iou, max_det)
    assert ours[2] == [] and sum(map(len, ours)) > 20
    assert torch.equal(image, torch.sort(image).values)  # grouped by image


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_same_on_cuda():
    pred = head_output().cuda()
    image, anchor = kept_boxes(pred, 0.1, 0.45, boxes_per_call=100)
    assert image.is_cuda and per_image(image.cpu(), anchor.cpu(), len(pred)) == ultralytics_kept(pred, 0.1, 0.45, 300)


def test_candidate_cap_per_image_matches():
    pred = head_output(batch=3, anchors=600, seed=1)
    image, anchor = kept_boxes(pred, 0.01, 0.6, max_nms=40)
    assert per_image(image, anchor, 3) == ultralytics_kept(pred, 0.01, 0.6, 300, max_nms=40)


def test_nothing_above_threshold():
    image, anchor = kept_boxes(head_output() * torch.tensor([1, 1, 1, 1] + [0] * 6)[None, :, None], 0.25, 0.7)
    assert image.numel() == anchor.numel() == 0


def test_helpers_by_hand():
    assert rank_in_group(torch.tensor([0, 0, 2, 2, 2, 5])).tolist() == [0, 1, 0, 1, 2, 0]
    assert row_groups([3, 0, 5, 2, 9], 6) == [(0, 3), (3, 8), (8, 10), (10, 19)]
    assert row_groups([0, 0], 6) == [] and row_groups([8], 6) == [(0, 8)]
    np.testing.assert_array_equal(rank_in_group(torch.zeros(0, dtype=torch.long)).numpy(), [])
