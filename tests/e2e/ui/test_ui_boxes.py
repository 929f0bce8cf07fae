"""Bounding boxes over the image: low scores highlighted; move, resize, draw, relabel, delete."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from loupe.schemas import Action

TO_SCREEN = """([x, y]) => {
  const svg = document.querySelector('#stage svg');
  const p = new DOMPoint(x, y).matrixTransform(svg.getScreenCTM());
  return [p.x, p.y];
}"""


def drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Drag with the mouse between two points given in image pixels."""
    sx, sy = page.evaluate(TO_SCREEN, list(start))
    ex, ey = page.evaluate(TO_SCREEN, list(end))
    page.mouse.move(sx, sy)
    page.mouse.down()
    page.mouse.move((sx + ex) / 2, (sy + ey) / 2, steps=4)
    page.mouse.move(ex, ey, steps=4)
    page.mouse.up()


def test_move_resize_and_add_boxes(ui, gateway, seed):
    seed.publish(seed.box_item("img-1"))
    gateway.wait_for_queue("ann")
    ui.sign_in("ann")
    page = ui.page

    expect(page.locator(".review[data-task-type=bbox]")).to_be_visible()
    expect(page.locator("#stage g.box")).to_have_count(3)
    expect(page.locator("#stage g.box.low")).to_have_count(1)
    expect(page.locator("#stage g.box.low")).to_have_attribute("data-label", "dog")
    expect(page.locator("#box-list li.low")).to_have_count(1)
    assert page.locator("#stage image").get_attribute("href").startswith("data:image/png;base64,")
    ui.screenshot("05-review-boxes")

    # move the cat box (20, 30, 90x70) right by 30 and down by 10 image pixels
    drag(page, (60, 60), (90, 70))
    expect(page.locator("#submit")).to_have_text("Submit: correct")
    # resize it: drag its bottom-right handle (now at 140, 110) by (+10, +10)
    expect(page.locator("#stage g.box.selected rect.handle")).to_have_count(4)
    drag(page, (140, 110), (150, 120))
    # draw a new box on empty space, then relabel it with "4" (owl)
    drag(page, (130, 140), (170, 200))
    expect(page.locator("#stage g.box")).to_have_count(4)
    page.keyboard.press("4")
    expect(page.locator("#stage g.box.selected")).to_have_attribute("data-label", "owl")
    ui.screenshot("06-review-boxes-edited")
    page.keyboard.press("Enter")
    expect(page.locator("#no-task")).to_be_visible()

    [decision] = seed.decisions(expect=1)
    assert decision.action is Action.CORRECT
    boxes = decision.label.boxes
    assert len(boxes) == 4
    moved = boxes[0]
    assert moved.label == "cat"
    assert abs(moved.x - 50) <= 1.5 and abs(moved.y - 40) <= 1.5
    assert abs(moved.w - 100) <= 1.5 and abs(moved.h - 80) <= 1.5
    assert boxes[1].model_dump() == {
        "label": "dog",
        "score": 0.31,
        "x": 180.0,
        "y": 110.0,
        "w": 100.0,
        "h": 100.0,
    }
    added = boxes[3]
    assert added.label == "owl" and added.score is None
    assert abs(added.x - 130) <= 1.5 and abs(added.y - 140) <= 1.5
    assert abs(added.w - 40) <= 2 and abs(added.h - 60) <= 2


def test_keyboard_box_edits_delete_and_nudge(ui, gateway, seed):
    seed.publish(seed.box_item("img-k"))
    gateway.wait_for_queue("ann")
    ui.sign_in("ann")
    page = ui.page
    expect(page.locator("#stage g.box")).to_have_count(3)
    page.keyboard.press("Tab")  # select the first box
    expect(page.locator("#stage g.box.selected")).to_have_attribute("data-label", "cat")
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("Tab")  # the dog box
    page.keyboard.press("Tab")  # the owl box
    page.keyboard.press("Delete")
    expect(page.locator("#stage g.box")).to_have_count(2)
    page.keyboard.press("Enter")
    expect(page.locator("#no-task")).to_be_visible()

    [decision] = seed.decisions(expect=1)
    assert [b.label for b in decision.label.boxes] == ["cat", "dog"]
    assert decision.label.boxes[0].x == 30
