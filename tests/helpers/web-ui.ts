/**
 * The Temporal Web UI in Debian's Chromium, driven by playwright-core: one launch recipe for every test that
 * looks at the UI, and a tab opener that survives the UI's slow or failed loads on a loaded CI machine.
 */
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * Reloads the workflow page until its tab `tab` (a data-testid) shows `text`. The UI loads the workflow with one
 * describe call after the page's load event; under load that call can take longer than a click's timeout, or
 * answer 500 (seen between activity attempts), and the page then shows an error instead of the tabs, so a
 * single reload-and-click is a flaky check. On timeout the error carries what the page showed and a screenshot.
 */
export async function untilTabShows(
  page: Page,
  tab: string,
  text: string,
  opts: { timeoutMs?: number; screenshotDir?: string } = {},
): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 240_000);
  let seen = '';
  while (Date.now() < deadline) {
    try {
      await page.reload({ timeout: 60_000 });
      await page.locator(`[data-testid="${tab}"]`).first().click({ timeout: 60_000 });
      const until = Date.now() + 30_000;
      while (Date.now() < until) {
        seen = await page.locator('body').innerText();
        if (seen.includes(text)) return;
        await page.waitForTimeout(1000);
      }
    } catch (err) {
      seen = `${(err as Error).message}\n--- page ---\n${await page
        .locator('body')
        .innerText()
        .catch(() => '(unreadable)')}`;
    }
  }
  const shot = opts.screenshotDir ? path.join(opts.screenshotDir, `${tab}-timeout.png`) : undefined;
  if (shot) await page.screenshot({ path: shot, fullPage: true }).catch(() => undefined);
  throw new Error(
    `the Web UI's ${tab} never showed "${text}"${shot ? ` (screenshot ${shot})` : ''}; last seen:\n${seen.slice(0, 2000)}`,
  );
}
