/** Envelope address checks shared by SMTP and HTTP intake (RFC 5321 §4.1.2, §4.5.3.1). */

const LOCAL = /^(?:[^\s@"<>()[\]\\,;:\x00-\x1f\x7f]+|"(?:[^"\\\r\n]|\\.)*")$/;
const DOMAIN =
  /^(?:[^\s@.<>()[\]\\,;:\x00-\x1f\x7f]+(?:\.[^\s@.<>()[\]\\,;:\x00-\x1f\x7f]+)*|\[[^\]\s]+\])$/;

/** Why an address is not acceptable, or null when it is. */
export function addressProblem(address: string): string | null {
  if (address.length > 254) return 'longer than 254 octets (RFC 5321 §4.5.3.1.3)';
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return 'not of the form local-part@domain';
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (Buffer.byteLength(local) > 64)
    return 'local part longer than 64 octets (RFC 5321 §4.5.3.1.1)';
  if (!LOCAL.test(local)) return 'local part has characters that need quoting';
  if (!DOMAIN.test(domain)) return 'domain is not a valid name';
  return null;
}
