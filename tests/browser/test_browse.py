"""Reading the registry in a real browser: from the bucket list to a bucket, a version and a channel, a
search by AMI id, and the ancestry graph turning OUT_OF_DATE when the parent's channel moves on. Every
page passes axe-core; the main pages are photographed at a laptop's size and one at a phone's."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.conftest import NewContext
from tests.browser.seed import AMIS, APP, BASE, DB, assign
from tests.browser.support import (
    CONTRIBUTOR,
    PHONE,
    VIEWER,
    WAIT_MS,
    Served,
    check_accessibility,
    screenshot,
    sign_in,
)

V1 = "ubuntu-2404-20240501"
V2 = "ubuntu-2404-20240508"
APP_V1 = "web-app-1f3c9e2"


def heading(page: Page) -> str:
    return page.get_by_role("heading", level=1).inner_text(timeout=WAIT_MS)


def test_browse_from_the_bucket_list_to_a_version_and_a_channel(
    served: Served, new_context: NewContext, screenshot_dir: Path
) -> None:
    page = new_context().new_page()
    sign_in(page, served, CONTRIBUTOR)
    expect(page).to_have_url(served.url + served.project, timeout=WAIT_MS)
    expect(page.get_by_role("heading", level=1)).to_have_text("Buckets", timeout=WAIT_MS)
    listing = page.get_by_role("table").first
    for slug in (BASE, APP, DB):
        expect(listing.get_by_role("link", name=slug, exact=True)).to_be_visible(timeout=WAIT_MS)
    base_row = listing.get_by_role("row").filter(has=page.get_by_role("link", name=BASE, exact=True))
    expect(base_row).to_contain_text("v2", timeout=WAIT_MS)  # its latest version
    expect(base_row).to_contain_text("production → v1", timeout=WAIT_MS)
    check_accessibility(page, "the bucket list")
    screenshot(page, "buckets", screenshot_dir)

    listing.get_by_role("link", name=BASE, exact=True).click(timeout=WAIT_MS)
    expect(page).to_have_url(served.url + served.bucket(BASE), timeout=WAIT_MS)
    expect(page.get_by_role("heading", level=1)).to_have_text(BASE, timeout=WAIT_MS)
    channels = page.get_by_role("region", name="Channels")
    production = channels.get_by_role("row").filter(has=page.get_by_role("link", name="production", exact=True))
    expect(production).to_contain_text("v1", timeout=WAIT_MS)
    versions = page.get_by_role("region", name="Versions")
    expect(versions.get_by_role("link", name="v2", exact=True)).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_role("region", name="Ancestry")).to_contain_text(APP, timeout=WAIT_MS)
    check_accessibility(page, "a bucket's page")
    screenshot(page, "bucket", screenshot_dir)

    versions.get_by_role("link", name="v1", exact=True).click(timeout=WAIT_MS)
    expect(page).to_have_url(served.url + served.version(BASE, V1), timeout=WAIT_MS)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{BASE} v1 Active", timeout=WAIT_MS)
    builds = page.get_by_role("region", name="Builds")
    for region in ("us-east-1", "eu-west-1"):
        expect(builds).to_contain_text(AMIS[(BASE, V1, region)], timeout=WAIT_MS)
        expect(builds).to_contain_text(region, timeout=WAIT_MS)
    expect(builds).to_contain_text("1.11.2", timeout=WAIT_MS)  # the Packer version Packer sent
    expect(builds).to_contain_text("4f9c2d1", timeout=WAIT_MS)  # and the git commit
    expect(page.get_by_role("region", name="Revocation")).to_contain_text("Not revoked.", timeout=WAIT_MS)
    check_accessibility(page, "a version's page")
    screenshot(page, "version", screenshot_dir)

    page.get_by_role("link", name="production", exact=True).click(timeout=WAIT_MS)
    expect(page).to_have_url(served.url + served.channel(BASE, "production"), timeout=WAIT_MS)
    expect(page.get_by_role("heading", level=1)).to_have_text("Channel production", timeout=WAIT_MS)
    history = page.get_by_role("region", name="Assignment history")
    expect(history.get_by_role("listitem")).to_have_count(1, timeout=WAIT_MS)
    expect(history).to_contain_text("set to v1", timeout=WAIT_MS)
    check_accessibility(page, "a channel's page")
    screenshot(page, "channel", screenshot_dir)


def test_the_pages_fit_a_phone(served: Served, new_context: NewContext, screenshot_dir: Path) -> None:
    page = new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2).new_page()
    sign_in(page, served, VIEWER)
    for path in (served.project, served.bucket(APP), served.version(BASE, V1)):
        page.goto(served.url + path, timeout=WAIT_MS)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} is {width}px wide on a {PHONE['width']}px screen"
        check_accessibility(page, f"{path} on a phone")
    page.goto(served.url + served.bucket(APP), timeout=WAIT_MS)
    screenshot(page, "bucket-phone", screenshot_dir, full_page=False)


def test_search_finds_the_version_holding_an_ami(served: Served, new_context: NewContext, screenshot_dir: Path) -> None:
    page = new_context().new_page()
    sign_in(page, served, VIEWER)
    ami = AMIS[(APP, APP_V1, "us-east-1")]
    page.get_by_label("Search").fill(ami, timeout=WAIT_MS)
    page.get_by_role("button", name="Search").click(timeout=WAIT_MS)
    expect(page).to_have_url(f"{served.url}{served.project}/search?q={ami}", timeout=WAIT_MS)
    found = page.get_by_role("region", name="Versions holding an artifact of that id")
    expect(found.get_by_role("row")).to_have_count(2, timeout=WAIT_MS)  # the header and the one version
    expect(found).to_contain_text(ami, timeout=WAIT_MS)
    check_accessibility(page, "the search results")
    screenshot(page, "search", screenshot_dir)
    found.get_by_role("link", name=f"{APP} v1").click(timeout=WAIT_MS)
    expect(page).to_have_url(served.url + served.version(APP, APP_V1), timeout=WAIT_MS)
    # And by fingerprint, from the box on the results page.
    page.goto(f"{served.url}{served.project}/search?q={V2}", timeout=WAIT_MS)
    by_fingerprint = page.get_by_role("region", name="Versions of that fingerprint or id")
    expect(by_fingerprint.get_by_role("link", name=f"{BASE} v2")).to_be_visible(timeout=WAIT_MS)
    nothing = page.goto(f"{served.url}{served.project}/search?q=ami-0000000000000000", timeout=WAIT_MS)
    assert nothing is not None
    assert nothing.status == 200
    expect(page.get_by_text("No artifact has that external id.")).to_be_visible(timeout=WAIT_MS)
    check_accessibility(page, "a search that finds nothing")


def test_the_ancestry_graph_turns_out_of_date_when_the_parents_channel_moves(
    served: Served, new_context: NewContext
) -> None:
    page = new_context().new_page()
    sign_in(page, served, VIEWER)
    page.goto(served.url + served.bucket(APP), timeout=WAIT_MS)
    ancestry = page.get_by_role("region", name="Ancestry")
    graph = ancestry.get_by_role("figure")
    expect(graph.locator("svg")).to_be_visible(timeout=WAIT_MS)
    expect(graph.locator(".edge text")).to_have_text(["UP_TO_DATE"], timeout=WAIT_MS)
    expect(ancestry.get_by_role("table")).to_contain_text("UP_TO_DATE", timeout=WAIT_MS)
    expect(graph.get_by_role("link")).to_have_count(2, timeout=WAIT_MS)  # ubuntu-base v1 and web-app v1

    assign(served.api, BASE, "production", V2)  # through the API, as Terraform or Packer would
    page.reload(timeout=WAIT_MS)
    expect(graph.locator(".edge text")).to_have_text(["OUT_OF_DATE"], timeout=WAIT_MS)
    row = ancestry.get_by_role("table").get_by_role("row").nth(1)
    expect(row).to_contain_text("OUT_OF_DATE", timeout=WAIT_MS)
    expect(row).to_contain_text("production (now v2)", timeout=WAIT_MS)
    check_accessibility(page, "a bucket's page with an out-of-date parent")
    # The parent's page says the same of its child.
    page.goto(served.url + served.bucket(BASE), timeout=WAIT_MS)
    expect(page.get_by_role("region", name="Ancestry").get_by_role("table")).to_contain_text(
        "OUT_OF_DATE", timeout=WAIT_MS
    )
    assert heading(page) == BASE
