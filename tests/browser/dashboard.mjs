// The dashboard in headless chromium (see run.sh): the inference page loads with no console
// error and shows the bundled model and its traffic; a dropped sneaker.png gets its label and
// a heatmap; on the admin page a fine-tune job started from the form draws a curve that gains
// points while it runs, and its confusion matrix appears when it ends.  PASS/FAIL lines.
import { readFileSync } from "node:fs";
import puppeteer from "puppeteer-core";

const { URL, ADMIN_URL, TOKEN, SAMPLE, SHOTS, CHROMIUM } = process.env;
let failed = 0;
const check = (ok, msg, why) => {
  console.log(`${ok ? "PASS" : "FAIL"} browser: ${msg}${ok || !why ? "" : ": " + why}`);
  if (!ok) failed++;
  return ok;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function watch(page, errors) {
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("requestfailed", (r) => errors.push("request failed: " + r.url()));
}

const browser = await puppeteer.launch({
  executablePath: CHROMIUM, headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions"],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 1000 });
  const errors = [];
  watch(page, errors);
  const t0 = Date.now();
  await page.goto(URL + "/", { waitUntil: "networkidle0" });
  await page.waitForFunction(() => document.querySelector("#models tbody tr td")?.textContent === "fashion", { timeout: 10000 });
  await page.waitForFunction(() => /requests/.test(document.getElementById("traffic-summary").textContent), { timeout: 10000 });
  check(true, `inference dashboard loaded with the models table and traffic in ${Date.now() - t0} ms`);

  const b64 = readFileSync(SAMPLE).toString("base64");
  await page.evaluate((data) => {
    const bin = atob(data), u8 = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
    const dt = new DataTransfer();
    dt.items.add(new File([u8], "sneaker.png", { type: "image/png" }));
    document.getElementById("drop").dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, b64);
  await page.waitForFunction(() => document.getElementById("heatmap").naturalWidth > 0, { timeout: 15000 }).catch(() => {});
  const ex = await page.evaluate(() => ({
    label: document.getElementById("explain-label").textContent,
    w: document.getElementById("heatmap").naturalWidth,
    top: document.querySelectorAll("#explain-top li").length,
  }));
  check(ex.label === "Sneaker", "dropped sneaker.png is labelled Sneaker", JSON.stringify(ex));
  check(ex.w === 280 && ex.top === 3, "its heatmap (280 px) and top-3 are shown", JSON.stringify(ex));
  await sleep(2500); // one more traffic refresh with the explain request in it
  await page.screenshot({ path: `${SHOTS}/browser-dashboard.png`, fullPage: true });
  const box = await page.$("#explain-section");
  await box.screenshot({ path: `${SHOTS}/browser-explain.png` });
  check(errors.length === 0, "inference page: no console error", errors.join(" | "));

  const admin = await browser.newPage();
  await admin.setViewport({ width: 1280, height: 1100 });
  const aerrors = [];
  watch(admin, aerrors);
  await admin.goto(ADMIN_URL + "/admin/ui", { waitUntil: "domcontentloaded" });
  await admin.type("#token", TOKEN);
  await admin.click("#token-form button");
  await admin.waitForFunction(() => document.querySelector("#job-model option")?.value === "fashion", { timeout: 10000 });
  check(true, "admin page: the token unlocks the models list");
  await admin.evaluate(() => {
    document.getElementById("job-path").value = "fm";
    document.getElementById("job-epochs").value = "3";
    document.getElementById("job-batch").value = "16";
  });
  await admin.click("#job-form button");
  await admin.waitForFunction(() => document.querySelector("#jobs tbody tr"), { timeout: 10000 });
  const seen = [];
  const deadline = Date.now() + 120000;
  let state = "";
  while (Date.now() < deadline) {
    const s = await admin.evaluate(() => ({
      points: Number(document.getElementById("job-curve").dataset.points),
      state: document.querySelector("#jobs tbody tr td:nth-child(3)")?.textContent || "",
      confusion: !document.getElementById("confusion-box").hidden,
    }));
    state = s.state;
    if (s.state.startsWith("running") && s.points > 0 && seen[seen.length - 1] !== s.points) seen.push(s.points);
    if (seen.length === 2) await admin.screenshot({ path: `${SHOTS}/browser-job-running.png`, fullPage: true });
    if (s.confusion) break;
    await sleep(300);
  }
  check(seen.length >= 2 && seen[seen.length - 1] > seen[0],
        `a running fine-tune's curve gains points (${seen.join(" -> ")})`, "state " + state);
  const cm = await admin.evaluate(() => {
    const rows = [...document.querySelectorAll("#confusion tr")].slice(1);
    return { rows: rows.length, total: rows.reduce((a, r) => a + [...r.querySelectorAll("td")].reduce((b, td) => b + Number(td.textContent), 0), 0) };
  });
  // The job resource says how many items it validated on (validation_split of the 1000).
  const job = await (await fetch(ADMIN_URL + "/admin/v1/jobs/1", { headers: { Authorization: "Bearer " + TOKEN } })).json();
  check(cm.rows === 10 && job.val_items > 0 && cm.total === job.val_items,
        `the confusion matrix appears when the job ends: 10 classes, ${job.val_items} validation items`,
        JSON.stringify(cm) + " state " + state);
  await admin.screenshot({ path: `${SHOTS}/browser-job.png`, fullPage: true });
  check(aerrors.length === 0, "admin page: no console error", aerrors.join(" | "));
} catch (e) {
  check(false, "browser run", String(e && e.stack || e));
} finally {
  await browser.close();
}
console.log(`TOTAL browser: ${failed ? "failed" : "passed"} (screenshots in ${SHOTS}/browser-*.png)`);
process.exit(failed ? 1 : 0);
