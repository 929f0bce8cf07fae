"""Leases: heartbeats extend the lease while the tab is visible; a lost lease is shown clearly."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from loupe.schemas import Action


@pytest.fixture
def gateway(gateway_factory):
    """A gateway with short leases, so the UI heartbeats every couple of seconds."""
    return gateway_factory(lease_seconds="6")


def test_heartbeats_renew_the_lease_and_a_revoked_lease_is_shown(ui, gateway, seed):
    seed.publish(seed.text_item("txt-l", "hold this one"))
    gateway.wait_for_queue("ann")
    ui.sign_in("ann")
    page = ui.page
    review = page.locator(".review")
    expect(review).to_be_visible()
    task_id = review.get_attribute("data-task-id")

    for _ in range(3):  # three renewals: longer than one 6 s lease, and still held
        with page.expect_response(lambda r: "/heartbeat" in r.url, timeout=15_000) as beat:
            pass
        assert beat.value.status == 200
    expect(page.locator("#lease-expired")).to_be_hidden()

    # a lead takes the task away; the next heartbeat learns it and the UI says so
    gateway.call(
        "POST", f"/v1/tasks/{task_id}/reassign", "lee", {"from_user": "ann", "reason": "test"}
    )
    banner = page.locator("#lease-expired")
    expect(banner).to_be_visible(timeout=15_000)
    expect(banner).to_contain_text("lease")
    expect(page.locator("#lease")).to_have_text("expired")
    expect(page.locator("#submit")).to_be_disabled()
    ui.screenshot("16-lease-expired")
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    assert seed.decisions(expect=0) == []

    page.click("#claim-next")
    expect(page.locator("#lease-expired")).to_be_hidden()
    expect(page.locator(".review")).to_be_visible()
    page.keyboard.press("a")
    page.keyboard.press("Enter")
    expect(page.locator("#no-task")).to_be_visible()
    [decision] = seed.decisions(expect=1)
    assert decision.action is Action.APPROVE and decision.item_id == "txt-l"
