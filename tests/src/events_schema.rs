//! docs/EVENTS.md read as a schema: each `### name` section's key table lists the keys and types
//! of that event. Tests validate every JSON line they see against it.

use std::collections::BTreeMap;

use serde_json::Value;

/// Event name → (key → type text).
pub struct EventsSchema {
    events: BTreeMap<String, BTreeMap<String, String>>,
}

impl EventsSchema {
    /// Parses docs/EVENTS.md from the repository.
    pub fn load() -> EventsSchema {
        let path = crate::repo_root().join("docs/EVENTS.md");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Self::parse(&text)
    }

    /// Parses the Markdown text of EVENTS.md.
    pub fn parse(text: &str) -> EventsSchema {
        let mut events = BTreeMap::new();
        let mut current: Option<String> = None;
        let mut in_events = false;
        for line in text.lines() {
            if let Some(h) = line.strip_prefix("## ") {
                in_events = h.trim() == "Events";
                current = None;
            } else if let Some(name) = line.strip_prefix("### ").filter(|_| in_events) {
                current = Some(name.trim().to_string());
                events.insert(name.trim().to_string(), BTreeMap::new());
            } else if let (Some(name), Some(row)) = (&current, line.strip_prefix('|')) {
                let cells: Vec<&str> = row.trim_end_matches('|').split(" | ").map(str::trim).collect();
                if cells.len() == 2 && cells[0] != "key" && !cells[0].starts_with("---") {
                    let ty = cells[1].replace("\\|", "|");
                    events.get_mut(name).expect("section exists").insert(cells[0].to_string(), ty);
                }
            }
        }
        assert!(!events.is_empty(), "EVENTS.md lists no events");
        EventsSchema { events }
    }

    /// Names of all documented events.
    pub fn names(&self) -> Vec<&str> {
        self.events.keys().map(String::as_str).collect()
    }

    /// Checks one JSON object; returns what is wrong with it.
    pub fn validate(&self, v: &Value) -> Result<(), String> {
        let obj = v.as_object().ok_or("not a JSON object")?;
        let name = obj.get("event").and_then(Value::as_str).ok_or("no \"event\" string")?;
        let keys = self.events.get(name).ok_or_else(|| format!("event {name:?} is not in EVENTS.md"))?;
        if !obj.get("ts_ms").is_some_and(Value::is_u64) {
            return Err(format!("{name}: ts_ms missing or not an integer"));
        }
        for (k, val) in obj {
            if k == "event" || k == "ts_ms" {
                continue;
            }
            let ty = keys.get(k).ok_or_else(|| format!("{name}: key {k:?} is not documented"))?;
            check_type(ty, val).map_err(|e| format!("{name}.{k}: {e}"))?;
        }
        for k in keys.keys() {
            if !obj.contains_key(k) {
                return Err(format!("{name}: documented key {k:?} missing"));
            }
        }
        Ok(())
    }
}

fn check_type(ty: &str, v: &Value) -> Result<(), String> {
    let (ty, nullable) = match ty.strip_suffix('?') {
        Some(t) => (t, true),
        None => (ty, false),
    };
    if v.is_null() {
        return if nullable || ty == "any" { Ok(()) } else { Err("null where a value is required".into()) };
    }
    let ok = match ty {
        "any" => true,
        "int" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "bool" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        choices => v.as_str().is_some_and(|s| choices.split('|').any(|c| c == s)),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{v} is not {ty}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_schema_catches_drift() {
        let s = EventsSchema::load();
        assert!(s.names().contains(&"registration"));
        let good =
            json!({"event":"registration","ts_ms":1,"account_id":1,"state":"registered","expires":60,"reason":null});
        s.validate(&good).unwrap();
        let bad_state =
            json!({"event":"registration","ts_ms":1,"account_id":1,"state":"ok","expires":null,"reason":null});
        assert!(s.validate(&bad_state).is_err());
        let extra = json!({"event":"accounts_changed","ts_ms":1,"surprise":true});
        assert!(s.validate(&extra).is_err());
        let missing = json!({"event":"account_loaded","ts_ms":1,"account_id":1});
        assert!(s.validate(&missing).is_err());
        assert!(s.validate(&json!({"event":"nope","ts_ms":1})).is_err());
    }
}
