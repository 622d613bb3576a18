// The UI talks to the core only through this interface, so screens can run on any backend (Tauri or a test double).
import type {
  AccountDraft,
  AccountView,
  AiAgentDraft,
  AiAgentView,
  AiPolicy,
  AiPolicyDraft,
  ApiError,
  AudioDevices,
  AudioSettings,
  CallRecord,
  CallSettings,
  CallView,
  DeskEvent,
  DeskStatus,
  Locale,
  ReferPolicy,
  UiSettings,
} from "./types";

export interface Backend {
  deskStatus(): Promise<DeskStatus>;
  accountsList(): Promise<AccountView[]>;
  accountCreate(draft: AccountDraft): Promise<number>;
  accountUpdate(id: number, draft: AccountDraft): Promise<void>;
  accountDelete(id: number): Promise<void>;
  accountSetActive(id: number, active: boolean): Promise<void>;
  accountSetDefault(id: number): Promise<void>;
  uiSettingsGet(): Promise<UiSettings>;
  uiSettingsSetLocale(locale: Locale): Promise<void>;
  callSettingsGet(): Promise<CallSettings>;
  /** Saves what a transfer request from the far end gets (SIPDESK_REFER, when set, still wins). */
  callSettingsSetReferPolicy(policy: ReferPolicy): Promise<void>;
  /** Places a call to a number, extension or SIP URI; resolves to its call id. `accountId` null: the default account. */
  callDial(target: string, accountId: number | null): Promise<string>;
  callAnswer(callId: string): Promise<void>;
  callReject(callId: string): Promise<void>;
  callHangup(callId: string): Promise<void>;
  callsList(): Promise<CallView[]>;
  dndGet(): Promise<boolean>;
  dndSet(on: boolean): Promise<void>;
  historyList(limit: number): Promise<CallRecord[]>;
  /** Mutes (true) or unmutes the microphone of a live call; a `mute` event follows. */
  callMute(callId: string, on: boolean): Promise<void>;
  /** Puts the far end on hold (it hears music on hold); the call then goes `held`. */
  callHold(callId: string): Promise<void>;
  /** Takes the far end off hold; the call goes back to `active`. */
  callResume(callId: string): Promise<void>;
  /** Sends DTMF digits (`0-9 * # A-D`) to a connected call; a `dtmf` event follows for each. */
  callDtmf(callId: string, digits: string): Promise<void>;
  /** Blind-transfers a connected call to a number, extension or SIP URI; `transfer` events follow. */
  callTransfer(callId: string, target: string): Promise<void>;
  /** Hands a connected call to the AI voice agent (the desk keeps listening, its microphone off to the caller); `handoff` and `transcript` events follow. */
  callHandoff(callId: string): Promise<void>;
  /** Takes a call back from the AI voice agent; a `handoff` event (to `human`) follows. */
  callTakeback(callId: string): Promise<void>;
  /** Holds the active call and resumes the held one (`invalid_state` without exactly that pair). */
  callsSwap(): Promise<void>;
  /** Accepts (true) or declines the far end's request to call someone else (a `transfer_request`). */
  callReferAnswer(callId: string, accept: boolean): Promise<void>;
  audioDevices(): Promise<AudioDevices>;
  audioSettingsGet(): Promise<AudioSettings>;
  /** Saves the device choice; an id the system does not list now is refused (`unknown_device`). */
  audioSettingsSet(settings: AudioSettings): Promise<void>;
  /** Plays about a second of tone on the chosen output; resolves at once. */
  audioTestTone(): Promise<void>;
  /** Starts or stops the `mic_level` events. */
  micMeter(on: boolean): Promise<void>;
  /** The AI agent configurations (never a key: `api_key_set` says whether one is stored). */
  aiAgentsList(): Promise<AiAgentView[]>;
  /** Saves an AI agent's settings; an empty or null `api_key` keeps the stored key. Resolves to it as saved. */
  aiAgentUpdate(id: number, draft: AiAgentDraft): Promise<AiAgentView>;
  /** Makes an enabled AI agent the one handoffs go to. */
  aiAgentSetDefault(id: number): Promise<void>;
  aiPolicyGet(): Promise<AiPolicy>;
  /** Saves the supervisors' AI policy; resolves to the policy in force. */
  aiPolicySet(draft: AiPolicyDraft): Promise<AiPolicy>;
  /** Calls `handler` for every core event; resolves to an unsubscribe function. */
  onEvent(handler: (event: DeskEvent) => void): Promise<() => void>;
}

/** Normalises whatever a backend rejected with into the core's `{code, message, fields}` shape. */
export function toApiError(raw: unknown): ApiError {
  if (raw && typeof raw === "object" && "code" in raw) {
    const e = raw as Partial<ApiError>;
    return { code: String(e.code), message: String(e.message ?? ""), fields: Array.isArray(e.fields) ? e.fields : [] };
  }
  return { code: "internal", message: String(raw), fields: [] };
}
