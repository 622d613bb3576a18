//! The line-oriented JSON command channel of `sipdesk run --json`: one command object per line
//! in, one `ack` or `error` object per command out. Nothing a caller sends can crash it.

use serde_json::{json, Map, Value};

use super::{now_ms, CallCommand, Desk};

/// Handles one line of input and returns the reply object (never panics).
///
/// A reply is `{"event":"ack","id":..,"result":..}` or
/// `{"event":"error","id":..,"code":..,"message":..}`; `id` echoes the command's id (null if absent).
pub fn handle_line(desk: &Desk, line: &str) -> Value {
    let value: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return error(Value::Null, "bad_json", &format!("not valid JSON: {e}")),
    };
    let Value::Object(obj) = value else {
        return error(Value::Null, "bad_command", "a command must be a JSON object");
    };
    let id = obj.get("id").cloned().unwrap_or(Value::Null);
    if !(id.is_null() || id.is_number() || id.is_string()) {
        return error(Value::Null, "bad_command", "id must be a number or a string");
    }
    let Some(cmd) = obj.get("cmd") else {
        return error(id, "bad_command", "missing \"cmd\"");
    };
    let Some(cmd) = cmd.as_str() else {
        return error(id, "bad_command", "\"cmd\" must be a string");
    };
    match cmd {
        "status" => status(desk, id, &obj),
        "dial" => {
            let Some(uri) = obj.get("uri").and_then(Value::as_str) else {
                return error(id, "invalid_argument", "missing \"uri\"");
            };
            let account = obj.get("account_id").and_then(Value::as_i64);
            match desk.dial(uri, account) {
                Ok(call_id) => ack(id, serde_json::json!({ "call_id": call_id })),
                Err(e) => error(id, e.code, &e.message),
            }
        }
        "dnd" => match obj.get("on").and_then(Value::as_bool) {
            Some(on) => match desk.dnd_set(on) {
                Ok(()) => ack(id, serde_json::json!({ "on": on })),
                Err(e) => error(id, e.code, &e.message),
            },
            None => error(id, "invalid_argument", "\"on\" must be true or false"),
        },
        "answer" | "reject" | "hangup" => {
            let Some(call_id) = obj.get("call_id").and_then(Value::as_str) else {
                return error(id, "invalid_argument", "missing \"call_id\"");
            };
            let command = match cmd {
                "answer" => CallCommand::Answer,
                "reject" => CallCommand::Reject,
                _ => CallCommand::Hangup,
            };
            match desk.call_command(call_id, command) {
                Ok(()) => ack(id, Value::Null),
                Err(e) => error(id, e.code, &e.message),
            }
        }
        "handoff" | "takeback" => {
            let Some(call_id) = obj.get("call_id").and_then(Value::as_str) else {
                return error(id, "invalid_argument", "missing \"call_id\"");
            };
            let command = if cmd == "handoff" { CallCommand::Handoff } else { CallCommand::TakeBack };
            match desk.call_command(call_id, command) {
                Ok(()) => ack(id, Value::Null),
                Err(e) => error(id, e.code, &e.message),
            }
        }
        "hold" | "resume" => {
            let Some(call_id) = obj.get("call_id").and_then(Value::as_str) else {
                return error(id, "invalid_argument", "missing \"call_id\"");
            };
            let command = if cmd == "hold" { CallCommand::Hold } else { CallCommand::Resume };
            match desk.call_command(call_id, command) {
                Ok(()) => ack(id, Value::Null),
                Err(e) => error(id, e.code, &e.message),
            }
        }
        "dtmf" => {
            let Some(call_id) = obj.get("call_id").and_then(Value::as_str) else {
                return error(id, "invalid_argument", "missing \"call_id\"");
            };
            let digits = obj.get("digits").and_then(Value::as_str).unwrap_or("");
            if digits.is_empty() || digits.chars().count() > 32 {
                return error(id, "invalid_argument", "\"digits\" must hold 1 to 32 of 0-9 * # A-D");
            }
            if let Some(bad) = digits.chars().find(|c| crate::media::rtp::TelephoneEvent::dtmf_code(*c).is_none()) {
                return error(id, "invalid_argument", &format!("{:?} is not a DTMF digit (0-9 * # A-D)", bad));
            }
            for d in digits.chars() {
                if let Err(e) = desk.call_command(call_id, CallCommand::Dtmf(d.to_ascii_uppercase())) {
                    return error(id, e.code, &e.message);
                }
            }
            ack(id, json!({ "digits": digits.to_ascii_uppercase() }))
        }
        "transfer" => {
            let (call_id, target) =
                (obj.get("call_id").and_then(Value::as_str), obj.get("target").and_then(Value::as_str));
            let Some(call_id) = call_id else { return error(id, "invalid_argument", "missing \"call_id\"") };
            if target.is_none() && obj.get("consult_call_id").is_none() {
                return error(id, "invalid_argument", "give \"target\" (blind) or \"consult_call_id\" (attended)");
            }
            let consult = obj.get("consult_call_id").and_then(Value::as_str);
            let result = match consult {
                Some(consult) => desk.transfer_attended(call_id, consult),
                None => desk.transfer(call_id, target.unwrap_or_default()),
            };
            match result {
                Ok(()) => ack(id, Value::Null),
                Err(e) => error(id, e.code, &e.message),
            }
        }
        "transfer_accept" | "transfer_reject" => {
            let Some(call_id) = obj.get("call_id").and_then(Value::as_str) else {
                return error(id, "invalid_argument", "missing \"call_id\"");
            };
            match desk.call_command(call_id, CallCommand::ReferAnswer(cmd == "transfer_accept")) {
                Ok(()) => ack(id, Value::Null),
                Err(e) => error(id, e.code, &e.message),
            }
        }
        "swap" => match desk.swap() {
            Ok(()) => ack(id, Value::Null),
            Err(e) => error(id, e.code, &e.message),
        },
        "mute" => {
            let Some(call_id) = obj.get("call_id").and_then(Value::as_str) else {
                return error(id, "invalid_argument", "missing \"call_id\"");
            };
            let Some(on) = obj.get("on").and_then(Value::as_bool) else {
                return error(id, "invalid_argument", "\"on\" must be true or false");
            };
            match desk.call_command(call_id, CallCommand::Mute(on)) {
                Ok(()) => ack(id, json!({ "on": on })),
                Err(e) => error(id, e.code, &e.message),
            }
        }
        "devices" => match desk.audio_devices() {
            Ok(devices) => {
                let mut result = json!(devices);
                result["chosen"] = json!(desk.audio_settings_get());
                ack(id, result)
            }
            Err(e) => error(id, e.code, &e.message),
        },
        "set_device" => set_device(desk, id, &obj),
        "set_policy" => match super::ai_settings::set_policy_command(desk, &obj) {
            Ok(policy) => ack(id, policy),
            Err(e) => error(id, e.code, &e.message),
        },
        "set_refer_policy" => {
            let policy = obj.get("policy").and_then(Value::as_str).and_then(super::ReferPolicy::parse);
            let Some(policy) = policy else {
                return error(id, "invalid_argument", "\"policy\" must be \"ask\", \"auto\" or \"refuse\"");
            };
            match desk.set_refer_policy(policy) {
                Ok(()) => ack(id, json!({ "policy": policy })),
                Err(e) => error(id, e.code, &e.message),
            }
        }
        "test_tone" => match desk.audio_test_tone() {
            Ok(()) => ack(id, Value::Null),
            Err(e) => error(id, e.code, &e.message),
        },
        "mic_meter" => match obj.get("on").and_then(Value::as_bool) {
            Some(on) => {
                desk.mic_meter(on);
                ack(id, json!({ "on": on }))
            }
            None => error(id, "invalid_argument", "\"on\" must be true or false"),
        },
        other => error(id, "unknown_command", &format!("unknown command {:?}", truncate(other))),
    }
}

fn status(desk: &Desk, id: Value, _args: &Map<String, Value>) -> Value {
    let s = desk.desk_status();
    let accounts: Vec<Value> = s
        .accounts
        .iter()
        .filter(|a| a.account.is_active)
        .map(|a| {
            json!({
                "account_id": a.account.id,
                "server": format!("{}:{}", bracket(&a.account.server_host), a.account.server_port),
                "username": a.account.username,
                "protocol": a.account.protocol,
                "source": a.account.source,
                "is_default": Some(a.account.id) == s.default_account_id,
                "registration": a.registration,
            })
        })
        .collect();
    ack(
        id,
        json!({
            "accounts": accounts,
            "store_error": s.store_error,
            "default_account_id": s.default_account_id,
            "refer_policy": desk.refer_policy(),
            "ai_policy": desk.ai_policy(),
        }),
    )
}

/// `set_device`: each of `input`, `output`, `ring` given is a device id, or null for the system
/// default; those not given keep their choice.
fn set_device(desk: &Desk, id: Value, args: &Map<String, Value>) -> Value {
    let mut chosen = desk.audio_settings_get();
    let mut given = false;
    for (key, slot) in [("input", &mut chosen.input), ("output", &mut chosen.output), ("ring", &mut chosen.ring)] {
        match args.get(key) {
            None => continue,
            Some(Value::Null) => *slot = None,
            Some(Value::String(device)) => *slot = Some(device.clone()),
            Some(_) => return error(id, "invalid_argument", &format!("\"{key}\" must be a device id or null")),
        }
        given = true;
    }
    if !given {
        return error(id, "invalid_argument", "give \"input\", \"output\" or \"ring\"");
    }
    match desk.audio_settings_set(chosen.clone()) {
        Ok(()) => ack(id, json!(chosen)),
        Err(e) => error(id, e.code, &e.message),
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

fn ack(id: Value, result: Value) -> Value {
    json!({ "event": "ack", "ts_ms": now_ms(), "id": id, "result": result })
}

fn error(id: Value, code: &str, message: &str) -> Value {
    tracing::warn!(code, "rejected command: {message}");
    json!({ "event": "error", "ts_ms": now_ms(), "id": id, "code": code, "message": message })
}

/// Keeps echoed input short so a huge line cannot flood the output.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}
