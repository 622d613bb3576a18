//! The SipDesk desktop app: a thin Tauri shell. Each command is a one-liner into the core's
//! [`Desk`]; every core event is re-emitted to the webview on [`EVENT_CHANNEL`] unchanged, and an
//! incoming call (or a call the AI gave back) brings the window to the front.

use sipdesk_core::desk::{
    AccountStatus, AiPolicy, AiPolicyDraft, ApiError, AudioDevices, AudioSettings, CallCommand, CallSettings, CallView,
    Desk, DeskOptions, DeskStatus, Event, EventEnvelope, ReferPolicy, UiSettings,
};
use sipdesk_core::store::{AccountDraft, AiAgentDraft, AiAgentView, CallRecord};
use tauri::{AppHandle, Emitter, Manager, RunEvent, State};
use tokio::sync::broadcast::error::RecvError;

/// The webview event that carries each core event's JSON (`{"event": ..., "ts_ms": ..., ...}`).
pub const EVENT_CHANNEL: &str = "sipdesk://event";

// `async` runs them off the main thread, so a busy database never freezes the window.
#[tauri::command(async)]
fn desk_status(desk: State<'_, Desk>) -> DeskStatus {
    desk.desk_status()
}

#[tauri::command(async)]
fn accounts_list(desk: State<'_, Desk>) -> Result<Vec<AccountStatus>, ApiError> {
    desk.accounts_list()
}

#[tauri::command(async)]
fn account_create(desk: State<'_, Desk>, draft: AccountDraft) -> Result<i64, ApiError> {
    desk.account_create(draft)
}

#[tauri::command(async)]
fn account_update(desk: State<'_, Desk>, id: i64, draft: AccountDraft) -> Result<(), ApiError> {
    desk.account_update(id, draft)
}

#[tauri::command(async)]
fn account_delete(desk: State<'_, Desk>, id: i64) -> Result<(), ApiError> {
    desk.account_delete(id)
}

#[tauri::command(async)]
fn account_set_active(desk: State<'_, Desk>, id: i64, active: bool) -> Result<(), ApiError> {
    desk.account_set_active(id, active)
}

#[tauri::command(async)]
fn account_set_default(desk: State<'_, Desk>, id: i64) -> Result<(), ApiError> {
    desk.account_set_default(id)
}

#[tauri::command(async)]
fn ui_settings_get(desk: State<'_, Desk>) -> Result<UiSettings, ApiError> {
    desk.ui_settings_get()
}

#[tauri::command(async)]
fn ui_settings_set_locale(desk: State<'_, Desk>, locale: String) -> Result<(), ApiError> {
    desk.ui_settings_set_locale(locale)
}

#[tauri::command(async)]
fn call_settings_get(desk: State<'_, Desk>) -> CallSettings {
    desk.call_settings_get()
}

/// What a transfer request from the far end gets: `ask`, `auto` or `refuse` (anything else is
/// refused by the argument's deserialisation).
#[tauri::command(async)]
fn call_settings_set_refer_policy(desk: State<'_, Desk>, policy: ReferPolicy) -> Result<(), ApiError> {
    desk.set_refer_policy(policy)
}

// Argument names stay snake_case on the JS side too (`account_id`, `call_id`), as in the core.
#[tauri::command(async, rename_all = "snake_case")]
fn call_dial(desk: State<'_, Desk>, target: String, account_id: Option<i64>) -> Result<String, ApiError> {
    desk.dial(&target, account_id)
}

#[tauri::command(async, rename_all = "snake_case")]
fn call_answer(desk: State<'_, Desk>, call_id: String) -> Result<(), ApiError> {
    desk.call_command(&call_id, CallCommand::Answer)
}

#[tauri::command(async, rename_all = "snake_case")]
fn call_reject(desk: State<'_, Desk>, call_id: String) -> Result<(), ApiError> {
    desk.call_command(&call_id, CallCommand::Reject)
}

#[tauri::command(async, rename_all = "snake_case")]
fn call_hangup(desk: State<'_, Desk>, call_id: String) -> Result<(), ApiError> {
    desk.call_command(&call_id, CallCommand::Hangup)
}

#[tauri::command(async, rename_all = "snake_case")]
fn call_mute(desk: State<'_, Desk>, call_id: String, on: bool) -> Result<(), ApiError> {
    desk.call_command(&call_id, CallCommand::Mute(on))
}

#[tauri::command(async, rename_all = "snake_case")]
fn call_hold(desk: State<'_, Desk>, call_id: String) -> Result<(), ApiError> {
    desk.call_command(&call_id, CallCommand::Hold)
}

#[tauri::command(async, rename_all = "snake_case")]
fn call_resume(desk: State<'_, Desk>, call_id: String) -> Result<(), ApiError> {
    desk.call_command(&call_id, CallCommand::Resume)
}

/// Sends each digit in turn; the core checks them, and the first refusal is the answer.
#[tauri::command(async, rename_all = "snake_case")]
fn call_dtmf(desk: State<'_, Desk>, call_id: String, digits: String) -> Result<(), ApiError> {
    digits.chars().try_for_each(|d| desk.call_command(&call_id, CallCommand::Dtmf(d)))
}

/// Blind transfer of a connected call to a number, extension or SIP URI; `transfer` events follow.
#[tauri::command(async, rename_all = "snake_case")]
fn call_transfer(desk: State<'_, Desk>, call_id: String, target: String) -> Result<(), ApiError> {
    desk.transfer(&call_id, &target)
}

/// Hands a connected call to the AI voice agent; `handoff` and `transcript` events follow.
#[tauri::command(async, rename_all = "snake_case")]
fn call_handoff(desk: State<'_, Desk>, call_id: String) -> Result<(), ApiError> {
    desk.call_command(&call_id, CallCommand::Handoff)
}

/// Takes a call back from the AI voice agent; a `handoff` event (to `human`) follows.
#[tauri::command(async, rename_all = "snake_case")]
fn call_takeback(desk: State<'_, Desk>, call_id: String) -> Result<(), ApiError> {
    desk.call_command(&call_id, CallCommand::TakeBack)
}

/// Holds the active call and resumes the held one.
#[tauri::command(async)]
fn calls_swap(desk: State<'_, Desk>) -> Result<(), ApiError> {
    desk.swap()
}

/// Answers the far end's request to call someone else (a `transfer_request` event).
#[tauri::command(async, rename_all = "snake_case")]
fn call_refer_answer(desk: State<'_, Desk>, call_id: String, accept: bool) -> Result<(), ApiError> {
    desk.call_command(&call_id, CallCommand::ReferAnswer(accept))
}

#[tauri::command(async)]
fn calls_list(desk: State<'_, Desk>) -> Vec<CallView> {
    desk.calls_list()
}

#[tauri::command(async)]
fn dnd_get(desk: State<'_, Desk>) -> bool {
    desk.dnd()
}

#[tauri::command(async)]
fn dnd_set(desk: State<'_, Desk>, on: bool) -> Result<(), ApiError> {
    desk.dnd_set(on)
}

#[tauri::command(async)]
fn history_list(desk: State<'_, Desk>, limit: u32) -> Result<Vec<CallRecord>, ApiError> {
    desk.history_list(limit)
}

#[tauri::command(async)]
fn audio_devices(desk: State<'_, Desk>) -> Result<AudioDevices, ApiError> {
    desk.audio_devices()
}

#[tauri::command(async)]
fn audio_settings_get(desk: State<'_, Desk>) -> AudioSettings {
    desk.audio_settings_get()
}

#[tauri::command(async)]
fn audio_settings_set(desk: State<'_, Desk>, settings: AudioSettings) -> Result<(), ApiError> {
    desk.audio_settings_set(settings)
}

#[tauri::command(async)]
fn audio_test_tone(desk: State<'_, Desk>) -> Result<(), ApiError> {
    desk.audio_test_tone()
}

#[tauri::command(async)]
fn mic_meter(desk: State<'_, Desk>, on: bool) {
    desk.mic_meter(on)
}

/// The AI voice agents (never a key: `api_key_set` says whether one is stored).
#[tauri::command(async)]
fn ai_agents_list(desk: State<'_, Desk>) -> Result<Vec<AiAgentView>, ApiError> {
    desk.ai_agents_list()
}

/// Edits an AI agent; an absent or empty `api_key` keeps the stored key. Returns it as saved.
#[tauri::command(async)]
fn ai_agent_update(desk: State<'_, Desk>, id: i64, draft: AiAgentDraft) -> Result<AiAgentView, ApiError> {
    desk.ai_agent_update(id, &draft)
}

#[tauri::command(async)]
fn ai_agent_set_default(desk: State<'_, Desk>, id: i64) -> Result<(), ApiError> {
    desk.ai_agent_set_default(id)
}

#[tauri::command(async)]
fn ai_policy_get(desk: State<'_, Desk>) -> AiPolicy {
    desk.ai_policy()
}

/// Saves the supervisors' AI policy (fields not given keep their values); returns it in force.
#[tauri::command(async)]
fn ai_policy_set(desk: State<'_, Desk>, draft: AiPolicyDraft) -> Result<AiPolicy, ApiError> {
    desk.set_ai_policy(&draft)
}

/// Opens the desk (a broken database still opens the window, with the error in `desk_status`),
/// starts it and runs the app until its window closes.
pub fn run() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info".into())
                .add_directive(sipdesk_core::media::device::QUIET_PULSE_LOG.parse().expect("a valid directive")),
        )
        .init();
    let desk = Desk::open(DeskOptions::from_env());
    let app = tauri::Builder::default()
        .manage(desk.clone())
        .invoke_handler(tauri::generate_handler![
            desk_status,
            accounts_list,
            account_create,
            account_update,
            account_delete,
            account_set_active,
            account_set_default,
            ui_settings_get,
            ui_settings_set_locale,
            call_settings_get,
            call_settings_set_refer_policy,
            call_dial,
            call_answer,
            call_reject,
            call_hangup,
            call_mute,
            call_hold,
            call_resume,
            call_dtmf,
            call_transfer,
            call_handoff,
            call_takeback,
            calls_swap,
            call_refer_answer,
            calls_list,
            dnd_get,
            dnd_set,
            history_list,
            audio_devices,
            audio_settings_get,
            audio_settings_set,
            audio_test_tone,
            mic_meter,
            ai_agents_list,
            ai_agent_update,
            ai_agent_set_default,
            ai_policy_get,
            ai_policy_set,
        ])
        .setup(move |app| {
            tauri::async_runtime::spawn(start_and_forward(desk, app.handle().clone()));
            tauri::async_runtime::spawn(exit_on_signal(app.handle().clone()));
            Ok(())
        })
        .build(tauri::generate_context!())
        .expect("cannot build the SipDesk window");
    app.run(|handle, event| {
        if let RunEvent::Exit = event {
            tauri::async_runtime::block_on(handle.state::<Desk>().shutdown());
        }
    });
}

/// SIGTERM or SIGINT (a logout, `kill`, a service manager) ends the app the way closing its
/// window does, so the exit path removes every registration.
async fn exit_on_signal(app: AppHandle) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return tracing::warn!("cannot watch for SIGTERM; a signal will not unregister");
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stopping on a signal");
    app.exit(0);
}

/// Starts the desk, then forwards every core event to the webview until the desk is gone.
async fn start_and_forward(desk: Desk, app: AppHandle) {
    // Subscribed before start so no start-up event is dropped here; the UI re-reads the status
    // after it starts listening, so it misses nothing either.
    let mut events = desk.subscribe();
    if let Err(e) = desk.start().await {
        tracing::error!(code = e.code, "desk not started: {}", e.message);
    }
    loop {
        match events.recv().await {
            Ok(event) => {
                if let Err(e) = app.emit(EVENT_CHANNEL, &event) {
                    tracing::warn!("cannot forward an event to the webview: {e}");
                }
                if rings_here(&event) {
                    raise_window(&app);
                }
            }
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(skipped = n, "webview event forwarding lagged")
            }
            Err(RecvError::Closed) => break,
        }
    }
}

/// An incoming call (or call waiting), a far end's transfer request, or a call the AI gave back by
/// itself (it asked for a person, or failed), that waits for the agent: the window must come to
/// the front.
fn rings_here(event: &EventEnvelope) -> bool {
    matches!(
        &event.event,
        Event::Call { direction: "in", state: "incoming" | "ringing", .. }
            | Event::TransferRequest { .. }
            | Event::Handoff { to: "human", reason: Some(_), .. }
    )
}

/// Shows, restores and focuses the main window (from Rust, so the webview needs no window permission).
fn raise_window(app: &AppHandle) {
    let Some(window) = app.get_webview_window("main") else {
        return;
    };
    for (what, result) in [("show", window.show()), ("unminimize", window.unminimize()), ("focus", window.set_focus())]
    {
        if let Err(e) = result {
            tracing::warn!("cannot {what} the window for a call that waits: {e}");
        }
    }
}
