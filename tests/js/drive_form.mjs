// Fill and submit a react-jsonschema-form page in the system's Chromium (never a downloaded
// browser: playwright-core only drives the executable it is given).
//
//   node drive_form.mjs PLAN.json
//
// PLAN: {"chromium": "/usr/bin/chromium", "url": "http://127.0.0.1:PORT/...", "profile": DIR,
//        "steps": [{"type": "#root_reason", "text": "..."}, {"fill": "#root_applied_on", "text": "2024-02-29"},
//                  {"check": "Medium"}, {"click": "button[type=submit]"}],
//        "timeoutMs": 30000}
// Prints {"state": ..., "status": ..., "body": ..., "sent": ..., "console": [...]} (window.__lowcode).
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const plan = JSON.parse(readFileSync(process.argv[2], "utf8"));
const timeout = plan.timeoutMs || 30000;
const messages = [];
const context = await chromium.launchPersistentContext(plan.profile, {
  executablePath: plan.chromium,
  headless: true,
  timeout,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"],
});
let result;
try {
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(timeout);
  page.on("console", (message) => messages.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => messages.push(`pageerror: ${error.message}`));
  await page.goto(plan.url);
  await page.waitForSelector('body[data-state="ready"], body[data-state="error"]');
  for (const step of plan.steps) {
    if (step.type !== undefined) {
      await page.locator(step.type).click();
      await page.locator(step.type).pressSequentially(step.text);
    } else if (step.fill !== undefined) {
      await page.locator(step.fill).fill(step.text);
    } else if (step.check !== undefined) {
      await page.getByRole("radio", { name: step.check, exact: true }).check();
    } else if (step.click !== undefined) {
      await page.locator(step.click).click();
    } else {
      throw new Error(`unknown step ${JSON.stringify(step)}`);
    }
  }
  await page.waitForSelector('body[data-state="submitted"], body[data-state="invalid"], body[data-state="error"]');
  result = await page.evaluate(() => window.__lowcode);
  result.browser = context.browser() ? context.browser().version() : null;
} catch (error) {
  result = { state: "driver-error", error: String(error && error.stack || error) };
} finally {
  await context.close();
}
result.console = messages;
console.log(JSON.stringify(result));
