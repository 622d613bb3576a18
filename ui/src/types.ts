// Mirrors the JSON shapes of the core's DTOs (crates/core: desk and store). Keep in step with docs/EVENTS.md.

export type Protocol = "UDP" | "TCP";
/** How an account's calls send DTMF: RTP telephone-events (SIP INFO when not negotiated), or always SIP INFO. */
export type DtmfMode = "rfc4733" | "info";
/** What a transfer request from the far end gets: asked about, followed at once, or declined. */
export type ReferPolicy = "ask" | "auto" | "refuse";
export type RegState = "unregistered" | "registering" | "registered" | "failed";
/** A stored language choice; "system" follows the operating system. */
export type Locale = "system" | "en" | "zh-CN";
/** A language the UI can actually display. */
export type UiLang = "en" | "zh-CN";

export interface Registration {
  state: RegState;
  reason: string | null;
  expires: number | null;
}

export interface AccountView {
  id: number;
  user_id: number | null;
  display_name: string;
  server_host: string;
  server_port: number;
  username: string;
  password_set: boolean;
  protocol: Protocol;
  is_active: boolean;
  is_default: boolean;
  register_interval: number;
  last_register_time: string | null;
  auth_username: string;
  domain: string;
  outbound_proxy: string;
  /** Codec preference order, e.g. "opus,pcmu"; null: the default order. */
  codecs: string | null;
  dtmf_mode: DtmfMode;
  created_at: string;
  updated_at: string;
  source: "db" | "env";
  registration: Registration;
}

/** What the UI sends: raw strings, parsed and validated by the core. `password: null` keeps the stored one. */
export interface AccountDraft {
  display_name: string;
  server_host: string;
  server_port: string;
  username: string;
  password: string | null;
  protocol: Protocol;
  register_interval: string;
  auth_username: string;
  domain: string;
  outbound_proxy: string;
  /** Codec order as typed ("pcma,pcmu"); empty or "default" for the default order. */
  codecs: string;
  dtmf_mode: DtmfMode;
  is_active: boolean;
}

export interface FieldError {
  field: string;
  code: string;
}

export interface ApiError {
  code: string;
  message: string;
  fields: FieldError[];
}

/** `{code, message}` of a condition the desk runs with (broken database, bad environment account). */
export interface StoreError {
  code: string;
  message: string;
}

export interface DeskStatus {
  store_error: StoreError | null;
  /** Why this window does not register: another instance holds the database. */
  instance_error: StoreError | null;
  /** Why the SIP_* environment account was ignored, if it was. */
  env_account_error: StoreError | null;
  db_path: string;
  default_account_id: number | null;
  accounts: AccountView[];
}

export interface UiSettings {
  locale: Locale;
  system_locale: UiLang;
}

/** The desk's call settings. */
export interface CallSettings {
  /** The transfer consent policy in force. */
  refer_policy: ReferPolicy;
  /** True when SIPDESK_REFER decides the policy, whatever is saved. */
  refer_policy_from_env: boolean;
}

export interface AccountLoadedEvent {
  event: "account_loaded";
  ts_ms: number;
  account_id: number;
  server: string;
  username: string;
  protocol: Protocol;
}

export interface RegistrationEvent {
  event: "registration";
  ts_ms: number;
  account_id: number;
  state: RegState;
  expires: number | null;
  reason: string | null;
}

export interface AccountsChangedEvent {
  event: "accounts_changed";
  ts_ms: number;
}

export interface AccountUnloadedEvent {
  event: "account_unloaded";
  ts_ms: number;
  account_id: number;
  reason: string;
}

export interface StoreErrorEvent {
  event: "store_error";
  ts_ms: number;
  code: string;
  message: string;
}

export type CallDirection = "in" | "out";
/** `held`: we hold the far end (it hears music on hold); `held_remote`: the far end holds us. */
export type CallState = "calling" | "incoming" | "ringing" | "early" | "active" | "held" | "held_remote" | "ended";

/** A live call (`calls_list`): the last `call` event's fields plus when it was answered. */
export interface CallView {
  call_id: string;
  account_id: number;
  direction: CallDirection;
  state: CallState;
  /** The other party as a name-addr: `"Name" <sip:user@host>` or `<sip:user@host>`. */
  remote: string;
  codec: string | null;
  /** When it became active (ms since the epoch), for the call timer. */
  active_since_ms: number | null;
}

/** One row of the call history (`history_list`), newest first. */
export interface CallRecord {
  id: number;
  call_id: string;
  account_id: number | null;
  direction: CallDirection;
  /** The other party's URI. */
  remote: string;
  display_name: string;
  /** UTC, ISO 8601. */
  started_at: string;
  answered_at: string | null;
  ended_at: string | null;
  duration_s: number | null;
  /** Why it ended; null while the call runs, or when it was interrupted (the app stopped). */
  end_reason: string | null;
  codec: string | null;
  /** What was said while the AI assistant had the call (empty if it never had it). */
  transcript: TranscriptLine[];
  /**
   * What the AI collected (intents, slots), in the core's words: `; `-separated parts, most of them
   * `name: value` (e.g. `reason for calling: billing; callback_number: 5551234`); null if it never
   * had the call.
   */
  summary: string | null;
}

/** One line of a call's saved transcript. */
export interface TranscriptLine {
  speaker: "caller" | "ai";
  text: string;
  ts_ms: number;
}

export interface CallEvent {
  event: "call";
  ts_ms: number;
  call_id: string;
  account_id: number;
  direction: CallDirection;
  state: CallState;
  remote: string;
  codec: string | null;
  reason: string | null;
}

/** About every 200 ms while a call has media: how loud each direction is, in dBFS (-120: silence). */
export interface CallLevelEvent {
  event: "call_level";
  ts_ms: number;
  call_id: string;
  /** What the far end sends us. */
  rx_dbfs: number;
  /** What we send. */
  tx_dbfs: number;
}

export interface DndEvent {
  event: "dnd";
  ts_ms: number;
  on: boolean;
}

/** Which devices the desk uses; null is the system default. */
export interface AudioSettings {
  input: string | null;
  output: string | null;
  ring: string | null;
}

export interface AudioDevice {
  /** What AudioSettings stores. */
  id: string;
  /** What a person reads. */
  name: string;
}

export interface AudioDevices {
  inputs: AudioDevice[];
  outputs: AudioDevice[];
  default_input: string | null;
  default_output: string | null;
}

export type DeviceRole = "input" | "output" | "ring";

/** An audio device could not be used and another took its place (`used` null: none could). */
export interface DeviceEvent {
  event: "device";
  ts_ms: number;
  direction: DeviceRole;
  /** Null: the system default. */
  wanted: string | null;
  used: string | null;
  reason: "not_found" | "open_failed" | "lost" | "recovered" | "unavailable";
  detail: string;
}

/** The microphone meter of the audio settings, every 100 ms while it is on. */
export interface MicLevelEvent {
  event: "mic_level";
  ts_ms: number;
  dbfs: number;
}

export interface MuteEvent {
  event: "mute";
  ts_ms: number;
  call_id: string;
  on: boolean;
}

/** A DTMF digit sent (`out`, by the keypad) or received (`in`) on a call. */
export interface DtmfEvent {
  event: "dtmf";
  ts_ms: number;
  call_id: string;
  digit: string;
  direction: "in" | "out";
  method: "rfc4733" | "info";
}

/** Reception figures of a live call, every 5 s. */
export interface CallStatsEvent {
  event: "call_stats";
  ts_ms: number;
  call_id: string;
  codec: string;
  packets_received: number;
  packets_lost: number;
  loss_pct: number;
  jitter_ms: number;
  buffer_ms: number;
  target_ms: number;
  late: number;
  concealed: number;
  remote_loss_pct: number | null;
  remote_jitter_ms: number | null;
}

/** Progress of a blind transfer we asked for; `done` ends our call (`transferred`), `failed` leaves it as it was. */
export interface TransferEvent {
  event: "transfer";
  ts_ms: number;
  call_id: string;
  status: "trying" | "ringing" | "done" | "failed";
  /** The SIP status behind the step. */
  code: number | null;
  /** Where the far end was sent (a SIP URI). */
  target: string;
}

/** The far end asks us to call someone else (an incoming REFER); answered within 30 s, else declined. */
export interface TransferRequestEvent {
  event: "transfer_request";
  ts_ms: number;
  call_id: string;
  /** Whom to call (a SIP URI). */
  target: string;
}

/** Why a call came back from the AI by itself (null in a `handoff` event: the desk took it back). */
export type HandoffReason =
  | "ai_requested_human"
  | "provider_error"
  | "provider_closed"
  | "provider_silent"
  | "provider_unavailable";

/** A call was handed to the AI voice agent (`ai`), or came back to the desk (`human`). */
export interface HandoffEvent {
  event: "handoff";
  ts_ms: number;
  call_id: string;
  to: "ai" | "human";
  /** The agent's provider (`local`, ...). */
  provider: string;
  /** Why it came back by itself; null when the desk took it back (or for `to: "ai"`). The core may add reasons. */
  reason: HandoffReason | string | null;
}

/** A line of the live transcript while the AI has the call: interim caller lines are replaced by the final one; AI lines come as pieces, then whole. */
export interface TranscriptEvent {
  event: "transcript";
  ts_ms: number;
  call_id: string;
  speaker: "caller" | "ai";
  text: string;
  final: boolean;
}

/** Core events; the core may add kinds the UI does not know yet, so always check `event`. */
export type DeskEvent =
  | AccountLoadedEvent
  | AccountUnloadedEvent
  | RegistrationEvent
  | AccountsChangedEvent
  | StoreErrorEvent
  | CallEvent
  | CallLevelEvent
  | DndEvent
  | DeviceEvent
  | MicLevelEvent
  | MuteEvent
  | DtmfEvent
  | CallStatsEvent
  | TransferEvent
  | TransferRequestEvent
  | HandoffEvent
  | TranscriptEvent;

/** An AI voice agent provider: the offline assistant or a cloud service. */
export type AiProvider = "local" | "openai" | "doubao";

/** An AI agent configuration as the core lists it: never the key, only whether one is stored. */
export interface AiAgentView {
  id: number;
  provider: AiProvider;
  /** Cloud providers stay disabled until an administrator enables them. */
  enabled: boolean;
  endpoint: string;
  /** Doubao's app id; empty for the others. */
  app_id: string;
  api_key_set: boolean;
  voice: string;
  instructions: string;
  greeting: string;
  language: string;
  /** Handoffs go to this one. */
  is_default: boolean;
  created_at: string;
  updated_at: string;
}

/** An edit: absent or null keeps the stored value; `api_key` null or "" keeps the stored key. */
export interface AiAgentDraft {
  enabled?: boolean | null;
  endpoint?: string | null;
  api_key?: string | null;
  clear_api_key?: boolean | null;
  app_id?: string | null;
  voice?: string | null;
  instructions?: string | null;
  greeting?: string | null;
  language?: string | null;
}

/** The desk's working hours, local time: days `mon`..`sun`, `HH:MM`. */
export interface WorkingHours {
  days: string[];
  start: string;
  end: string;
}

/** The supervisors' AI policy. `answer`: `never`, `always`, `after:N` (seconds) or `outside_hours`. */
export interface AiPolicy {
  handoff_allowed: boolean;
  answer: string;
  working_hours: WorkingHours;
  /** `sipdesk run --ai-answer` decides `answer` for this run. */
  answer_overridden: boolean;
}

/** A change of the policy; keys not given keep their values. Validated by the core. */
export interface AiPolicyDraft {
  handoff_allowed?: boolean;
  answer?: string;
  working_hours?: Partial<WorkingHours>;
}
