"""An escalated task shows the earlier, disagreeing votes to the higher-tier reviewer when the
project shows votes, and hides them in blind review."""

from __future__ import annotations

from playwright.sync_api import expect

from loupe.schemas import Action


def test_escalated_task_shows_the_earlier_votes(ui, gateway, seed):
    base = seed.text_item("txt-e", "Long ears, short tail, sitting in the grass.", label="cat")
    escalated = seed.escalated(base, {"ann": "cat", "bob": "dog"})
    seed.publish(escalated.model_copy(update={"show_votes": True}))
    gateway.wait_for_queue("sam")
    ui.sign_in("sam")
    page = ui.page

    expect(page.locator("#reasons [data-reason=escalation]")).to_be_visible()
    panel = page.locator("#prior-votes")
    expect(panel).to_contain_text("Escalated: the earlier votes disagreed")
    expect(panel.locator(".vote[data-reviewer=ann]")).to_contain_text("cat")
    expect(panel.locator(".vote[data-reviewer=bob]")).to_contain_text("dog")
    ui.screenshot("17-review-escalated")

    page.keyboard.press("2")
    page.keyboard.press("Enter")
    expect(page.locator("#no-task")).to_be_visible()
    [decision] = seed.decisions(expect=1)
    assert decision.action is Action.CORRECT and decision.label.label == "dog"
    assert decision.reviewer.tier.value == "senior"


def test_blind_escalation_hides_the_earlier_votes(ui, gateway, seed):
    base = seed.text_item("txt-b", "Long ears, short tail, sitting in the grass.", label="cat")
    seed.publish(seed.escalated(base, {"ann": "cat", "bob": "dog"}))
    gateway.wait_for_queue("sam")
    ui.sign_in("sam")
    page = ui.page

    expect(page.locator("#reasons [data-reason=escalation]")).to_be_visible()
    expect(page.locator("#prior-votes .vote")).to_have_count(0)
