"""Detector: full score rows agree with Ultralytics' own predictor; local weights round-trip."""
import copy
import numpy as np
import pytest
import torch

import taast_ray  # noqa: F401  (before Ultralytics)
from taast_ray.errors import ConfigError
from taast_ray.models.detector import Detector
from taast_ray.models.letterbox import as_image_tensors, boxes_to_original, letterbox_batch

IMGSZ, NC, CONF = 128, 5, 0.05


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A YOLOv8n with nc=5 whose class scores vary by place and class, saved as Ultralytics saves.

    A fresh random YOLO gives nearly constant scores (ties would make NMS order arbitrary), so the
    BatchNorm statistics are set from one batch and the class-head convs are spread out.
    """
    from ultralytics import YOLO

    tmp = tmp_path_factory.mktemp("det")
    cfg = tmp / "yolov8n.yaml"
    cfg.write_text(_yaml_with_nc(NC))
    torch.manual_seed(0)
    yolo = YOLO(str(cfg))
    for m in yolo.model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 1.0
    with torch.no_grad():
        yolo.model.train()(torch.rand(4, 3, IMGSZ, IMGSZ))
    for seq in yolo.model.model[-1].cv3:  # last conv of each class branch
        torch.nn.init.normal_(seq[-1].bias, mean=-3.0, std=0.5)
        torch.nn.init.normal_(seq[-1].weight, std=0.1)
    yolo.model.eval()
    yolo.model.half().float()  # the checkpoint stores float16: make the in-memory copy equal to it
    path = tmp / "tiny.pt"
    yolo.save(str(path))
    return yolo.model, str(path)


def _yaml_with_nc(nc):
    import yaml
    from ultralytics.nn.tasks import yaml_model_load

    d = yaml_model_load("yolov8n.yaml")  # the packaged yolov8.yaml with scale 'n' picked
    d.pop("yaml_file", None)
    return yaml.safe_dump({**d, "nc": nc})


def _images(seed=0):
    rng = np.random.default_rng(seed)
    # sizes that need no resize (pad only), so pixels equal Ultralytics' cv2 letterbox exactly
    return [rng.integers(0, 256, s, dtype=np.uint8) for s in [(128, 128, 3), (96, 128, 3), (128, 64, 3)]]


def test_scores_match_ultralytics_predictor(saved):
    from ultralytics import YOLO

    _, path = saved
    ours = Detector(path, imgsz=IMGSZ, conf=CONF, device="cpu").predict(_images())
    theirs = YOLO(path).predict([im[..., ::-1].copy() for im in _images()], imgsz=IMGSZ, conf=CONF,
                                iou=0.7, rect=False, device="cpu", verbose=False)  # BGR in
    assert sum(len(b) for b, _ in ours) > 10
    for (boxes, scores), r in zip(ours, theirs):
        assert boxes.dtype == scores.dtype == np.float32 and scores.shape == (len(boxes), NC)
        assert len(boxes) == len(r.boxes)
        conf, cls, xyxy = r.boxes.conf.numpy(), r.boxes.cls.numpy().astype(int), r.boxes.xyxy.numpy()
        # boxes whose confidences tie to float noise may come in either order: pair them first
        pair = _pair_rows(np.c_[conf, cls, xyxy / IMGSZ], np.zeros(len(conf), int),
                          np.c_[scores.max(1), scores.argmax(1), boxes / IMGSZ], np.array([0, len(boxes)]))
        np.testing.assert_allclose(scores.max(1), conf[pair], atol=1e-4)
        np.testing.assert_array_equal(scores.argmax(1), cls[pair])
        np.testing.assert_allclose(boxes, xyxy[pair], atol=0.02)  # pixels; float noise


def test_local_checkpoint_reloads_identically(saved):
    model, path = saved
    ims = _images(1) + [np.full((200, 300, 3), 90, np.uint8)]
    a = Detector(model, imgsz=IMGSZ, conf=CONF, device="cpu").predict(ims)
    b = Detector(path, imgsz=IMGSZ, conf=CONF, device="cpu", num_classes=NC).predict(ims)
    for (ba, sa), (bb, sb) in zip(a, b):
        np.testing.assert_array_equal(ba, bb)
        np.testing.assert_array_equal(sa, sb)


def test_no_boxes_gives_empty_arrays_and_boxes_stay_inside(saved):
    _, path = saved
    det = Detector(path, imgsz=IMGSZ, conf=1.0, device="cpu")
    (b, s), = det.predict([np.zeros((50, 70, 3), np.uint8)])
    assert b.shape == (0, 4) and s.shape == (0, NC) and s.dtype == np.float32
    det.conf = 0.01
    ims = _images(2) + [np.zeros((300, 37, 3), np.uint8)]
    for (boxes, _), im in zip(det.predict(ims), ims):
        h, w = im.shape[:2]
        assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= w).all() and (boxes[:, [1, 3]] <= h).all()


def test_yaml_random_init_is_reproducible():
    a = Detector("yolov8n.yaml", imgsz=64, conf=0.001, num_classes=3, device="cpu")
    b = Detector("yolov8n.yaml", imgsz=64, conf=0.001, num_classes=3, device="cpu")
    assert a.num_classes == 3 and a.names == ["0", "1", "2"] and a.device.type == "cpu"
    im = [np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)]
    (ba, sa), = a.predict(im)
    assert len(ba) > 0
    np.testing.assert_array_equal(sa, b.predict(im)[0][1])
    assert a.predict([]) == []


@pytest.mark.parametrize("kwargs, field", [
    (dict(weights="/nonexistent/dir/w.pt"), "model.weights"),
    (dict(weights="yolov8-no-such-model-xyz.pt"), "model.weights"),
    (dict(weights="no-such-arch.yaml"), "model.weights"),
    (dict(weights="yolov8n.yaml", imgsz=100), "model.imgsz"),
    (dict(weights="yolov8n.yaml", device="cuda:7" if not torch.cuda.is_available() else "bogus"),
     "model.device"),
])
def test_bad_configuration_is_a_config_error(kwargs, field):
    with pytest.raises(ConfigError, match=f"^{field}: "):
        Detector(**kwargs)


def test_num_classes_mismatch(saved):
    with pytest.raises(ConfigError, match="^model.num_classes: "):
        Detector(saved[1], num_classes=80, device="cpu")


def test_rejects_non_rgb_uint8(saved):
    det = Detector(saved[0], imgsz=IMGSZ, device="cpu")
    with pytest.raises(ValueError, match="image 0"):
        det.predict([np.zeros((10, 10), np.uint8)])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_paths_agree_with_cpu(saved):
    ims = _images() + [np.full((720, 1280, 3), 60, np.uint8)]
    cpu = Detector(saved[1], imgsz=IMGSZ, conf=0.5, device="cpu").predict(ims)
    for half in (False, None):  # float32, then bf16 autocast
        gpu = Detector(saved[1], imgsz=IMGSZ, conf=0.5, device="cuda", half=half).predict(ims)
        for (bc, sc), (bg, sg) in zip(cpu, gpu):
            assert sg.dtype == np.float32 and sg.shape[1] == NC and bg.shape == (len(sg), 4)
            assert abs(len(bg) - len(bc)) <= max(2, len(bc) // 5)  # TF32/bf16 move borderline boxes
            if len(bc) and len(bg):
                assert abs(sc.max() - sg.max()) < (1e-3 if half is False else 3e-2)


@pytest.mark.parametrize("shape", [(720, 1280), (333, 500), (100, 37), (5, 300)])
def test_letterbox_matches_ultralytics(shape):
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils.ops import scale_boxes

    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    im = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) % 256], -1).astype(np.uint8)
    x, (g,) = letterbox_batch(as_image_tensors([im], torch.device("cpu")), 320)
    ours = (x[0].permute(1, 2, 0) * 255).round().byte().numpy()
    ref = LetterBox(320, auto=False)(image=im)
    assert ours.shape == ref.shape
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1  # cv2 vs torch uint8 rounding
    boxes = torch.tensor([[0.0, 0.0, 320.0, 320.0], [100.5, 120.25, 200.0, 250.0]])
    np.testing.assert_allclose(boxes_to_original(boxes, [g], torch.zeros(2, dtype=torch.long)).numpy(),
                               scale_boxes((320, 320), boxes.clone(), (h, w)).numpy(), atol=1e-4)


def test_embed_rows_are_ultralytics_pooled_neck_features(saved):
    """embed=True (model.embedder: detector): boxes and scores unchanged; each row is the Detect
    head's inputs pooled as Ultralytics' own ``embed=`` path pools them (adaptive average), each
    level L2-normalised, concatenated, L2-normalised; unit norm; padding is not pooled."""
    from taast_ray.models.detector import neck_channels

    model, path = saved
    ims = [im for im in _images() if im.shape[:2] == (IMGSZ, IMGSZ)] + [_images(5)[0]]  # unpadded
    det = Detector(path, imgsz=IMGSZ, conf=CONF, device="cpu", embed=True)
    rows = det.predict_rows(ims)
    plain = Detector(path, imgsz=IMGSZ, conf=CONF, device="cpu").predict_rows(ims)
    np.testing.assert_array_equal(rows.boxes, plain.boxes)
    np.testing.assert_array_equal(rows.scores, plain.scores)
    assert plain.embeddings is None
    channels = neck_channels(model)
    assert channels == [64, 128, 256] and det.embed_dim == 448  # YOLOv8n's P3/P4/P5
    assert rows.embeddings.shape == (len(ims), 448) and rows.embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows.embeddings, axis=1), 1.0, atol=1e-5)
    x = torch.stack([torch.from_numpy(im).permute(2, 0, 1).float() / 255 for im in ims])
    with torch.no_grad():
        pooled = torch.stack(model.eval()._predict_once(x, embed=list(model.model[-1].f)))
    levels = [torch.nn.functional.normalize(p, dim=1) for p in pooled.split(channels, dim=1)]
    expected = torch.nn.functional.normalize(torch.cat(levels, 1), dim=1).numpy()
    np.testing.assert_allclose(rows.embeddings, expected, atol=1e-4)  # fused vs unfused Conv+BN
    assert det.predict_rows([]).embeddings.shape == (0, 448)


def test_pooling_leaves_the_letterbox_padding_out():
    """Hand-made maps: a 128 x 256 image letterboxed to 128 lies in input rows 32..96, i.e. rows
    4..12 of a stride-8 map and 2..6 of a stride-16 map; the padding cells hold a large value
    that must not reach the mean."""
    from taast_ray.models.detector import pooled_features
    from taast_ray.models.letterbox import letterbox_geometry

    g = letterbox_geometry(128, 256, 128)
    assert (g.top, g.new_h, g.left, g.new_w) == (32, 64, 0, 128)
    maps = []
    for side, first, last, values in [(16, 4, 12, [3.0, 4.0]), (8, 2, 6, [1.0, 0.0, 0.0])]:
        fmap = torch.full((1, len(values), side, side), 1000.0)
        fmap[0, :, first:last] = torch.tensor(values).view(-1, 1, 1)
        maps.append(fmap)
    got = pooled_features(maps, [g], 128)[0].numpy()
    expected = np.array([0.6, 0.8, 1.0, 0.0, 0.0]) / np.sqrt(2)  # (3,4)/5 and (1,0,0), then / sqrt 2
    np.testing.assert_allclose(got, expected, atol=1e-6)


def _own_boxes_features(detector, images):
    rows = detector.predict_rows(images)
    boxes = [rows.boxes[a:b] for a, b in zip(rows.offsets[:-1], rows.offsets[1:])]
    return rows, *detector.labelled_box_features(images, boxes, with_level=True)


def test_labelled_box_features_are_the_inputs_of_the_class_layer_at_the_box_anchor(saved):
    """Given the detector's own kept boxes as labelled boxes, each feature f is the one its class
    scores came from: sigmoid(W f + b) of the final class convolution equals the box's score row
    (so the anchor order and the letterbox mapping are right)."""
    detector = Detector(saved[1], imgsz=IMGSZ, conf=CONF, device="cpu", box_features=True)
    images = _images()
    rows, features, level = _own_boxes_features(detector, images)
    assert len(rows.scores) > 5 and features.shape == (len(rows.scores), detector.feature_dim)
    # a box clipped at the image border may equal other anchors' clipped boxes: judge the others
    size = np.repeat([[im.shape[1], im.shape[0]] * 2 for im in images], np.diff(rows.offsets), axis=0)
    inside = ((rows.boxes[:, :2] > 0.5) & (rows.boxes[:, 2:] < size[:, 2:] - 0.5)).all(1)
    assert inside.sum() >= 5
    error = np.full(len(features), np.inf)
    for k, layer in enumerate(detector.model.model[-1].cv3):  # each box through its own level's layer
        w = layer[-1].weight.detach().numpy()[:, :, 0, 0]
        b = layer[-1].bias.detach().numpy()
        at = level == k
        error[at] = np.abs(1 / (1 + np.exp(-(features[at] @ w.T + b))) - rows.scores[at]).max(axis=1)
    assert error[inside].max() < 1e-4 and set(level.tolist()) <= {0, 1, 2}


def _pair_rows(ref, ref_image, got, offsets):
    """Index into ``ref`` giving, for each row of ``got``, the nearest unpaired ``ref`` row of the same
    image (largest absolute difference); the counts per image must agree, and ``got``'s rows must
    come by decreasing first column (the confidence) within an image, up to float noise."""
    assert np.array_equal(np.bincount(ref_image, minlength=len(offsets) - 1), np.diff(offsets))
    pair = np.empty(len(got), np.int64)
    for i, (a, b) in enumerate(zip(offsets[:-1], offsets[1:])):
        assert (np.diff(got[a:b, 0]) <= 1e-4).all(), f"image {i}: rows not by decreasing confidence"
        free = list(np.flatnonzero(ref_image == i))
        for row in range(a, b):
            j = min(free, key=lambda k: np.abs(ref[k] - got[row]).max())
            free.remove(j)
            pair[row] = j
    return pair


def test_exemplar_rows_are_the_largest_posterior_per_class_over_the_kept_boxes(saved):
    from taast_ray.selection.exemplar import box_posterior, class_prototypes, image_max

    from taast_ray.models.nms import kept_boxes

    images = _images()
    rows = Detector(saved[1], imgsz=IMGSZ, conf=CONF, device="cpu").predict_rows(images)
    # reference features, independently: hooks on the Ultralytics model, gathered at NMS's anchors
    # fused as the Detector's is: the unfused model's float noise flipped one NMS near-tie on an AMD EPYC
    model, kept = copy.deepcopy(saved[0]).fuse(verbose=False), []
    hooks = [layer[-1].register_forward_pre_hook(lambda m, a: kept.append(a[0])) for layer in model.model[-1].cv3]
    try:
        with torch.no_grad():
            pred = model(letterbox_batch(as_image_tensors(images, torch.device("cpu")), IMGSZ)[0])[0]
    finally:
        for h in hooks:
            h.remove()
    image, anchor = kept_boxes(pred, CONF, 0.7)
    # two boxes of one image whose confidences tie to float noise may come in either order (CI swapped
    # rows 143 and 144): pair each of the Detector's rows with its reference row, then compare
    # (swapping two such rows changes no prototype and no per-image max below)
    ref = pred[image, 4:, anchor].numpy()
    pair = _pair_rows(np.c_[ref.max(1), ref], image.numpy(), np.c_[rows.scores.max(1), rows.scores], rows.offsets)
    image, anchor = image[pair], anchor[pair]
    features = torch.cat([k.flatten(2) for k in kept], 2)[image, :, anchor].numpy()
    np.testing.assert_allclose(pred[image, 4:, anchor].numpy(), rows.scores, atol=1e-4)
    protos = class_prototypes(features, rows.scores.argmax(1), NC, temperature=0.2)
    with_exemplars = Detector(saved[1], imgsz=IMGSZ, conf=CONF, device="cpu", exemplars=protos.to_dict())
    got = with_exemplars.predict_rows(images)
    np.testing.assert_array_equal(got.boxes, rows.boxes)  # the hooks change nothing of the pass
    np.testing.assert_array_equal(got.scores, rows.scores)
    np.testing.assert_allclose(got.exemplar, image_max(box_posterior(features, protos), rows.offsets), atol=1e-5)
    assert got.exemplar.shape == (len(images), NC)
    with pytest.raises(ConfigError, match="3 classes, the detector has 5"):
        Detector(saved[1], imgsz=IMGSZ, device="cpu",
                 exemplars=class_prototypes(features, np.zeros(len(features), int), 3))
