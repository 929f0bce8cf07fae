"""The diff screen: model label vs final label, boxes colour-coded by kind of change."""

from __future__ import annotations

from playwright.sync_api import expect

from loupe.schemas import Box, BoxesLabel, ClassificationLabel, ImageSize


def _resolved(gateway, item_id: str) -> bool:
    """Whether the gateway has consumed the item's request and its final label."""
    item = gateway.item(item_id, "ann")
    return bool(item and item.get("resolved"))


def test_boxes_diff_is_colour_coded(ui, gateway, seed):
    [request] = seed.publish(seed.box_item("img-d"))
    final = BoxesLabel(
        image=ImageSize(width=320, height=240),
        boxes=[
            Box(label="cat", x=35, y=30, w=90, h=70),  # moved (IoU about 0.71)
            Box(label="fox", x=180, y=110, w=100, h=100),  # relabelled dog -> fox
            Box(label="owl", x=120, y=150, w=40, h=40),  # added; the model's owl box is removed
        ],
    )
    seed.resolved(request, final)
    gateway.wait_until(lambda: _resolved(gateway, "img-d"), "the resolution")
    ui.sign_in("ann")
    page = ui.page
    page.goto(gateway.url + "/#/items/img-d/diff")

    summary = page.locator("#diff-summary")
    expect(summary).to_contain_text("changed")
    for kind, count in {"kept": 0, "moved": 1, "relabelled": 1, "added": 1, "removed": 1}.items():
        expect(summary.locator(f".diff-{kind}")).to_have_text(f"{kind} {count}")
    expect(page.locator("#diff g.diff-box[data-kind=moved]")).to_have_count(2)  # before + after
    expect(page.locator("#diff g.diff-box[data-kind=added][data-side=after]")).to_have_count(1)
    expect(page.locator("#diff g.diff-box[data-kind=removed][data-side=before]")).to_have_count(1)
    expect(page.locator("#diff-table tr[data-kind=relabelled]")).to_contain_text("dog → fox")
    colours = page.evaluate(
        "[...document.querySelectorAll('#diff g.diff-box rect')].map(r => r.getAttribute('stroke'))"
    )
    assert len(set(colours)) == 4  # moved, relabelled, added, removed each have their colour
    ui.screenshot("09-diff-boxes")


def test_classification_diff_side_by_side(ui, gateway, seed):
    [request] = seed.publish(seed.text_item("txt-d", "a fox at dusk", label="cat", top=0.55))
    seed.resolved(request, ClassificationLabel(label="fox"))
    gateway.wait_until(lambda: _resolved(gateway, "txt-d"), "the resolution")
    ui.sign_in("ann")
    page = ui.page
    page.goto(gateway.url + "/#/items/txt-d/diff")
    expect(page.locator("#diff-classes .diff-before")).to_have_text("cat 55%")
    expect(page.locator("#diff-classes .diff-after")).to_have_text("fox (changed)")
    ui.screenshot("10-diff-classification")


def test_tracks_diff_lists_identity_switches(ui, gateway, seed):
    [request] = seed.publish(seed.track_item("vid-d"))
    model = request.prediction.label
    fixed = model.model_copy(
        update={
            "frames": [
                frame.model_copy(
                    update={
                        "boxes": [
                            box.model_copy(
                                update={"track_id": "t1" if box.label == "cat" else "t2"}
                            )
                            for box in frame.boxes
                        ]
                    }
                )
                for frame in model.frames
            ]
        }
    )
    seed.resolved(request, fixed)
    gateway.wait_until(lambda: _resolved(gateway, "vid-d"), "the resolution")
    ui.sign_in("ann")
    page = ui.page
    page.goto(gateway.url + "/#/items/vid-d/diff")
    rows = page.locator("#switch-table tbody tr")
    expect(rows.first).to_be_visible()
    assert rows.count() >= 1
    expect(rows.first.locator("td").first).to_have_text("2")  # the model swapped ids at frame 2
    expect(page.locator("#diff-summary")).not_to_contain_text("identity switches 0")
    ui.screenshot("10b-diff-tracks")
