"""Fixtures for the dashboard's browser tests: the server Scripts/test-browser started, a
JSON client for its API, and Chromium (Debian's, driven by Playwright)."""
import json
import os
import urllib.error
import urllib.parse
import urllib.request

import pytest
from playwright.sync_api import sync_playwright

BASE = os.environ.get("FERRY_URL", "")
SHOTS = os.environ.get("FERRY_SCREENSHOTS", ".build/screenshots")


class Answer:
    def __init__(self, status, body, headers):
        self.status, self.body, self.headers = status, body, headers

    def json(self):
        return json.loads(self.body)


class API:
    """The JSON API, as a script uses it (a user's access token, or a device's)."""

    def __init__(self, token=None):
        self.token = token

    def call(self, method, path, body=None, raw=None, token=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(BASE + "/api/v1" + path, data=data, method=method)
        if body is not None:
            request.add_header("Content-Type", "application/json")
        if token or self.token:
            request.add_header("Authorization", "Bearer " + (token or self.token))
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return Answer(answer.status, answer.read(), answer.headers)
        except urllib.error.HTTPError as error:
            return Answer(error.code, error.read(), error.headers)

    @staticmethod
    def login(username, password):
        answer = API().call("POST", "/auth/login", {"username": username, "password": password})
        assert answer.status == 200, answer.body
        return API(answer.json()["access_token"])

    def library(self, name):
        """The library of that name, created if needed."""
        for library in self.call("GET", "/libraries").json()["libraries"]:
            if library["name"] == name:
                return library["id"]
        answer = self.call("POST", "/libraries", {"name": name})
        assert answer.status == 201, answer.body
        return answer.json()["id"]

    def put(self, library, path, content):
        answer = self.call("PUT", f"/libraries/{library}/files?path={urllib.parse.quote(path)}", raw=content)
        assert answer.status == 201, answer.body
        return answer.json()["version"]

    def get(self, library, path):
        answer = self.call("GET", f"/libraries/{library}/files?path={urllib.parse.quote(path)}")
        assert answer.status == 200, answer.body
        return answer.body

    def mkdir(self, library, path):
        answer = self.call("POST", f"/libraries/{library}/commit", {"operations": [
            {"op": "put", "path": path, "kind": "directory", "size": 0, "mtime_ns": 0, "mode": 0o755, "chunks": []}]})
        assert answer.status == 200, answer.body


@pytest.fixture(scope="session")
def users():
    assert BASE, "run these through Scripts/test-browser (it starts the server)"
    return {"alice": os.environ["FERRY_ALICE_PASSWORD"], "bob": os.environ["FERRY_BOB_PASSWORD"]}


@pytest.fixture(scope="session")
def alice_api(users):
    return API.login("alice", users["alice"])


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=os.environ.get("CHROMIUM") or "/usr/bin/chromium")
        yield chromium
        chromium.close()


def sign_in(page, username, password):
    page.goto(BASE + "/signin")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Libraries").wait_for()


@pytest.fixture
def alice(browser, users):
    """A fresh browser context signed in as alice."""
    context = browser.new_context(base_url=BASE, accept_downloads=True)
    page = context.new_page()
    sign_in(page, "alice", users["alice"])
    yield page
    context.close()


def screenshot(page, name):
    os.makedirs(SHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SHOTS, name + ".png"), full_page=True)
