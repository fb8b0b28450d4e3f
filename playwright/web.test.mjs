// The web app, driven like a person drives it: Playwright (playwright-core) with Debian's
// Chromium, against the devnet that scripts/web-test.sh started and whose app it serves.
//
//   NILSTORE_WEB_URL    the app (devnet.json's "web")
//   NILSTORE_EVIDENCE   where the screenshots go (target/evidence/web)
//   NILSTORE_TMP        scratch directory (the upload and the download)
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const url = process.env.NILSTORE_WEB_URL;
const evidence = process.env.NILSTORE_EVIDENCE;
const tmp = process.env.NILSTORE_TMP;
assert.ok(url && evidence && tmp, "run through scripts/web-test.sh");

// Debian's Chromium on a machine with no network beyond loopback (TOOLCHAIN.md).
const ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const sha256 = (b) => createHash("sha256").update(b).digest("hex");

let shots = 0;
async function shot(page, name) {
  shots += 1;
  const file = path.join(evidence, `${String(shots).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot ${file}`);
}

test("a person stores a 32 MiB file through the page and reads it back verified", async (t) => {
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ARGS });
  const context = await browser.newContext({
    acceptDownloads: true,
    viewport: { width: 1280, height: 900 },
  });
  const page = await context.newPage();
  // Whatever fails, the screen at that moment is kept.
  t.after(async () => {
    if (!passed) await shot(page, "at-failure").catch(() => {});
    await browser.close();
  });
  let passed = false;
  page.on("console", (m) => console.log(`[page ${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => console.log(`[page error] ${e.message}`));
  // Every main-thread task over 50 ms, from the first script on.
  await page.addInitScript(() => {
    window.__longTasks = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__longTasks.push(Math.round(e.duration));
    }).observe({ type: "longtask", buffered: true });
  });

  const t0 = Date.now();
  await page.goto(url);
  await page.waitForSelector("#address", { timeout: 180_000 });
  console.log(`connected in ${((Date.now() - t0) / 1e3).toFixed(1)} s`);
  await page.waitForSelector("#no-deals");
  await shot(page, "files-new-account");

  // A new account: the faucet funds it.
  assert.equal(await page.textContent("#balance"), "0");
  await page.click("#faucet");
  await page.waitForFunction(() => document.querySelector("#balance")?.textContent !== "0", null, {
    timeout: 60_000,
  });
  console.log(`funded: ${await page.textContent("#balance")}`);

  // Store 32 MiB of incompressible bytes.
  const data = randomBytes(32 << 20);
  const upload = path.join(tmp, "photos-2026.bin");
  writeFileSync(upload, data);
  const tPut = Date.now();
  await page.setInputFiles("#file-input", upload);
  await page.waitForSelector('.upload[data-stage="packing"], .upload[data-stage="uploading"]', {
    timeout: 120_000,
  });
  await shot(page, "upload-in-progress");
  const done = await page.waitForSelector(
    '.upload[data-stage="done"], .upload[data-stage="failed"]',
    { timeout: 900_000 },
  );
  const stage = await done.getAttribute("data-stage");
  assert.equal(stage, "done", `the upload failed: ${await done.textContent()}`);
  const putS = (Date.now() - tPut) / 1e3;
  assert.equal(await page.getAttribute(".upload .bar", "aria-valuenow"), "100");
  assert.match(await page.textContent(".upload .pct"), /^100\s%$/);
  console.log(`stored 32 MiB in ${putS.toFixed(1)} s (${(33.554432 / putS).toFixed(2)} MB/s)`);

  // It appears in the deal list, read back through the light client.
  const row = await page.waitForSelector('#deals .file:has-text("photos-2026.bin")', {
    timeout: 60_000,
  });
  await shot(page, "stored-and-listed");

  // Download: every byte verified in the worker, then saved by the browser.
  const tGet = Date.now();
  const [download] = await Promise.all([
    page.waitForEvent("download", { timeout: 600_000 }),
    row.$("button.download").then((b) => b.click()),
  ]);
  const saved = path.join(tmp, "downloaded.bin");
  await download.saveAs(saved);
  const getS = (Date.now() - tGet) / 1e3;
  assert.equal(download.suggestedFilename(), "photos-2026.bin");
  assert.equal(sha256(readFileSync(saved)), sha256(data), "the download differs from the upload");
  console.log(`read back 32 MiB in ${getS.toFixed(1)} s (${(33.554432 / getS).toFixed(2)} MB/s): identical`);
  await page.waitForSelector('#deals .file .state:has-text("verified")');
  await shot(page, "downloaded-verified");

  // The deal's key, for the CLI (scripts/web-test.sh reads the same file with it).
  const deal = await page.getAttribute('#deals tr.deal:has-text("photos-2026.bin")', "data-deal");
  await page.click(`#deals tr.deal[data-deal="${deal}"] button.key-button`);
  const key = await page.inputValue(`#deals tr.deal[data-deal="${deal}"] input.key`);
  assert.match(key, /^[0-9a-f]{64}$/);
  writeFileSync(
    path.join(tmp, "handover.json"),
    JSON.stringify({ deal: Number(deal), key, path: "photos-2026.bin", sha256: sha256(data), put_s: putS, get_s: getS }),
  );
  await shot(page, "deal-key");

  // The page never froze: the work ran in the worker.
  const longTasks = await page.evaluate(() => window.__longTasks);
  const worst = Math.max(0, ...longTasks);
  console.log(`main-thread long tasks: ${longTasks.length}, longest ${worst} ms`);
  assert.ok(worst <= 200, `the main thread was blocked for ${worst} ms`);

  // The network page: the devnet's providers as the chain records them.
  await page.click('nav button:has-text("Network")');
  await page.waitForSelector("#providers tbody tr", { timeout: 60_000 });
  assert.equal(await page.locator("#providers tbody tr").count(), 6);
  await shot(page, "network");

  // A phone-width window.
  await page.setViewportSize({ width: 390, height: 844 });
  await shot(page, "network-phone");
  await page.click('nav button:has-text("Files")');
  await page.waitForSelector('#deals .file:has-text("photos-2026.bin")', { timeout: 60_000 });
  await shot(page, "files-phone");
  const overflow = await page.evaluate(
    () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
  );
  assert.ok(overflow <= 0, `the page is ${overflow} px wider than a phone's window`);

  // Cancel: the upload stops (once the worker is between steps) and is not resumed.
  await page.setViewportSize({ width: 1280, height: 900 });
  const small = path.join(tmp, "cancel-me.bin");
  writeFileSync(small, randomBytes(8 << 20));
  await page.setInputFiles("#file-input", small);
  const cancelCard = '.upload:has-text("cancel-me.bin")';
  await page.click(`${cancelCard} button.cancel`, { timeout: 60_000 });
  await page.waitForSelector(`${cancelCard}[data-stage="failed"]`, { timeout: 300_000 });
  // The deal was already being created: it stays the person's, listed, with nothing in it.
  const why = await page.textContent(`${cancelCard} .error`);
  const emptyDeal = why.match(/^cancelled: deal (\d+) stays on chain/)?.[1];
  assert.ok(emptyDeal, why);
  await page.waitForSelector(`#deals tr.deal[data-deal="${emptyDeal}"]:has-text("nothing committed yet")`, {
    timeout: 60_000,
  });
  await shot(page, "cancelled");

  assert.equal(await page.locator(".stalled").count(), 0);
  passed = true;
});
