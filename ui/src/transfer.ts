// Transfers on screen: the call card's Transfer control and its progress (from `transfer` events),
// the note that a call was transferred, and the far end's request that we call someone else
// (`transfer_request`). The core does the transfer; this only shows it and sends the commands.
import { partyText } from "./call-format";
import { h } from "./dom";
import { t, tCode } from "./i18n";
import type { ApiError, TransferEvent, TransferRequestEvent } from "./types";

/** What the card's Transfer control shows, and what it does. */
export interface TransferUi {
  /** Whether the target box is open. */
  open: boolean;
  /** What is typed in the box (kept across re-renders). */
  target: string;
  /** The command is on its way. */
  busy: boolean;
  /** Why the last transfer command was refused. */
  error: ApiError | null;
  /** The call's latest `transfer` event. */
  last: TransferEvent | null;
  toggle(): void;
  typed(value: string): void;
  submit(target: string): void;
}

/** Opens or closes the target box. */
export function transferButton(ui: TransferUi): HTMLElement {
  return h(
    "button",
    {
      id: "call-transfer-toggle",
      class: `btn btn-tool btn-transfer${ui.open ? " on" : ""}`,
      type: "button",
      "aria-expanded": ui.open ? "true" : "false",
      "aria-controls": "transfer-panel",
      onclick: () => ui.toggle(),
    },
    h("span", { class: "icon icon-transfer", "aria-hidden": "true" }),
    t("transfer.button"),
  );
}

/** The target box: a number or SIP address, then Transfer (or Enter) or Cancel. */
export function renderTransferPanel(ui: TransferUi): HTMLElement {
  const input = h("input", {
    id: "transfer-target",
    class: `transfer-input${ui.error?.code === "invalid_argument" ? " invalid" : ""}`,
    type: "text",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: t("dial.placeholder"),
    "aria-label": t("transfer.target"),
  });
  input.value = ui.target;
  input.addEventListener("input", () => ui.typed(input.value));
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") ui.toggle();
  });
  const form = h(
    "form",
    { id: "transfer-panel", class: "transfer-panel", novalidate: true, autocomplete: "off" },
    h("label", { for: "transfer-target", class: "transfer-label" }, t("transfer.target")),
    h(
      "div",
      { class: "transfer-row" },
      input,
      h(
        "button",
        { id: "transfer-confirm", class: "btn btn-primary", type: "submit", disabled: ui.busy },
        h("span", { class: "icon icon-transfer", "aria-hidden": "true" }),
        t("transfer.confirm"),
      ),
      h("button", { id: "transfer-cancel", class: "btn", type: "button", onclick: () => ui.toggle() }, t("transfer.cancel")),
    ),
    h("div", { class: "hint" }, t("transfer.hint")),
    ui.error ? h("div", { id: "transfer-error", class: "field-error", role: "alert" }, tCode("transfer.error", ui.error.code)) : null,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    ui.submit(input.value);
  });
  return form;
}

/** How far the transfer got: trying, ringing, done, or why it failed. */
export function renderTransferStatus(last: TransferEvent | null): HTMLElement | null {
  if (!last) return null;
  const target = last.target;
  const keys = {
    trying: "transfer.status.trying",
    ringing: "transfer.status.ringing",
    done: "transfer.status.done",
  } as const;
  const text =
    last.status === "failed"
      ? t("transfer.status.failed", { target, reason: failReason(last.code) })
      : t(keys[last.status], { target });
  return h(
    "div",
    {
      id: "transfer-status",
      class: `transfer-status transfer-${last.status}`,
      "data-status": last.status,
      role: "status",
    },
    h("span", { class: "icon icon-transfer", "aria-hidden": "true" }),
    h("span", {}, text),
  );
}

/** The SIP status of a failed transfer in words. */
function failReason(code: number | null): string {
  if (code === null) return t("transfer.code.unknown", { code: "?" });
  return tCode("transfer.code", String(code));
}

/** A call just transferred: who went where. Stays until closed or the next call. */
export interface TransferDone {
  remote: string;
  target: string;
}

export function renderTransferDone(done: TransferDone, close: () => void): HTMLElement {
  return h(
    "div",
    { id: "transfer-done", class: "banner banner-ok transfer-done", role: "status" },
    h("span", { class: "icon icon-transfer", "aria-hidden": "true" }),
    h("span", { class: "transfer-done-text" }, t("transfer.done_note", { party: partyText(done.remote), target: done.target })),
    h(
      "button",
      { id: "transfer-done-close", class: "btn btn-link", type: "button", onclick: close, "aria-label": t("device.dismiss") },
      t("device.dismiss"),
    ),
  );
}

/** What a transfer request prompt needs: the request, who asks, and the answer in flight or refused. */
export interface ReferPrompt {
  request: TransferRequestEvent;
  /** The asking call's party (name-addr), "" when that call is not listed. */
  remote: string;
  busy: boolean;
  error: ApiError | null;
}

/** "X asks you to call Y", with Decline and Accept. */
export function renderReferPrompt(p: ReferPrompt, answer: (callId: string, accept: boolean) => void): HTMLElement {
  const id = p.request.call_id;
  return h(
    "section",
    { class: "toast refer-prompt", role: "alertdialog", "aria-label": t("refer.title"), "data-call-id": id },
    h(
      "div",
      { class: "toast-head" },
      h("span", { class: "toast-icon", "aria-hidden": "true" }, h("span", { class: "icon icon-transfer" })),
      h("span", { class: "toast-title" }, t("refer.title")),
    ),
    h("div", { class: "refer-text" }, t("refer.text", { party: partyText(p.remote), target: p.request.target })),
    h("div", { class: "hint" }, t("refer.hint")),
    p.error ? h("div", { class: "field-error refer-error", role: "alert" }, tCode("refer.error", p.error.code)) : null,
    h(
      "div",
      { class: "toast-actions" },
      h(
        "button",
        { class: "btn refer-decline", type: "button", disabled: p.busy, onclick: () => answer(id, false) },
        t("refer.decline"),
      ),
      h(
        "button",
        { class: "btn btn-call refer-accept", type: "button", disabled: p.busy, onclick: () => answer(id, true) },
        h("span", { class: "icon icon-phone", "aria-hidden": "true" }),
        t("refer.accept"),
      ),
    ),
  );
}
