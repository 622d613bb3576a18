// App state and the glue between screens and the backend. Screens are re-rendered from state; the open dialog,
// the dialer's input and the incoming-call popup's place are kept.
import { AccountForm } from "./account-form";
import { AiSettingsCard } from "./ai-settings";
import { AudioCard } from "./audio-settings";
import { toApiError, type Backend } from "./backend";
import { elapsed } from "./call-format";
import { isRinging, renderIncoming, type CallActions } from "./calls";
import { h } from "./dom";
import { renderDeviceNotice } from "./device-notice";
import { phaseAfter, showTranscript, TranscriptLog, type HandoffNotice, type HandoffPhase } from "./handoff";
import { renderHeader, type Page } from "./header";
import { browserLang, currentLang, resolveLang, setLang } from "./i18n";
import { DtmfTrail, showDtmf } from "./keypad";
import { showLevel } from "./levels";
import { mainCall } from "./other-calls";
import { lineName, PhoneView } from "./phone";
import { showQuality } from "./quality";
import { renderSettings, type SettingsActions } from "./settings";
import { renderReferPrompt, type ReferPrompt, type TransferDone } from "./transfer";
import type {
  AccountView,
  ApiError,
  AudioDevices,
  AudioSettings,
  CallLevelEvent,
  CallRecord,
  CallStatsEvent,
  CallView,
  DeskStatus,
  DeviceEvent,
  CallSettings,
  Locale,
  ReferPolicy,
  TransferEvent,
  UiSettings,
} from "./types";

/** Events after which the header and the list are re-read from the core. */
const REFRESH_ON = new Set(["registration", "accounts_changed", "account_loaded", "account_unloaded", "store_error"]);
/** How many history rows the Phone screen shows. */
const HISTORY_ROWS = 50;
/** How long the core waits for an answer to a transfer request before it declines it. */
const REFER_WAIT_MS = 30_000;
/** How long the note that a call was transferred stays (unless closed, or a new call comes). */
const TRANSFER_NOTE_MS = 30_000;
/** How long Hand to AI / Take back wait for the core's `handoff` event before they can be pressed again. */
const HANDOFF_WAIT_MS = 20_000;

export class App {
  private page: Page = "phone";
  private status: DeskStatus | null = null;
  private settings: UiSettings | null = null;
  private confirmDeleteId: number | null = null;
  private listError: ApiError | null = null;
  private langError: ApiError | null = null;
  private callSettings: CallSettings | null = null;
  private callSettingsError: ApiError | null = null;
  private form: AccountForm | null = null;
  private refreshQueued = false;
  private callsQueued = false;
  private dnd: boolean | null = null;
  private calls: CallView[] = [];
  /** The last `call_level` event of each live call. */
  private levels = new Map<string, CallLevelEvent>();
  /** The last `call_stats` event of each live call. */
  private stats = new Map<string, CallStatsEvent>();
  /** Live calls whose microphone is muted. */
  private muted = new Set<string>();
  /** The DTMF digits just sent and received on each live call; they fade by themselves. */
  private readonly dtmf = new DtmfTrail((id) => showDtmf(this.view, id, this.dtmf.get(id)));
  /** The last audio device fallback, until the agent closes it. */
  private deviceNotice: DeviceEvent | null = null;
  private audioDevices: AudioDevices | null = null;
  private audioSettings: AudioSettings | null = null;
  private audioError: ApiError | null = null;
  private testing = false;
  private history: CallRecord[] | null = null;
  private historyError: ApiError | null = null;
  private dialError: ApiError | null = null;
  private dialing = false;
  private callError: ApiError | null = null;
  private dndError: ApiError | null = null;
  /** The latest `transfer` event of each live call. */
  private transfers = new Map<string, TransferEvent>();
  /** The call just transferred away, for the note above the call card. */
  private transferDone: TransferDone | null = null;
  private transferDoneTimer: ReturnType<typeof setTimeout> | null = null;
  /** The far end's requests that we call someone else, by call, until answered or expired. */
  private referRequests = new Map<string, ReferPrompt>();
  /** Who has each live call, when not the desk: the AI, or a handoff command on its way. */
  private handoffs = new Map<string, HandoffPhase>();
  /** Calls that came back from the AI by themselves, and why, until the notice is closed. */
  private handoffNotices = new Map<string, HandoffNotice>();
  /** The live transcript of each call the AI had. */
  private readonly transcripts = new TranscriptLog();
  /** What the incoming-call popup shows, so it is rebuilt only when that changes. */
  private popupKey = "";
  private readonly header = h("div", { id: "header-root" });
  private readonly notice = h("div", { id: "notice-root" });
  private readonly view = h("div", { id: "view" });
  private readonly modal = h("div", { id: "modal-root" });
  private readonly callRoot = h("div", { id: "call-root" });
  private readonly phone: PhoneView;
  private readonly audio: AudioCard;
  private readonly ai: AiSettingsCard;

  constructor(private readonly backend: Backend, root: HTMLElement) {
    root.replaceChildren(this.header, this.notice, this.view, this.modal, this.callRoot);
    this.audio = new AudioCard({ choose: (s) => void this.chooseAudio(s), testTone: () => void this.testTone() });
    this.ai = new AiSettingsCard(backend);
    this.phone = new PhoneView({
      ...this.callActions,
      dial: (target, accountId) => void this.dial(target, accountId),
      transfer: (callId, target) => this.transfer(callId, target),
      closeTransferDone: () => {
        this.setTransferDone(null);
        this.render();
      },
    });
    // The call timer: its element carries the answer time; only its text changes.
    setInterval(() => {
      for (const el of document.querySelectorAll<HTMLElement>("[data-since]")) el.textContent = elapsed(Number(el.dataset.since));
    }, 250);
  }

  async start(): Promise<void> {
    await this.loadSettings();
    this.render();
    // Subscribe before the first load so no change slips between the two.
    try {
      await this.backend.onEvent((e) => {
        if (REFRESH_ON.has(e.event)) this.queueRefresh();
        // The database changed beside the app (e.g. `sipdesk ai edit`): the AI card shows it.
        if (e.event === "accounts_changed" && this.page === "settings") void this.ai.load();
        if (e.event === "call") this.queueCalls();
        if (e.event === "call_level") {
          this.levels.set(e.call_id, e);
          showLevel(this.view, e);
        }
        if (e.event === "dnd") {
          this.dnd = e.on;
          this.render();
        }
        if (e.event === "call_stats") {
          this.stats.set(e.call_id, e);
          showQuality(this.view, e);
        }
        if (e.event === "mute") {
          if (e.on) this.muted.add(e.call_id);
          else this.muted.delete(e.call_id);
          this.render();
        }
        if (e.event === "dtmf") this.dtmf.add(e);
        if (e.event === "device") {
          this.deviceNotice = e;
          this.render();
        }
        if (e.event === "mic_level") this.audio.showMicLevel(e.dbfs);
        if (e.event === "transfer") {
          this.transfers.set(e.call_id, e);
          this.render();
        }
        if (e.event === "handoff") {
          this.handoffs.set(e.call_id, phaseAfter(e));
          this.transcripts.mark(e);
          showTranscript(this.view, e.call_id, this.transcripts.get(e.call_id));
          if (e.to === "ai") this.handoffNotices.delete(e.call_id);
          else if (e.reason) this.handoffNotices.set(e.call_id, { reason: e.reason });
          this.render();
        }
        if (e.event === "transcript") {
          this.transcripts.add(e);
          // The first line brings the panel; later ones are shown in place.
          this.render();
          showTranscript(this.view, e.call_id, this.transcripts.get(e.call_id));
        }
        if (e.event === "transfer_request") {
          this.referRequests.set(e.call_id, { request: e, remote: "", busy: false, error: null });
          // The core declines by itself after 30 s; the prompt goes then too.
          setTimeout(() => {
            if (this.referRequests.get(e.call_id)?.request === e) {
              this.referRequests.delete(e.call_id);
              this.render();
            }
          }, REFER_WAIT_MS);
          this.render();
        }
      });
    } catch (e) {
      console.error("no live updates from the core", e);
    }
    await Promise.all([this.refresh(), this.refreshCalls(), this.loadDnd()]);
  }

  private async loadSettings(): Promise<void> {
    try {
      this.settings = await this.backend.uiSettingsGet();
    } catch {
      this.settings = { locale: this.settings?.locale ?? "system", system_locale: browserLang() };
    }
    setLang(resolveLang(this.settings.locale, this.settings.system_locale));
  }

  private async loadDnd(): Promise<void> {
    try {
      this.dnd = await this.backend.dndGet();
    } catch {
      this.dnd = null;
    }
    this.render();
  }

  private queueRefresh(): void {
    if (this.refreshQueued) return;
    this.refreshQueued = true;
    setTimeout(() => {
      this.refreshQueued = false;
      void this.refresh();
    }, 50);
  }

  private queueCalls(): void {
    if (this.callsQueued) return;
    this.callsQueued = true;
    setTimeout(() => {
      this.callsQueued = false;
      void this.refreshCalls();
    }, 30);
  }

  private async refresh(): Promise<void> {
    try {
      this.status = await this.backend.deskStatus();
    } catch (e) {
      this.listError = toApiError(e);
    }
    if (this.confirmDeleteId !== null && !this.status?.accounts.some((a) => a.id === this.confirmDeleteId)) {
      this.confirmDeleteId = null;
    }
    this.render();
  }

  /** Re-reads the live calls and the history: both change with every call event. */
  private async refreshCalls(): Promise<void> {
    const [calls, history] = await Promise.allSettled([this.backend.callsList(), this.backend.historyList(HISTORY_ROWS)]);
    if (calls.status === "fulfilled") {
      const gone = (id: string) => !calls.value.some((c) => c.call_id === id);
      // A command error belongs to its call; it goes with it.
      if (this.calls.every((c) => gone(c.call_id))) this.callError = null;
      // A call that went away after a completed transfer leaves a note of where it went.
      for (const c of this.calls) {
        const last = this.transfers.get(c.call_id);
        if (gone(c.call_id) && last?.status === "done") this.setTransferDone({ remote: c.remote, target: last.target });
      }
      if (calls.value.some((c) => !this.calls.some((o) => o.call_id === c.call_id))) this.setTransferDone(null);
      this.calls = calls.value;
      for (const id of [...this.transfers.keys()]) if (gone(id)) this.transfers.delete(id);
      for (const id of [...this.referRequests.keys()]) if (gone(id)) this.referRequests.delete(id);
      for (const id of [...this.levels.keys()]) if (gone(id)) this.levels.delete(id);
      for (const id of [...this.stats.keys()]) if (gone(id)) this.stats.delete(id);
      for (const id of [...this.muted]) if (gone(id)) this.muted.delete(id);
      for (const id of [...this.handoffs.keys()]) if (gone(id)) this.handoffs.delete(id);
      for (const id of [...this.handoffNotices.keys()]) if (gone(id)) this.handoffNotices.delete(id);
      this.transcripts.keep((id) => !gone(id));
      this.dtmf.keep((id) => !gone(id));
    }
    if (history.status === "fulfilled") {
      this.history = history.value;
      this.historyError = null;
    } else {
      this.historyError = toApiError(history.reason);
    }
    this.render();
  }

  private render(): void {
    this.header.replaceChildren(
      renderHeader(
        { status: this.status, page: this.page, dnd: this.dnd },
        { go: (page) => this.go(page), setDnd: (on) => void this.setDnd(on) },
      ),
    );
    if (this.page === "phone") {
      this.phone.update({
        status: this.status,
        calls: this.calls,
        levels: this.levels,
        stats: this.stats,
        muted: this.muted,
        digits: (id) => this.dtmf.get(id),
        dnd: this.dnd === true,
        dialError: this.dialError,
        dialing: this.dialing,
        callError: this.callError,
        dndError: this.dndError,
        history: { records: this.history, live: new Set(this.calls.map((c) => c.call_id)), error: this.historyError },
        transfers: this.transfers,
        transferDone: this.transferDone,
        handoff: (id) => ({
          phase: this.handoffs.get(id) ?? "desk",
          notice: this.handoffNotices.get(id) ?? null,
          lines: this.transcripts.get(id),
        }),
      });
      if (this.view.firstChild !== this.phone.el) this.view.replaceChildren(this.phone.el);
    } else {
      this.view.replaceChildren(
        renderSettings(
          {
            status: this.status,
            loaded: this.status !== null,
            accounts: this.status?.accounts ?? [],
            confirmDeleteId: this.confirmDeleteId,
            error: this.listError,
            locale: this.settings?.locale ?? "system",
            langError: this.langError,
            audio: this.audio.el,
            ai: this.ai.el,
            calls: { settings: this.callSettings, error: this.callSettingsError },
          },
          this.actions,
        ),
      );
    }
    const notice = this.deviceNotice;
    this.notice.replaceChildren(notice ? renderDeviceNotice(notice, this.audioDevices, () => this.closeNotice()) : "");
    this.audio.update({ devices: this.audioDevices, settings: this.audioSettings, error: this.audioError, testing: this.testing });
    this.ai.update();
    this.renderPopups();
  }

  /**
   * The incoming-call popup (over the screen, or in the corner for a call waiting over another)
   * and the transfer requests, in the corner too; rebuilt only when what they show changed.
   */
  private renderPopups(): void {
    const ringing = this.calls.find(isRinging) ?? null;
    const current = mainCall(this.calls);
    const line = ringing ? lineName(this.status, ringing.account_id) : "";
    const prompts = [...this.referRequests.values()].map((p) => ({
      ...p,
      remote: this.calls.find((c) => c.call_id === p.request.call_id)?.remote ?? "",
    }));
    const key = JSON.stringify([currentLang(), ringing, current, line, this.callError?.code, prompts]);
    if (key === this.popupKey) return;
    this.popupKey = key;
    const popup = ringing ? renderIncoming(ringing, line, this.callError, this.callActions, current) : null;
    const corner = [
      ...prompts.map((p) => renderReferPrompt(p, (id, accept) => void this.referAnswer(id, accept))),
      current ? popup : null,
    ].filter((el): el is HTMLElement => el !== null);
    this.callRoot.replaceChildren(
      ...(popup && !current ? [popup] : []),
      ...(corner.length ? [h("div", { id: "corner", class: "corner" }, corner)] : []),
    );
  }

  /** Sets (or, with null, clears) the note that a call was transferred; it goes by itself too. */
  private setTransferDone(done: TransferDone | null): void {
    if (this.transferDoneTimer !== null) clearTimeout(this.transferDoneTimer);
    this.transferDoneTimer = null;
    this.transferDone = done;
    if (done) {
      this.transferDoneTimer = setTimeout(() => {
        this.setTransferDone(null);
        this.render();
      }, TRANSFER_NOTE_MS);
    }
  }

  /** Asks the core to transfer a call; resolves to its refusal, or null once the REFER is sent. */
  private async transfer(callId: string, target: string): Promise<ApiError | null> {
    try {
      await this.backend.callTransfer(callId, target);
      return null;
    } catch (e) {
      return toApiError(e);
    }
  }

  /** Accepts or declines a transfer request; the prompt goes once the core took the answer. */
  private async referAnswer(callId: string, accept: boolean): Promise<void> {
    const prompt = this.referRequests.get(callId);
    if (!prompt || prompt.busy) return;
    this.referRequests.set(callId, { ...prompt, busy: true, error: null });
    this.render();
    try {
      await this.backend.callReferAnswer(callId, accept);
      this.referRequests.delete(callId);
    } catch (e) {
      const error = toApiError(e);
      if (error.code === "not_found") this.referRequests.delete(callId);
      else this.referRequests.set(callId, { ...prompt, busy: false, error });
    }
    this.render();
  }

  private go(page: Page): void {
    const was = this.page;
    this.page = page;
    this.render();
    // The microphone meter runs while the audio settings are on screen.
    if (page === "settings" && was !== "settings") {
      void this.loadAudio();
      void this.loadCallSettings();
      void this.ai.load();
      void this.backend.micMeter(true).catch((e) => console.error("no microphone meter", e));
    } else if (page !== "settings" && was === "settings") {
      void this.backend.micMeter(false).catch(() => {});
      this.audio.showMicLevel(null);
    }
  }

  private closeNotice(): void {
    this.deviceNotice = null;
    this.render();
  }

  private async loadCallSettings(): Promise<void> {
    try {
      this.callSettings = await this.backend.callSettingsGet();
    } catch (e) {
      this.callSettingsError = toApiError(e);
    }
    this.render();
  }

  /** Saves the transfer consent policy; the select then shows what the core holds. */
  private async setReferPolicy(policy: ReferPolicy): Promise<void> {
    this.callSettingsError = null;
    try {
      await this.backend.callSettingsSetReferPolicy(policy);
    } catch (e) {
      this.callSettingsError = toApiError(e);
    }
    await this.loadCallSettings();
  }

  private async loadAudio(): Promise<void> {
    const [devices, settings] = await Promise.allSettled([this.backend.audioDevices(), this.backend.audioSettingsGet()]);
    this.audioError = null;
    if (devices.status === "fulfilled") this.audioDevices = devices.value;
    else this.audioError = toApiError(devices.reason);
    if (settings.status === "fulfilled") this.audioSettings = settings.value;
    else this.audioError = toApiError(settings.reason);
    this.render();
  }

  /** Saves a device choice; the select shows what the core then holds. */
  private async chooseAudio(settings: AudioSettings): Promise<void> {
    this.audioError = null;
    try {
      await this.backend.audioSettingsSet(settings);
    } catch (e) {
      this.audioError = toApiError(e);
    }
    await this.loadAudio();
  }

  private async testTone(): Promise<void> {
    this.audioError = null;
    this.testing = true;
    this.render();
    try {
      await this.backend.audioTestTone();
      // The tone lasts about a second; the button says so meanwhile.
      await new Promise((done) => setTimeout(done, 1200));
    } catch (e) {
      this.audioError = toApiError(e);
    }
    this.testing = false;
    this.render();
  }

  private async dial(target: string, accountId: number | null): Promise<void> {
    this.dialError = null;
    this.dialing = true;
    this.render();
    try {
      await this.backend.callDial(target, accountId);
    } catch (e) {
      this.dialError = toApiError(e);
    }
    this.dialing = false;
    this.render();
    await this.refreshCalls();
  }

  private async setDnd(on: boolean): Promise<void> {
    this.dndError = null;
    try {
      await this.backend.dndSet(on);
      this.dnd = on;
    } catch (e) {
      this.dndError = toApiError(e);
    }
    this.render();
  }

  /** Runs a command on a live call; its error shows on the call, success waits for the call's events. */
  private async callCommand(op: () => Promise<void>): Promise<void> {
    if (this.callError !== null) {
      this.callError = null;
      this.render();
    }
    try {
      await op();
    } catch (e) {
      this.callError = toApiError(e);
      this.render();
    }
  }

  private readonly callActions: CallActions = {
    answer: (id) => void this.callCommand(() => this.backend.callAnswer(id)),
    reject: (id) => void this.callCommand(() => this.backend.callReject(id)),
    hangup: (id) => void this.callCommand(() => this.backend.callHangup(id)),
    mute: (id, on) => void this.callCommand(() => this.backend.callMute(id, on)),
    hold: (id) => void this.callCommand(() => this.backend.callHold(id)),
    resume: (id) => void this.callCommand(() => this.backend.callResume(id)),
    dtmf: (id, digits) => void this.callCommand(() => this.backend.callDtmf(id, digits)),
    swap: () => void this.callCommand(() => this.backend.callsSwap()),
    handoff: (id) => void this.handoffCommand(id, "handing", () => this.backend.callHandoff(id)),
    takeBack: (id) => void this.handoffCommand(id, "taking_back", () => this.backend.callTakeback(id)),
    cancelHandoff: (id) => void this.cancelHandoff(id),
    closeHandoffNotice: (id) => {
      this.handoffNotices.delete(id);
      this.render();
    },
  };

  /**
   * Hand to AI or Take back: the button waits (`pending`) for the core's `handoff` event, which
   * sets who has the call; a refusal shows on the call and the button is back as it was.
   */
  private async handoffCommand(callId: string, pending: HandoffPhase, op: () => Promise<void>): Promise<void> {
    const before = this.handoffs.get(callId) ?? "desk";
    if (before === "handing" || before === "cancelling" || before === "taking_back") return;
    this.handoffs.set(callId, pending);
    if (pending === "handing") this.handoffNotices.delete(callId);
    this.render();
    const undo = () => {
      if (this.handoffs.get(callId) === pending) this.handoffs.set(callId, before);
    };
    setTimeout(() => {
      undo();
      this.render();
    }, HANDOFF_WAIT_MS);
    await this.callCommand(async () => {
      try {
        await op();
      } catch (e) {
        undo();
        throw e;
      }
    });
  }

  /**
   * Cancel while a handoff waits for its agent: the core's take-back stops the opening and its
   * `handoff` event (to the desk, no reason) ends the wait; a refusal shows on the call.
   */
  private async cancelHandoff(callId: string): Promise<void> {
    if (this.handoffs.get(callId) !== "handing") return;
    this.handoffs.set(callId, "cancelling");
    this.render();
    const undo = (to: HandoffPhase) => {
      if (this.handoffs.get(callId) === "cancelling") this.handoffs.set(callId, to);
    };
    setTimeout(() => {
      undo("desk");
      this.render();
    }, HANDOFF_WAIT_MS);
    await this.callCommand(async () => {
      try {
        await this.backend.callTakeback(callId);
      } catch (e) {
        undo("handing");
        throw e;
      }
    });
  }

  /** Runs a list action; its error shows above the list, success reloads the list. */
  private async act(op: () => Promise<unknown>): Promise<void> {
    this.listError = null;
    try {
      await op();
    } catch (e) {
      this.listError = toApiError(e);
    }
    await this.refresh();
  }

  private openForm(account: AccountView | null): void {
    this.form = new AccountForm(account, (f) => void this.save(f), () => this.closeForm());
    this.modal.replaceChildren(this.form.el);
    this.form.focus();
  }

  private closeForm(): void {
    this.form?.clearPassword();
    this.form = null;
    this.modal.replaceChildren();
  }

  private async save(form: AccountForm): Promise<void> {
    form.setBusy(true);
    form.showError(null);
    try {
      const id = form.accountId;
      const draft = form.draft();
      if (id === null) await this.backend.accountCreate(draft);
      else await this.backend.accountUpdate(id, draft);
      this.closeForm();
      this.listError = null;
      await this.refresh();
    } catch (e) {
      form.showError(toApiError(e));
      form.setBusy(false);
    }
  }

  private async setLocale(locale: Locale): Promise<void> {
    this.langError = null;
    try {
      await this.backend.uiSettingsSetLocale(locale);
      await this.loadSettings();
    } catch (e) {
      // Still switch for this session; the banner says it was not saved.
      this.langError = toApiError(e);
      this.settings = { locale, system_locale: this.settings?.system_locale ?? browserLang() };
      setLang(resolveLang(locale, this.settings.system_locale));
    }
    this.render();
  }

  private readonly actions: SettingsActions = {
    add: () => this.openForm(null),
    edit: (a) => this.openForm(a),
    askDelete: (id) => {
      this.confirmDeleteId = id;
      this.render();
    },
    remove: (id) => void this.act(() => this.backend.accountDelete(id)),
    setActive: (id, active) => void this.act(() => this.backend.accountSetActive(id, active)),
    makeDefault: (id) => void this.act(() => this.backend.accountSetDefault(id)),
    setLocale: (locale) => void this.setLocale(locale),
    setReferPolicy: (policy) => void this.setReferPolicy(policy),
  };
}
