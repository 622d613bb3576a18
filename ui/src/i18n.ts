// Every user-visible string comes from i18n/<lang>.json through t(); codes from the core map to "<prefix>.<code>" keys.
import en from "./i18n/en.json";
import zhCN from "./i18n/zh-CN.json";
import type { Locale, UiLang } from "./types";

type Dict = Record<string, string>;
const DICTS: Record<UiLang, Dict> = { en, "zh-CN": zhCN };

let current: UiLang = "en";

/** The language on screen, for number and date formatting. */
export function currentLang(): UiLang {
  return current;
}

export function setLang(lang: UiLang): void {
  current = lang;
  document.documentElement.lang = lang;
}

/** The language to display for a stored choice; `system` is the OS language the core reported. */
export function resolveLang(locale: Locale, system: UiLang): UiLang {
  return locale === "system" ? system : locale;
}

/** Used when the core cannot tell the system language (store unavailable). */
export function browserLang(): UiLang {
  return navigator.language.toLowerCase().startsWith("zh") ? "zh-CN" : "en";
}

export function t(key: string, vars: Record<string, string | number> = {}): string {
  const text = DICTS[current][key] ?? DICTS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name: string) => String(vars[name] ?? ""));
}

/** Translates a code sent by the core (field error, state, reason); unknown codes fall back to `<prefix>.unknown`. */
export function tCode(prefix: string, code: string): string {
  const key = `${prefix}.${code}`;
  const fallback = `${prefix}.unknown`;
  return key in DICTS.en ? t(key) : t(fallback, { code });
}
