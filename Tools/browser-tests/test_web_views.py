"""The three web views in a real headless Chromium: serve's live dashboard, `cassette browse` and `grade --html`.

Every wait is on a condition of the page (WebDriverWait), never a fixed sleep. XSS payloads go through code and
stdout; the tests check that no script ran (window.__xss stays undefined, no injected element exists) and that
the DOM holds the payload as text. Screenshots of the three views go to Tools/browser-tests/screenshots/."""

import json
import pathlib
import subprocess
import urllib.request

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import ROOT

DEMO_CASSETTE = "Fixtures/grading-demo/cassette.sqlite"
XSS_CODE = ('print("hi")  # <script>window.__xss = "script";</script><img src=x onerror="window.__xss=\'img\'">'
            '<a href="javascript:window.__xss=\'link\'">x</a></textarea>')
XSS_STDOUT = '<img src=x onerror="window.__xss=\'stdout\'"><script>window.__xss="stdout-script"</script>\n'


def post(url, body):
    request = urllib.request.Request(url + "/run_code", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def wait(driver, condition, timeout=20, message=""):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition, message)


def text(driver, selector):
    return driver.find_element(By.CSS_SELECTOR, selector).text


def counter(driver, name):
    return driver.find_element(By.CSS_SELECTOR, f"#count-{name} b").text


def no_script_ran(driver):
    assert driver.execute_script("return window.__xss === undefined"), "an injected script ran"
    for selector in ("#detail img", "#detail script", "#detail a", "#report img", "#report a", "#report textarea"):
        assert driver.find_elements(By.CSS_SELECTOR, selector) == [], f"markup from data became an element: {selector}"


def severe_console_errors(driver):
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_dashboard_lists_a_replay_live_and_shows_a_miss(start, binary, browser, screenshots):
    server = start("serve", "--cassette", DEMO_CASSETTE, "--record", "never", "--port", "0")
    browser.get(server.url + "/")
    wait(browser, lambda d: text(d, "#connection") == "live", message="the event stream did not connect")
    assert text(browser, "#page-info") == "0 rows"
    browser.execute_script("window.__notReloaded = true")

    # A replay of the whole demo through serve, while the page is open.
    graded = subprocess.run([binary, "grade", "--url", server.url, "--no-cassette"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert graded.returncode == 0, graded.stderr
    wait(browser, lambda d: text(d, "#page-info") == "1–96 of 96", message="the list did not update to 96 requests")
    wait(browser, lambda d: counter(d, "hits") == "96", message="the hits counter did not update")
    assert browser.execute_script("return window.__notReloaded === true"), "the page was reloaded"
    outcomes = {element.text for element in browser.find_elements(By.CSS_SELECTOR, "td.col-outcome")}
    assert outcomes == {"hit"}

    # A miss: the demo's sum-two solution with another stdin.
    answer = post(server.url, {"code": "a, b = map(int, input().split())\nprint(a + b)\n", "language": "python",
                               "stdin": "3 5\n", "run_timeout": 2})
    assert answer["status"] == "SandboxError" and "No recording matches" in answer["message"]
    wait(browser, lambda d: text(d, "#page-info") == "1–97 of 97")
    Select(browser.find_element(By.ID, "outcome")).select_by_value("miss")
    wait(browser, lambda d: text(d, "#page-info") == "1–1 of 1", message="the outcome filter did not apply")
    browser.find_element(By.CSS_SELECTOR, "tr.row").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#nearest .nearest"), message="no nearest recordings")
    differing = [row.find_element(By.CSS_SELECTOR, "td.name").text
                 for row in browser.find_elements(By.CSS_SELECTOR, "#nearest .nearest[data-index='0'] tr.differs")]
    assert "stdin" in differing, differing
    stdin_diff = browser.find_elements(By.CSS_SELECTOR, "#nearest .nearest[data-index='0'] table.sbs td.del")
    assert any(cell.text == "3 4" for cell in stdin_diff), [cell.text for cell in stdin_diff]
    assert "No recording matches" in text(browser, "#detail-error")
    browser.save_screenshot(str(screenshots / "dashboard.png"))

    # Server-side search by code text.
    Select(browser.find_element(By.ID, "outcome")).select_by_value("")
    browser.find_element(By.ID, "search").send_keys("sorted(")
    wait(browser, lambda d: text(d, "#page-info").endswith(" of 9") or text(d, "#page-info").endswith(" of 10")
         or "of" in text(d, "#page-info") and int(text(d, "#page-info").split(" of ")[1]) < 97,
         message="the search did not narrow the list")
    assert severe_console_errors(browser) == []


def test_dashboard_keeps_xss_in_code_and_stdout_inert(start, browser, tmp_path):
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [{"match": {}, "result": {"kind": "success", "stdout": XSS_STDOUT}}]}))
    server = start("serve", "--backend", "fake", "--rules", str(rules), "--port", "0")
    answer = post(server.url, {"code": XSS_CODE, "language": "python"})
    assert answer["run_result"]["stdout"] == XSS_STDOUT
    browser.get(server.url + "/")
    wait(browser, lambda d: text(d, "#page-info") == "1–1 of 1")
    assert XSS_CODE.splitlines()[0][:40] in browser.find_element(By.CSS_SELECTOR, "td.col-summary").get_attribute("title")
    browser.find_element(By.CSS_SELECTOR, "tr.row").click()
    wait(browser, lambda d: d.find_elements(By.ID, "detail-code"))
    assert browser.find_element(By.ID, "detail-code").get_attribute("textContent") == XSS_CODE
    assert browser.find_element(By.ID, "detail-stdout").get_attribute("textContent") == XSS_STDOUT
    no_script_ran(browser)


def test_cassette_browser_pages_sorts_and_searches_100k_interactions(start, binary, browser, screenshots, tmp_path):
    exchanges = tmp_path / "exchanges.jsonl"
    with exchanges.open("w") as out:
        for index in range(100_000):
            code = f"print({index})  # needle-{index:06d}\n" + ("# padding\n" * 400 if index == 4242 else "")
            body = {"code": code, "language": "python", "stdin": "", "run_timeout": 2}
            response = {"status": "Success", "message": "", "compile_result": None,
                        "run_result": {"status": "Finished", "execution_time": 0.01, "return_code": 0,
                                       "stdout": f"{index}\n", "stderr": ""},
                        "executor_pod_name": None, "files": {}}
            out.write(json.dumps({"request": {"method": "POST", "path": "/run_code", "body": body},
                                  "http_status": 200, "response": response}) + "\n")
    cassette = tmp_path / "big.sqlite"
    imported = subprocess.run([binary, "cassette", "import", str(cassette), str(exchanges)],
                              capture_output=True, text=True, timeout=600)
    assert imported.returncode == 0, imported.stderr
    server = start("cassette", "browse", str(cassette), "--port", "0")
    browser.get(server.url + "/")
    wait(browser, lambda d: text(d, "#page-info") == "1–100 of 100000", timeout=60)
    assert counter(browser, "interactions") == "100000"
    assert counter(browser, "never_replayed") == "100000"
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr.row")) == 100
    browser.find_element(By.ID, "next").click()
    wait(browser, lambda d: text(d, "#page-info") == "101–200 of 100000")
    never = browser.find_elements(By.CSS_SELECTOR, "tr.row .badge.never")
    assert len(never) == 100  # imported recordings were never replayed

    Select(browser.find_element(By.ID, "sort")).select_by_value("size-desc")
    wait(browser, lambda d: text(d, "#page-info") == "1–100 of 100000")
    wait(browser, lambda d: "needle-004242" in d.find_element(By.CSS_SELECTOR, "tr.row td.col-summary")
         .get_attribute("title") or "4242" in d.find_element(By.CSS_SELECTOR, "tr.row td.col-summary").get_attribute("title"),
         message="the largest interaction is not first when sorted by size")

    browser.find_element(By.ID, "search").send_keys("needle-077777")
    wait(browser, lambda d: text(d, "#page-info") == "1–1 of 1", timeout=60, message="the search did not find it")
    browser.find_element(By.CSS_SELECTOR, "tr.row").click()
    wait(browser, lambda d: d.find_elements(By.ID, "detail-code"))
    assert "needle-077777" in browser.find_element(By.ID, "detail-code").get_attribute("textContent")
    assert browser.find_element(By.ID, "detail-stdout").get_attribute("textContent") == "77777\n"
    browser.save_screenshot(str(screenshots / "cassette-browser.png"))
    assert severe_console_errors(browser) == []


def test_html_report_renders_the_demo(binary, browser, screenshots, tmp_path):
    report = tmp_path / "report.html"
    graded = subprocess.run([binary, "grade", "--html", str(report)], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert graded.returncode == 0, graded.stderr
    html = report.read_text()
    assert "http://" not in html and "https://" not in html, "the report must make no request"
    browser.get(report.as_uri())
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#matrix td.cell"))
    cells = browser.find_elements(By.CSS_SELECTOR, "#matrix td.cell")
    assert len(cells) == 32
    assert "candidates32" in text(browser, "#summary").replace(" ", "").replace("\n", "")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#time-chart li")) == 96
    wrong = browser.find_element(By.CSS_SELECTOR, "td.cell[data-candidate='sum-two/py-wrong']")
    assert "v-wrongOutput" in wrong.get_attribute("class")
    wrong.click()
    wait(browser, lambda d: d.find_elements(By.ID, "candidate-title"))
    assert text(browser, "#candidate-title").startswith("sum-two / py-wrong")
    assert browser.find_elements(By.CSS_SELECTOR, "#candidate-detail table.sbs td.del"), "no expected/actual diff"
    browser.save_screenshot(str(screenshots / "grading-report.png"))
    browser.execute_script("arguments[0].scrollIntoView()", browser.find_element(By.ID, "candidate-detail"))
    browser.save_screenshot(str(screenshots / "grading-report-detail.png"))
    browser.execute_script("arguments[0].scrollIntoView()", browser.find_element(By.ID, "time-chart"))
    browser.save_screenshot(str(screenshots / "grading-report-chart.png"))
    assert severe_console_errors(browser) == []


def test_html_report_keeps_xss_inert(binary, browser, tmp_path):
    problems = tmp_path / "problems.jsonl"
    problems.write_text(json.dumps({
        "id": "xss", "title": "<img src=x onerror=\"window.__xss='title'\">", "statement": "s", "time_limit_s": 2,
        "tests": [{"input": "</script><script>window.__xss='input'</script>", "output": "x\n"}],
        "candidates": [{"id": "evil", "language": "python", "intent": "correct", "code": XSS_CODE}]}) + "\n")
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [{"match": {}, "result": {"kind": "success", "stdout": XSS_STDOUT}}]}))
    report = tmp_path / "report.html"
    graded = subprocess.run([binary, "grade", "--backend", "fake", "--rules", str(rules), "--no-cassette",
                             "--problems", str(problems), "--html", str(report)], capture_output=True, text=True,
                            timeout=120)
    assert graded.returncode == 1, graded.stderr  # the candidate's expectation (correct) is not met
    browser.get(report.as_uri())
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#matrix td.cell"))
    browser.find_element(By.CSS_SELECTOR, "#matrix td.cell").click()
    wait(browser, lambda d: d.find_elements(By.ID, "candidate-code"))
    assert browser.find_element(By.ID, "candidate-code").get_attribute("textContent") == XSS_CODE
    sbs = browser.find_element(By.CSS_SELECTOR, "#candidate-detail table.sbs").get_attribute("textContent")
    assert "<img src=x onerror=" in sbs
    no_script_ran(browser)
