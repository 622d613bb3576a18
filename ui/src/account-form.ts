// Add/edit account dialog. It only collects strings; the core validates and answers with per-field codes.
import { h } from "./dom";
import { t, tCode } from "./i18n";
import type { AccountDraft, AccountView, ApiError, DtmfMode } from "./types";

const DTMF_MODES: [DtmfMode, string][] = [
  ["rfc4733", "form.dtmf_rfc4733"],
  ["info", "form.dtmf_info"],
];

type TextField = Exclude<keyof AccountDraft, "protocol" | "dtmf_mode" | "is_active">;
type Control = HTMLInputElement | HTMLSelectElement;

/** Grid layout: field, label key, how many of the 6 columns it spans, optional. */
const LAYOUT: [keyof AccountDraft, string, number, boolean][] = [
  ["display_name", "field.display_name", 6, true],
  ["server_host", "field.server_host", 4, false],
  ["server_port", "field.server_port", 2, false],
  ["username", "field.username", 3, false],
  ["password", "field.password", 3, false],
  ["protocol", "field.protocol", 3, false],
  ["register_interval", "field.register_interval", 3, false],
  ["auth_username", "field.auth_username", 3, true],
  ["domain", "field.domain", 3, true],
  ["outbound_proxy", "field.outbound_proxy", 3, true],
  ["dtmf_mode", "field.dtmf_mode", 3, false],
  ["codecs", "field.codecs", 6, true],
];

export class AccountForm {
  readonly el: HTMLElement;
  private readonly controls = new Map<keyof AccountDraft, Control>();
  private readonly formError: HTMLElement;
  private readonly saveBtn: HTMLButtonElement;

  constructor(
    private readonly account: AccountView | null,
    onSave: (form: AccountForm) => void,
    onCancel: () => void,
  ) {
    this.formError = h("div", { id: "form-error", class: "banner banner-error hidden", role: "alert" });
    this.saveBtn = h("button", { id: "save-account", class: "btn btn-primary", type: "submit" }, t("form.save"));
    const form = h(
      "form",
      { id: "account-form", class: "dialog", novalidate: true, autocomplete: "off" },
      h("h2", {}, t(account ? "form.title_edit" : "form.title_add")),
      this.formError,
      h("div", { class: "form-grid" }, LAYOUT.map(([name, label, span, optional]) => this.field(name, label, span, optional))),
      h("label", { class: "check" }, this.control("is_active"), t("field.is_active")),
      h(
        "div",
        { class: "dialog-actions" },
        h("button", { id: "cancel-account", class: "btn", type: "button", onclick: onCancel }, t("form.cancel")),
        this.saveBtn,
      ),
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      onSave(this);
    });
    form.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") onCancel();
    });
    this.el = h("div", { id: "account-dialog", class: "overlay" }, form);
  }

  get accountId(): number | null {
    return this.account?.id ?? null;
  }

  focus(): void {
    this.controls.get("display_name")?.focus();
  }

  draft(): AccountDraft {
    const text = (name: TextField) => (this.controls.get(name) as HTMLInputElement).value;
    const password = text("password");
    return {
      display_name: text("display_name"),
      server_host: text("server_host"),
      server_port: text("server_port"),
      username: text("username"),
      // An empty box means "keep the stored password" (or none yet); the core decides whether one is required.
      password: password === "" ? null : password,
      protocol: (this.controls.get("protocol") as HTMLSelectElement).value as AccountDraft["protocol"],
      register_interval: text("register_interval"),
      auth_username: text("auth_username"),
      domain: text("domain"),
      outbound_proxy: text("outbound_proxy"),
      codecs: text("codecs"),
      dtmf_mode: (this.controls.get("dtmf_mode") as HTMLSelectElement).value as DtmfMode,
      is_active: (this.controls.get("is_active") as HTMLInputElement).checked,
    };
  }

  setBusy(busy: boolean): void {
    this.saveBtn.disabled = busy;
  }

  clearPassword(): void {
    (this.controls.get("password") as HTMLInputElement).value = "";
  }

  /** Shows the core's error: each field code under its input, anything else at the top. */
  showError(err: ApiError | null): void {
    for (const [name, control] of this.controls) {
      control.classList.remove("invalid");
      control.removeAttribute("aria-invalid");
      const slot = this.el.querySelector(`#err-${name}`);
      if (slot) slot.textContent = "";
    }
    const unplaced: string[] = [];
    for (const f of err?.fields ?? []) {
      const control = this.controls.get(f.field as keyof AccountDraft);
      const slot = this.el.querySelector(`#err-${f.field}`);
      if (!control || !slot) {
        unplaced.push(tCode("fielderr", f.code));
        continue;
      }
      control.classList.add("invalid");
      control.setAttribute("aria-invalid", "true");
      slot.textContent = tCode("fielderr", f.code);
    }
    const top = err && (err.fields.length === 0 ? [tCode("error", err.code)] : unplaced);
    this.formError.textContent = top?.join(" ") ?? "";
    this.formError.classList.toggle("hidden", !top?.length);
  }

  private field(name: keyof AccountDraft, label: string, span: number, optional: boolean): HTMLElement {
    return h(
      "div",
      { class: `field span-${span}` },
      h("label", { for: `f-${name}` }, t(label), optional ? h("span", { class: "optional" }, t("form.optional")) : null),
      this.control(name),
      name === "password" && this.account ? h("div", { class: "hint" }, t("form.password_hint_edit")) : null,
      name === "codecs" ? h("div", { id: "hint-codecs", class: "hint" }, t("form.codecs_hint")) : null,
      name === "dtmf_mode" ? h("div", { id: "hint-dtmf_mode", class: "hint" }, t("form.dtmf_hint")) : null,
      h("div", { id: `err-${name}`, class: "field-error" }),
    );
  }

  private control(name: keyof AccountDraft): Control {
    const a = this.account;
    let el: Control;
    if (name === "protocol") {
      el = h("select", { id: "f-protocol" }, ["UDP", "TCP"].map((p) => h("option", { value: p, selected: (a?.protocol ?? "UDP") === p }, p)));
    } else if (name === "dtmf_mode") {
      const mode = a?.dtmf_mode ?? "rfc4733";
      el = h(
        "select",
        { id: "f-dtmf_mode", "aria-describedby": "hint-dtmf_mode err-dtmf_mode" },
        DTMF_MODES.map(([m, label]) => h("option", { value: m, selected: mode === m }, t(label))),
      );
    } else if (name === "is_active") {
      el = h("input", { id: "f-is_active", type: "checkbox", checked: a?.is_active ?? true });
    } else if (name === "password") {
      // Never filled from the backend: the stored password stays in the core.
      el = h("input", { id: "f-password", type: "password", placeholder: a ? t("form.password_unchanged") : null, autocomplete: "new-password" });
    } else if (name === "codecs") {
      // The core checks the names and their order; empty means the default order.
      el = h("input", {
        id: "f-codecs",
        type: "text",
        value: a?.codecs ?? "",
        placeholder: t("form.codecs_default"),
        spellcheck: "false",
        autocapitalize: "off",
        "aria-describedby": "hint-codecs err-codecs",
      });
    } else {
      const value = a ? String(a[name]) : ({ server_port: "5060", register_interval: "3600" } as Record<string, string>)[name] ?? "";
      el = h("input", { id: `f-${name}`, type: "text", value, spellcheck: "false", inputmode: name === "server_port" || name === "register_interval" ? "numeric" : null });
    }
    this.controls.set(name, el);
    return el;
  }
}
