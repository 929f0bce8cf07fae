"""Lead view: resolve a conflict from the votes side by side; publish a policy update; quality."""

from __future__ import annotations

from playwright.sync_api import expect

from loupe.schemas import Action, Tier


def test_a_lead_resolves_a_conflict(ui, gateway, seed):
    [request] = seed.publish(
        seed.text_item("txt-c", "Grey fur, pointed ears, at the edge of a wood.", tier=Tier.LEAD)
    )
    seed.conflict(request, {"ann": "cat", "bob": "dog"})
    gateway.wait_until(
        lambda: gateway.call("GET", "/v1/conflicts", "lee")["conflicts"], "the conflict"
    )
    ui.sign_in("lee")
    page = ui.page
    page.click("#nav a[href='#/lead']")

    card = page.locator("article.conflict[data-item=txt-c]")
    expect(card).to_be_visible()
    expect(card.locator(".vote")).to_have_count(2)
    expect(card.locator(".vote[data-reviewer=ann] .vote-label")).to_have_text("cat")
    expect(card.locator(".vote[data-reviewer=bob] .vote-label")).to_have_text("dog")
    ui.screenshot("12-lead-conflicts")

    card.locator("input.final-reason").fill("dog: the ears decide it")
    card.locator(".vote[data-reviewer=bob] .pick-vote").click()
    expect(card.locator(".status")).to_contain_text("Final call sent (correct: dog)")

    [decision] = [d for d in seed.decisions(expect=1) if d.final]
    assert decision.item_id == "txt-c"
    assert decision.reviewer.id == "lee"
    assert decision.action is Action.CORRECT
    assert decision.label is not None and decision.label.label == "dog"


def test_a_lead_publishes_a_policy_update_and_sees_reviewer_quality(ui, gateway, seed):
    seed.policy(version=1)
    seed.publish(seed.text_item("txt-q", "a cat"))
    gateway.wait_until(lambda: _policy_version(gateway) == 1, "policy version 1")
    gateway.wait_for_queue("ann")
    claimed = gateway.call("POST", "/v1/tasks/claim", "ann", {})
    gateway.call(
        "POST",
        f"/v1/tasks/{claimed['task']['task_id']}/decision",
        "ann",
        {
            "action": "approve",
            "label": claimed["task"]["prediction"]["label"],
            "seconds_spent": 4.0,
            "idempotency_key": "quality-1",
        },
    )

    ui.sign_in("lee")
    page = ui.page
    page.click("#nav a[href='#/lead']")
    page.click("#tab-policy")
    page.fill("#policy-project", "demo")
    page.click("#policy-load")
    expect(page.locator("#policy-version")).to_contain_text("Version 1")

    page.fill("#policy-spot-check", "1.5")
    page.click("#policy-save")
    expect(page.locator("#policy-error")).to_have_text(
        "spot-check rate must be a number from 0 to 1"
    )

    page.fill("#policy-spot-check", "0.2")
    page.fill("#policy-default", "0.85")
    page.fill("#policy-form input[data-class=fox]", "0.95")
    page.fill("#policy-reason", "more spot checks while the fox model settles")
    ui.screenshot("13-lead-policy")
    page.click("#policy-save")
    expect(page.locator("#policy-version")).to_contain_text("Version 2")

    latest = max(seed.policies(expect=2), key=lambda update: update.version)
    assert latest.version == 2
    assert latest.changed_by.id == "lee"
    assert latest.policy.review.spot_check_rate == 0.2
    assert latest.policy.confidence.default == 0.85
    assert latest.policy.confidence.per_class == {"fox": 0.95}

    page.click("#tab-quality")
    row = page.locator("#quality tr[data-reviewer=ann]")
    expect(row).to_be_visible()
    expect(row.locator("td").nth(1)).to_have_text("1")
    ui.screenshot("14-lead-quality")


def _policy_version(gateway) -> int | None:
    try:
        return gateway.call("GET", "/v1/policy/demo", "lee")["version"]
    except Exception:
        return None
