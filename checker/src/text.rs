//! Counts in English for terminal text: "1 anomaly", "2 anomalies", "0 faults".
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
