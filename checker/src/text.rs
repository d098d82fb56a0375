//! Counts in English for terminal text: "1 anomaly", "2 anomalies", "0 faults"; and
//! text made safe for HTML ([`esc`]), which every page of the report writes through.
//!
//! Every count the checker and the harness print goes through here so that no message reads
//! "1 faults"; nouns are regular (`-s`, or `-ies` after a consonant + `y`) unless given.

/// `noun` in the plural, when `n` is not 1.
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        return noun.to_string();
    }
    let consonant_y = noun.ends_with('y')
        && !noun
            .chars()
            .rev()
            .nth(1)
            .is_some_and(|c| "aeiou".contains(c));
    if consonant_y {
        format!("{}ies", &noun[..noun.len() - 1])
    } else if noun.ends_with('s') || noun.ends_with('x') || noun.ends_with("sh") {
        format!("{noun}es")
    } else {
        format!("{noun}s")
    }
}

/// "`n` `noun`", pluralised: `count(1, "anomaly")` is "1 anomaly".
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    format!("{n} {}", plural(n, noun))
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_as_english() {
        assert_eq!(count(1u64, "anomaly"), "1 anomaly");
        assert_eq!(count(2u64, "anomaly"), "2 anomalies");
        assert_eq!(count(0u64, "fault"), "0 faults");
        assert_eq!(count(1u32, "fault"), "1 fault");
        assert_eq!(count(3u64, "replica"), "3 replicas");
        assert_eq!(count(2u64, "day"), "2 days");
        assert_eq!(count(2u64, "pass"), "2 passes");
    }
}
