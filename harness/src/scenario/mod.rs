//! Scenario files: the CSV format of the original banking systems.
//!
//! ```text
//! Set Number,Transactions,Live Nodes
//! 1,"(A, B, 3)","[n1, n2, n3, n4, n5]"
//! ,"(C, D, 1)",
//! ,LF,
//! 2,"(B, D, 2)","[n1, n3, n4]"
//! ```
//!
//! The first row of a set carries its number and its live replicas; continuation rows leave
//! those empty. A transaction is `(from, to, amount)`; `LF` fails the current leader at that
//! point of the set. Files written by hand are irregular, so this parser is lenient where it
//! cannot be wrong (spaces anywhere, missing trailing fields, CRLF, a UTF-8 BOM, unquoted
//! transactions whose commas split them over several fields, `S1` for `n1`) and strict where
//! a guess could change the test (a bad amount, a continuation row before any set): those are
//! errors that name the line. Every bad line is reported, not only the first, so a file is
//! fixed in one go; [`Scenario::check`] then refuses accounts outside the bank and replicas
//! outside the cluster the same way.
//!
//! How: the `csv` crate in flexible mode splits records and handles quotes and line endings;
//! each record's fields are joined back with commas and scanned for a leading set number,
//! parenthesised transactions, `LF` markers and a bracketed node list, in order.

pub mod repl;
pub mod run;

use replica::types::{Account, Amount, NodeId};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    /// Bad lines, in file order (one per line of the message).
    #[error("{}", render_rows(path, rows))]
    Rows { path: String, rows: Vec<BadRow> },
}

/// One bad line of a scenario file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRow {
    /// 1-based; 0 for the file as a whole.
    pub line: u64,
    pub message: String,
}

fn render_rows(path: &str, rows: &[BadRow]) -> String {
    let lines: Vec<String> = rows
        .iter()
        .map(|r| format!("{path}:{}: {}", r.line, r.message))
        .collect();
    match rows.len() {
        1 => lines.join(""),
        n => format!("{n} bad lines in {path}:\n{}", lines.join("\n")),
    }
}

/// One step of a set, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetStep {
    Transfer(Transfer),
    /// `LF`: fail (kill) whoever leads now.
    LeaderFail {
        line: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub from: Account,
    pub to: Account,
    pub amount: Amount,
    /// Line of the file it came from, for messages.
    pub line: u64,
}

/// A set: the replicas that are up while its transactions run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    pub number: u64,
    pub line: u64,
    pub live: Vec<NodeId>,
    pub steps: Vec<SetStep>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    pub sets: Vec<Set>,
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| ScenarioError::Read {
            path: name.clone(),
            cause: source,
        })?;
        parse(&bytes, &name)
    }

    /// Every account named by a transfer, sorted.
    pub fn accounts(&self) -> Vec<Account> {
        let mut accounts: Vec<Account> = self
            .transfers()
            .flat_map(|t| [t.from.clone(), t.to.clone()])
            .collect();
        accounts.sort();
        accounts.dedup();
        accounts
    }

    /// The highest node named by any set.
    pub fn max_node(&self) -> Option<NodeId> {
        self.sets.iter().flat_map(|s| s.live.iter().copied()).max()
    }

    /// Reads a scenario and refuses what is wrong with it in one pass: lines that do not parse
    /// and, among the lines that do, what the cluster cannot run (see [`Scenario::check`]),
    /// all in file order, so a syntax error does not hide a range error.
    pub fn load_checked(
        path: &Path,
        accounts: &[String],
        nodes: u32,
    ) -> Result<Scenario, ScenarioError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| ScenarioError::Read {
            path: name.clone(),
            cause: source,
        })?;
        let (scenario, mut rows) = parse_all(&bytes);
        rows.extend(scenario.range_errors(accounts, nodes));
        rows.sort_by_key(|r| r.line);
        if rows.is_empty() {
            Ok(scenario)
        } else {
            Err(ScenarioError::Rows { path: name, rows })
        }
    }

    /// Refuses what the cluster cannot run as written: an account outside `accounts` (it would
    /// be created with money of its own and change the bank's total) and a replica beyond
    /// `nodes`. Every offending line is reported.
    pub fn check(&self, path: &str, accounts: &[String], nodes: u32) -> Result<(), ScenarioError> {
        let rows = self.range_errors(accounts, nodes);
        if rows.is_empty() {
            Ok(())
        } else {
            Err(ScenarioError::Rows {
                path: path.to_string(),
                rows,
            })
        }
    }

    /// The lines [`Scenario::check`] refuses, in file order.
    fn range_errors(&self, accounts: &[String], nodes: u32) -> Vec<BadRow> {
        let mut rows = Vec::new();
        for set in &self.sets {
            let beyond: Vec<String> = set
                .live
                .iter()
                .filter(|n| n.0 == 0 || n.0 > nodes)
                .map(NodeId::to_string)
                .collect();
            if !beyond.is_empty() {
                rows.push(BadRow {
                    line: set.line,
                    message: format!(
                        "set {} names {} but the cluster has n1..n{nodes} (raise --nodes or fix the set)",
                        set.number,
                        beyond.join(", ")
                    ),
                });
            }
            for step in &set.steps {
                let SetStep::Transfer(t) = step else {
                    continue;
                };
                let unknown: Vec<&str> = [&t.from, &t.to]
                    .into_iter()
                    .filter(|a| !accounts.iter().any(|k| k == a.as_str()))
                    .map(|a| a.as_str())
                    .collect();
                if !unknown.is_empty() {
                    rows.push(BadRow {
                        line: t.line,
                        message: format!(
                            "unknown account {} in ({}, {}, {}): the bank has {}",
                            unknown.join(" and "),
                            t.from,
                            t.to,
                            t.amount,
                            span(accounts)
                        ),
                    });
                }
            }
        }
        rows.sort_by_key(|r| r.line);
        rows
    }

    pub fn transfers(&self) -> impl Iterator<Item = &Transfer> {
        self.sets
            .iter()
            .flat_map(|s| s.steps.iter())
            .filter_map(|step| match step {
                SetStep::Transfer(t) => Some(t),
                SetStep::LeaderFail { .. } => None,
            })
    }
}

/// "A..J" for a run of names, or the list when short.
fn span(accounts: &[String]) -> String {
    match accounts {
        [] => "no accounts".to_string(),
        [one] => one.clone(),
        [first, .., last] if accounts.len() > 3 => format!("{first}..{last}"),
        all => all.join(", "),
    }
}

/// Parses a scenario from bytes; `name` is used in error messages. Every bad line is reported.
pub fn parse(bytes: &[u8], name: &str) -> Result<Scenario, ScenarioError> {
    let (scenario, bad) = parse_all(bytes);
    if !bad.is_empty() {
        return Err(ScenarioError::Rows {
            path: name.to_string(),
            rows: bad,
        });
    }
    Ok(scenario)
}

/// The sets of every line that parses, and the lines that do not.
fn parse_all(bytes: &[u8]) -> (Scenario, Vec<BadRow>) {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let mut sets: Vec<Set> = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut bad: Vec<BadRow> = Vec::new();
    // csv's own line count skips blank lines and ignores lone CRs, so count from byte offsets.
    let mut lines = LineCounter::new(bytes);
    loop {
        let more = match reader.read_record(&mut record) {
            Ok(more) => more,
            Err(e) => {
                // csv cannot resynchronise inside a broken record: stop at the first.
                let line = e.position().map_or(0, |p| lines.line_at(p.byte()));
                bad.push(BadRow {
                    line,
                    message: format!("not readable as CSV: {e}"),
                });
                break;
            }
        };
        if !more {
            break;
        }
        let line = record.position().map_or(0, |p| lines.line_at(p.byte()));
        // Quotes only group a field; a quote after a leading space is literal to CSV, so drop
        // them all (no valid token contains one).
        let text = record.iter().collect::<Vec<_>>().join(",").replace('"', "");
        if let Err(message) = add_row(&mut sets, &text, line) {
            bad.push(BadRow { line, message });
        }
    }
    if sets.is_empty() && bad.is_empty() {
        bad.push(BadRow {
            line: 0,
            message: "no sets".into(),
        });
    }
    (Scenario { sets }, bad)
}

/// Adds one record (at `line`) to the sets read so far.
fn add_row(sets: &mut Vec<Set>, text: &str, line: u64) -> Result<(), String> {
    let row = parse_row(text)?;
    if row.is_header {
        return Ok(());
    }
    match row.number {
        Some(number) => {
            let live = row
                .live
                .ok_or_else(|| format!("set {number} names no live nodes, e.g. [n1, n2, n3]"))?;
            sets.push(Set {
                number,
                line,
                live,
                steps: Vec::new(),
            });
        }
        None if row.live.is_some() => {
            return Err("live nodes on a continuation row: a set's first row carries its number and its live nodes".into());
        }
        None if row.steps.is_empty() => return Ok(()),
        None => {}
    }
    let Some(set) = sets.last_mut() else {
        return Err("a transaction before the first set: the first row needs a set number".into());
    };
    set.steps
        .extend(row.steps.into_iter().map(|s| s.at_line(line)));
    Ok(())
}

/// Maps byte offsets, asked in increasing order, to 1-based line numbers (CRLF, LF or CR).
struct LineCounter<'a> {
    bytes: &'a [u8],
    offset: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        LineCounter {
            bytes,
            offset: 0,
            line: 1,
        }
    }

    fn line_at(&mut self, byte: u64) -> u64 {
        let mut target = usize::try_from(byte)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        // csv may report a record as starting at the line breaks before it (blank lines, the LF
        // of a CRLF): the record starts at its first other byte.
        while matches!(self.bytes.get(target), Some(b'\r' | b'\n')) {
            target += 1;
        }
        while self.offset < target {
            // A CRLF counts once, at its CR.
            let previous = self.offset.checked_sub(1).map(|i| self.bytes[i]);
            match self.bytes[self.offset] {
                b'\r' => self.line += 1,
                b'\n' if previous != Some(b'\r') => self.line += 1,
                _ => {}
            }
            self.offset += 1;
        }
        self.line
    }
}

impl SetStep {
    fn at_line(self, line: u64) -> SetStep {
        match self {
            SetStep::Transfer(t) => SetStep::Transfer(Transfer { line, ..t }),
            SetStep::LeaderFail { .. } => SetStep::LeaderFail { line },
        }
    }
}

#[derive(Debug, Default)]
struct Row {
    is_header: bool,
    number: Option<u64>,
    steps: Vec<SetStep>,
    live: Option<Vec<NodeId>>,
}

/// Scans one record (its fields joined by commas).
fn parse_row(text: &str) -> Result<Row, String> {
    let mut row = Row::default();
    let lower = text.to_ascii_lowercase();
    if lower.contains("set") && lower.contains("transaction") {
        row.is_header = true;
        return Ok(row);
    }
    let mut rest = text.trim_start();
    // The set number: leading digits before the first comma (or the end).
    let first_end = rest.find(',').unwrap_or(rest.len());
    let first = rest[..first_end].trim();
    if !first.is_empty()
        && !first.starts_with('(')
        && !first.starts_with('[')
        && !first.eq_ignore_ascii_case("lf")
    {
        row.number = Some(
            first
                .parse()
                .map_err(|_| format!("bad set number {first:?}"))?,
        );
        rest = &rest[first_end..];
    }
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if rest.is_empty() {
            break;
        }
        if let Some(body) = rest.strip_prefix('(') {
            let end = body
                .find(')')
                .ok_or_else(|| format!("unclosed transaction {rest:?}"))?;
            row.steps
                .push(SetStep::Transfer(parse_transfer(&body[..end])?));
            rest = &body[end + 1..];
        } else if let Some(body) = rest.strip_prefix('[') {
            let end = body
                .find(']')
                .ok_or_else(|| format!("unclosed node list {rest:?}"))?;
            if row.live.is_some() {
                return Err("two node lists on one row".into());
            }
            row.live = Some(parse_nodes(&body[..end])?);
            rest = &body[end + 1..];
        } else if rest.len() >= 2
            && rest[..2].eq_ignore_ascii_case("lf")
            && !starts_word(&rest[2..])
        {
            row.steps.push(SetStep::LeaderFail { line: 0 });
            rest = &rest[2..];
        } else {
            let token: String = rest.chars().take(20).collect();
            return Err(format!("expected a transaction like (A, B, 3), LF or a node list like [n1, n2], found {token:?}"));
        }
    }
    Ok(row)
}

fn starts_word(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_transfer(body: &str) -> Result<Transfer, String> {
    let parts: Vec<&str> = body.split(',').map(str::trim).collect();
    let [from, to, amount] = parts[..] else {
        return Err(format!(
            "a transaction needs (from, to, amount), got ({body})"
        ));
    };
    for account in [from, to] {
        if account.is_empty()
            || account.len() > 64
            || !account
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!("bad account name {account:?} in ({body})"));
        }
    }
    if from == to {
        return Err(format!("a transaction between {from} and itself: ({body})"));
    }
    let amount: Amount = amount
        .parse()
        .map_err(|_| format!("bad amount {amount:?} in ({body})"))?;
    if amount <= 0 {
        return Err(format!("amount must be positive in ({body})"));
    }
    Ok(Transfer {
        from: from.into(),
        to: to.into(),
        amount,
        line: 0,
    })
}

fn parse_nodes(body: &str) -> Result<Vec<NodeId>, String> {
    let mut nodes = Vec::new();
    for part in body.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        // The original files call replicas S1..S5; ours are n1..n5.
        let normal = part.to_ascii_lowercase().replacen('s', "n", 1);
        let node: NodeId = normal
            .parse()
            .map_err(|_| format!("bad node {part:?}: expected n1, n2, ..."))?;
        if nodes.contains(&node) {
            return Err(format!("{node} listed twice"));
        }
        nodes.push(node);
    }
    nodes.sort();
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(from: &str, to: &str, amount: Amount, line: u64) -> SetStep {
        SetStep::Transfer(Transfer {
            from: from.into(),
            to: to.into(),
            amount,
            line,
        })
    }

    fn ns(ids: &[u32]) -> Vec<NodeId> {
        ids.iter().map(|&k| NodeId(k)).collect()
    }

    #[test]
    fn parses_the_regular_format() {
        let text = "Set Number,Transactions,Live Nodes\n\
                    1,\"(A, B, 3)\",\"[n1, n2, n3]\"\n\
                    ,\"(C, D, 1)\",\n\
                    ,LF,\n\
                    2,\"(B, D, 2)\",\"[n1, n3, n4]\"\n";
        let s = parse(text.as_bytes(), "x.csv").unwrap();
        assert_eq!(s.sets.len(), 2);
        assert_eq!(s.sets[0].number, 1);
        assert_eq!(s.sets[0].live, ns(&[1, 2, 3]));
        assert_eq!(
            s.sets[0].steps,
            vec![
                t("A", "B", 3, 2),
                t("C", "D", 1, 3),
                SetStep::LeaderFail { line: 4 }
            ]
        );
        assert_eq!(s.sets[1].live, ns(&[1, 3, 4]));
        assert_eq!(s.accounts(), vec!["A", "B", "C", "D"]);
        assert_eq!(s.max_node(), Some(NodeId(4)));
    }

    #[test]
    fn tolerates_irregular_rows() {
        // BOM, CRLF, spaces inside and around, missing trailing fields, unquoted commas,
        // S-names, an empty line, lower-case lf.
        let text = "\u{feff}Set Number,Transactions,Live Nodes\r\n\
                    1 , \"(A , J, 1)\" , \"[n1,n2]\"\r\n\
                    ,(B, C, 2)\r\n\
                    \r\n\
                    , lf\r\n\
                    2,(C,A,4),[S1, S3 ,s5]\r\n\
                    ,\"(D, E, 5)\"";
        let s = parse(text.as_bytes(), "x.csv").unwrap();
        assert_eq!(s.sets[0].live, ns(&[1, 2]));
        assert_eq!(
            s.sets[0].steps,
            vec![
                t("A", "J", 1, 2),
                t("B", "C", 2, 3),
                SetStep::LeaderFail { line: 5 }
            ]
        );
        assert_eq!(s.sets[1].live, ns(&[1, 3, 5]));
        assert_eq!(s.sets[1].steps, vec![t("C", "A", 4, 6), t("D", "E", 5, 7)]);
    }

    #[test]
    fn a_set_may_start_without_a_transaction() {
        let s = parse(b"1,,[n1,n2,n3]\n,(A,B,1),\n", "x").unwrap();
        assert_eq!(s.sets[0].steps, vec![t("A", "B", 1, 2)]);
    }

    fn error(text: &str) -> String {
        parse(text.as_bytes(), "bad.csv").unwrap_err().to_string()
    }

    #[test]
    fn bad_rows_name_their_line() {
        let e = error("Set Number,Transactions,Live Nodes\n1,(A,B,3),[n1]\n,(A,B,x),\n");
        assert!(
            e.starts_with("bad.csv:3:") && e.contains("bad amount"),
            "{e}"
        );
        let e = error(",(A,B,3),\n");
        assert!(
            e.contains(":1:") && e.contains("before the first set"),
            "{e}"
        );
        let e = error("1,(A,B,3)\n");
        assert!(e.contains(":1:") && e.contains("no live nodes"), "{e}");
        let e = error("1,(A,B,3),[n1, x7]\n");
        assert!(e.contains("bad node"), "{e}");
        let e = error("1,(A,B),[n1]\n");
        assert!(e.contains("(from, to, amount)"), "{e}");
        let e = error("1,(A,B,-2),[n1]\n");
        assert!(e.contains("positive"), "{e}");
        let e = error("1,(A,A,2),[n1]\n");
        assert!(e.contains("itself"), "{e}");
        let e = error("1,(A,B,2,[n1]\n");
        assert!(
            e.contains("(from, to, amount)") || e.contains("unclosed"),
            "{e}"
        );
        let e = error("1,hello,[n1]\n");
        assert!(e.contains("expected a transaction"), "{e}");
        let e = error("x,(A,B,1),[n1]\n");
        assert!(e.contains("bad set number"), "{e}");
        let e = error("Set Number,Transactions,Live Nodes\n");
        assert!(e.contains("no sets"), "{e}");
    }

    #[test]
    fn every_bad_line_is_reported() {
        let e = error("1,(A,B,3),[n1]\n,(A,B,x),\n,(C,D,1),\n,hello,\n,(A,B),\n");
        assert!(e.starts_with("3 bad lines in bad.csv:"), "{e}");
        for line in [
            "bad.csv:2: bad amount",
            "bad.csv:4: expected",
            "bad.csv:5: a transaction needs",
        ] {
            assert!(e.contains(line), "{line} missing from {e}");
        }
        assert!(!e.contains("bad.csv:3:"), "{e}");
    }

    #[test]
    fn accounts_outside_the_bank_and_nodes_outside_the_cluster_are_refused() {
        let s = parse(
            b"1,(A,Z,3),[n1,n2,n7]\n,(B,C,1),\n,(Y,Q,2),\n2,(A,B,1),[n1,n2,n3]\n",
            "x.csv",
        )
        .unwrap();
        let bank: Vec<String> = ["A", "B", "C", "D"].map(String::from).to_vec();
        let e = s.check("x.csv", &bank, 5).unwrap_err().to_string();
        assert!(e.starts_with("3 bad lines in x.csv:"), "{e}");
        assert!(
            e.contains("x.csv:1: set 1 names n7 but the cluster has n1..n5"),
            "{e}"
        );
        assert!(
            e.contains("x.csv:1: unknown account Z in (A, Z, 3): the bank has A..D"),
            "{e}"
        );
        assert!(e.contains("x.csv:3: unknown account Y and Q"), "{e}");
        assert!(s.check("x.csv", &bank, 7).is_err(), "Z is still unknown");
        let ok = parse(b"1,(A,B,3),[n1,n2,n3]\n", "y").unwrap();
        assert!(ok.check("y", &bank, 3).is_ok());
    }

    #[test]
    fn a_syntax_error_does_not_hide_range_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mixed.csv");
        std::fs::write(
            &path,
            "1,(A,Z,3),[n1,n2,n7]\n,(B,C,x),\n,(Y,A,1),\n2,hello,[n1]\n,(C,D,1),\n",
        )
        .unwrap();
        let bank: Vec<String> = ["A", "B", "C", "D"].map(String::from).to_vec();
        let e = Scenario::load_checked(&path, &bank, 5)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("5 bad lines in "), "{e}");
        let at = |needle: &str| e.find(needle).unwrap_or_else(|| panic!("{needle}: {e}"));
        let order = [
            at("mixed.csv:1: set 1 names n7"),
            at("mixed.csv:1: unknown account Z"),
            at("mixed.csv:2: bad amount"),
            at("mixed.csv:3: unknown account Y"),
            at("mixed.csv:4: expected a transaction"),
        ];
        assert!(order.windows(2).all(|w| w[0] < w[1]), "file order: {e}");
        std::fs::write(&path, "1,(A,B,3),[n1,n2,n3]\n").unwrap();
        assert!(Scenario::load_checked(&path, &bank, 3).is_ok());
    }

    #[test]
    fn shipped_scenarios_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "csv") {
                Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                seen += 1;
            }
        }
        assert!(seen >= 3, "at least three shipped scenarios, found {seen}");
    }
}
