/**
 * True when a listen address is reachable only from this host: 127.0.0.0/8, ::1,
 * localhost, or a unix socket. 0.0.0.0, ::, host names and LAN addresses are not. Pure.
 */
export function isLoopbackAddress(address: string): boolean {
  if (address.startsWith("unix:")) return true;
  const host = address.replace(/:\d+$/, "").replace(/^\[(.*)\]$/, "$1").toLowerCase();
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
