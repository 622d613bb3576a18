// The Phone screen: the dialer on the left; the current call (or the idle card), the other calls
// (waiting or on hold) and the call history on the right. The dialer is kept across renders; the
// rest is rebuilt from state.
import { isConnected, renderIdle, renderInCall, type CallActions, type HandoffUi } from "./calls";
import { Dialer } from "./dialer";
import { h } from "./dom";
import { currentLang, tCode } from "./i18n";
import { aiHasCall } from "./handoff";
import { renderHistory, type HistoryState } from "./history";
import type { DtmfDigits } from "./keypad";
import { mainCall, renderOtherCalls } from "./other-calls";
import { accountName } from "./status";
import { renderTransferDone, type TransferDone } from "./transfer";
import type { AccountView, ApiError, CallLevelEvent, CallRecord, CallStatsEvent, CallView, DeskStatus, TransferEvent } from "./types";

export interface PhoneState {
  status: DeskStatus | null;
  calls: CallView[];
  /** The last level event of each live call (it does not rebuild the panel: the bars update in place). */
  levels: Map<string, CallLevelEvent>;
  /** The last `call_stats` event of each live call (shown in place, like the levels). */
  stats: Map<string, CallStatsEvent>;
  /** Calls whose microphone is muted (from `mute` events). */
  muted: Set<string>;
  /** The DTMF digits just sent and received on a call (from `dtmf` events; shown in place). */
  digits(callId: string): DtmfDigits;
  dnd: boolean;
  dialError: ApiError | null;
  dialing: boolean;
  callError: ApiError | null;
  /** Do-not-disturb could not be switched. */
  dndError: ApiError | null;
  history: HistoryState;
  /** The latest `transfer` event of each live call. */
  transfers: Map<string, TransferEvent>;
  /** The call just transferred away, until the note is closed. */
  transferDone: TransferDone | null;
  /** Who has a call (desk or AI), why it came back from the AI, and its transcript. */
  handoff(callId: string): HandoffUi;
}

export interface PhoneActions extends CallActions {
  dial(target: string, accountId: number | null): void;
  /** Blind-transfers a call; resolves to the core's refusal, or null once the REFER is on its way. */
  transfer(callId: string, target: string): Promise<ApiError | null>;
  closeTransferDone(): void;
}

/** The call the in-call panel shows (see `mainCall`). */
export function currentCall(calls: CallView[]): CallView | null {
  return mainCall(calls);
}

/** How a call's account is named on screen. */
export function lineName(status: DeskStatus | null, accountId: number | null): string {
  const a = status?.accounts.find((x) => x.id === accountId);
  return a ? accountName(a) : "";
}

export class PhoneView {
  readonly el: HTMLElement;
  private readonly dialer: Dialer;
  private readonly notice = h("div", {});
  private readonly callSlot = h("div", { class: "call-slot" });
  private readonly otherSlot = h("div", { class: "other-slot" });
  private readonly doneSlot = h("div", { class: "transfer-done-slot" });
  private readonly historySlot = h("div", { class: "history-slot" });
  /** Whether the call card's keypad is open; it closes when no call is left. */
  private keypadOpen = false;
  /** The call card's transfer box: for which call it is open, what is typed, and the last refusal. */
  private transferFor: string | null = null;
  private transferTarget = "";
  private transferBusy = false;
  private transferError: ApiError | null = null;
  private last: PhoneState | null = null;

  constructor(private readonly act: PhoneActions) {
    this.dialer = new Dialer((target, accountId) => act.dial(target, accountId));
    this.el = h(
      "main",
      { id: "phone", class: "page phone" },
      this.notice,
      h("div", { class: "phone-grid" }, h("div", { class: "phone-left" }, this.dialer.el), h("div", { class: "phone-right" }, this.doneSlot, this.callSlot, this.otherSlot, this.historySlot)),
    );
  }

  update(s: PhoneState): void {
    this.last = s;
    this.notice.replaceChildren(
      s.dndError ? h("div", { id: "dnd-error", class: "banner banner-error", role: "alert" }, tCode("error", s.dndError.code)) : "",
    );
    const active: AccountView[] = s.status?.accounts.filter((a) => a.is_active) ?? [];
    this.dialer.update({ accounts: active, defaultAccountId: s.status?.default_account_id ?? null, error: s.dialError, busy: s.dialing });
    const call = currentCall(s.calls);
    const def = active.find((a) => a.id === s.status?.default_account_id) ?? active[0];
    const line = call ? lineName(s.status, call.account_id) : def ? accountName(def) : null;
    const muted = call ? s.muted.has(call.call_id) : false;
    if (!call) this.keypadOpen = false;
    const ai: HandoffUi = call ? s.handoff(call.call_id) : { phase: "desk", notice: null, lines: [] };
    // While the AI has the call the desk's own controls are away (they come back with the call).
    const ours = call !== null && isConnected(call) && !aiHasCall(ai.phase);
    const keypad = this.keypadOpen && ours;
    // The transfer box belongs to one call: it closes when another call takes the card.
    if (this.transferFor !== null && this.transferFor !== call?.call_id) this.closeTransfer();
    const transferOpen = call !== null && this.transferFor === call.call_id && ours;
    const lastTransfer = call ? (s.transfers.get(call.call_id) ?? null) : null;
    const transferKey = [transferOpen, this.transferBusy, this.transferError?.code, lastTransfer?.status, lastTransfer?.code, lastTransfer?.target];
    // The transcript's lines are shown in place; only whether there is a transcript rebuilds the card.
    const aiKey = [ai.phase, ai.notice?.reason, ai.lines.length > 0];
    swap(this.callSlot, [currentLang(), call, line, s.callError?.code, s.dnd, muted, keypad, transferKey, aiKey], () =>
      call
        ? renderInCall(
            call,
            line ?? "",
            {
              level: s.levels.get(call.call_id) ?? null,
              stats: s.stats.get(call.call_id) ?? null,
              muted,
              digits: s.digits(call.call_id),
            },
            s.callError,
            this.act,
            { keypadOpen: keypad, toggleKeypad: () => this.toggleKeypad() },
            {
              open: transferOpen,
              target: this.transferTarget,
              busy: this.transferBusy,
              error: this.transferError,
              last: lastTransfer,
              toggle: () => this.toggleTransfer(call.call_id),
              typed: (v) => (this.transferTarget = v),
              submit: (target) => void this.transfer(call.call_id, target),
            },
            ai,
          )
        : renderIdle(line, s.dnd),
    );
    swap(this.otherSlot, [currentLang(), s.calls, call?.call_id], () => renderOtherCalls(s.calls, call, this.act) ?? h("div", {}));
    swap(this.doneSlot, [currentLang(), s.transferDone], () =>
      s.transferDone ? renderTransferDone(s.transferDone, () => this.act.closeTransferDone()) : h("div", {}),
    );
    swap(this.historySlot, [currentLang(), s.history.records, [...s.history.live], s.history.error?.code], () =>
      renderHistory(s.history, (r: CallRecord) => this.dialer.dial(r.remote)),
    );
  }

  /** Opens or closes the transfer box of the call on the card, with the focus in its input. */
  private toggleTransfer(callId: string): void {
    if (this.transferFor === callId) this.closeTransfer();
    else {
      this.closeTransfer();
      this.transferFor = callId;
    }
    if (this.last) this.update(this.last);
    const input = this.callSlot.querySelector<HTMLInputElement>("#transfer-target");
    if (input) input.focus();
    else this.callSlot.querySelector<HTMLElement>("#in-call")?.focus();
  }

  private closeTransfer(): void {
    this.transferFor = null;
    this.transferTarget = "";
    this.transferBusy = false;
    this.transferError = null;
  }

  /** Sends the transfer; the box closes once the core took it (progress then shows on the card). */
  private async transfer(callId: string, target: string): Promise<void> {
    this.transferTarget = target;
    this.transferBusy = true;
    this.transferError = null;
    if (this.last) this.update(this.last);
    const error = await this.act.transfer(callId, target);
    if (this.transferFor !== callId) return;
    if (error) {
      this.transferBusy = false;
      this.transferError = error;
    } else {
      this.closeTransfer();
    }
    if (this.last) this.update(this.last);
  }

  /** Opens or closes the call card's keypad; the focus stays in the card, so typed digits reach the call. */
  private toggleKeypad(): void {
    this.keypadOpen = !this.keypadOpen;
    if (this.last) this.update(this.last);
    const card = this.callSlot.querySelector<HTMLElement>("#in-call");
    if (card && !card.contains(document.activeElement)) card.focus();
  }
}

const shown = new WeakMap<HTMLElement, string>();

/**
 * Rebuilds `slot` only when what it shows changed, so hover, focus and clicks in flight are not
 * disturbed; a rebuild keeps the focus on the element of the same id (or on the new content).
 */
function swap(slot: HTMLElement, inputs: unknown, build: () => HTMLElement): void {
  const key = JSON.stringify(inputs);
  if (shown.get(slot) === key) return;
  shown.set(slot, key);
  const focused = document.activeElement;
  const had = focused instanceof HTMLElement && slot.contains(focused) ? focused : null;
  const content = build();
  slot.replaceChildren(content);
  if (!had) return;
  const again = had.id ? slot.querySelector<HTMLElement>(`#${CSS.escape(had.id)}`) : null;
  (again ?? (content.tabIndex >= 0 || content.hasAttribute("tabindex") ? content : null))?.focus();
}
