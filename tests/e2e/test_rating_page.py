"""The blinded rating page in headless Chromium against a real gateway and PostgreSQL.

Needs the Debian ``chromium`` package (``apt-get install -y chromium``); Playwright drives it through
``executable_path`` and downloads no browser of its own.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.credentials import api_key

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
PAIRS = [("Why does the statute say that?", "What does the statute mean here, counsel?"),
         ("Isn't that exactly the problem?", "Doesn't that prove too much?")]


@pytest.fixture
def seeded_tenant(pg, tenant):
    for i, (real, twin) in enumerate(PAIRS):
        ctx = {"history": [{"role": "interviewer", "text": "Counsel, begin."}],
               "candidateTurn": f"Candidate answer number {i}.", "turnIndex": i + 1}
        pg.execute("INSERT INTO eval_samples (sample_id, tenant, interviewer_id, session_id, correlation_id, context,"
                   " twin_text, real_text, scores, run_id, source) VALUES (%s, %s, 'kagan', 's1', %s, %s, %s, %s,"
                   " '{\"combined\": 0.3}', 'run-secret-id', 'offline')",
                   (f"{tenant}-sample-{i}", tenant, f"c{i}", json.dumps(ctx), twin, real))
    return tenant


@pytest.fixture
def gateway_url(gateway_factory, seeded_tenant):
    _, url = gateway_factory(f"gateway-rating-{seeded_tenant}")
    return url


async def test_rater_logs_in_and_picks_the_real_reply_per_turn_and_per_session(gateway_url, seeded_tenant, pg):
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{gateway_url}/api/digital-twin/eval/ratings/page")
            await page.fill("#token", "wrong-token")
            await page.click("#login-btn")
            await page.wait_for_selector("#login-err:has-text('not valid')")

            await page.fill("#token", api_key(seeded_tenant, scopes=["rater"], name="carol"))
            await page.click("#login-btn")
            await page.wait_for_selector("#who:has-text('carol')")
            picked = []
            for n in range(len(PAIRS)):
                await page.wait_for_selector("#pick-A")
                text = await page.inner_text("#item")
                # Blinded: the page shows the context and two versions, nothing about their source.
                for secret in ("run-secret-id", "sample", "twin", "offline", "combined"):
                    assert secret not in text.lower()
                replies = await page.locator(".opt .reply").all_inner_texts()
                pair = next(p for p in PAIRS if set(p) == set(replies))
                real_option = "AB"[replies.index(pair[0])]
                picked.append(pair[0])
                await page.click(f"#pick-{real_option}")
                await page.wait_for_selector(f"#answered:has-text('{n + 1}')")
                # The count updates before the next item arrives: wait until the rated pair is gone.
                await page.wait_for_function(
                    """(rated) => !document.getElementById("empty").classList.contains("hidden") ||
                        !Array.from(document.querySelectorAll(".opt .reply")).some(e => rated.includes(e.textContent))""",
                    arg=list(pair))
            await page.wait_for_selector("#empty:not(.hidden)")
            assert set(picked) == {real for real, _ in PAIRS}

            await page.select_option("#kind", "session")
            await page.wait_for_selector("#pick-B")
            versions = await page.locator(".opt").all_inner_texts()
            assert all("Candidate answer number 0." in v and "Candidate answer number 1." in v for v in versions)
            await page.click("#pick-B")
            await page.wait_for_selector("#answered:has-text('3')")
        finally:
            await browser.close()

    rows = pg.execute("SELECT kind, correct FROM eval_ratings WHERE tenant=%s AND rater='carol'"
                      " AND answered_at IS NOT NULL ORDER BY answered_at", (seeded_tenant,)).fetchall()
    assert [r[0] for r in rows] == ["turn", "turn", "session"]
    assert rows[0][1] is True and rows[1][1] is True  # the rater picked the real line both times
