// The dialer: account picker, number/URI box, keypad and Call button. Built once and updated in
// place, so typing and focus survive the re-renders that live events cause.
import { h } from "./dom";
import { t, tCode } from "./i18n";
import { KEYS } from "./keypad";
import { accountName, statusDot } from "./status";
import type { AccountView, ApiError } from "./types";

export interface DialerState {
  /** Active accounts, which can place calls. */
  accounts: AccountView[];
  defaultAccountId: number | null;
  error: ApiError | null;
  busy: boolean;
}

export class Dialer {
  readonly el: HTMLElement;
  private readonly title = h("h2", {});
  private readonly accountLabel = h("label", { for: "dial-account" });
  private readonly select = h("select", { id: "dial-account" });
  private readonly targetLabel = h("label", { for: "dial-input" });
  private readonly input = h("input", { id: "dial-input", type: "text", autocomplete: "off", spellcheck: "false", class: "dial-input" });
  private readonly backspace = h("button", { id: "dial-backspace", class: "dial-backspace", type: "button" }, h("span", { class: "icon icon-backspace", "aria-hidden": "true" }));
  private readonly error = h("div", { id: "dial-error", class: "dial-error", role: "alert" });
  private readonly callLabel = h("span", {});
  private readonly callBtn = h("button", { id: "dial-call", class: "btn btn-call", type: "submit" }, h("span", { class: "icon icon-phone", "aria-hidden": "true" }), this.callLabel);
  private readonly accountDot = h("span", { class: "dial-account-dot" });
  /** The account the agent picked; kept while it stays active. */
  private picked: number | null = null;
  private accountsKey = "";

  constructor(private readonly onDial: (target: string, accountId: number | null) => void) {
    const keypad = h(
      "div",
      { class: "keypad" },
      KEYS.map(([key, name, letters]) =>
        h(
          "button",
          { id: `key-${name}`, class: "key", type: "button", "data-key": key, onclick: () => this.press(key) },
          h("span", { class: "key-digit" }, key),
          h("span", { class: "key-letters" }, letters),
        ),
      ),
    );
    this.backspace.addEventListener("click", () => {
      this.input.value = this.input.value.slice(0, -1);
      this.input.focus();
    });
    this.select.addEventListener("change", () => {
      this.picked = Number(this.select.value);
    });
    const form = h(
      "form",
      { id: "dialer", class: "card dialer", novalidate: true, autocomplete: "off" },
      h("div", { class: "card-head" }, this.title),
      h("div", { class: "field" }, this.accountLabel, h("div", { class: "dial-account" }, this.accountDot, this.select)),
      h("div", { class: "field" }, this.targetLabel, h("div", { class: "dial-box" }, this.input, this.backspace)),
      this.error,
      keypad,
      this.callBtn,
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.onDial(this.input.value, this.accountId());
    });
    this.el = form;
  }

  /** Sets the target and places the call, as if typed and Call pressed (call back from the history). */
  dial(target: string): void {
    this.input.value = target;
    this.onDial(target, this.accountId());
  }

  private press(key: string): void {
    const { selectionStart: a, selectionEnd: b, value } = this.input;
    const start = a ?? value.length;
    const end = b ?? value.length;
    this.input.value = value.slice(0, start) + key + value.slice(end);
    this.input.setSelectionRange(start + 1, start + 1);
    this.input.focus();
  }

  private accountId(): number | null {
    return this.select.value === "" ? null : Number(this.select.value);
  }

  update(s: DialerState): void {
    this.title.textContent = t("dial.title");
    this.accountLabel.textContent = t("dial.account");
    this.targetLabel.textContent = t("dial.target");
    this.input.placeholder = t("dial.placeholder");
    this.backspace.title = t("dial.backspace");
    this.backspace.setAttribute("aria-label", t("dial.backspace"));
    this.callLabel.textContent = t("dial.call");
    this.callBtn.disabled = s.busy;
    this.error.textContent = s.error ? tCode("dial.error", s.error.code) : "";
    this.error.classList.toggle("hidden", !s.error);
    this.input.classList.toggle("invalid", s.error?.code === "invalid_argument");
    this.updateAccounts(s);
  }

  /** Rebuilds the picker only when what it shows changed, so an open list is not disturbed. */
  private updateAccounts(s: DialerState): void {
    if (this.picked !== null && !s.accounts.some((a) => a.id === this.picked)) this.picked = null;
    const chosen =
      this.picked ?? s.accounts.find((a) => a.id === s.defaultAccountId)?.id ?? s.accounts[0]?.id ?? null;
    const key = JSON.stringify([chosen, s.accounts.map((a) => [a.id, accountName(a), a.username, a.server_host]), t("dial.no_account")]);
    const account = s.accounts.find((a) => a.id === chosen);
    this.accountDot.replaceChildren(account ? statusDot(account) : h("span", { class: "dot dot-inactive" }));
    if (key === this.accountsKey) return;
    this.accountsKey = key;
    this.select.disabled = s.accounts.length === 0;
    this.select.replaceChildren(
      ...(s.accounts.length
        ? s.accounts.map((a) =>
            h("option", { value: a.id, selected: a.id === chosen }, optionText(a)),
          )
        : [h("option", { value: "" }, t("dial.no_account"))]),
    );
  }
}

function optionText(a: AccountView): string {
  const address = `${a.username}@${a.server_host}`;
  return a.display_name ? `${a.display_name} · ${address}` : address;
}
