//! Generates the app's command permissions (`allow-<command>`) that capabilities/ grants.

/// Every command in `src/lib.rs`; a command missing here cannot be invoked by the webview.
const COMMANDS: &[&str] = &[
    "desk_status",
    "accounts_list",
    "account_create",
    "account_update",
    "account_delete",
    "account_set_active",
    "account_set_default",
    "ui_settings_get",
    "ui_settings_set_locale",
    "call_settings_get",
    "call_settings_set_refer_policy",
    "call_dial",
    "call_answer",
    "call_reject",
    "call_hangup",
    "call_mute",
    "call_hold",
    "call_resume",
    "call_dtmf",
    "call_transfer",
    "call_handoff",
    "call_takeback",
    "calls_swap",
    "call_refer_answer",
    "calls_list",
    "dnd_get",
    "dnd_set",
    "history_list",
    "audio_devices",
    "audio_settings_get",
    "audio_settings_set",
    "audio_test_tone",
    "mic_meter",
    "ai_agents_list",
    "ai_agent_update",
    "ai_agent_set_default",
    "ai_policy_get",
    "ai_policy_set",
];

fn main() {
    tauri_build::try_build(
        tauri_build::Attributes::new().app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .expect("tauri build script failed");
}
