// The Calls card of Settings: what a transfer request from the far end gets (asked about, accepted
// automatically or refused). Saved as soon as it is chosen; the core holds the rules.
import { h } from "./dom";
import { t, tCode } from "./i18n";
import type { ApiError, CallSettings, ReferPolicy } from "./types";

const POLICIES: [ReferPolicy, string][] = [
  ["ask", "calls_settings.refer_ask"],
  ["auto", "calls_settings.refer_auto"],
  ["refuse", "calls_settings.refer_refuse"],
];

export interface CallSettingsState {
  /** Null until loaded (or when it cannot be read). */
  settings: CallSettings | null;
  error: ApiError | null;
}

export interface CallSettingsActions {
  setReferPolicy(policy: ReferPolicy): void;
}

export function renderCallSettings(s: CallSettingsState, act: CallSettingsActions): HTMLElement {
  const current = s.settings?.refer_policy ?? null;
  const select = h(
    "select",
    {
      id: "refer-policy",
      // SIPDESK_REFER decides while it is set: a choice here would not apply.
      disabled: !s.settings || s.settings.refer_policy_from_env,
      "aria-describedby": "refer-policy-hint",
      onchange: (ev) => act.setReferPolicy((ev.target as HTMLSelectElement).value as ReferPolicy),
    },
    POLICIES.map(([p, label]) => h("option", { value: p, selected: current === p }, t(label))),
  );
  const hint = s.settings?.refer_policy_from_env ? "calls_settings.refer_env" : "calls_settings.refer_hint";
  return h(
    "section",
    { id: "calls-card", class: "card" },
    h(
      "div",
      { class: "card-head" },
      h("div", {}, h("h2", {}, t("calls_settings.title")), h("p", { class: "muted" }, t("calls_settings.subtitle"))),
    ),
    h("div", { class: "inline-field" }, h("label", { for: "refer-policy" }, t("calls_settings.refer_label")), select),
    h("div", { id: "refer-policy-hint", class: "hint" }, t(hint)),
    s.error ? h("div", { id: "calls-settings-error", class: "banner banner-error", role: "alert" }, tCode("error", s.error.code)) : null,
  );
}
