// How an account's registration is shown: a coloured dot class plus translated text.
import { h } from "./dom";
import { t, tCode } from "./i18n";
import type { AccountView } from "./types";

export function regClass(a: AccountView): string {
  return a.is_active ? `dot-${a.registration.state}` : "dot-inactive";
}

export function regText(a: AccountView): string {
  return a.is_active ? tCode("reg.state", a.registration.state) : t("accounts.inactive");
}

/** The expiry the registrar granted, while registered: "expiry 10 s", "expiry 60 min". */
export function regExpiry(a: AccountView): string | null {
  const { state, expires } = a.registration;
  if (!a.is_active || state !== "registered" || expires === null) return null;
  return expires >= 600 ? t("reg.expires_min", { n: Math.round(expires / 60) }) : t("reg.expires_s", { n: expires });
}

/** Why the last registration failed or ended, if the core said. */
export function regReason(a: AccountView): string | null {
  const reason = a.is_active ? a.registration.reason : null;
  return reason ? tCode("reg.reason", reason) : null;
}

export function statusDot(a: AccountView): HTMLElement {
  return h("span", { class: `dot ${regClass(a)}`, "aria-hidden": "true" });
}

export function accountName(a: AccountView): string {
  return a.display_name || `${a.username}@${a.server_host}`;
}
