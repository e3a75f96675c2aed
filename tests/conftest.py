"""Fixtures shared by the tests of every package."""

import pytest
from selenium import webdriver

# Debian's chromium, headless, as root, on a machine with no network: without the
# background-networking flags it keeps trying Google's hosts at every start.
HEADLESS_CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


@pytest.fixture(scope="session")
def chromium_options():
    """``make(binary, profile_dir, window)`` -> the ChromeOptions of the browser tests (an empty
    profile, a fixed window size such as ``"1400,1300"``)."""

    def make(binary, profile_dir, window):
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for flag in (*HEADLESS_CHROMIUM_FLAGS, f"--window-size={window}", f"--user-data-dir={profile_dir}"):
            options.add_argument(flag)
        return options

    return make
