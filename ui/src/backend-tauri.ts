// Backend over Tauri IPC: one invoke per core command, core events from the "sipdesk://event" channel.
import { invoke, type InvokeArgs } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import { toApiError, type Backend } from "./backend";
import type {
  AccountDraft,
  AccountView,
  AiAgentDraft,
  AiAgentView,
  AiPolicy,
  AiPolicyDraft,
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

export const EVENT_CHANNEL = "sipdesk://event";

async function call<T>(cmd: string, args?: InvokeArgs): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    throw toApiError(e);
  }
}

export class TauriBackend implements Backend {
  deskStatus = () => call<DeskStatus>("desk_status");
  accountsList = () => call<AccountView[]>("accounts_list");
  accountCreate = (draft: AccountDraft) => call<number>("account_create", { draft });
  accountUpdate = (id: number, draft: AccountDraft) => call<void>("account_update", { id, draft });
  accountDelete = (id: number) => call<void>("account_delete", { id });
  accountSetActive = (id: number, active: boolean) => call<void>("account_set_active", { id, active });
  accountSetDefault = (id: number) => call<void>("account_set_default", { id });
  uiSettingsGet = () => call<UiSettings>("ui_settings_get");
  uiSettingsSetLocale = (locale: Locale) => call<void>("ui_settings_set_locale", { locale });
  callSettingsGet = () => call<CallSettings>("call_settings_get");
  callSettingsSetReferPolicy = (policy: ReferPolicy) => call<void>("call_settings_set_refer_policy", { policy });
  // The call commands take snake_case argument names, like the core.
  callDial = (target: string, accountId: number | null) => call<string>("call_dial", { target, account_id: accountId });
  callAnswer = (callId: string) => call<void>("call_answer", { call_id: callId });
  callReject = (callId: string) => call<void>("call_reject", { call_id: callId });
  callHangup = (callId: string) => call<void>("call_hangup", { call_id: callId });
  callsList = () => call<CallView[]>("calls_list");
  dndGet = () => call<boolean>("dnd_get");
  dndSet = (on: boolean) => call<void>("dnd_set", { on });
  historyList = (limit: number) => call<CallRecord[]>("history_list", { limit });
  callMute = (callId: string, on: boolean) => call<void>("call_mute", { call_id: callId, on });
  callHold = (callId: string) => call<void>("call_hold", { call_id: callId });
  callResume = (callId: string) => call<void>("call_resume", { call_id: callId });
  callDtmf = (callId: string, digits: string) => call<void>("call_dtmf", { call_id: callId, digits });
  callTransfer = (callId: string, target: string) => call<void>("call_transfer", { call_id: callId, target });
  callHandoff = (callId: string) => call<void>("call_handoff", { call_id: callId });
  callTakeback = (callId: string) => call<void>("call_takeback", { call_id: callId });
  callsSwap = () => call<void>("calls_swap");
  callReferAnswer = (callId: string, accept: boolean) => call<void>("call_refer_answer", { call_id: callId, accept });
  audioDevices = () => call<AudioDevices>("audio_devices");
  audioSettingsGet = () => call<AudioSettings>("audio_settings_get");
  audioSettingsSet = (settings: AudioSettings) => call<void>("audio_settings_set", { settings });
  audioTestTone = () => call<void>("audio_test_tone");
  micMeter = (on: boolean) => call<void>("mic_meter", { on });
  aiAgentsList = () => call<AiAgentView[]>("ai_agents_list");
  aiAgentUpdate = (id: number, draft: AiAgentDraft) => call<AiAgentView>("ai_agent_update", { id, draft });
  aiAgentSetDefault = (id: number) => call<void>("ai_agent_set_default", { id });
  aiPolicyGet = () => call<AiPolicy>("ai_policy_get");
  aiPolicySet = (draft: AiPolicyDraft) => call<AiPolicy>("ai_policy_set", { draft });

  onEvent(handler: (event: DeskEvent) => void): Promise<() => void> {
    return listen<DeskEvent>(EVENT_CHANNEL, (e) => handler(e.payload));
  }
}
