// Content detectors run on what MCP servers return. Each answers "does this
// text contain X"; a hit sets the bits of the classifier naming the detector.

export type DetectorName = 'private_key' | 'aws_access_key' | 'card_number' | 'email';

const PRIVATE_KEY = /-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----/;
// Access key ids (AKIA long-term, ASIA temporary) and the 40-char secret when labelled.
const AWS_KEY = /\b(?:AKIA|ASIA|AROA|AIDA)[0-9A-Z]{16}\b|aws_secret_access_key\s*[=:]\s*["']?[A-Za-z0-9/+=]{40}/;
const EMAIL = /[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}/;
// 13–19 digits, optionally grouped by single spaces or dashes.
const CARD_CANDIDATE = /(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])/g;

export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

function hasCardNumber(text: string): boolean {
  // exec with lastIndex, not matchAll: matchAll clones the regex and makes an iterator per call, on every response piece.
  CARD_CANDIDATE.lastIndex = 0;
  for (let m = CARD_CANDIDATE.exec(text); m !== null; m = CARD_CANDIDATE.exec(text)) {
    const digits = m[0].replace(/[ -]/g, '');
    // Same-digit runs (0000…) pass Luhn but are never card numbers.
    if (digits.length >= 13 && digits.length <= 19 && !/^(\d)\1+$/.test(digits) && luhnValid(digits)) return true;
  }
  return false;
}

/** Only looks around each '@': a regex scan of long text without one would cost O(n·64). */
function hasEmail(text: string): boolean {
  for (let at = text.indexOf('@'); at >= 0; at = text.indexOf('@', at + 1)) {
    if (EMAIL.test(text.slice(Math.max(0, at - 64), at + 256))) return true;
  }
  return false;
}

export function detect(name: DetectorName, text: string): boolean {
  switch (name) {
    case 'private_key':
      return PRIVATE_KEY.test(text);
    case 'aws_access_key':
      return AWS_KEY.test(text);
    case 'card_number':
      return hasCardNumber(text);
    case 'email':
      return hasEmail(text);
  }
}

/** A JSON number in exponent form: its value re-serialised can hold digits its text does not (4.111e15). */
const JSON_EXPONENT = /[0-9][eE][+-]?[0-9]/;
const AWS_HINT = /AKIA|ASIA|AROA|AIDA|aws_secret_access_key/;
const DIGIT_RUN = /[0-9](?:[ -]?[0-9]){12}/;

/**
 * Whether `detect(name, s)` can be true for s = JSON.stringify of any value read
 * from the JSON text `json`; false means it cannot, so the text need not be
 * parsed to look. Without `\u` escapes and exponent-form numbers, every key and
 * string in s is the one in `json` (a simple escape decodes to a control
 * character, a quote or a backslash, which JSON.stringify writes back escaped
 * as it was, or `\/` to `/`, which only the labelled AWS secret can contain,
 * after its label), and every digit run in s comes from one in `json` at least as long (an integer
 * part rounded up gains a digit only as 10…0, which no card number is). So each
 * detector needs in `json` what it needs in s: its literal text, an '@', or a
 * run of 13 digits. Keep in step with the detectors above; unknown names say true.
 */
export function mayDetectInJson(name: DetectorName, json: string): boolean {
  if (json.includes('\\u') || JSON_EXPONENT.test(json)) return true;
  switch (name) {
    case 'private_key':
      return json.includes('PRIVATE KEY');
    case 'aws_access_key':
      return AWS_HINT.test(json);
    case 'card_number':
      return DIGIT_RUN.test(json);
    case 'email':
      return json.includes('@');
    default:
      return true;
  }
}
