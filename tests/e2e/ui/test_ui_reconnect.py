"""A Redis loss while a reviewer works: the gateway answers ``503 rebuilding`` until it has its
users back, and the UI retries (showing that it is reconnecting) instead of signing them out."""

from __future__ import annotations

import pytest
import redis
from playwright.sync_api import expect

PREFIX = "e2e-rebuild:"


@pytest.fixture
def gateway(gateway_factory):
    """A gateway whose Redis keys the test knows (to stand in for a second instance's lock)."""
    return gateway_factory(redis_prefix=PREFIX)


def test_a_rebuilding_gateway_does_not_sign_the_reviewer_out(ui, gateway, seed, redis_url):
    seed.publish(seed.text_item("txt-r", "still here after the flush"))
    gateway.wait_for_queue("ann")
    ui.sign_in("ann")
    page = ui.page
    expect(page.locator(".review")).to_be_visible()
    token = gateway.tokens["ann"]
    me_answers: list[int] = []
    page.on(
        "response",
        lambda r: me_answers.append(r.status) if r.url.endswith("/v1/me") else None,
    )

    # Redis loses everything, and (as if another gateway instance were rebuilding the shared
    # Redis) the rebuild lock is taken in the same step, so the users stay away until released
    client = redis.Redis.from_url(redis_url)
    with client.pipeline(transaction=True) as pipe:
        pipe.flushall()
        pipe.set(f"{PREFIX}rebuild-lock", "another-gateway", ex=300)
        pipe.execute()
    try:
        page.reload()  # the reviewer reloads the tab (sessionStorage keeps the token)
        banner = page.locator("#reconnecting")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("Reconnecting")
        page.wait_for_function("document.querySelectorAll('#signin').length === 0")
        for _ in range(2):  # retried, with the token, while the gateway is still rebuilding
            with page.expect_response(
                lambda r: r.url.endswith("/v1/me") and r.status == 503, timeout=20_000
            ) as retried:
                pass
            assert retried.value.request.headers["authorization"] == f"Bearer {token}"
        expect(page.locator("#signin")).to_have_count(0)
        assert page.evaluate("sessionStorage.getItem('loupe.token')") == token
        ui.screenshot("30-reconnecting")
    finally:
        client.delete(f"{PREFIX}rebuild-lock")  # this gateway now rebuilds by itself
        client.close()

    # the retried request goes through: same person, same tab, no sign-in in between
    expect(page.locator("#who-name")).to_have_text("Ann Reviewer", timeout=30_000)
    expect(banner).to_be_hidden()
    expect(page.locator(".review")).to_be_visible(timeout=30_000)
    assert me_answers.count(503) >= 3 and 401 not in me_answers and me_answers[-1] == 200
    assert page.evaluate("sessionStorage.getItem('loupe.token')") == token
