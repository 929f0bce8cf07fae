"""Sign-in and the header: who, tier, queue sizes; the token never leaves the tab's storage."""

from __future__ import annotations

import re

from playwright.sync_api import expect


def test_a_bad_token_is_refused_and_a_good_one_shows_who_tier_and_queues(ui, gateway, seed):
    seed.publish(seed.text_item("txt-a", "first"), seed.text_item("txt-b", "second"))
    gateway.wait_for_queue("ann", 2)
    page = ui.page
    requests = []
    page.on("request", lambda r: requests.append(r))  # noqa: PLW0108  (needs a Python function)
    page.goto(gateway.url + "/")
    expect(page.locator("#signin")).to_be_visible()
    expect(page.locator("header#top")).to_be_hidden()
    ui.screenshot("01-sign-in")

    page.fill("#token", "not-a-real-token")
    page.click("#signin button[type=submit]")
    expect(page.locator("#signin-error")).to_have_text("That token was not accepted.")

    ui.sign_in("ann")
    expect(page.locator("#who-name")).to_have_text("Ann Reviewer")
    expect(page.locator("#who .badge.tier")).to_have_text("reviewer")
    # one of the two tasks is now leased to Ann by the review screen, one is still open
    expect(page.locator("#queues [data-tier=reviewer]")).to_have_text(re.compile(r"reviewer: [12]"))
    expect(page.locator("#nav a")).to_have_text(["Review"])  # no lead view for a reviewer
    expect(page.locator(".review")).to_be_visible()
    ui.screenshot("02-header-and-review")

    token = gateway.tokens["ann"]
    assert token not in page.url
    api_calls = [r for r in requests if "/v1/" in r.url]
    assert api_calls, "the UI called the API"
    assert all(token not in r.url for r in requests)  # never in a URL
    authorised = [r for r in api_calls if r.headers.get("authorization") == f"Bearer {token}"]
    assert authorised, "the token travels in the Authorization header"
    assert page.evaluate("sessionStorage.getItem('loupe.token')") == token
    assert page.evaluate("localStorage.length") == 0

    page.click("#signout")
    expect(page.locator("#signin")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('loupe.token')") is None


def test_a_lead_sees_the_lead_view_link(ui):
    ui.sign_in("lee")
    expect(ui.page.locator("#nav a")).to_have_text(["Review", "Lead"])
    expect(ui.page.locator("#no-task")).to_be_visible()
