"""Item history: post a comment and see it in the thread; the audit trail is for senior and lead."""

from __future__ import annotations

import time

from playwright.sync_api import expect


def test_post_a_comment_and_see_it_in_history(ui, gateway, seed):
    seed.publish(seed.text_item("txt-h", "Is this a fox or a dog?"))
    gateway.wait_for_queue("sam")
    ui.sign_in("sam")
    page = ui.page
    page.goto(gateway.url + "/#/items/txt-h/history")
    expect(page.locator("#comments")).to_contain_text("No comments yet.")

    note = "Ears look like a fox's; <b>not</b> a dog."
    page.fill("#new-comment", note)
    page.click("#comment-form button[type=submit]")
    expect(page.locator("#comments li.comment .body")).to_have_text([note])
    expect(page.locator("#comments li.comment")).to_contain_text("sam")

    # the audit trail (read back from the audit topic) shows the comment too
    deadline = time.monotonic() + 30
    audit_comment = page.locator("#audit li[data-action=comment]")
    while audit_comment.count() == 0 and time.monotonic() < deadline:
        page.click("#audit-refresh")
        page.wait_for_timeout(500)
    expect(audit_comment).to_have_count(1)
    ui.screenshot("11-item-history")

    # a reviewer sees the thread but not the audit trail
    page.click("#signout")
    ui.sign_in("ann")
    page.goto(gateway.url + "/#/items/txt-h/history")
    expect(page.locator("#comments li.comment .body")).to_have_text([note])
    expect(page.locator("#audit")).to_have_count(0)
