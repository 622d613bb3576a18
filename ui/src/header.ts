// App header: name, the two sections, the do-not-disturb switch, and the default account's registration
// with a count of the other accounts.
import { h } from "./dom";
import { t } from "./i18n";
import { accountName, regExpiry, regReason, regText, statusDot } from "./status";
import type { DeskStatus } from "./types";

export type Page = "phone" | "settings";

export interface HeaderState {
  status: DeskStatus | null;
  page: Page;
  /** Null until the core answered. */
  dnd: boolean | null;
}

export interface HeaderActions {
  go(page: Page): void;
  setDnd(on: boolean): void;
}

const PAGES: [Page, string][] = [
  ["phone", "nav.phone"],
  ["settings", "nav.settings"],
];

export function renderHeader(s: HeaderState, act: HeaderActions): HTMLElement {
  return h(
    "header",
    { id: "app-header", class: "app-header" },
    h("div", { class: "brand" }, h("img", { class: "brand-logo", src: "/logo.svg", alt: "" }), h("span", {}, t("app.name"))),
    h(
      "nav",
      { class: "nav", "aria-label": t("nav.label") },
      PAGES.map(([page, label]) =>
        h(
          "button",
          {
            id: `nav-${page}`,
            class: `nav-tab${s.page === page ? " current" : ""}`,
            type: "button",
            "aria-current": s.page === page ? "page" : null,
            onclick: () => act.go(page),
          },
          t(label),
        ),
      ),
    ),
    h("div", { class: "header-spacer" }),
    dndSwitch(s.dnd, act),
    h("div", { id: "header-status", class: "header-status" }, ...headerStatus(s.status)),
  );
}

function dndSwitch(on: boolean | null, act: HeaderActions): HTMLElement {
  return h(
    "button",
    {
      id: "dnd-toggle",
      class: `dnd-toggle${on ? " on" : ""}`,
      type: "button",
      role: "switch",
      "aria-checked": on ? "true" : "false",
      disabled: on === null,
      onclick: () => act.setDnd(!on),
    },
    h("span", { class: "icon icon-moon", "aria-hidden": "true" }),
    h("span", { class: "dnd-label" }, t("dnd.label")),
    h("span", { class: "switch", "aria-hidden": "true" }, h("span", { class: "knob" })),
  );
}

function headerStatus(status: DeskStatus | null): (HTMLElement | string)[] {
  if (!status) return [t("app.loading")];
  const accounts = status.accounts;
  const def = accounts.find((a) => a.id === status.default_account_id);
  if (!def) {
    return [h("span", { class: "dot dot-inactive" }), t(accounts.length ? "header.no_default" : "header.no_account")];
  }
  const others = accounts.length - 1;
  const reason = regReason(def);
  const expiry = regExpiry(def);
  return [
    statusDot(def),
    h("span", { id: "header-reg-state", class: "header-state" }, regText(def)),
    reason ? h("span", { id: "header-reg-reason", class: "header-reason" }, reason) : "",
    expiry ? h("span", { id: "header-reg-expiry", class: "header-expiry" }, expiry) : "",
    h("span", { class: "header-account" }, accountName(def)),
    others > 0
      ? h("span", { id: "header-others", class: "header-others" }, others === 1 ? t("header.other_accounts_one") : t("header.other_accounts", { n: others }))
      : "",
  ];
}
