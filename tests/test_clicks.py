"""Clicks: the two simulators on drawn masks where the right click is known, and points on the one road
equal to vanilla transformers' `SamModel(input_points=..., input_labels=...)`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import blob_mask
from PIL import Image
from transformers import SamModel, SamProcessor

from polyp_sam_hf.core.errors import ConfigError
from polyp_sam_hf.data.clicks import (
    CORRECTION_CLICKS,
    FIRST_CLICKS,
    NOT_POLYP,
    POLYP,
    Click,
    clicked_region,
    deepest_point,
    evaluation_click,
    training_click,
)
from polyp_sam_hf.models.segmenter import MAX_POINTS, PolypSegmenter

# ----------------------------------------------------------------------------- the evaluation clicker

def test_the_first_click_is_the_point_deepest_inside_the_polyp():
    target = blob_mask(20, 30, [(3, 5, 11, 13)])  # 9 x 9: its centre is (7, 9)
    assert evaluation_click(np.zeros_like(target), target) == Click(7.0, 9.0, POLYP)


def test_with_several_polyps_the_first_click_goes_to_the_largest():
    target = blob_mask(40, 40, [(2, 2, 6, 6), (20, 20, 30, 30)])  # 5 x 5 and 11 x 11
    assert evaluation_click(np.zeros_like(target), target) == Click(25.0, 25.0, POLYP)


def test_false_polyp_larger_than_missed_polyp_gets_a_negative_click():
    target = blob_mask(40, 40, [(5, 5, 15, 15)])
    pred = target.copy()
    pred[5:8, 5:8] = False  # 9 missed pixels
    pred[25:32, 25:32] = True  # 49 false pixels, centre (28, 28)
    assert evaluation_click(pred, target) == Click(28.0, 28.0, NOT_POLYP)
    pred[25:32, 25:32] = False
    pred[25:27, 25:27] = True  # now 4 false pixels: the missed corner is larger
    click = evaluation_click(pred, target)
    assert click.label == POLYP and 5 <= click.x <= 7 and 5 <= click.y <= 7


def test_the_frame_edge_counts_as_the_border_of_an_error():
    """An error region along the frame's edge: its deepest point is away from the edge too."""
    target = blob_mask(10, 20, [(0, 0, 19, 4)])  # a 5-row band on the top edge
    x, y = deepest_point(target)
    assert y == 2


def test_no_error_no_click():
    target = blob_mask(10, 10, [(2, 2, 5, 5)])
    assert evaluation_click(target, target) is None
    assert training_click(target, target, np.random.default_rng(0)) is None


# ----------------------------------------------------------------------------- the training sampler

def test_the_training_sampler_is_uniform_over_the_error_and_seeded():
    target = blob_mask(20, 20, [(0, 0, 1, 1)])  # 4 missed pixels
    pred = blob_mask(20, 20, [(10, 10, 11, 11)])  # 4 false pixels
    draws = [training_click(pred, target, np.random.default_rng(seed)) for seed in range(400)]
    missed = [c for c in draws if c.label == POLYP]
    assert all(c.x <= 1 and c.y <= 1 for c in missed)
    assert all(10 <= c.x <= 11 and 10 <= c.y <= 11 for c in draws if c.label == NOT_POLYP)
    assert 150 < len(missed) < 250  # half the error is missed polyp
    assert len({(c.x, c.y) for c in draws}) == 8  # every error pixel is drawn
    again = [training_click(pred, target, np.random.default_rng(seed)) for seed in range(400)]
    assert draws == again  # the same seed, the same click


def _disk(size: int, cx: int, cy: int, radius: int) -> np.ndarray:
    ys, xs = np.mgrid[:size, :size]
    return (xs - cx) ** 2 + (ys - cy) ** 2 <= radius ** 2


def test_a_central_first_click_lies_in_the_inner_half_of_the_polyp_and_uniform_in_it():
    """A disk of radius 20: pixels at least half its depth inside lie within about 10 of its centre;
    a uniform first click reaches its rim."""
    target = _disk(80, 40, 30, 20)
    central = [FIRST_CLICKS["central"](target, np.random.default_rng(seed)) for seed in range(300)]
    uniform = [FIRST_CLICKS["uniform"](target, np.random.default_rng(seed)) for seed in range(300)]
    radius = lambda c: np.hypot(c.x - 40, c.y - 30)  # noqa: E731
    assert all(c.label == POLYP for c in central + uniform)
    assert max(map(radius, central)) <= 10.5 < 15 < max(map(radius, uniform))
    assert len({(c.x, c.y) for c in central}) > 100  # drawn over the centre, not one point
    assert np.mean([radius(c) for c in central]) > 5  # uniform over the inner disk: mean radius 2/3 of ~10
    assert central == [FIRST_CLICKS["central"](target, np.random.default_rng(seed)) for seed in range(300)]
    assert FIRST_CLICKS["central"](np.zeros_like(target), np.random.default_rng(0)) is None


def test_a_central_first_click_goes_to_the_deepest_polyp_of_a_frame():
    target = _disk(100, 20, 20, 6) | _disk(100, 70, 70, 20)
    clicks = [FIRST_CLICKS["central"](target, np.random.default_rng(seed)) for seed in range(100)]
    assert all(np.hypot(c.x - 70, c.y - 70) <= 10.5 for c in clicks)



def test_a_central_correction_click_lies_in_the_middle_of_the_largest_error():
    """A prediction that misses a 40 x 12 band of the polyp and adds a smaller false patch: central
    correction clicks are positive and at least half the band's depth (6) inside it, so in rows 22-29
    and columns 17-52, spread along it and seeded; the evaluation clicker's click is among them."""
    target = np.zeros((60, 80), bool)
    target[10:50, 10:70] = True
    pred = target.copy()
    pred[20:32, 15:55] = False  # missed: rows 20-31, columns 15-54
    pred[52:56, 10:20] = True  # false polyp, smaller
    clicks = [CORRECTION_CLICKS["central"](pred, target, np.random.default_rng(seed)) for seed in range(200)]
    assert all(c.label == POLYP and 22 <= c.y <= 29 and 17 <= c.x <= 52 for c in clicks)
    assert max(c.x for c in clicks) - min(c.x for c in clicks) > 20  # along the band, not one point
    expected = evaluation_click(pred, target)
    assert (expected.x, expected.y) in {(c.x, c.y) for c in clicks}
    assert clicks == [CORRECTION_CLICKS["central"](pred, target, np.random.default_rng(seed)) for seed in range(200)]
    uniform = [CORRECTION_CLICKS["uniform"](pred, target, np.random.default_rng(seed)) for seed in range(200)]
    assert any(c.label == NOT_POLYP for c in uniform)  # SAM's draw reaches the false patch too
    assert CORRECTION_CLICKS["central"](target, target, np.random.default_rng(0)) is None


def test_a_deepest_correction_click_is_the_evaluation_clickers_whatever_the_seed():
    """The same band and false patch: every seed gives the one point deepest inside the missed band
    (rows 20-31, so row 25 or 26; columns 15-54), positive; on a smaller band than the false patch the
    click turns negative, in the patch."""
    target = np.zeros((60, 80), bool)
    target[10:50, 10:70] = True
    pred = target.copy()
    pred[20:32, 15:55] = False
    pred[52:56, 10:20] = True
    clicks = {CORRECTION_CLICKS["deepest"](pred, target, np.random.default_rng(seed)) for seed in range(20)}
    assert clicks == {evaluation_click(pred, target)}
    (click,) = clicks
    assert click.label == POLYP and 25 <= click.y <= 26 and 15 <= click.x <= 54
    pred = target.copy()
    pred[20:22, 15:20] = False  # missed: 10 pixels
    pred[52:58, 0:30] = True  # false polyp: 180 pixels, rows 52-57
    click = CORRECTION_CLICKS["deepest"](pred, target, np.random.default_rng(0))
    assert click.label == NOT_POLYP and 54 <= click.y <= 55 and 0 <= click.x < 30
    assert CORRECTION_CLICKS["deepest"](target, target, np.random.default_rng(0)) is None


def test_a_correction_clicks_region_is_the_connected_error_of_its_kind_around_it():
    """Two false patches and a missed band: a negative click in one patch names that patch alone, a
    positive click the band; a click on no error of its kind names nothing."""
    target = np.zeros((40, 60), bool)
    target[10:30, 10:50] = True
    pred = target.copy()
    pred[12:16, 15:45] = False  # missed band
    pred[32:36, 5:12] = True  # false patch 1
    pred[2:6, 40:55] = True  # false patch 2
    first = clicked_region(pred, target, Click(8.0, 34.0, NOT_POLYP))
    assert first.sum() == 4 * 7 and first[32:36, 5:12].all()
    band = clicked_region(pred, target, Click(30.0, 13.0, POLYP))
    assert band.sum() == 4 * 30 and band[12:16, 15:45].all()
    assert not clicked_region(pred, target, Click(30.0, 13.0, NOT_POLYP)).any()  # missed polyp, negative click
    assert not clicked_region(pred, target, Click(30.0, 20.0, POLYP)).any()  # right there already


# ----------------------------------------------------------------------------- points on the one road

def _vanilla_low_res(model: SamModel, processor: SamProcessor, frame: Image.Image, points, labels, boxes=None,
                     previous=None) -> torch.Tensor:
    inputs = processor(images=frame, input_points=[points], input_labels=[labels],
                       input_boxes=None if boxes is None else [boxes], return_tensors="pt")
    with torch.no_grad():
        out = model.eval()(pixel_values=inputs["pixel_values"], input_points=inputs["input_points"],
                           input_labels=inputs["input_labels"], input_boxes=inputs.get("input_boxes"),
                           input_masks=previous, multimask_output=False)
    return out.pred_masks[0, :, 0]


def _frame(height: int, width: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(3).integers(0, 255, (height, width, 3), dtype=np.uint8))


@pytest.fixture(params=["micro-sam-test", "mobile-sam"])
def model_folder(request, test_model_dirs, converted):
    return test_model_dirs[request.param] if request.param in test_model_dirs else converted(request.param)


def test_points_give_vanilla_transformers_logits(model_folder):
    """Clicks alone, clicks beside a box, and the previous prediction as the dense prompt: the same
    low-resolution logits as `SamModel` given the same prompts through `SamProcessor`."""
    from polyp_sam_hf.models.loading import model_class_for

    segmenter = PolypSegmenter.from_pretrained(str(model_folder), device="cpu", mask_prompt="none")
    vanilla = model_class_for(str(model_folder)).from_pretrained(model_folder)  # SamModel, or MobileSAM's own class
    assert vanilla.__class__.__name__ in ("SamModel", "TinyViTSamModel")
    processor = SamProcessor.from_pretrained(model_folder)
    frame = _frame(48, 64)
    embedded = segmenter.embed(frame)
    points, labels = [[[10.0, 12.0], [40.0, 30.0], [5.0, 40.0]]], [[1, 1, 0]]
    ours = segmenter.low_res_logits(embedded, points=np.array(points), labels=np.array(labels))
    theirs = _vanilla_low_res(vanilla, processor, frame, points, labels)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    boxes = [[4.0, 6.0, 50.0, 40.0]]
    ours = segmenter.low_res_logits(embedded, np.array(boxes), np.array(points), np.array(labels), previous=ours)
    theirs = _vanilla_low_res(vanilla, processor, frame, points, labels, boxes, previous=theirs[None])
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("points, labels, message", [
    ([[70.0, 10.0]], None, r"Point \[70.0, 10.0\] lies outside the frame \(64x48\)"),
    ([[10.0, 10.0]], [2], r"must be 1 \(polyp\) or 0 \(not polyp\); got \[2\]"),
    ([[10.0, 10.0], [12.0, 12.0]], [1], r"2 labels? for|1 labels for 2 points"),
    ([[1.0, 1.0]] * (MAX_POINTS + 1), None, f"{MAX_POINTS + 1} points for the frame; at most {MAX_POINTS}"),
    ([[float("nan"), 1.0]], None, "must be finite numbers"),
])
def test_bad_points_are_refused_with_what_is_wrong(points, labels, message, test_model_dirs):
    segmenter = PolypSegmenter.from_pretrained(str(test_model_dirs["micro-sam-test"]), device="cpu")
    with pytest.raises(ConfigError, match=message):
        segmenter.predict(_frame(48, 64), points=points, labels=labels, name="the frame")


def test_clicks_not_given_as_one_list_are_refused(test_model_dirs):
    segmenter = PolypSegmenter.from_pretrained(str(test_model_dirs["micro-sam-test"]), device="cpu")
    with pytest.raises(ConfigError, match="the frame: give the clicks as one list"):
        segmenter.predict(_frame(48, 64), boxes=[[1, 1, 20, 20], [5, 5, 30, 30]], points=[[[2, 2]]] * 3,
                          name="the frame")
    with pytest.raises(ConfigError, match="No prompt for the frame"):
        segmenter.predict(_frame(48, 64), name="the frame")


def test_predict_gives_a_mask_per_box_with_its_clicks_and_one_for_clicks_alone(test_model_dirs):
    segmenter = PolypSegmenter.from_pretrained(str(test_model_dirs["micro-sam-test"]), device="cpu")
    frame, boxes, points = _frame(48, 64), [[1, 1, 20, 20], [30, 5, 60, 30]], [[10, 10], [50, 20]]
    masks = segmenter.predict(frame, boxes=boxes, points=points, labels=[0, 1])
    assert masks.shape == (2, 48, 64)
    embedded = segmenter.embed(frame)
    expected = segmenter.session_logits(embedded, boxes, [(10, 10, 0), (50, 20, 1)]) > 0
    assert np.array_equal(masks, expected.numpy())
    assert segmenter.predict(frame, points=points).shape == (1, 48, 64)


# ----------------------------------------------------------------------------- evaluate --clicks

def test_noc_counts_clicks_to_the_threshold_capped_with_the_frames_that_never_reach_it():
    from polyp_sam_hf.evaluation.clicks import ClickSession, summarise_clicks

    nan = float("nan")
    box = ClickSession("box", dice=[0.9] * 4, iou=[0.86, 0.87, 0.91, 0.95], clicks=[])  # box alone reaches 0.85
    clicks = ClickSession("clicks", dice=[nan, 0.8, 0.9, 0.9], iou=[nan, 0.7, 0.86, 0.88], clicks=[])
    assert (box.noc(0.85), box.noc(0.90)) == ((0, True), (2, True))
    assert (clicks.noc(0.85), clicks.noc(0.90)) == ((2, True), (3, False))  # capped at 3, never reached
    summary = summarise_clicks([("kvasir", box), ("kvasir", clicks)], 3)
    assert summary["clicks"]["kvasir"]["noc90"] == 3 and summary["clicks"]["kvasir"]["never90"] == 1
    assert summary["box"]["all"]["noc85"] == 0 and summary["box"]["all"]["iou"] == [0.86, 0.87, 0.91, 0.95]
    assert summary["clicks"]["all"]["dice"][0] is None  # no score before the first click


class _Oracle:
    """A segmenter that answers with the whole ground truth once it has a click, the box alone with nothing."""

    input_size = 8

    def __init__(self, target):
        self.target, self.calls = torch.from_numpy(target), []

    def low_res_logits(self, embedded, boxes=None, points=None, labels=None, previous=None):
        self.calls.append((boxes, points, labels, previous))
        return (torch.where(self.target, 10.0, -10.0) if points is not None else torch.full(self.target.shape, -10.0))[None]

    def to_frame(self, low_res, embedded):
        return low_res


def test_a_click_session_feeds_clicks_and_the_previous_logits_back():
    from polyp_sam_hf.evaluation.clicks import click_session

    target = blob_mask(30, 40, [(11, 8, 19, 16)])  # 9 x 9, centre (15, 12)
    oracle = _Oracle(target)
    session = click_session(oracle, None, target, "box", 3, box=[11, 8, 19, 16])
    assert session.iou == [0.0, 1.0, 1.0, 1.0] and session.noc(0.9) == (1, True)
    assert session.clicks == [(15.0, 12.0, 1)]  # the first error is the whole polyp: its centre; then none is left
    (box0, pts0, _, prev0), (box1, pts1, lab1, prev1) = oracle.calls
    assert pts0 is None and prev0 is None and box1.tolist() == [[11, 8, 19, 16]]
    assert pts1.tolist() == [[[15.0, 12.0]]] and lab1.tolist() == [[1]] and prev1 is not None
    clicks_only = click_session(_Oracle(target), None, target, "clicks", 2)
    assert clicks_only.iou[1:] == [1.0, 1.0] and clicks_only.noc(0.85) == (1, True)


def test_evaluate_with_clicks_writes_the_curve_noc_and_per_frame_rows(micro_checkpoint, prepared_demo, tmp_path):
    import csv
    import json

    from polyp_sam_hf.commands.cli import main as cli_main

    out = tmp_path / "eval"
    assert cli_main(["evaluate", "--model_name_or_path", str(micro_checkpoint), "--data", str(prepared_demo),
                     "--output_dir", str(out), "--prompt_mode", "box", "--clicks", "3"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["clicks"]) == {"clicks", "box"}
    entry = metrics["clicks"]["box"]["all"]
    assert len(entry["dice"]) == 4 and {"noc85", "noc90", "never85", "never90"} <= set(entry)
    # the box row of the click table starts where the plain box row is
    assert entry["dice"][0] == pytest.approx(metrics["results"]["model"]["box"]["0.0"]["all"]["dice"], abs=1e-6)
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    clicked = [r for r in rows if int(r["clicks"]) > 0]
    assert {(r["prompt_mode"], r["clicks"]) for r in clicked} == {(s, k) for s in ("clicks", "box") for k in "123"}
    assert "## Clicks (3 at most)" in (out / "results.md").read_text() and (out / "clicks_curve.png").is_file()


def test_clicks_on_a_prompt_free_model_are_refused(micro_checkpoint, prepared_demo, tmp_path, capsys):
    import json
    import shutil

    from polyp_sam_hf.commands.cli import main as cli_main

    free = tmp_path / "free"
    shutil.copytree(micro_checkpoint, free)
    record = free / "polyp_sam_training.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "prompt_mode": "none"}))
    assert cli_main(["evaluate", "--model_name_or_path", str(free), "--data", str(prepared_demo),
                     "--output_dir", str(tmp_path / "e"), "--clicks", "3"]) == 1
    assert "trained with --prompt_mode none" in capsys.readouterr().err


# ----------------------------------------------------------------------------- predict --point

def _frame_file(tmp_path):
    path = tmp_path / "frame.png"
    _frame(48, 64).save(path)
    return path


@pytest.mark.parametrize("flags", [["--point", "20,15"], ["--point", "20,15", "--point", "5,5,0"],
                                   ["--box", "5,5,40,30", "--point", "20,15"]])
def test_predict_takes_clicks_alone_or_beside_a_box(flags, tmp_path):
    from polyp_sam_hf.commands.cli import main as cli_main

    out = tmp_path / "pred"
    assert cli_main(["predict", "--model_name_or_path", "micro-sam-test", "--image", str(_frame_file(tmp_path)),
                     *flags, "--output_dir", str(out)]) == 0
    mask = np.asarray(Image.open(out / "frame_mask.png"))
    assert mask.shape == (48, 64) and set(np.unique(mask)) <= {0, 255}
    assert (out / "frame_overlay.png").is_file()


@pytest.mark.parametrize("point, message", [("20,15,3", "the label is 1 (polyp) or 0 (not polyp), not 3"),
                                            ("20", "expected x,y or x,y,label"),
                                            ("200,15", "Point [200.0, 15.0] lies outside")])
def test_predict_refuses_a_bad_click_with_one_line(point, message, tmp_path, capsys):
    from polyp_sam_hf.commands.cli import main as cli_main

    assert cli_main(["predict", "--model_name_or_path", "micro-sam-test", "--image", str(_frame_file(tmp_path)),
                     "--point", point, "--output_dir", str(tmp_path / "pred")]) == 1
    assert message in capsys.readouterr().err and not (tmp_path / "pred" / "frame_mask.png").exists()


# ----------------------------------------------------------------------------- clicks in order

def test_a_click_corrects_the_box_it_falls_in_or_lies_nearest():
    from polyp_sam_hf.data.clicks import nearest_box

    boxes = [[0, 0, 100, 100], [40, 40, 60, 60], [200, 0, 220, 20]]
    assert nearest_box(50, 50, boxes) == 1  # inside two: the smaller
    assert nearest_box(10, 10, boxes) == 0
    assert nearest_box(190, 10, boxes) == 2  # outside all: 10 px from the third, 90 from the first
    assert nearest_box(150, 10, boxes) == 2  # 50 px from the first and from the third: the smaller wins the tie
    assert nearest_box(149, 10, boxes) == 0  # 49 px from the first


def test_session_logits_give_each_box_its_clicks_in_order_on_the_previous_logits(test_model_dirs):
    """One box: the box alone, then each click a round with the clicks so far and the last logits, as
    `click_session` prompts; two boxes: each box's session on its own clicks only; a session one click
    longer costs one decoder call where its rounds are kept."""
    from unittest import mock

    segmenter = PolypSegmenter.from_pretrained(str(test_model_dirs["micro-sam-test"]), device="cpu")
    embedded = segmenter.embed(_frame(48, 64))
    box, other = [4.0, 6.0, 30.0, 40.0], [40.0, 5.0, 60.0, 30.0]
    clicks = [(10.0, 12.0, 1), (50.0, 20.0, 0), (20.0, 30.0, 0)]  # the second corrects the other box
    first = segmenter.low_res_logits(embedded, np.array([box]))
    mine = np.array([[c[:2] for c in (clicks[0], clicks[2])]], np.float32)
    step1 = segmenter.low_res_logits(embedded, np.array([box]), mine[:, :1], np.array([[1]]), previous=first)
    step2 = segmenter.low_res_logits(embedded, np.array([box]), mine, np.array([[1, 0]]), previous=step1)
    theirs = segmenter.low_res_logits(embedded, np.array([other]), np.array([[[50.0, 20.0]]]), np.array([[0]]),
                                      previous=segmenter.low_res_logits(embedded, np.array([other])))
    ours = segmenter.session_logits(embedded, [box, other], clicks)
    torch.testing.assert_close(ours, segmenter.to_frame(torch.cat([step2, theirs]), embedded))
    only_clicks = segmenter.session_logits(embedded, None, clicks[:2])
    alone = segmenter.low_res_logits(embedded, points=np.array([[clicks[0][:2]]]), labels=np.array([[1]]))
    both = segmenter.low_res_logits(embedded, points=np.array([[c[:2] for c in clicks[:2]]]),
                                    labels=np.array([[1, 0]]), previous=alone)
    torch.testing.assert_close(only_clicks, segmenter.to_frame(both, embedded))
    rounds: dict = {}
    segmenter.session_logits(embedded, [box], clicks[:1], rounds=rounds)
    with mock.patch.object(segmenter, "low_res_logits", wraps=segmenter.low_res_logits) as decoder:
        again = segmenter.session_logits(embedded, [box], [clicks[0], clicks[2]], rounds=rounds)
        assert decoder.call_count == 1
    torch.testing.assert_close(again, segmenter.to_frame(step2, embedded))
    # the box alone first (as the app shows it), then its first click: that click is one decoder call too
    rounds = {}
    torch.testing.assert_close(segmenter.session_logits(embedded, [box], rounds=rounds),
                               segmenter.to_frame(first, embedded))
    with mock.patch.object(segmenter, "low_res_logits", wraps=segmenter.low_res_logits) as decoder:
        segmenter.session_logits(embedded, [box], clicks[:1], rounds=rounds)
        assert decoder.call_count == 1
    with pytest.raises(ConfigError, match="lies outside"):
        segmenter.session_logits(embedded, [box], [(70.0, 10.0, 1)], name="the frame")


def test_predict_with_points_replays_what_the_evaluation_clicker_gave(test_model_dirs, tmp_path):
    """`polyp-sam predict --box ... --point ...` with the clicks an evaluation session made gives the
    mask that session scored after its last click."""
    from polyp_sam_hf.commands.cli import main as cli_main
    from polyp_sam_hf.evaluation.clicks import click_session
    from polyp_sam_hf.evaluation.metrics import score_logits

    folder = str(test_model_dirs["micro-sam-test"])
    segmenter = PolypSegmenter.from_pretrained(folder, device="cpu")
    frame = _frame(48, 64)
    target = blob_mask(48, 64, [(20, 10, 40, 30)])
    box = [18.0, 8.0, 42.0, 32.0]
    session = click_session(segmenter, segmenter.embed(frame), target, "box", 3, box=box)
    assert session.clicks
    frame.save(tmp_path / "frame.png")
    args = ["predict", "--model_name_or_path", folder, "--image", str(tmp_path / "frame.png"), "--output_dir",
            str(tmp_path / "out"), "--device", "cpu", "--box", ",".join(map(str, box))]
    for x, y, label in session.clicks:
        args += ["--point", f"{x},{y},{label}"]
    assert cli_main(args) == 0
    mask = np.asarray(Image.open(tmp_path / "out" / "frame_mask.png")) > 0
    logits = segmenter.session_logits(segmenter.embed(frame), [box], session.clicks)
    assert np.array_equal(mask, (logits > 0).any(0).numpy())
    assert score_logits(logits, target)[0] == pytest.approx(session.dice[-1])
