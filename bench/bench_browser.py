"""Slider-to-image latency in a real browser (Chromium via Playwright), shipped checkpoints.

  python bench/bench_browser.py [--moves 30]

Moves a latent-direction slider of the Generate tab to a new value and times until the
vessel tree and the photo on the page have both been replaced (figures printed only).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_app import free_port, start  # noqa: E402

CHANGED = """([v, p]) => {
  const a = document.querySelector('#gen-vessels img'), b = document.querySelector('#gen-photo img');
  return a && b && a.src !== v && b.src !== p;
}"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--moves", type=int, default=30)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    port = free_port()
    proc, cold = start(["app.py", "--port", str(port)], port)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            t0 = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#gen-photo img", timeout=120000)
            print(f"cold start {cold:.1f} s; page load to first generated photo {time.perf_counter() - t0:.1f} s")
            slider = page.locator("input[type=range]").nth(1)
            times = []
            for k in range(args.moves):
                before = [page.locator(s).first.get_attribute("src") for s in ("#gen-vessels img", "#gen-photo img")]
                value = [-3, 3, -1.5, 1.5, 0][k % 5]  # big steps, so every move changes the tree
                t = time.perf_counter()
                slider.fill(str(value))
                slider.dispatch_event("input")
                slider.dispatch_event("change")
                page.wait_for_function(CHANGED, arg=before, timeout=30000)
                times.append((time.perf_counter() - t) * 1000)
            browser.close()
        lat = np.array(times)
        print(f"slider to both images replaced, {len(lat)} moves: p50 {np.percentile(lat, 50):.0f} ms, p95 {np.percentile(lat, 95):.0f} ms")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
