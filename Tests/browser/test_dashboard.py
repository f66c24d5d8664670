"""The dashboard in a real browser (SPEC §7), finding everything by its accessible name."""
import os
import re
import time

from playwright.sync_api import expect

from conftest import API, BASE, screenshot, sign_in


def nav(page, name):
    """A link of the main navigation (breadcrumbs may hold a link of the same name)."""
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True)


def test_sign_in_rejects_a_wrong_password_and_sets_a_strict_cookie(browser, users):
    context = browser.new_context(base_url=BASE)
    page = context.new_page()
    answer = page.goto("/libraries")
    assert page.url.startswith(BASE + "/signin?next=")
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp
    assert answer.headers["x-content-type-options"] == "nosniff"
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("not her password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Invalid")
    expect(page.get_by_label("Password")).to_be_visible()
    assert not [c for c in context.cookies() if c["name"] == "ferry_session"]
    screenshot(page, "signin-refused")

    page.get_by_label("Password").fill(users["alice"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Libraries")).to_be_visible()
    session = [c for c in context.cookies() if c["name"] == "ferry_session"]
    assert len(session) == 1
    assert session[0]["httpOnly"] and session[0]["sameSite"] == "Strict" and not session[0]["secure"]
    assert session[0]["expires"] > time.time() + 3600, "the cookie ends with the session, not the browser"
    assert page.evaluate("document.cookie") == "", "the session cookie is out of the script's reach"
    nav = page.get_by_role("navigation", name="Main")
    for link in ["Libraries", "Devices", "Tasks", "Webhooks", "Conflicts"]:
        expect(nav.get_by_role("link", name=link, exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    context.close()


def test_keyboard_alone_signs_in(browser, users):
    context = browser.new_context(base_url=BASE)
    page = context.new_page()
    page.goto("/signin")
    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Tab")
    expect(page.get_by_label("Username")).to_be_focused()
    page.keyboard.type("alice")
    page.keyboard.press("Tab")
    page.keyboard.type(users["alice"])
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Libraries")).to_be_visible()
    context.close()


def test_browse_to_a_file_download_it_and_restore_an_old_version(alice, alice_api):
    library = alice_api.library("docs")
    alice_api.mkdir(library, "reports")
    first = os.urandom(200_000) + b"first"
    second = b"quarterly numbers, revised\n" * 40
    alice_api.put(library, "reports/q3.txt", first)
    alice_api.put(library, "reports/q3.txt", second)

    page = alice
    page.goto("/libraries")
    screenshot(page, "libraries")
    page.get_by_role("link", name="docs", exact=True).click()
    page.get_by_role("link", name="reports", exact=True).click()
    expect(page.get_by_role("navigation", name="Breadcrumbs")).to_contain_text("docs")
    screenshot(page, "folder")
    page.get_by_role("link", name="q3.txt", exact=True).click()
    expect(page.get_by_role("heading", name="q3.txt")).to_be_visible()
    expect(page.get_by_label("Preview")).to_contain_text("quarterly numbers, revised")
    screenshot(page, "file")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download", exact=True).click()
    with open(download.value.path(), "rb") as saved:
        assert saved.read() == second
    assert download.value.suggested_filename == "q3.txt"

    history = page.get_by_role("table", name="History")
    rows = history.get_by_role("row")
    expect(rows).to_have_count(3)  # the header and two versions
    expect(history.get_by_role("button", name="Restore")).to_have_count(1)
    oldest = rows.nth(2)
    oldest.get_by_role("button", name="Restore").click()
    expect(page.get_by_role("table", name="History").get_by_role("row")).to_have_count(4)
    assert alice_api.get(library, "reports/q3.txt") == first


def test_upload_through_the_file_input(alice, alice_api, tmp_path):
    library = alice_api.library("uploads")
    content = os.urandom(3 * 1024 * 1024 + 17)
    source = tmp_path / "camera roll.bin"
    source.write_bytes(content)
    page = alice
    page.goto("/libraries")
    page.get_by_role("link", name="uploads", exact=True).click()
    page.get_by_label("Upload files").set_input_files(str(source))
    expect(page.locator("#upload-progress")).to_contain_text("camera roll.bin uploaded")
    expect(page.get_by_role("link", name="camera roll.bin", exact=True)).to_be_visible()
    assert alice_api.get(library, "camera roll.bin") == content


def test_a_commit_through_the_api_appears_without_a_reload(alice, alice_api):
    library = alice_api.library("live")
    page = alice
    page.goto("/libraries")
    page.get_by_role("link", name="live", exact=True).click()
    expect(page.get_by_text("This folder is empty.")).to_be_visible()
    page.evaluate("window.stillTheSamePage = true")
    alice_api.put(library, "from-a-laptop.txt", b"synced")
    expect(page.get_by_role("link", name="from-a-laptop.txt", exact=True)).to_be_visible(timeout=2000)
    assert page.evaluate("window.stillTheSamePage") is True, "the page was reloaded"


def test_trash_lists_a_deleted_file_and_restores_it(alice, alice_api):
    library = alice_api.library("trash-test")
    alice_api.put(library, "draft.txt", b"keep me")
    page = alice
    page.goto("/libraries")
    page.get_by_role("link", name="trash-test", exact=True).click()
    page.get_by_role("link", name="draft.txt", exact=True).click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("This folder is empty.")).to_be_visible()
    page.get_by_role("link", name="Trash", exact=True).click()
    row = page.get_by_role("row").filter(has_text="draft.txt")
    row.get_by_role("button", name="Restore").click()
    expect(page.get_by_text("Nothing deleted here.")).to_be_visible()
    assert alice_api.get(library, "draft.txt") == b"keep me"


def test_revoking_a_device_asks_and_its_token_is_refused(alice, alice_api, browser, users):
    device = alice_api.call("POST", "/devices", {"name": "lost laptop"}).json()
    page = alice
    nav(page, "Devices").click()
    row = page.get_by_role("row").filter(has_text="lost laptop")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("row").filter(has_text="lost laptop")).to_contain_text("revoked")
    assert asked and "lost laptop" in asked[0]
    screenshot(page, "devices")
    assert API().call("GET", "/auth/me", token=device["token"]).status == 401

    # Without JavaScript the same button leads to a confirmation page.
    other = alice_api.call("POST", "/devices", {"name": "old phone"}).json()
    context = browser.new_context(base_url=BASE, java_script_enabled=False)
    plain = context.new_page()
    sign_in(plain, "alice", users["alice"])
    plain.goto("/devices")
    plain.get_by_role("row").filter(has_text="old phone").get_by_role("button", name="Revoke").click()
    expect(plain.get_by_role("heading", name="Revoke old phone?")).to_be_visible()
    assert API().call("GET", "/auth/me", token=other["token"]).status == 200
    plain.get_by_role("button", name="Revoke").click()
    expect(plain.get_by_role("row").filter(has_text="old phone")).to_contain_text("revoked")
    assert API().call("GET", "/auth/me", token=other["token"]).status == 401
    context.close()


def test_tasks_webhooks_and_conflicts(alice, alice_api):
    page = alice
    nav(page, "Tasks").click()
    page.get_by_label("Title").fill("Send the Q3 report")
    page.get_by_role("button", name="Create task").click()
    expect(page.get_by_role("heading", name="Send the Q3 report")).to_be_visible()
    library = alice_api.library("docs")
    alice_api.put(library, "report.pdf", b"%PDF-1.7 report")
    page.get_by_label("Library").select_option(label="docs")
    page.get_by_label("Path").fill("report.pdf")
    page.get_by_role("button", name="Attach file").click()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download", exact=True).click()
    with open(download.value.path(), "rb") as saved:
        assert saved.read() == b"%PDF-1.7 report"
    nav(page, "Tasks").click()
    expect(page.get_by_role("link", name="Send the Q3 report")).to_be_visible()
    screenshot(page, "tasks")

    nav(page, "Webhooks").click()
    page.get_by_label("URL").fill("http://127.0.0.1:9/ferry-hook")
    page.get_by_label("Events").fill("file.*, task.*")
    page.get_by_role("button", name="Add webhook").click()
    expect(page.get_by_role("status")).to_contain_text("whsec_")
    page.get_by_role("button", name="Send test").click()
    log = page.get_by_role("table", name="Delivery log of http://127.0.0.1:9/ferry-hook")
    expect(log.get_by_role("row").filter(has_text="ping")).to_have_count(1)
    log.get_by_role("button", name="Redeliver").first.click()
    expect(page.get_by_role("table").get_by_role("row").filter(has_text="ping")).to_have_count(2)
    nav(page, "Webhooks").click()
    screenshot(page, "webhooks")

    theirs = alice_api.put(library, "plan.txt", b"theirs")
    mine = alice_api.put(library, "plan-mine.tmp", b"mine")
    commit = alice_api.call("POST", f"/libraries/{library}/commit", {"operations": [{
        "op": "put", "path": "plan.conflict-laptop-20260101-120000.txt", "kind": "file", "size": mine["size"], "sha256": mine["sha256"],
        "mtime_ns": 0, "mode": 0o644, "chunks": mine["chunks"], "conflict_of": {"path": "plan.txt", "theirs": theirs["version"]}}]})
    assert commit.status == 200, commit.body
    nav(page, "Conflicts").click()
    conflict = page.get_by_role("article").filter(has_text="plan.txt")
    for button in ["Keep mine", "Keep theirs", "Keep both"]:
        expect(conflict.get_by_role("button", name=button)).to_be_visible()
    screenshot(page, "conflicts")
    conflict.get_by_role("button", name="Keep mine").click()
    expect(page.get_by_text("No open conflicts.")).to_be_visible()
    assert alice_api.get(library, "plan.txt") == b"mine"

    page.goto("/admin")
    expect(page.get_by_role("table", name="Users")).to_contain_text("bob")
    screenshot(page, "admin")


def test_pages_fit_a_phone(browser, users, alice_api):
    alice_api.library("docs")
    context = browser.new_context(base_url=BASE, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    sign_in(page, "alice", users["alice"])
    page.get_by_role("link", name="docs", exact=True).click()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the page scrolls sideways on a phone"
    screenshot(page, "phone-library")
    context.close()


def test_sign_out_then_a_second_user_sees_nothing_of_the_first(alice, alice_api, users, browser):
    library = alice_api.library("docs")
    # alice's own device, task and webhook, made here so the test holds when run alone.
    for path, body in [("/devices", {"name": "alice-only laptop"}), ("/tasks", {"title": "alice-only task"}),
                       ("/webhooks", {"url": "http://127.0.0.1:9/alice-only-hook", "events": ["file.*"]})]:
        answer = alice_api.call("POST", path, body)
        assert answer.status == 201, answer.body
    page = alice
    nav(page, "Devices").click()
    expect(page.get_by_text("alice-only laptop")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert page.goto("/libraries").url.startswith(BASE + "/signin")

    sign_in(page, "bob", users["bob"])
    expect(page.get_by_role("link", name="docs", exact=True)).to_have_count(0)
    expect(page.get_by_text("No libraries yet.")).to_be_visible()
    answer = page.goto(f"/libraries/{library}")
    assert answer.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    page.goto("/devices")
    expect(page.get_by_role("heading", name="Devices")).to_be_visible()
    expect(page.get_by_text("alice-only laptop")).to_have_count(0)
    page.goto("/tasks")
    expect(page.get_by_role("heading", name="Tasks", exact=True)).to_be_visible()
    expect(page.get_by_text("alice-only task")).to_have_count(0)
    page.goto("/webhooks")
    expect(page.get_by_role("heading", name="Webhooks")).to_be_visible()
    expect(page.get_by_text("alice-only-hook")).to_have_count(0)
    assert page.goto("/admin").status == 404
    assert re.search(r"bob", page.content())
