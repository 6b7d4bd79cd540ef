import { isUtf8 } from 'node:buffer';

/**
 * What makes JSON text unfit to keep even when JSON.parse would accept it:
 * - `not_utf8`: the bytes are not UTF-8 (decoding would silently replace them);
 * - `too_deep`: arrays and objects nest deeper than the limit;
 * - `lone_surrogate`: a `\ud800`–`\udfff` escape without its pair (no Unicode text can hold it);
 * - `nul_character`: U+0000, escaped or raw.
 */
export type JsonTextProblem = 'not_utf8' | 'too_deep' | 'lone_surrogate' | 'nul_character';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const LETTER_U = 0x75;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

/** The value of one hex digit byte, or -1. */
function hexDigit(byte: number | undefined): number {
  if (byte === undefined) return -1;
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  const lower = byte | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
}

/** The code unit of the four hex digits at `at`, or -1 when they are not four hex digits. */
function codeUnitAt(text: Uint8Array, at: number): number {
  let unit = 0;
  for (let i = at; i < at + 4; i += 1) {
    const digit = hexDigit(text[i]);
    if (digit < 0) return -1;
    unit = unit * 16 + digit;
  }
  return unit;
}

const isHigh = (unit: number) => unit >= 0xd800 && unit <= 0xdbff;
const isLow = (unit: number) => unit >= 0xdc00 && unit <= 0xdfff;

/**
 * Finds the first problem of JSON text, or null, in one pass over its bytes and without
 * recursion, so it is safe to run before JSON.parse on any input. It does not check that
 * the text is JSON (JSON.parse does); for text that is not, what it answers does not matter.
 * UTF-8 lets it scan bytes: every byte of a multi-byte character is ≥ 0x80, so none is
 * mistaken for a quote, a backslash or a bracket.
 */
export function inspectJsonText(text: Uint8Array, maxDepth: number): JsonTextProblem | null {
  if (!isUtf8(text)) return 'not_utf8';
  let depth = 0;
  let inString = false;
  // The last escape was a high surrogate: the next thing must be its low half.
  let awaitingLow = false;
  for (let i = 0; i < text.length; i += 1) {
    const byte = text[i] as number;
    if (byte === 0) return 'nul_character';
    if (!inString) {
      if (byte === QUOTE) inString = true;
      else if (byte === OPEN_BRACKET || byte === OPEN_BRACE) {
        depth += 1;
        if (depth > maxDepth) return 'too_deep';
      } else if (byte === CLOSE_BRACKET || byte === CLOSE_BRACE) depth -= 1;
      continue;
    }
    if (byte === BACKSLASH && text[i + 1] === LETTER_U) {
      const unit = codeUnitAt(text, i + 2);
      i += 5;
      if (unit === 0) return 'nul_character';
      if (awaitingLow !== isLow(unit)) return 'lone_surrogate';
      awaitingLow = isHigh(unit);
      continue;
    }
    if (awaitingLow) return 'lone_surrogate';
    if (byte === BACKSLASH) i += 1;
    else if (byte === QUOTE) inString = false;
  }
  return awaitingLow ? 'lone_surrogate' : null;
}
