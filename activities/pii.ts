/**
 * A conservative PII filter for prompts collected from production logs: replaces e-mail addresses, card
 * numbers (Luhn-checked), phone numbers, US social security numbers and IPv4 addresses with typed
 * placeholders. It is a safety net, not a guarantee: teams with stricter needs plug in their own filter.
 */
const RULES: [string, RegExp, ((m: string) => boolean)?][] = [
  ['EMAIL', /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g],
  ['CARD', /\b\d(?:[ -]?\d){12,18}\b/g, (m) => luhn(m.replace(/\D/g, ''))],
  ['SSN', /\b\d{3}-\d{2}-\d{4}\b/g],
  ['IP', /\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b/g],
  // international (+…), with an area code in parentheses, or the North American 415-555-0100 shape: plain
  // groups of digits separated by spaces are too often order numbers or quantities to redact.
  [
    'PHONE',
    /(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}[ .-]\d{3,4}(?:[ .-]\d{2,4})?|\(\d{2,4}\)[ .-]?\d{3,4}[ .-]?\d{3,4}|\b\d{3}[-.]\d{3}[-.]\d{4})\b/g,
  ],
];

function luhn(digits: string): boolean {
  if (digits.length < 13 || digits.length > 19) return false;
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/** Returns the redacted text and how many spans were replaced. */
export function redactPii(text: string): { text: string; count: number } {
  let count = 0;
  let out = text;
  for (const [name, re, accept] of RULES) {
    out = out.replace(re, (m) => {
      if (accept && !accept(m)) return m;
      count++;
      return `[${name}]`;
    });
  }
  return { text: out, count };
}
