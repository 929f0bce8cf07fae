"""Video tracks: scrub frames, mark an identity switch, correct a box on one frame."""

from __future__ import annotations

from playwright.sync_api import expect

from loupe.schemas import Action


def test_mark_an_identity_switch_and_fix_a_box(ui, gateway, seed):
    seed.publish(seed.track_item("vid-1"))
    gateway.wait_for_queue("ann")
    ui.sign_in("ann")
    page = ui.page

    expect(page.locator(".review[data-task-type=track]")).to_be_visible()
    expect(page.locator("#frame-number")).to_have_text("frame 0 (1/4)")
    expect(page.locator("#track-list li")).to_have_count(2)
    expect(page.locator("#stage g.box[data-track=t1]")).to_have_attribute("data-label", "cat")

    # the model swapped the ids from frame 2 on: go there with the keyboard
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#frame-number")).to_have_text("frame 2 (3/4)")
    expect(page.locator("#stage g.box[data-track=t2]")).to_have_attribute("data-label", "cat")
    ui.screenshot("07-review-tracks")

    page.click("#track-list li[data-track=t2]")
    page.select_option("#switch-to", "t1")
    page.click("#apply-switch")
    expect(page.locator("#switch-list li")).to_have_text(["identity switch at frame 2: t2 → t1"])
    expect(page.locator("#stage g.box[data-track=t1]")).to_have_attribute("data-label", "cat")

    # correct a box on frame 3 only: nudge the selected cat (t1) box 10 px right
    page.keyboard.press("Escape")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#frame-number")).to_have_text("frame 3 (4/4)")
    page.click("#track-list li[data-track=t1]")
    page.keyboard.press("Shift+ArrowRight")
    ui.screenshot("08-review-tracks-switched")
    page.keyboard.press("Enter")
    expect(page.locator("#no-task")).to_be_visible()

    [decision] = seed.decisions(expect=1)
    assert decision.action is Action.CORRECT
    frames = decision.label.frames
    assert [f.frame for f in frames] == [0, 1, 2, 3]
    for frame in frames:
        ids = {box.label: box.track_id for box in frame.boxes}
        assert ids == {"cat": "t1", "dog": "t2"}, frame
    cat3 = next(b for b in frames[3].boxes if b.label == "cat")
    assert abs(cat3.x - (0.2 + 10 / 320)) < 1e-4
    cat2 = next(b for b in frames[2].boxes if b.label == "cat")
    assert cat2.x == 0.05 + 0.05 * 2 and cat2.score == 0.9  # untouched: kept as published
