//! Nemesis actions in words: `kill n3 (the leader)`, `n1, n2 | n3, n4, n5`, rather than
//! the raw JSON of the event's value.
//!
//! The history keeps the value as the harness wrote it (the machine-readable record);
//! the report shows this text and keeps the JSON one click away. Unknown shapes fall
//! back to `key: value` pairs, so a new nemesis action is readable before anyone
//! teaches this module about it.

use serde_json::{Map, Value};

/// A readable description of a nemesis action's value (`raw` is its JSON text).
pub fn describe(f: &str, raw: &str) -> String {
    let Ok(value) = serde_json::from_str::<Value>(raw) else {
        return raw.to_string();
    };
    let text = match (f, &value) {
        ("partition", Value::Object(m)) => partition(m),
        ("heal", _) => "every link restored".to_string(),
        ("skip", Value::Object(m)) => skip(m),
        ("set", Value::Object(m)) => set(m),
        ("heal-all", Value::Object(m)) => heal_all(m),
        (_, Value::Object(m)) if m.contains_key("nodes") => nodes_action(m),
        (_, Value::Null) => String::new(),
        (_, v) => generic(v),
    };
    if text.is_empty() {
        raw.to_string()
    } else {
        text
    }
}

/// `["n1","n2"]` as `n1, n2`; anything else as compact text.
fn list(v: &Value) -> String {
    match v {
        Value::Array(items) => items.iter().map(scalar).collect::<Vec<_>>().join(", "),
        other => scalar(other),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "none".to_string(),
        Value::Array(_) => format!("[{}]", list(v)),
        Value::Object(m) => format!("{{{}}}", pairs(m)),
        other => other.to_string(),
    }
}

fn pairs(m: &Map<String, Value>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}: {}", scalar(v)))
        .collect::<Vec<_>>()
        .join("; ")
}

fn generic(v: &Value) -> String {
    match v {
        Value::Object(m) => pairs(m),
        other => scalar(other),
    }
}

/// `kill`, `pause`, `restart`, `resume`, ...: the nodes, and why they were chosen.
fn nodes_action(m: &Map<String, Value>) -> String {
    let nodes = m.get("nodes").map(list).unwrap_or_default();
    let why = match m.get("target").and_then(Value::as_str) {
        Some("leader") => " (the leader)",
        Some("set") => " (not live in this set)",
        Some("all") => " (every replica)",
        Some("minority") => " (a minority)",
        _ => "",
    };
    let mut out = format!("{nodes}{why}");
    let rest: Map<String, Value> = m
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "nodes" | "target"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !rest.is_empty() {
        out.push_str("; ");
        out.push_str(&pairs(&rest));
    }
    out
}

/// The shape's own fields, whether written flat (`{"shape": "halves", "minority": ...}`)
/// or nested as older runs did (`{"halves": {"minority": ...}, "cuts": ...}`).
fn shape_fields(m: &Map<String, Value>) -> (String, Map<String, Value>) {
    if let Some(shape) = m.get("shape").and_then(Value::as_str) {
        return (shape.to_string(), m.clone());
    }
    for (k, v) in m {
        if let Value::Object(inner) = v {
            return (k.clone(), inner.clone());
        }
    }
    ("partition".to_string(), m.clone())
}

fn partition(m: &Map<String, Value>) -> String {
    let (shape, fields) = shape_fields(m);
    let field = |k: &str| fields.get(k).or_else(|| m.get(k));
    let sides = match shape.as_str() {
        "isolate_leader" => match field("isolated").or_else(|| field("leader")) {
            Some(l) => format!("leader {} cut off from the rest", list(l)),
            None => "isolate the leader (which was not recorded)".to_string(),
        },
        "halves" => match field("minority") {
            Some(min) => format!("{} | the rest", list(min)),
            None => "halves".to_string(),
        },
        "bridge" => format!(
            "{} | {} | {} (only {} talks to both sides)",
            field("left").map(list).unwrap_or_default(),
            field("bridge").map(list).unwrap_or_default(),
            field("right").map(list).unwrap_or_default(),
            field("bridge").map(list).unwrap_or_default()
        ),
        "majorities_ring" => format!(
            "ring {} (each sees only its neighbours)",
            field("ring")
                .map(list)
                .unwrap_or_default()
                .replace(", ", " - ")
        ),
        "one_way" => {
            let node = field("node").map(list).unwrap_or_default();
            match field("mute").and_then(Value::as_bool) {
                Some(true) => format!("{node} cannot send to the others"),
                _ => format!("{node} cannot hear the others"),
            }
        }
        other => format!("{}: {}", other.replace('_', " "), pairs(&fields)),
    };
    match m.get("cuts").and_then(Value::as_array) {
        Some(cuts) if cuts.len() == 1 => format!("{sides} (1 one-way link cut)"),
        Some(cuts) => format!("{sides} ({} one-way links cut)", cuts.len()),
        None => sides,
    }
}

fn skip(m: &Map<String, Value>) -> String {
    let reason = m.get("reason").map(scalar).unwrap_or_default();
    let what = m
        .get("shape")
        .and_then(Value::as_str)
        .map(|s| format!("partition {}: ", s.replace('_', " ")))
        .unwrap_or_default();
    let line = m
        .get("line")
        .filter(|l| !l.is_null())
        .map(|l| format!(" (line {})", scalar(l)))
        .unwrap_or_default();
    format!("nothing done: {what}{reason}{line}")
}

fn set(m: &Map<String, Value>) -> String {
    format!(
        "set {} (line {}): live {}",
        m.get("set").map(scalar).unwrap_or_default(),
        m.get("line").map(scalar).unwrap_or_default(),
        m.get("live").map(list).unwrap_or_default()
    )
}

fn heal_all(m: &Map<String, Value>) -> String {
    match m.get("actions") {
        Some(Value::Array(a)) if a.is_empty() => "nothing left to undo".to_string(),
        Some(a) => format!("undid: {}", list(a)),
        None => pairs(m),
    }
}

/// The nodes an action names (`"nodes": [...]`), for pairing kills with restarts.
pub fn nodes(raw: &str) -> Option<Vec<String>> {
    let value: Value = serde_json::from_str(raw).ok()?;
    let nodes = value.get("nodes")?.as_array()?;
    Some(
        nodes
            .iter()
            .map(|n| n.as_str().map_or_else(|| n.to_string(), str::to_string))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_read_as_words() {
        assert_eq!(
            describe("kill", r#"{"nodes":["n3"],"target":"leader"}"#),
            "n3 (the leader)"
        );
        assert_eq!(
            describe(
                "partition",
                r#"{"shape":"isolate_leader","leader":"n2","isolated":["n2"],"cuts":[["n1","n2"],["n2","n1"]]}"#
            ),
            "leader n2 cut off from the rest (2 one-way links cut)"
        );
        assert_eq!(
            describe(
                "partition",
                r#"{"halves":{"minority":["n1","n4"]},"cuts":[["n1","n2"]]}"#
            ),
            "n1, n4 | the rest (1 one-way link cut)"
        );
        assert_eq!(
            describe(
                "skip",
                r#"{"shape":"isolate_leader","reason":"no leader known: nobody to isolate, nothing cut"}"#
            ),
            "nothing done: partition isolate leader: no leader known: nobody to isolate, nothing cut"
        );
        assert_eq!(
            describe("set", r#"{"set":2,"line":5,"live":["n1","n2"]}"#),
            "set 2 (line 5): live n1, n2"
        );
        assert_eq!(
            describe("clock-jump", r#"{"nodes":["n1"],"jump_ms":500}"#),
            "n1; jump_ms: 500"
        );
        assert_eq!(describe("odd", "not json"), "not json");
    }
}
