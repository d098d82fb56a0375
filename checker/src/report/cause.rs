//! The run's outcome in one line, and how bad each anomaly is.
//!
//! A person who opens a report (or reads the terminal) in the morning first wants to know
//! why a run failed: `invalid: exactly-once (21× executed twice), replay (4× wrong
//! result); first: transfer A->F 5 by client 0 executed at 4623 and 4641`. The line
//! names every check that is not valid with what it found, then the most severe
//! anomaly's own sentence. The same ranking orders the report's anomalies.
//!
//! [`Results::summary`], the few lines `checker check` prints, ends with the same line.
//!
//! Checks are taken from results.json as they are, so a check this module has never
//! heard of is named like the others.

use crate::checks::{Anomaly, AnomalyKind, CheckResult, Severity, Validity};
use crate::results::{internal_note, Results};
use crate::text::{count, plural};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Longest `first:` sentence kept in the line.
const MAX_FIRST_CHARS: usize = 240;

/// How bad an anomaly is (its [`Severity`], from its kind and, where that matters, its
/// operation's function), with its label for sorting within a tier.
pub fn severity(a: &Anomaly) -> (Severity, String) {
    (a.severity(), kind_label(a))
}

/// `transfer told failed but applied`, `read_all executed twice`, ...
pub fn kind_label(a: &Anomaly) -> String {
    let words = a.kind.words();
    match a.f {
        Some(f) => format!("{} {words}", f.as_str()),
        None => words,
    }
}

/// The terminal's words for a run: its outcome in one line and a few lines per check.
impl Results {
    /// The outcome in one line: `invalid: exactly-once (21× executed twice); first: ...`
    /// (see [`crate::report::cause`]).
    pub fn cause_line(&self) -> String {
        cause_line(self)
    }

    /// A few lines for a terminal.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let h = &self.history;
        let _ = writeln!(s, "faultline checker: {}", self.run_dir);
        let _ = writeln!(
            s,
            "  history: {}, {} by {}{}, {} nemesis {}",
            count(h.events, "event"),
            count(h.operations, "operation"),
            count(h.clients, "client"),
            internal_note(h.internal_processes),
            h.nemesis,
            plural(h.nemesis, "event")
        );
        let f = &self.final_state;
        if f.present {
            let _ = writeln!(
                s,
                "  final:   {}, log up to exec_index {}",
                count(f.nodes.len() as u64, "replica"),
                f.log_last
            );
        } else {
            let _ = writeln!(s, "  final:   no final.json");
        }
        for w in &self.warnings {
            let _ = writeln!(s, "  warning: {w}");
        }
        for (name, c) in self.ordered_checks() {
            let found = match &c.not_applicable {
                Some(why) => format!("not applicable: {why}"),
                None => count(c.anomaly_count, "anomaly"),
            };
            let _ = writeln!(s, "  {name:<13} {:<8} {found}", c.state_word());
            if let Some(a) = c.anomalies.first() {
                let _ = writeln!(s, "      first: {}", a.message);
            }
            for u in c.unknown.iter().take(3) {
                let _ = writeln!(s, "      undecided: {u}");
            }
        }
        let _ = writeln!(
            s,
            "verdict: {} (checked in {} ms)",
            self.valid.as_str(),
            self.elapsed_ms
        );
        let _ = writeln!(s, "{}", self.cause_line());
        s
    }
}

/// The checks that are not valid, in results.json's display order.
fn failing(results: &Results, state: Validity) -> Vec<(&str, &CheckResult)> {
    results
        .ordered_checks()
        .filter(|(_, c)| c.valid == state)
        .collect()
}

/// What one invalid check found: `21× executed twice`, or by kind when it found several.
fn found(c: &CheckResult) -> String {
    // By tag, so that kinds found equally often are named in the same order every time.
    let mut kinds: BTreeMap<&str, (u64, &AnomalyKind)> = BTreeMap::new();
    for a in &c.anomalies {
        kinds.entry(a.kind.tag()).or_insert((0, &a.kind)).0 += 1;
    }
    match kinds.len() {
        0 => crate::text::count(c.anomaly_count, "anomaly"),
        1 => {
            let words = kinds.values().next().map(|(_, k)| k.words());
            format!("{}× {}", c.anomaly_count, words.unwrap_or_default())
        }
        _ => {
            let mut by_count: Vec<(u64, &AnomalyKind)> = kinds.into_values().collect();
            by_count.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
            let mut parts: Vec<String> = by_count
                .iter()
                .map(|(n, k)| format!("{n}× {}", k.words()))
                .collect();
            if c.anomaly_count > c.anomalies.len() as u64 {
                parts.push(format!("{} in all", c.anomaly_count));
            }
            parts.join(", ")
        }
    }
}

/// The most severe stored anomaly, the earliest in the history among equals.
pub fn first_anomaly(results: &Results) -> Option<(&str, &Anomaly)> {
    results
        .ordered_checks()
        .flat_map(|(name, c)| c.anomalies.iter().map(move |a| (name, a)))
        .min_by_key(|(_, a)| {
            let at = a.indices.iter().min().copied().unwrap_or(u64::MAX);
            (severity(a).0, at)
        })
}

/// `text` cut at `max` characters, with `...` when cut.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

/// The run's outcome in one line (see the module docs). A valid run says how many checks
/// passed and which did not apply; an unknown one names what could not be decided.
pub fn cause_line(results: &Results) -> String {
    match results.valid {
        Validity::Invalid => {
            let checks: Vec<String> = failing(results, Validity::Invalid)
                .iter()
                .map(|(name, c)| format!("{name} ({})", found(c)))
                .collect();
            let mut line = format!("invalid: {}", checks.join(", "));
            if let Some((_, a)) = first_anomaly(results) {
                line.push_str("; first: ");
                line.push_str(&shorten(&a.message, MAX_FIRST_CHARS));
            }
            line
        }
        Validity::Unknown => {
            let checks: Vec<String> = failing(results, Validity::Unknown)
                .iter()
                .map(|(name, c)| match c.unknown.first() {
                    Some(why) => format!("{name} ({})", shorten(why, 120)),
                    None => name.to_string(),
                })
                .collect();
            let mut line = format!("unknown: {}", checks.join(", "));
            if checks.is_empty() {
                line = "unknown".to_string();
            }
            line
        }
        Validity::Valid => {
            let all: Vec<(&str, &CheckResult)> = results.ordered_checks().collect();
            let na: Vec<&str> = all
                .iter()
                .filter(|(_, c)| c.not_applicable.is_some())
                .map(|(n, _)| *n)
                .collect();
            let passed = (all.len() - na.len()) as u64;
            let mut line = format!("valid: {} passed", crate::text::count(passed, "check"));
            if !na.is_empty() {
                line.push_str(&format!("; not applicable: {}", na.join(", ")));
            }
            line
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Check;

    fn results(checks: Vec<(&str, CheckResult)>) -> Results {
        let valid = Validity::combine(checks.iter().map(|(_, c)| c.valid));
        Results {
            valid,
            run_dir: "r".into(),
            history: Default::default(),
            final_state: Default::default(),
            warnings: Vec::new(),
            checks: checks
                .into_iter()
                .map(|(n, c)| (n.to_string(), c))
                .collect(),
            elapsed_ms: 0,
        }
    }

    fn with(anomalies: &[(AnomalyKind, &str, u64)]) -> CheckResult {
        let mut c = Check::default();
        for (kind, message, at) in anomalies {
            c.anomaly(|| Anomaly::new(kind.clone(), message.to_string(), vec![*at]));
        }
        c.finish()
    }

    #[test]
    fn an_invalid_run_names_each_failing_check_and_the_worst_anomaly_first() {
        let r = results(vec![
            ("well-formed", Check::default().finish()),
            (
                "exactly-once",
                with(&[
                    (
                        AnomalyKind::ExecutedTwice,
                        "transfer A->F 5 by client 0 executed at 4623 and 4641",
                        90,
                    ),
                    (
                        AnomalyKind::ExecutedTwice,
                        "transfer B->C 1 by client 1 executed at 7 and 9",
                        95,
                    ),
                ]),
            ),
            (
                "replay",
                with(&[(AnomalyKind::Stall, "read by client 2 stalled", 10)]),
            ),
        ]);
        assert_eq!(
            cause_line(&r),
            "invalid: replay (1× stall), exactly-once (2× executed twice); \
             first: transfer A->F 5 by client 0 executed at 4623 and 4641"
        );
    }

    #[test]
    fn a_valid_run_counts_its_checks_and_names_those_that_did_not_apply() {
        let mut na = Check::default();
        na.not_applicable("no stable event");
        let r = results(vec![
            ("well-formed", Check::default().finish()),
            ("liveness", na.finish()),
        ]);
        assert_eq!(
            cause_line(&r),
            "valid: 1 check passed; not applicable: liveness"
        );
        let mut u = Check::default();
        u.unknown("search budget spent");
        let r = results(vec![("linearizable", u.finish())]);
        assert_eq!(
            cause_line(&r),
            "unknown: linearizable (search budget spent)"
        );
    }
}
