"""Dice and IoU by hand, both protocols, the edge cases, and the `evaluate` module."""

from __future__ import annotations

import evaluate
import numpy as np
import pytest
import torch

from polyp_sam_hf.evaluation.metrics import METRIC_SCRIPT, dice_iou, logits_from_mask, pranet_dice_iou, score_logits


def _masks():
    pred = np.zeros((4, 4), bool)
    pred[:2, :2] = True  # 4 px
    target = np.zeros((4, 4), bool)
    target[:2, :] = True  # 8 px, holds pred
    return pred, target


def test_dice_iou_by_hand():
    pred, target = _masks()
    dice, iou = dice_iou(pred, target)
    assert dice == pytest.approx(2 * 4 / (4 + 8)) and iou == pytest.approx(4 / 8)


@pytest.mark.parametrize("pred_empty,target_empty,expected", [(True, True, 1.0), (False, True, 0.0), (True, False, 0.0)])
def test_edge_cases(pred_empty, target_empty, expected):
    pred, target = _masks()
    if pred_empty:
        pred[:] = False
    if target_empty:
        target[:] = False
    assert dice_iou(pred, target) == (expected, expected)


def _logits_of(mask):
    return torch.where(torch.from_numpy(mask)[None], 8.0, -8.0)


def test_score_logits_known_predictions():
    """The one frame scorer: the ground truth gives 1, nothing 0, half the polyp the hand value,
    a frame without a prompt predicts nothing, and several prompts are merged by union."""
    _, target = _masks()  # rows 0-1 of a 4 x 4 frame: 8 px
    assert score_logits(_logits_of(target), target) == (1.0, 1.0)
    assert score_logits(_logits_of(np.zeros_like(target)), target) == (0.0, 0.0)
    half = np.zeros_like(target)
    half[:2, :2] = True  # 4 of the 8 px: Dice 2 * 4 / (4 + 8) = 2/3, IoU 4/8
    assert score_logits(_logits_of(half), target) == pytest.approx((2 / 3, 1 / 2))
    assert score_logits(None, target) == (0.0, 0.0)
    assert score_logits(None, np.zeros_like(target)) == (1.0, 1.0)
    other_half = target & ~half
    both = torch.cat([_logits_of(half), _logits_of(other_half)])  # two prompts, one polyp each
    assert score_logits(both, target) == (1.0, 1.0)
    # logit exactly 0 is probability 0.5: not a polyp pixel, as in SAM's own post-processing
    assert score_logits(torch.zeros((1, 4, 4)), target) == (0.0, 0.0)
    # a binary prediction scored the same way (the box-only baselines)
    assert score_logits(logits_from_mask(half), target) == pytest.approx((2 / 3, 1 / 2))
    assert score_logits(logits_from_mask(half), target, "pranet") == pytest.approx(pranet_dice_iou(half * 1.0, target))


def test_pranet_protocol_by_hand():
    pred, target = _masks()
    prob = pred * 0.7
    # thresholds j/255: at 0 every pixel is positive (Dice 16/24); up to 0.7 (j <= 178) the
    # 4 predicted pixels (Dice 8/12); above, nothing (Dice 0)
    dice, iou = pranet_dice_iou(prob, target)
    assert dice == pytest.approx((16 / 24 + 178 * 8 / 12) / 256)
    assert iou == pytest.approx((8 / 16 + 178 * 4 / 8) / 256)


def test_pranet_rewards_confidence_the_paper_protocol_does_not():
    _, target = _masks()
    sure, unsure = target * 0.99, target * 0.55
    assert dice_iou(sure >= 0.5, target) == dice_iou(unsure >= 0.5, target)
    assert pranet_dice_iou(sure, target)[0] > pranet_dice_iou(unsure, target)[0]


def test_pranet_empty_target_and_prediction():
    empty = np.zeros((3, 3))
    # threshold 0 marks every pixel positive: PraNet's own protocol, kept as it is
    assert pranet_dice_iou(empty, empty.astype(bool))[0] == pytest.approx(255 / 256)


def test_evaluate_module_loads_offline_and_agrees():
    metric = evaluate.load(METRIC_SCRIPT)
    pred, target = _masks()
    out = metric.compute(predictions=[pred.astype(float), target.astype(float)], references=[target, target])
    assert out["per_image_dice"] == pytest.approx([dice_iou(pred, target)[0], 1.0])
    assert out["dice"] == pytest.approx((2 * 4 / 12 + 1) / 2)
    pranet = metric.compute(predictions=[pred * 0.7], references=[target], protocol="pranet")
    assert pranet["dice"] == pytest.approx(pranet_dice_iou(pred * 0.7, target)[0])


def test_evaluate_module_agrees_with_the_scorer_at_every_probability():
    # the same probability map scored by `evaluate` and, as logits, by `score_logits`: one threshold,
    # so they agree also where a pixel sits exactly at 0.5 (logit 0)
    metric = evaluate.load(METRIC_SCRIPT)
    target = np.zeros((4, 8), bool)
    target[1:3, 2:6] = True
    probabilities = [0.0, 0.25, 0.4999, 0.5, 0.5001, 0.75, 1.0]
    for p in probabilities:
        prob = np.where(target, p, 0.0).astype(np.float32)
        logits = torch.logit(torch.from_numpy(prob).double())[None]
        via_module = metric.compute(predictions=[prob], references=[target])["dice"]
        assert via_module == pytest.approx(score_logits(logits, target)[0]), p
    assert metric.compute(predictions=[np.where(target, 0.5, 0.0)], references=[target])["dice"] == 0.0


def test_detection_counts_by_hand():
    from polyp_sam_hf.evaluation.metrics import detection_counts

    truth = np.zeros((40, 40), bool)
    truth[2:12, 2:12] = True  # polyp A, 100 px
    truth[20:30, 20:30] = True  # polyp B, 100 px
    pred = np.zeros_like(truth)
    pred[2:12, 2:11] = True  # A, IoU 90/100: found
    pred[20:30, 20:23] = True  # B, IoU 30/100: not found
    pred[35:39, 35:39] = True  # 16 px on nothing: a false positive
    pred[0, 39] = True  # a 1 px speck: ignored
    assert detection_counts(pred, truth) == (2, 1, 2)  # B's weak component is a false alarm too
    assert detection_counts(truth, truth) == (2, 2, 0)
    assert detection_counts(np.zeros_like(truth), truth) == (2, 0, 0)
    assert detection_counts(pred, np.zeros_like(truth)) == (0, 0, 3)  # empty frame: false positives only
