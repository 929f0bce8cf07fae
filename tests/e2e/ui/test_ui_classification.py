"""Classification review with the keyboard only: one keystroke plus Enter per review."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from loupe.schemas import Action

TEXT = "A small reddish animal with a bushy tail crosses the road at dusk."


def test_keyboard_only_correct_approve_skip_escalate_reject(ui, gateway, seed):
    seed.publish(
        seed.text_item("txt-1", TEXT, label="cat", top=0.55),
        seed.text_item("txt-2", "A tabby sleeping on a windowsill.", label="cat", top=0.6),
        seed.text_item("txt-3", "Blurry shape behind a fence.", label="dog", top=0.5),
        seed.text_item("txt-4", "Something with feathers, maybe.", label="owl", top=0.4),
        seed.text_item("txt-5", "(the image caption is empty)", label="fox", top=0.3),
    )
    gateway.wait_for_queue("ann", 5)
    ui.sign_in("ann")
    page = ui.page

    review = page.locator(".review[data-task-type=classification]")
    expect(review).to_be_visible()
    first = page.locator("#item-id").inner_text()
    expect(page.locator("#reasons [data-reason=low_confidence]")).to_be_visible()
    expect(page.locator("#reasons [data-reason=novel]")).to_be_visible()
    expect(page.locator(".class-btn")).to_have_count(4)
    expect(page.locator(".class-btn.model")).to_have_attribute("data-class", "cat")
    expect(page.locator("#lease")).to_have_text(re.compile(r"^\d+:\d\d$"))
    ui.screenshot("03-review-classification")

    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_visible()
    ui.screenshot("04-keyboard-help")
    page.keyboard.press("Escape")
    expect(page.locator("#help")).to_be_hidden()

    # correct: "3" picks the third class (fox), Enter submits
    page.keyboard.press("3")
    expect(page.locator(".class-btn.chosen")).to_have_attribute("data-class", "fox")
    expect(page.locator("#submit")).to_have_text("Submit: correct")
    page.keyboard.press("Enter")

    # approve: "a", Enter; skip: "s", Enter; escalate: "e", Enter; reject: "r", Enter
    done = [first]
    for key in "aser":
        expect(page.locator("#item-id")).not_to_have_text(done[-1])
        done.append(page.locator("#item-id").inner_text())
        page.keyboard.press(key)
        page.keyboard.press("Enter")
    expect(page.locator("#no-task")).to_be_visible()
    expect(page.locator("#last-diff")).to_be_visible()

    decisions = {d.item_id: d for d in seed.decisions(expect=5)}
    assert set(decisions) == set(done)
    second, skipped, escalated, rejected = done[1:]
    assert decisions[rejected].action is Action.REJECT and decisions[rejected].label is None
    assert decisions[skipped].action is Action.SKIP and decisions[skipped].label is None
    assert decisions[escalated].action is Action.ESCALATE
    corrected, approved = decisions[first], decisions[second]
    assert corrected.action is Action.CORRECT
    assert corrected.label is not None and corrected.label.label == "fox"
    assert corrected.reviewer.id == "ann"
    assert approved.action is Action.APPROVE
    assert approved.label is not None and approved.label.label == "cat"
