// App header: name, and the default account's registration with a count of the other accounts.
import { h } from "./dom";
import { t } from "./i18n";
import { accountName, regExpiry, regReason, regText, statusDot } from "./status";
import type { DeskStatus } from "./types";

export function renderHeader(status: DeskStatus | null): HTMLElement {
  return h(
    "header",
    { id: "app-header", class: "app-header" },
    h("div", { class: "brand" }, h("img", { class: "brand-logo", src: "/logo.svg", alt: "" }), h("span", {}, t("app.name"))),
    h("div", { id: "header-status", class: "header-status" }, ...headerStatus(status)),
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
