import { describe, expect, it } from 'vitest';
import { redactPii } from '../../activities/pii.js';

describe('PII redaction', () => {
  it.each([
    ['mail me at jane.doe+tao@example.co.uk today', 'mail me at [EMAIL] today', 1],
    ['card 4111 1111 1111 1111 please', 'card [CARD] please', 1],
    ['order 1234 5678 9012 3456 is not a card (fails Luhn)', 'order 1234 5678 9012 3456 is not a card (fails Luhn)', 0],
    ['ssn 123-45-6789', 'ssn [SSN]', 1],
    ['server 10.1.2.3 is down', 'server [IP] is down', 1],
    ['call +1 415-555-0100 or (030) 1234-5678', 'call [PHONE] or [PHONE]', 2],
    ['what is 2+2? version 1.2.3', 'what is 2+2? version 1.2.3', 0],
  ])('%s', (input, expected, count) => {
    expect(redactPii(input)).toEqual({ text: expected, count });
  });
});
