/**
 * NKey user pairs made with Node's native Ed25519 (`node:crypto`) rather than a JavaScript one:
 * making a pair is on the path of every agent start, and the pure-JavaScript scalar multiplication
 * costs milliseconds of CPU where OpenSSL takes microseconds.
 *
 * The encoding is the NKeys format (https://github.com/nats-io/nkeys, `strkey.go`; the same as
 * `@nats-io/nkeys`, which the tests use as the oracle): RFC 4648 base32 without padding of
 * `prefix bytes ‖ key ‖ CRC-16/XMODEM (little-endian)`. A user's public key has the one prefix byte
 * `U` (20 << 3); its seed has two bytes packing the seed prefix `S` (18 << 3) and `U`, so it reads `SU…`.
 */
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';

const BASE32_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
/** The prefix byte of a user key (`U`). */
const PREFIX_USER = 20 << 3;
/** The prefix byte of a seed (`S`). */
const PREFIX_SEED = 18 << 3;
/** DER of a PKCS #8 Ed25519 private key without its last 32 bytes (the seed): RFC 8410, section 7. */
const PKCS8_ED25519_HEAD = Buffer.from('302e020100300506032b657004220420', 'hex');

/** RFC 4648 base32, upper case, no padding. */
function base32(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32_ALPHABET[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32_ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}

/** CRC-16/XMODEM (polynomial 0x1021, initial value 0), as NKeys checksums its payload. */
function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** `prefix ‖ key ‖ crc16` in base32. */
function encode(prefix: readonly number[], key: Uint8Array): string {
  const payload = Buffer.concat([Buffer.from(prefix), key]);
  const crc = crc16(payload);
  return base32(Buffer.concat([payload, Buffer.from([crc & 0xff, crc >>> 8])]));
}

/**
 * A fresh NKey user pair: 32 random bytes as the Ed25519 seed, its public key derived natively.
 * @returns `publicKey` (`U…`, 56 characters) and `seed` (`SU…`, 58 characters).
 */
export function nativeUserNkey(): { readonly publicKey: string; readonly seed: string } {
  const raw = randomBytes(32);
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_HEAD, raw]), format: 'der', type: 'pkcs8' });
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  const publicKey = Buffer.from(jwk.x ?? '', 'base64url');
  if (publicKey.length !== 32) throw new Error('node:crypto returned an Ed25519 public key that is not 32 bytes');
  const seed = encode([PREFIX_SEED | (PREFIX_USER >> 5), (PREFIX_USER & 31) << 3], raw);
  raw.fill(0);
  return { publicKey: encode([PREFIX_USER], publicKey), seed };
}
