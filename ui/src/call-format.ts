// How call data is put into words and numbers on screen: the other party, clock times, durations.
import { currentLang, t } from "./i18n";

export interface Party {
  /** The display name, "" when the other side sent none. */
  name: string;
  /** The SIP URI. */
  uri: string;
}

/** Splits the core's name-addr (`"Alice" <sip:alice@host>`, `<sip:alice@host>`) for display. */
export function parseRemote(remote: string): Party {
  const open = remote.indexOf("<");
  const close = remote.lastIndexOf(">");
  if (open < 0 || close < open) return { name: "", uri: remote.trim() };
  const name = remote.slice(0, open).trim().replace(/^"(.*)"$/, "$1").replace(/\\(.)/g, "$1");
  return { name, uri: remote.slice(open + 1, close) };
}

/** The other party in one line: the display name, else the URI. */
export function partyText(remote: string): string {
  const p = parseRemote(remote);
  return p.name || p.uri || t("incoming.unknown_caller");
}

/** `m:ss`, or `h:mm:ss` from an hour on. */
export function clock(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(totalSeconds));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return hh > 0 ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

/** The running time of a call answered at `sinceMs`. */
export function elapsed(sinceMs: number, nowMs: number = Date.now()): string {
  return clock((nowMs - sinceMs) / 1000);
}

/** A history start time in local time: the time alone today, the date too before. */
export function startedAt(iso: string, now: Date = new Date()): string {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return iso;
  const today = when.toDateString() === now.toDateString();
  const opts: Intl.DateTimeFormatOptions = today
    ? { hour: "2-digit", minute: "2-digit", second: "2-digit" }
    : { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
  return new Intl.DateTimeFormat(currentLang(), opts).format(when);
}
