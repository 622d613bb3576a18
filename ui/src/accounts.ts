// The SIP account list card: one row per account, with a two-step delete.
import { h } from "./dom";
import { t, tCode } from "./i18n";
import { accountName, regExpiry, regReason, regText, statusDot } from "./status";
import type { AccountView, ApiError } from "./types";

const COLUMNS = [
  ["status", "accounts.col.status"],
  ["account", "accounts.col.account"],
  ["server", "accounts.col.server"],
  ["protocol", "accounts.col.protocol"],
  ["password", "accounts.col.password"],
  ["actions", "accounts.col.actions"],
];

export interface ListActions {
  add(): void;
  edit(account: AccountView): void;
  askDelete(id: number | null): void;
  remove(id: number): void;
  setActive(id: number, active: boolean): void;
  makeDefault(id: number): void;
}

export interface ListState {
  /** False until the core's first answer: no empty state before we know. */
  loaded: boolean;
  accounts: AccountView[];
  confirmDeleteId: number | null;
  error: ApiError | null;
}

export function renderAccounts(state: ListState, act: ListActions): HTMLElement {
  return h(
    "section",
    { id: "accounts-card", class: "card" },
    h(
      "div",
      { class: "card-head" },
      h("div", {}, h("h2", {}, t("accounts.title")), h("p", { class: "muted" }, t("accounts.subtitle"))),
      h("button", { id: "add-account", class: "btn btn-primary", type: "button", onclick: () => act.add() }, t("accounts.add")),
    ),
    state.error ? h("div", { id: "list-error", class: "banner banner-error", role: "alert" }, tCode("error", state.error.code)) : null,
    !state.loaded ? h("p", { class: "muted" }, t("app.loading")) : state.accounts.length ? table(state, act) : emptyState(act),
  );
}

function emptyState(act: ListActions): HTMLElement {
  return h(
    "div",
    { id: "empty-state", class: "empty" },
    h("p", { class: "empty-title" }, t("accounts.empty")),
    h("p", { class: "muted" }, t("accounts.empty_hint")),
    h("button", { class: "btn", type: "button", onclick: () => act.add() }, t("accounts.add")),
  );
}

function table(state: ListState, act: ListActions): HTMLElement {
  return h(
    "table",
    { id: "account-list", class: "accounts" },
    h("thead", {}, h("tr", {}, COLUMNS.map(([name, label]) => h("th", { class: `col-${name}` }, t(label))))),
    h("tbody", {}, state.accounts.map((a) => row(a, state.confirmDeleteId === a.id, act))),
  );
}

function row(a: AccountView, confirming: boolean, act: ListActions): HTMLElement {
  const badges = [
    a.is_default ? h("span", { class: "badge badge-default" }, t("accounts.default")) : null,
    a.source === "env" ? h("span", { class: "badge" }, t("accounts.source_env")) : null,
  ];
  return h(
    "tr",
    { class: `account-row${a.is_active ? "" : " inactive"}`, "data-id": a.id },
    h(
      "td",
      { class: "cell-status" },
      h("div", { class: "reg" }, statusDot(a), h("span", { class: "reg-text" }, regText(a))),
      reasonLine(a),
    ),
    h(
      "td",
      { class: "cell-name" },
      h("div", {}, h("span", { class: "name" }, accountName(a)), badges),
      h("div", { class: "cell-username muted" }, t("accounts.user", { username: a.username })),
    ),
    h("td", { class: "cell-server mono" }, `${a.server_host}:${a.server_port}`),
    h("td", { class: "cell-protocol" }, a.protocol),
    h("td", { class: "cell-password" }, passwordCell(a)),
    // The environment account is defined outside SipDesk, so it has nothing to edit here.
    h("td", { class: "cell-actions" }, a.source === "env" ? null : confirming ? confirmDelete(a, act) : actions(a, act)),
  );
}

/** Only whether a password is stored: the core never sends the password itself. */
function passwordCell(a: AccountView): HTMLElement {
  return a.password_set
    ? h("span", { class: "password-mask" }, t("accounts.password_mask"))
    : h("span", { class: "muted" }, t("accounts.password_not_set"));
}

/** Under the state: why it failed (or ended), else the granted expiry while registered. */
function reasonLine(a: AccountView): HTMLElement | null {
  const reason = regReason(a);
  if (reason) return h("div", { class: "reg-reason" }, reason);
  const expiry = regExpiry(a);
  return expiry ? h("div", { class: "reg-expiry muted" }, expiry) : null;
}

function actions(a: AccountView, act: ListActions): HTMLElement[] {
  const btn = (cls: string, label: string, onclick: () => void) => h("button", { class: `btn btn-small ${cls}`, type: "button", onclick }, label);
  return [
    btn("btn-edit", t("accounts.edit"), () => act.edit(a)),
    btn("btn-toggle-active", t(a.is_active ? "accounts.deactivate" : "accounts.activate"), () => act.setActive(a.id, !a.is_active)),
    a.is_default ? null : btn("btn-make-default", t("accounts.make_default"), () => act.makeDefault(a.id)),
    btn("btn-delete btn-danger-text", t("accounts.delete"), () => act.askDelete(a.id)),
  ].filter((b): b is HTMLButtonElement => b !== null);
}

function confirmDelete(a: AccountView, act: ListActions): HTMLElement[] {
  return [
    h("span", { class: "confirm-text" }, t("accounts.delete_confirm")),
    h("button", { class: "btn btn-small btn-danger btn-confirm-delete", type: "button", onclick: () => act.remove(a.id) }, t("accounts.delete_yes")),
    h("button", { class: "btn btn-small btn-cancel-delete", type: "button", onclick: () => act.askDelete(null) }, t("accounts.delete_no")),
  ];
}
