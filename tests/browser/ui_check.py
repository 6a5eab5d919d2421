#!/usr/bin/python3
"""Drives vicreg_coordinator's web UI in headless Chromium (Debian: chromium, chromium-driver,
python3-selenium; the browser is never downloaded) and checks what a person would see.

Run by tests/browser/browser_ui_test.cc against a real coordinator and a real finished job:
  ui_check.py --url http://127.0.0.1:PORT --token T --job job-000002 --hostile-job job-000001
              --run-dir RUN_DIR --report report.html --out ARTIFACT_DIR
Prints one "ok   ..." or "FAIL ..." line per check; exit 1 if any check failed.

Screenshot only (the README's picture of a job page, docs/images/job-page.png):
  ui_check.py --url http://127.0.0.1:PORT [--token T] --job ID --screenshot OUT.png [--width 1200]
              [--max-height 1500]      # cropped, and reduced to 256 colours when python3-pil is there
"""
import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

FAILURES = []


def check(cond, what, detail=""):
    if cond:
        print("ok   " + what, flush=True)
    else:
        print("FAIL " + what + (": " + str(detail) if detail != "" else ""), flush=True)
        FAILURES.append(what)
    return cond


def browser(user_data_dir, width=1280, height=1600):
    o = Options()
    o.binary_location = "/usr/bin/chromium"
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--no-first-run", "--no-default-browser-check", "--disable-quic", "--disable-extensions",
              "--disable-default-apps", "--disable-features=Translate,MediaRouter,OptimizationHints",
              "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
              "--user-data-dir=" + user_data_dir, "--window-size=%d,%d" % (width, height)]:
        o.add_argument(a)
    return webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=o)


def wait_for(driver, css, timeout=30, cond=None):
    """The first element matching css (and cond(element)), or None after timeout seconds."""
    end = time.time() + timeout
    while time.time() < end:
        for e in driver.find_elements(By.CSS_SELECTOR, css):
            try:
                if cond is None or cond(e):
                    return e
            except Exception:  # stale element while the page re-renders
                pass
        time.sleep(0.1)
    return None


def no_script_ran(driver, where):
    xss = driver.execute_script("return window.__xss === undefined ? null : window.__xss")
    check(xss is None, where + ": no injected script ran (window.__xss unset)", xss)
    try:
        alert = driver.switch_to.alert
        check(False, where + ": no alert() dialog", alert.text)
        alert.dismiss()
    except NoAlertPresentException:
        check(True, where + ": no alert() dialog")
    scripts = driver.execute_script("return Array.from(document.scripts).map(s => s.src || 'inline:' + s.id)")
    check(all(s.endswith("/assets/charts.js") or s.endswith("/assets/app.js") or s.startswith("inline")
              for s in scripts), where + ": only the UI's own scripts exist", scripts)
    imgs = driver.execute_script("return document.querySelectorAll('img, iframe, object, embed').length")
    check(imgs == 0, where + ": no element injected from job content", imgs)


def expected_points(n, max_points):
    """Points per series after the API's min/max downsampling (server/http/metrics_series.h)."""
    if n <= max_points:
        return n
    b = max_points // 2
    k = math.ceil(n / b)
    buckets = math.ceil(n / k)
    last = n - (buckets - 1) * k
    return 2 * buckets - (1 if last == 1 else 0)


def metrics_rows(run_dir):
    rows = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            line = line.strip()
            if line:
                j = json.loads(line)
                if isinstance(j.get("step"), (int, float)):
                    rows.append(j)
    return rows


def eval_rows(run_dir):
    """(epoch, probe, model) -> top1 from every eval/epoch_<E>_<dataset>.json vicreg_eval wrote."""
    out = {}
    d = os.path.join(run_dir, "eval")
    for name in sorted(os.listdir(d)):
        if not (name.startswith("epoch_") and name.endswith(".json")):
            continue
        epoch = int(name.split("_")[1])
        with open(os.path.join(d, name)) as f:
            rep = json.load(f)
        for r in rep["rows"]:
            out[(epoch, r["probe"], r["model"])] = r["top1"]
    return out


def http_status(url, headers=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def full_screenshot(driver, path, width):
    h = driver.execute_script("return Math.ceil(document.documentElement.scrollHeight)")
    driver.set_window_size(width, min(max(h, 600), 6000))
    time.sleep(0.3)
    driver.save_screenshot(path)


def check_job_page(driver, where, rows, evals, max_points=None):
    n = len(rows)
    loss = wait_for(driver, "svg path[data-series=loss]", 30, lambda e: int(e.get_attribute("data-points")) > 0)
    if not check(loss is not None, where + ": the loss chart has data points"):
        return
    want = expected_points(n, max_points) if max_points else n
    check(int(loss.get_attribute("data-points")) == want,
          where + ": loss chart points == metrics.jsonl steps%s (%d)" % (
              " downsampled to max_points=%d" % max_points if max_points else "", want),
          loss.get_attribute("data-points"))
    d = loss.get_attribute("d")
    check(d.count("M") + d.count("L") == want, where + ": the SVG path has that many vertices", d[:80])
    charts = driver.find_elements(By.CSS_SELECTOR, "#charts svg")
    check(len(charts) >= 10, where + ": every curve has a chart (loss, components, std, similarity, ...)", len(charts))
    for key in ["invariance", "variance", "covariance", "std_min", "std_mean", "std_max", "pairwise_sim",
                "cov_offdiag_sq", "rankme", "collapsed_dims", "lr", "images_per_s", "data_wait_s"]:
        vals = [r.get(key) for r in rows]
        nonnull = sum(1 for v in vals if isinstance(v, (int, float)))
        els = driver.find_elements(By.CSS_SELECTOR, "svg path[data-series=%s]" % key)
        if nonnull == 0:
            continue
        ok = bool(els) and int(els[0].get_attribute("data-points")) > 0
        if not max_points and ok and nonnull == n:
            ok = int(els[0].get_attribute("data-points")) == n
        check(ok, where + ": chart of %s drawn" % key, els[0].get_attribute("data-points") if els else "missing")
    # Evaluation table == the eval JSON.
    table_rows = driver.find_elements(By.CSS_SELECTOR, "#eval-table tbody tr")
    check(len(table_rows) >= 2, where + ": evaluation table has the linear and kNN rows", len(table_rows))
    compared = 0
    for tr in table_rows:
        epoch = int(tr.get_attribute("data-epoch"))
        probe = tr.get_attribute("data-probe")
        for model in ["vicreg", "random_init", "raw_pixels"]:
            cell = tr.find_element(By.CSS_SELECTOR, "td[data-model=%s]" % model)
            want = evals.get((epoch, probe, model))
            if want is None:
                continue
            got = float(cell.get_attribute("data-value"))
            check(abs(got - want) < 1e-9 and cell.text == "%.2f%%" % (want * 100),
                  where + ": eval %s/%s/epoch %d top-1 %s == eval JSON %s" % (probe, model, epoch, cell.text, want),
                  got)
            compared += 1
    check(compared >= 4, where + ": compared the learned and reference rows of both probes", compared)
    eval_chart = driver.find_elements(By.CSS_SELECTOR, "[data-chart=eval] svg path[data-points]")
    check(len(eval_chart) > 0, where + ": probe accuracy chart drawn")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", default="")
    ap.add_argument("--job", required=True)
    ap.add_argument("--hostile-job")
    ap.add_argument("--run-dir")
    ap.add_argument("--report")
    ap.add_argument("--out")
    ap.add_argument("--screenshot")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--max-height", type=int, default=0)
    a = ap.parse_args()
    base = a.url.rstrip("/")
    profile = tempfile.mkdtemp(prefix="vicreg-chromium-")
    t0 = time.time()
    driver = browser(profile, a.width)
    try:
        if a.screenshot:
            driver.get(base + "/jobs/" + a.job + ("?token=" + a.token if a.token else ""))
            wait_for(driver, "svg path[data-series=loss]", 60)
            wait_for(driver, "#eval-table", 20)
            time.sleep(1)
            full_screenshot(driver, a.screenshot, a.width)
            try:
                from PIL import Image
                im = Image.open(a.screenshot)
                if a.max_height and im.size[1] > a.max_height:
                    im = im.crop((0, 0, im.size[0], a.max_height))
                im.convert("RGB").quantize(colors=256).save(a.screenshot, optimize=True)
            except ImportError:
                pass
            print("wrote %s (%d KB)" % (a.screenshot, os.path.getsize(a.screenshot) // 1024))
            return 0
        os.makedirs(a.out, exist_ok=True)
        rows = metrics_rows(a.run_dir)
        evals = eval_rows(a.run_dir)
        check(len(rows) > 0 and len(evals) > 0, "the run has metrics (%d steps) and eval results (%d rows)" % (
            len(rows), len(evals)))

        # 1. Without the token: refused.
        check(http_status(base + "/api/v1/jobs") == 401, "API without the token: 401")
        check(http_status(base + "/") == 401, "page without the token: 401")
        driver.get(base + "/")
        check(wait_for(driver, "form.login input[type=password]", 15) is not None,
              "page without the token shows the sign-in form")
        check(not driver.find_elements(By.CSS_SELECTOR, "#jobs"), "page without the token shows no jobs")
        check(a.job not in driver.page_source, "page without the token holds no job data")
        # A wrong token through the form is refused too.
        driver.find_element(By.CSS_SELECTOR, "form.login input[type=password]").send_keys("wrong")
        driver.find_element(By.CSS_SELECTOR, "form.login button").click()
        check(wait_for(driver, "#login-error", 15) is not None, "a wrong token is refused with a message")
        # The right one through the form.
        driver.find_element(By.CSS_SELECTOR, "form.login input[type=password]").send_keys(a.token)
        driver.find_element(By.CSS_SELECTOR, "form.login button").click()

        # 2. Jobs page.
        row = wait_for(driver, "tr[data-job='%s']" % a.job, 30)
        check(row is not None, "jobs page lists %s after signing in" % a.job)
        if row is not None:
            state = row.find_element(By.CSS_SELECTOR, ".state").text
            check(state == "succeeded", "jobs page lists the job with its state (%s)" % state)
            check("%d / %d" % (rows[-1]["step"], rows[-1]["step"]) in row.text.replace(",", ""),
                  "jobs page shows step/total", row.text)
        cookie = [c for c in driver.get_cookies() if c["name"] == "vicreg_session"]
        check(cookie and cookie[0].get("httpOnly"), "the session cookie is HttpOnly", cookie)
        check(driver.execute_script("return document.cookie.indexOf('vicreg_session') < 0"),
              "scripts cannot read the session cookie")
        if a.hostile_job:
            bad = wait_for(driver, "tr[data-job='%s']" % a.hostile_job, 10)
            if check(bad is not None, "jobs page lists the hostile job"):
                name = bad.find_element(By.CSS_SELECTOR, "a.jobname").text
                check(name == "<script>alert(1)</script>", "a job named <script>alert(1)</script> shows as text", name)
                check("<img src=x" in bad.text, "its error with HTML shows as text", bad.text)
                std = bad.find_element(By.CSS_SELECTOR, "td[data-label='min std']")
                sim = bad.find_element(By.CSS_SELECTOR, "td[data-label='pairwise sim']")
                check("warn-red" in std.get_attribute("class") and "warn-red" in sim.get_attribute("class"),
                      "min_std < 0.01 and pairwise_sim > 0.9 are red", std.get_attribute("class"))
            no_script_ran(driver, "jobs page")
        driver.save_screenshot(os.path.join(a.out, "jobs.png"))

        # 3. Job page.
        driver.get(base + "/jobs/" + a.job)
        check_job_page(driver, "job page", rows, evals)
        kinds = {e.get_attribute("data-kind") for e in driver.find_elements(By.CSS_SELECTOR, "#events li")}
        check({"submitted", "state", "checkpoint", "eval"} <= kinds, "events timeline has submit, state, checkpoint, eval",
              kinds)
        log = wait_for(driver, "#log", 20, lambda e: "window.__xss=8" in e.text)
        check(log is not None, "log tail shows the HTML log line as text")
        spec = wait_for(driver, "#spec", 20, lambda e: "fashion_mnist" in e.text)
        check(spec is not None, "the resolved job file is shown")
        title = driver.find_element(By.CSS_SELECTOR, "#job-title").text
        check(a.job in title, "job page title names the job", title)
        no_script_ran(driver, "job page")
        full_screenshot(driver, os.path.join(a.out, "job.png"), a.width)
        driver.set_window_size(a.width, 1600)

        # 4. Downsampled: the same page asking for at most 10 points per series.
        driver.get(base + "/jobs/" + a.job + "?max_points=10")
        check_job_page(driver, "job page max_points=10", rows, evals, max_points=10)

        if a.hostile_job:
            driver.get(base + "/jobs/" + a.hostile_job)
            t = wait_for(driver, "#job-title", 15, lambda e: "alert(1)" in e.text)
            check(t is not None, "hostile job page title shows the name as text")
            check(wait_for(driver, "#log", 15, lambda e: "window.__xss=2" in e.text) is not None,
                  "hostile job's log lines with HTML show as text")
            check(wait_for(driver, "#events li", 15, lambda e: "onmouseover" in e.text) is not None,
                  "hostile job's events with HTML show as text")
            check(wait_for(driver, "#spec", 15, lambda e: "__xss=4" in e.text) is not None,
                  "hostile job's spec with HTML shows as text")
            no_script_ran(driver, "hostile job page")

        # 5. Phone width: the jobs table becomes cards.
        driver.set_window_size(390, 844)
        driver.get(base + "/")
        row = wait_for(driver, "tr[data-job='%s']" % a.job, 20)
        if check(row is not None, "phone: jobs page lists the job"):
            display = driver.execute_script("return getComputedStyle(arguments[0]).display", row)
            check(display == "block", "phone: each job is a card", display)
            overflow = driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
            check(overflow, "phone: no horizontal scrolling")
        driver.save_screenshot(os.path.join(a.out, "phone.png"))
        driver.set_window_size(a.width, 1600)

        # 6. The report, opened from disk with no server: same charts and table, nothing fetched.
        if a.report:
            driver.delete_all_cookies()
            driver.get("file://" + os.path.abspath(a.report))
            check_job_page(driver, "report", rows, evals)
            fetched = driver.execute_script(
                "return performance.getEntriesByType('resource').map(e => e.name)")
            check(fetched == [], "report: loads nothing (self-contained)", fetched)
            no_script_ran(driver, "report")
            full_screenshot(driver, os.path.join(a.out, "report.png"), a.width)
        print("browser checks took %.1f s" % (time.time() - t0))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    if FAILURES:
        print("%d check(s) failed" % len(FAILURES))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
