// The Settings screen: store-error banner, the account list, the audio devices, the call settings, the AI assistant
// and the language choice.
import { renderAccounts, type ListActions, type ListState } from "./accounts";
import { renderCallSettings, type CallSettingsActions, type CallSettingsState } from "./call-settings";
import { h } from "./dom";
import { t, tCode } from "./i18n";
import type { ApiError, DeskStatus, Locale, StoreError } from "./types";

const LOCALES: [Locale, string][] = [
  ["system", "lang.system"],
  ["en", "lang.en"],
  ["zh-CN", "lang.zh-CN"],
];

export interface SettingsState extends ListState {
  status: DeskStatus | null;
  locale: Locale;
  langError: ApiError | null;
  /** The audio card (kept across renders by the app). */
  audio: HTMLElement;
  calls: CallSettingsState;
  /** The AI assistant card (kept across renders by the app). */
  ai: HTMLElement;
}

export interface SettingsActions extends ListActions, CallSettingsActions {
  setLocale(locale: Locale): void;
}

export function renderSettings(s: SettingsState, act: SettingsActions): HTMLElement {
  return h(
    "main",
    { id: "settings", class: "page" },
    h("div", { class: "page-head" }, h("h1", {}, t("settings.title")), h("p", { class: "muted" }, t("settings.subtitle"))),
    s.status?.store_error ? storeBanner(s.status.store_error, s.status.db_path) : null,
    s.status?.env_account_error ? envBanner(s.status.env_account_error) : null,
    s.status?.instance_error ? instanceBanner(s.status.instance_error) : null,
    renderAccounts(s, act),
    s.audio,
    renderCallSettings(s.calls, act),
    s.ai,
    languageCard(s, act),
  );
}

function storeBanner(err: StoreError, dbPath: string): HTMLElement {
  return h(
    "div",
    { id: "store-error", class: "banner banner-error", role: "alert" },
    h("strong", {}, t("banner.store_error.title")),
    h("p", {}, t("banner.store_error.body")),
    h("p", { class: "mono small" }, `${tCode("error", err.code)} — ${err.message}`),
    h("p", { class: "mono small" }, t("banner.store_error.path", { path: dbPath })),
  );
}

function envBanner(err: StoreError): HTMLElement {
  return h(
    "div",
    { id: "env-error", class: "banner banner-error", role: "alert" },
    h("strong", {}, t("banner.env_error.title")),
    h("p", { class: "mono small" }, err.message),
  );
}

function instanceBanner(err: StoreError): HTMLElement {
  return h(
    "div",
    { id: "instance-error", class: "banner banner-error", role: "alert" },
    h("strong", {}, tCode("error", err.code)),
    h("p", { class: "mono small" }, err.message),
  );
}

function languageCard(s: SettingsState, act: SettingsActions): HTMLElement {
  const select = h(
    "select",
    { id: "lang-select", onchange: (ev) => act.setLocale((ev.target as HTMLSelectElement).value as Locale) },
    LOCALES.map(([l, label]) => h("option", { value: l, selected: s.locale === l }, t(label))),
  );
  return h(
    "section",
    { id: "language-card", class: "card" },
    h("div", { class: "card-head" }, h("div", {}, h("h2", {}, t("lang.title")), h("p", { class: "muted" }, t("lang.subtitle")))),
    h("div", { class: "inline-field" }, h("label", { for: "lang-select" }, t("lang.label")), select),
    s.langError ? h("div", { id: "lang-error", class: "banner banner-error", role: "alert" }, tCode("error", s.langError.code)) : null,
  );
}
