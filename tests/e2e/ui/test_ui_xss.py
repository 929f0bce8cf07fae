"""Item text, class names and comments are rendered as text: markup in them never executes."""

from __future__ import annotations

from playwright.sync_api import expect

EVIL_TEXT = (
    'Totally normal caption <script>window.__xss = "script"; alert("script")</script> '
    "and <img src=x onerror=\"window.__xss = 'img'; alert('img')\"> the end"
)
EVIL_CLASS = "<img src=y onerror=\"window.__xss='class'\">"
EVIL_COMMENT = "<svg onload=\"window.__xss='comment'\"></svg><script>alert('c')</script>"


def test_markup_in_items_classes_and_comments_renders_inert(ui, gateway, seed):
    seed.publish(
        seed.text_item("txt-x", EVIL_TEXT, label="cat", classes=["cat", EVIL_CLASS, "dog"])
    )
    gateway.wait_for_queue("sam")
    ui.sign_in("sam")
    page = ui.page

    expect(page.locator("#item-text")).to_have_text(EVIL_TEXT)
    expect(page.locator(".class-btn .name")).to_have_text(["cat", EVIL_CLASS, "dog"])
    assert page.locator("main img, main script, main svg[onload]").count() == 0
    ui.screenshot("15-xss-item-inert")

    page.keyboard.press("c")
    page.keyboard.type(EVIL_COMMENT)
    page.keyboard.press("Escape")
    page.keyboard.press("2")  # the class whose name is markup
    page.keyboard.press("Enter")
    expect(page.locator("#no-task")).to_be_visible()
    [decision] = seed.decisions(expect=1)
    assert decision.label.label == EVIL_CLASS
    assert decision.comment == EVIL_COMMENT

    page.goto(gateway.url + "/#/items/txt-x/history")
    page.fill("#new-comment", EVIL_COMMENT)
    page.click("#comment-form button[type=submit]")
    expect(page.locator("#comments li.comment .body").first).to_have_text(EVIL_COMMENT)

    assert page.evaluate("window.__xss") is None
    assert ui.dialogs == []
    assert page.locator("main script, main img, main svg[onload]").count() == 0


def test_images_load_only_from_safe_addresses(ui, gateway, seed):
    seed.publish(
        seed.image_item("img-ok", seed.png(64, 48)),
        seed.image_item("img-js", "javascript:window.__xss='uri'"),
        seed.image_item("img-html", "data:text/html,<script>window.__xss='html'</script>"),
    )
    gateway.wait_for_queue("ann", 3)
    ui.sign_in("ann")
    page = ui.page
    seen = {}
    for _ in range(3):
        item = page.locator("#item-id").inner_text()
        image = page.locator("img.item-image")
        if item == "img-ok":
            expect(image).to_be_visible()
            assert image.get_attribute("src").startswith("data:image/png;base64,")
            # visible (it has a CSS width) can come before decoded: wait for the pixels
            page.wait_for_function("document.querySelector('img.item-image')?.naturalWidth === 64")
        else:
            expect(page.locator(".main")).to_contain_text("Media not shown")
            assert image.count() == 0
        seen[item] = True
        page.keyboard.press("a")
        page.keyboard.press("Enter")
        expect(page.locator("#item-id, #no-task").first).not_to_have_text(item)
    assert set(seen) == {"img-ok", "img-js", "img-html"}
    assert page.evaluate("window.__xss") is None
    assert ui.dialogs == []
