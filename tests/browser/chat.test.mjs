// Browser test of the chat page: starts the real `lingqiao serve`, drives the page at `/`
// in headless Chromium (Debian's, through playwright-core) and checks what a person would
// see: the answer streaming in, its stats, the Stop button, errors, the kept conversation.
// Writes output/run.txt (what it observed) and output/chat.png, output/chat-phone.png.
//
// Environment: LINGQIAO_BIN (default target/release/lingqiao), LINGQIAO_MODEL (default
// qwen05), CHROMIUM (default /usr/bin/chromium).
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync, createWriteStream } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const outDir = join(here, "output");
const bin = process.env.LINGQIAO_BIN || join(root, "target/release/lingqiao");
const model = process.env.LINGQIAO_MODEL || "qwen05";
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";

mkdirSync(outDir, { recursive: true });
const log = [];
const t0 = Date.now();
function note(line) {
  const s = `[${((Date.now() - t0) / 1000).toFixed(2).padStart(7)} s] ${line}`;
  log.push(s);
  console.log(s);
}
let passed = 0, failed = 0;
function check(ok, what) {
  if (ok) { passed++; note(`PASS ${what}`); } else { failed++; note(`FAIL ${what}`); }
  return ok;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on("error", rej);
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => res(port)); });
  });
}

async function waitHealthy(base, server, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error(`the server exited (code ${server.exitCode}) before /health answered`);
    try {
      const r = await fetch(base + "/health");
      if (r.ok) return await r.text();
    } catch { /* not listening yet */ }
    await sleep(250);
  }
  throw new Error(`/health did not answer within ${timeoutMs / 1000} s`);
}

// In the page: record every change of the last answer's text (time, length, status) from now on.
async function watchAnswers(page) {
  await page.evaluate(() => {
    window.__obs = [];
    const root = document.getElementById("messages");
    const record = () => {
      const all = root.querySelectorAll('[data-testid="assistant-message"]');
      const last = all[all.length - 1];
      if (!last) return;
      const text = last.querySelector('[data-testid="answer-text"]').textContent;
      const prev = window.__obs[window.__obs.length - 1];
      if (!prev || prev.len !== text.length || prev.status !== last.dataset.status || prev.n !== all.length)
        window.__obs.push({ t: performance.now(), len: text.length, status: last.dataset.status, n: all.length });
    };
    new MutationObserver(record).observe(root, { subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ["data-status"] });
  });
}

const lastAnswer = (page) => page.locator('[data-testid="assistant-message"]').last();
const answerText = (page) => lastAnswer(page).locator('[data-testid="answer-text"]').textContent();
const answerStatus = (page) => lastAnswer(page).getAttribute("data-status");

async function waitDone(page, count, timeoutMs) {
  await page.waitForFunction(
    (n) => {
      const all = document.querySelectorAll('[data-testid="assistant-message"]');
      return all.length >= n && all[n - 1].dataset.status !== "streaming";
    },
    count, { timeout: timeoutMs, polling: 50 },
  );
}

async function ask(page, text) {
  await page.locator("#prompt").fill(text);
  await page.locator("#prompt").press("Enter");
}

// Starts `lingqiao serve` on a free port (its output appended to output/server.log) and waits
// until /health answers.
const serverLog = createWriteStream(join(outDir, "server.log"));
async function startServer(extra = []) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const args = ["serve", "-m", model, "--port", String(port), ...extra];
  note(`server: ${bin} ${args.join(" ").replace(/(--api-key )\S+/, "$1<key>")}`);
  server = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  server.stdout.pipe(serverLog, { end: false });
  server.stderr.pipe(serverLog, { end: false });
  const health = await waitHealthy(base, server, 180_000);
  note(`GET /health: ${health.trim().slice(0, 200)}`);
  return base;
}
async function stopServer() {
  if (!server || server.exitCode !== null) return;
  const exited = new Promise((r) => server.once("exit", r));
  server.kill("SIGTERM");
  await Promise.race([exited, sleep(5_000)]);
  if (server.exitCode === null && server.signalCode === null) { server.kill("SIGKILL"); await exited; }
}

let server, browser;
try {
  const base = await startServer();

  const models = await (await fetch(base + "/v1/models")).json().catch(() => null);
  const modelId = models && models.data && models.data[0] && models.data[0].id;
  note(`GET /v1/models: data[0].id = ${modelId}`);

  browser = await chromium.launch({ executablePath: chromiumPath });
  note(`browser: Chromium ${browser.version()}`);
  const context = await browser.newContext({ viewport: { width: 1000, height: 940 }, colorScheme: "light" });
  const page = await context.newPage();
  const consoleErrors = [];
  // (Chromium reports every non-2xx response as a console error; the 503 below is on purpose.)
  page.on("console", (m) => { if (m.type() === "error" && !/Failed to load resource/.test(m.text())) consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  // Anything the page loads from elsewhere than the server would break "self-contained".
  const foreign = [];
  page.on("request", (r) => { if (!r.url().startsWith(base) && !r.url().startsWith("data:")) foreign.push(r.url()); });

  await page.goto(base + "/");
  check((await page.title()) === "lingqiao", "GET / serves the chat page");
  await page.waitForFunction(() => !/loading/.test(document.getElementById("model-name").textContent), null, { timeout: 10_000 });
  const shownModel = (await page.locator("#model-name").textContent()).trim();
  check(!!modelId && shownModel === modelId, `the header shows the model from /v1/models: "${shownModel}"`);

  // Deterministic answers: temperature 0 in the settings panel.
  await page.locator("#settings-toggle").click();
  await page.locator("#temperature").fill("0");
  await page.locator("#max-tokens").fill("256");
  await page.locator("#settings-toggle").click();

  // 1. A short question: the answer streams in, ends with Paris in it, and gets its stats.
  await watchAnswers(page);
  const q1 = "What is the capital of France? Answer in one short sentence.";
  note(`ask: ${q1}`);
  await ask(page, q1);
  await page.locator('[data-testid="stop"]').waitFor({ state: "visible", timeout: 5_000 });
  check(true, "Stop shows while the answer streams");
  await waitDone(page, 1, 120_000);
  const obs1 = await page.evaluate(() => window.__obs);
  const growing = obs1.filter((o) => o.status === "streaming" && o.len > 0);
  const lens = growing.map((o) => o.len);
  note(`observed answer lengths while streaming: ${lens.join(", ")} (then status "${obs1[obs1.length - 1].status}")`);
  // (Not strictly monotonic: a closing ** turns "**Paris" into a bold "Paris", two characters shorter.)
  check(growing.length >= 2 && growing[growing.length - 1].len > growing[0].len,
    `the answer text grew over at least two observations before it completed (${growing.length} observations)`);
  const a1 = await answerText(page);
  note(`answer: ${JSON.stringify(a1)}`);
  check(a1.includes("Paris"), 'the answer contains "Paris"');
  check((await answerStatus(page)) === "done", "the answer ends as done");
  const stats1 = (await lastAnswer(page).locator('[data-testid="stats"]').textContent()).trim();
  const src1 = await lastAnswer(page).locator('[data-testid="stats"]').getAttribute("data-source");
  note(`stats: ${stats1} (source: ${src1})`);
  check(/\d+ tokens?/.test(stats1) && /first token \d/.test(stats1) && /[\d.]+ tok\/s/.test(stats1), "the stats line shows tokens, time to first token and tokens/s");
  check(await page.locator('[data-testid="send"]').isVisible(), "Send is back after the answer");

  // 2. A long answer, stopped: it stops growing and the partial text stays.
  const q2 = "Write a long story about a dragon who learns to bake bread. Use at least 600 words.";
  note(`ask: ${q2}`);
  await ask(page, q2);
  await page.waitForFunction(() => {
    const all = document.querySelectorAll('[data-testid="assistant-message"]');
    return all.length === 2 && all[1].querySelector('[data-testid="answer-text"]').textContent.length >= 60;
  }, null, { timeout: 120_000, polling: 50 });
  const beforeStop = await answerText(page);
  await page.locator('[data-testid="stop"]').click();
  note(`clicked Stop with ${beforeStop.length} characters shown`);
  await waitDone(page, 2, 10_000);
  const atStop = await answerText(page);
  await sleep(2_000);
  const later = await answerText(page);
  note(`partial answer: ${atStop.length} characters at stop, ${later.length} two seconds later: ${JSON.stringify(later.slice(0, 120))}…`);
  check((await answerStatus(page)) === "stopped", 'the answer is marked "stopped"');
  check(later === atStop, "the answer stopped growing after Stop");
  check(later.length >= beforeStop.length && later.startsWith(beforeStop.slice(0, 40)), "the partial answer is kept");
  const stats2 = (await lastAnswer(page).locator('[data-testid="stats"]').textContent()).trim();
  note(`stats: ${stats2}`);
  check(/stopped/.test(stats2), "the stats line says stopped");
  check(await page.locator('[data-testid="send"]').isVisible(), "Send is back after Stop");

  // 3. The server still answers after the client went away, with the whole conversation sent.
  const q3 = "And what is the capital of Germany? Answer in one short sentence.";
  note(`ask: ${q3}`);
  let sentMessages = null;
  page.on("request", (r) => {
    if (r.url().endsWith("/v1/chat/completions")) { try { sentMessages = JSON.parse(r.postData()).messages; } catch { /* ignore */ } }
  });
  await ask(page, q3);
  await waitDone(page, 3, 120_000);
  const a3 = await answerText(page);
  note(`answer: ${JSON.stringify(a3)}`);
  note(`the request carried ${sentMessages ? sentMessages.length : "?"} messages: ${sentMessages ? sentMessages.map((m) => m.role).join(", ") : "?"}`);
  check(sentMessages && sentMessages.length === 5, "the request carries the conversation (3 questions, 2 answers)");
  check(a3.includes("Berlin"), 'the follow-up answer contains "Berlin"');
  note(`stats: ${(await lastAnswer(page).locator('[data-testid="stats"]').textContent()).trim()}`);

  await page.screenshot({ path: join(outDir, "chat.png") });
  note("saved output/chat.png");

  // 4. The conversation survives a reload (localStorage); a phone-sized view of it.
  await page.reload();
  await page.locator('[data-testid="assistant-message"]').nth(2).waitFor({ timeout: 5_000 });
  check((await page.locator('[data-testid="assistant-message"]').count()) === 3, "the conversation is still there after a reload");
  const phone = await context.newPage();
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.emulateMedia({ colorScheme: "dark" });
  await phone.goto(base + "/");
  await phone.locator('[data-testid="assistant-message"]').nth(2).waitFor({ timeout: 5_000 });
  await phone.waitForFunction(() => !/loading/.test(document.getElementById("model-name").textContent));
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `no sideways scrolling on a 390 px wide screen (overflow ${overflow} px)`);
  await phone.screenshot({ path: join(outDir, "chat-phone.png") });
  note("saved output/chat-phone.png (390x844, dark)");
  await phone.close();

  // 5. Errors: an OpenAI error body is shown and the question goes back into the box.
  //    (The server is healthy, so this one response is replaced in the browser.)
  await page.route("**/v1/chat/completions", (route) => route.fulfill({
    status: 503, contentType: "application/json",
    body: JSON.stringify({ error: { message: "the engine is overloaded, retry later", type: "server_error" } }),
  }));
  await ask(page, "This request fails.");
  await page.locator('[data-testid="error"]').waitFor({ state: "visible", timeout: 5_000 });
  const errText = (await page.locator("#error-text").textContent()).trim();
  note(`error shown: ${errText}`);
  check(/503/.test(errText) && /engine is overloaded/.test(errText), "a 503 error's message is shown");
  check((await page.locator("#prompt").inputValue()) === "This request fails.", "the failed question is back in the box");
  check((await page.locator('[data-testid="assistant-message"]').count()) === 3, "the failed exchange is not added to the conversation");
  await page.unroute("**/v1/chat/completions");

  // 6. Model output is text, never markup.
  await page.evaluate(() => { window.__xss = false; });
  await page.route("**/v1/chat/completions", (route) => route.fulfill({
    status: 200, contentType: "text/event-stream",
    body: ['<img src=x onerror="window.__xss=true">', "\n```html\n<b>bold</b>\n```"].map((c) =>
      `data: ${JSON.stringify({ object: "chat.completion.chunk", choices: [{ index: 0, delta: { content: c } }] })}\n\n`).join("") + "data: [DONE]\n\n",
  }));
  await page.locator("#prompt").fill("markup?");
  await page.locator("#prompt").press("Enter");
  await waitDone(page, 4, 5_000);
  await sleep(200);
  const imgs = await lastAnswer(page).locator("img, b").count();
  const codeBlocks = await lastAnswer(page).locator("pre code").count();
  check(imgs === 0 && !(await page.evaluate(() => window.__xss)), "markup in an answer is shown as text");
  const code = codeBlocks === 1 ? await lastAnswer(page).locator("pre code").textContent() : null;
  check(codeBlocks === 1 && code === "<b>bold</b>", `a fenced code block is rendered as a code block, its text as text: ${JSON.stringify(code)}`);
  await page.unroute("**/v1/chat/completions");

  // 7. New chat empties the conversation.
  await page.locator('[data-testid="new-chat"]').click();
  check((await page.locator('[data-testid="assistant-message"]').count()) === 0, "New chat empties the conversation");
  check(consoleErrors.length === 0, `no errors in the browser console${consoleErrors.length ? ": " + consoleErrors.join(" | ") : ""}`);
  check(foreign.length === 0, `the page loads nothing from elsewhere${foreign.length ? ": " + foreign.join(" ") : ""}`);
  await context.close();

  // 8. A server started with --api-key: the page asks for the key, sends it as a Bearer token,
  //    keeps it, and shows the server's own 400 for a bad setting.
  await stopServer();
  const key = "test-key-" + Math.random().toString(36).slice(2);
  const keyed = await startServer(["--api-key", key]);
  const ctx2 = await browser.newContext({ viewport: { width: 1000, height: 700 }, colorScheme: "light" });
  const p2 = await ctx2.newPage();
  const auths = [];
  p2.on("request", (r) => { if (r.url().endsWith("/v1/chat/completions")) auths.push(r.headers()["authorization"] || ""); });
  await p2.goto(keyed + "/");
  await p2.locator('[data-testid="error"]').waitFor({ state: "visible", timeout: 10_000 });
  const e401 = (await p2.locator("#error-text").textContent()).trim();
  note(`without a key: ${e401}`);
  check(/401/.test(e401) && /API key/.test(e401), "a 401 from /v1/models is shown and asks for the API key");
  check(await p2.locator("#settings").isVisible(), "the settings (with the API key field) open by themselves");
  await p2.locator("#api-key").fill(key);
  await p2.locator("#api-key").press("Tab");
  await p2.waitForFunction((id) => document.getElementById("model-name").textContent === id, modelId, { timeout: 10_000 });
  check(await p2.locator('[data-testid="error"]').isHidden(), "with the key the model shows and the 401 notice goes");
  await p2.locator("#temperature").fill("5");
  await ask(p2, "What is 2 + 2? Answer with just the number.");
  await p2.locator('[data-testid="error"]').waitFor({ state: "visible", timeout: 10_000 });
  const e400 = (await p2.locator("#error-text").textContent()).trim();
  note(`temperature 5: ${e400}`);
  check(/^Error 400/.test(e400) && /temperature/.test(e400), "the server's 400 for temperature 5 is shown");
  await p2.locator("#temperature").fill("0");
  await p2.locator("#prompt").press("Enter");
  await waitDone(p2, 1, 120_000);
  const a4 = await answerText(p2);
  note(`answer: ${JSON.stringify(a4)}; stats: ${(await lastAnswer(p2).locator('[data-testid="stats"]').textContent()).trim()}`);
  check(a4.includes("4"), 'the answer through the key-protected server contains "4"');
  check(auths.length === 2 && auths.every((a) => a === "Bearer " + key), "every chat request carried Authorization: Bearer <key>");
  await p2.reload();
  await p2.waitForFunction((id) => document.getElementById("model-name").textContent === id, modelId, { timeout: 10_000 });
  check(await p2.locator('[data-testid="error"]').isHidden(), "the key is remembered after a reload");
  await ctx2.close();
} catch (err) {
  failed++;
  note(`FAIL ${err && err.stack ? err.stack : err}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  await stopServer().catch(() => {});
  note(`browser test: ${passed} passed, ${failed} failed`);
  writeFileSync(join(outDir, "run.txt"), log.join("\n") + "\n");
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
