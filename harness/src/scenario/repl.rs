//! The interactive scenario prompt: what a person types between sets, and the tables the
//! replicas' introspection answers (PrintDB, PrintLog, PrintStatus, PrintView) are shown as.
//!
//! Line editing and history come from `rustyline`, on a thread of its own because reading a
//! line blocks; the scenario's async code asks that thread for one line at a time. When stdin is
//! not a terminal, rustyline reads plain lines, so a test (or a script) can pipe commands in.
//! Ctrl-D ends the input, which means `quit`; Ctrl-C at the prompt is an interrupt, like
//! Ctrl-C anywhere else in the harness.
//!
//! The parsing ([`parse_command`]) and the rendering (`render_*`) are plain functions of their
//! inputs, so they are tested without a cluster.

use crate::targets::Inspect;
use replica::bank::Op;
use replica::client_proto::{ClientResponse, LogEntryView, NodeStatus, Role, SlotState};
use replica::types::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use tokio::sync::oneshot;

/// What reading one line gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    Line(String),
    /// Ctrl-D or the end of piped input.
    End,
    /// Ctrl-C at the prompt.
    Interrupt,
}

/// The line reader: a thread owning a rustyline editor, one prompt at a time.
pub struct LineReader {
    requests: std::sync::mpsc::Sender<(String, oneshot::Sender<Input>)>,
}

impl LineReader {
    /// Starts the reader thread; `None` (and the reason) if no editor can be made.
    pub fn start() -> Result<LineReader, String> {
        let mut editor = rustyline::DefaultEditor::new()
            .map_err(|e| format!("cannot start the line editor: {e}"))?;
        let (tx, rx) = std::sync::mpsc::channel::<(String, oneshot::Sender<Input>)>();
        std::thread::Builder::new()
            .name("faultline-prompt".into())
            .spawn(move || {
                for (prompt, reply) in rx {
                    let _ = reply.send(read_line(&mut editor, &prompt));
                }
            })
            .map_err(|e| format!("cannot start the prompt thread: {e}"))?;
        Ok(LineReader { requests: tx })
    }

    /// Shows `prompt` and waits for a line.
    pub async fn read(&self, prompt: &str) -> Input {
        let (tx, rx) = oneshot::channel();
        if self.requests.send((prompt.to_string(), tx)).is_err() {
            return Input::End;
        }
        rx.await.unwrap_or(Input::End)
    }
}

fn read_line(editor: &mut rustyline::DefaultEditor, prompt: &str) -> Input {
    use rustyline::error::ReadlineError;
    use std::io::{IsTerminal, Write};
    // Reading a pipe, rustyline shows no prompt; show it, and echo the line, so the transcript
    // of a scripted session reads like a typed one.
    let piped = !std::io::stdin().is_terminal();
    if piped {
        print!("{prompt}");
        let _ = std::io::stdout().flush();
    }
    let read = editor.readline(prompt);
    if piped {
        match &read {
            Ok(line) => println!("{line}"),
            Err(_) => println!(),
        }
    }
    match read {
        Ok(line) => {
            if !line.trim().is_empty() {
                let _ = editor.add_history_entry(line.as_str());
            }
            Input::Line(line)
        }
        Err(ReadlineError::Interrupted) => Input::Interrupt,
        Err(ReadlineError::Eof) => Input::End,
        Err(e) => {
            eprintln!("cannot read the prompt: {e}");
            Input::End
        }
    }
}

/// Which replicas a `kill` aims at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KillTarget {
    Leader,
    Node(NodeId),
}

/// One command typed at the prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplCommand {
    /// Run the next set (or finish, after the last). Also an empty line.
    Next,
    /// Run every remaining set without prompting.
    Continue,
    /// Stop: the remaining sets are skipped, the run is finished and checked.
    Quit,
    Help,
    /// `status`, `printdb`, `printlog`, `printstatus`, `printview`: a question the target
    /// answers about its nodes.
    Ask(Inspect),
    Kill(KillTarget),
    Restart(NodeId),
    /// Cut the link between two replicas, both ways.
    Cut(NodeId, NodeId),
    /// Heal every cut link.
    Heal,
}

pub const HELP: &str = "\
commands (Enter alone = next):
  next, n                 run the next set (after the last set: finish the run)
  continue, c             run every remaining set without stopping
  quit, q, Ctrl-D         skip the remaining sets, finish and check the run
  status                  role, leader, ballot and progress of every replica
  printdb [nX]            balances (PrintDB), as a table of replicas by accounts
  printlog [nX]           the Paxos log (PrintLog), one command per row
  printstatus [slot] [nX] slot states A/C/E/X (PrintStatus); no slot: every slot
  printview [nX]          the views (NEW_VIEWs) each replica has seen (PrintView)
  kill nX | kill leader   SIGKILL a replica; it stays down, even through sets that
                          list it live, until restart nX
  restart nX              restart a killed (or resume a paused) replica
  cut nX nY               cut the link between nX and nY, both ways (needs --net relay)
  heal                    heal every cut link
  help, ?                 this text
Ctrl-C interrupts the run (it is checked and saved, verdict unknown).";

/// Parses one prompt line. Case-insensitive; `print-db`, `PrintDB` and `printdb` are the same.
pub fn parse_command(line: &str) -> Result<ReplCommand, String> {
    let words: Vec<String> = line
        .split_whitespace()
        .map(|w| w.to_ascii_lowercase().replace(['-', '_'], ""))
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let node = |s: &str| -> Result<NodeId, String> {
        s.parse::<NodeId>()
            .map_err(|_| format!("{s:?} is not a replica: name one like n1"))
    };
    let optional_node = |rest: &[&str]| -> Result<Option<NodeId>, String> {
        match rest {
            [] => Ok(None),
            [n] => node(n).map(Some),
            _ => Err("too many arguments".into()),
        }
    };
    Ok(match words.as_slice() {
        [] | ["next" | "n"] => ReplCommand::Next,
        ["continue" | "c" | "run"] => ReplCommand::Continue,
        ["quit" | "q" | "exit"] => ReplCommand::Quit,
        ["help" | "?" | "h"] => ReplCommand::Help,
        ["status"] => ReplCommand::Ask(Inspect::Overview),
        ["printdb", rest @ ..] => ReplCommand::Ask(Inspect::Db(optional_node(rest)?)),
        ["printlog", rest @ ..] => ReplCommand::Ask(Inspect::Log(optional_node(rest)?)),
        ["printview", rest @ ..] => ReplCommand::Ask(Inspect::View(optional_node(rest)?)),
        ["printstatus", rest @ ..] => {
            let (at, rest) = match rest.first().map(|w| w.parse::<u64>()) {
                Some(Ok(slot)) => (Some(slot), &rest[1..]),
                _ => (None, rest),
            };
            ReplCommand::Ask(Inspect::Position {
                at,
                node: optional_node(rest)?,
            })
        }
        ["kill"] => return Err("kill: missing argument: kill nX or kill leader".into()),
        ["restart" | "start"] => return Err("restart: missing argument: restart nX".into()),
        ["cut"] | ["cut", _] => {
            return Err("cut: missing argument: cut nX nY names two replicas".into())
        }
        ["kill", "leader"] => ReplCommand::Kill(KillTarget::Leader),
        ["kill", n] => ReplCommand::Kill(KillTarget::Node(node(n)?)),
        ["restart" | "start", n] => ReplCommand::Restart(node(n)?),
        ["cut", a, b] => {
            let (a, b) = (node(a)?, node(b)?);
            if a == b {
                return Err(format!("cut {a} {a}: name two different replicas"));
            }
            ReplCommand::Cut(a, b)
        }
        ["heal"] => ReplCommand::Heal,
        ["kill" | "restart" | "start" | "cut" | "heal" | "next" | "n" | "quit" | "q", ..] => {
            return Err(format!("{}: too many arguments; type help", words[0]))
        }
        [first, ..] => return Err(format!("unknown command {first:?}; type help")),
    })
}

/// Columns two spaces apart: a column of numbers is right-aligned, any other left-aligned.
pub fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    let mut numeric = vec![true; columns];
    for row in rows {
        for (k, cell) in row.iter().enumerate().take(columns) {
            widths[k] = widths[k].max(cell.chars().count());
            numeric[k] &= cell.is_empty() || is_numeric(cell);
        }
    }
    let line = |cells: &[String]| -> String {
        let mut s = String::new();
        for (k, width) in widths.iter().enumerate() {
            let cell = cells.get(k).map_or("", String::as_str);
            let pad = " ".repeat(width.saturating_sub(cell.chars().count()));
            if k > 0 {
                s.push_str("  ");
            }
            if numeric[k] {
                s.push_str(&pad);
                s.push_str(cell);
            } else {
                s.push_str(cell);
                s.push_str(&pad);
            }
        }
        // A row with fewer cells (a replica that did not answer) keeps its message whole.
        for extra in cells.iter().skip(columns) {
            s.push_str("  ");
            s.push_str(extra);
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header);
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

fn is_numeric(cell: &str) -> bool {
    !cell.is_empty() && cell.chars().all(|c| c.is_ascii_digit() || c == '-')
}

fn strings<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// An answer a replica gave, or why there is none.
pub type Answer = Result<ClientResponse, String>;

/// PrintDB of several replicas: one row per replica, one column per account, and the total.
pub fn render_db(answers: &[(NodeId, Answer)]) -> String {
    let rows: Vec<BalancesRow> = answers
        .iter()
        .map(|(node, answer)| match answer {
            Ok(ClientResponse::Db {
                exec_index,
                balances,
                ..
            }) => {
                let balances = balances.iter().map(|(a, b)| (a.to_string(), *b));
                (
                    *node,
                    Ok((Some(exec_index.to_string()), balances.collect())),
                )
            }
            other => (*node, Err(unexpected(other))),
        })
        .collect();
    balances_table("replica", Some("exec"), &rows)
}

/// One node's balances, with the position they were read at when there is a column for it
/// (an exec index, a revision), or why there are none.
pub type BalancesRow = (
    NodeId,
    Result<(Option<String>, BTreeMap<String, i64>), String>,
);

/// Balances as a table: one row per node (first column headed `noun`), one column per account,
/// and the total; `position` heads the column of positions, if any. Nodes without balances
/// follow the table as `nX: why`.
pub fn balances_table(noun: &str, position: Option<&str>, rows_in: &[BalancesRow]) -> String {
    let accounts: BTreeSet<&String> = rows_in
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().map(|(_, b)| b.keys()))
        .flatten()
        .collect();
    let mut header = vec![noun.to_string()];
    header.extend(position.map(str::to_string));
    header.extend(accounts.iter().map(|a| a.to_string()));
    header.push("total".into());
    let mut rows = Vec::new();
    let mut notes = String::new();
    for (node, result) in rows_in {
        match result {
            Ok((at, balances)) => {
                let mut row = vec![node.to_string()];
                if position.is_some() {
                    row.push(at.clone().unwrap_or_else(|| "-".into()));
                }
                row.extend(
                    accounts
                        .iter()
                        .map(|a| balances.get(*a).map_or("-".into(), |b| b.to_string())),
                );
                row.push(balances.values().sum::<i64>().to_string());
                rows.push(row);
            }
            Err(why) => {
                let _ = writeln!(notes, "{node}: {why}");
            }
        }
    }
    let mut out = if rows.is_empty() {
        String::new()
    } else {
        table(&header, &rows)
    };
    out.push_str(&notes);
    out
}

/// Final balances of every node (from `final.json`), headed by the target's `noun` for a
/// node: the same table as PrintDB, without positions.
pub fn render_balances(
    balances: &BTreeMap<String, Option<BTreeMap<String, i64>>>,
    noun: &str,
) -> String {
    let rows: Vec<BalancesRow> = balances
        .iter()
        .filter_map(|(name, b)| {
            let node = name.parse::<NodeId>().ok()?;
            Some(match b {
                Some(balances) => (node, Ok((None, balances.clone()))),
                None => (
                    node,
                    Err("no answer (no final balances (it did not answer))".into()),
                ),
            })
        })
        .collect();
    balances_table(noun, None, &rows)
}

/// A command as a person reads it: `transfer B→C 3`, `read A`, `read_all`.
pub fn describe_op(op: &Op) -> String {
    match op {
        Op::Transfer { from, to, amount } => format!("transfer {from}→{to} {amount}"),
        Op::Read { account } => format!("read {account}"),
        Op::ReadAll => "read_all".to_string(),
    }
}

fn state_word(state: SlotState) -> &'static str {
    match state {
        SlotState::Accepted => "A accepted",
        SlotState::Committed => "C committed",
        SlotState::Executed => "E executed",
        SlotState::Unknown => "X unknown",
    }
}

/// PrintLog of one replica: a header, then one row per command (a batch spans several rows of
/// the same slot; a no-op is one row).
pub fn render_log(node: NodeId, answer: &Answer) -> String {
    let Ok(ClientResponse::Log {
        checkpoint_slot,
        entries,
        ..
    }) = answer
    else {
        return format!("{node}: {}\n", unexpected(answer));
    };
    let mut out = format!(
        "{node}: {} after the checkpoint at slot {checkpoint_slot}\n",
        checker::text::count(entries.len() as u64, "slot")
    );
    if entries.is_empty() {
        return out;
    }
    let header = strings(["  slot", "state", "ballot", "client", "request", "command"]);
    let rows: Vec<Vec<String>> = entries.iter().flat_map(log_rows).collect();
    out.push_str(&table(&header, &rows));
    out
}

fn log_rows(entry: &LogEntryView) -> Vec<Vec<String>> {
    let first = [
        format!("  {}", entry.slot),
        state_word(entry.state).to_string(),
        entry.ballot.to_string(),
    ];
    if entry.noop || entry.commands.is_empty() {
        let mut row = first.to_vec();
        row.extend(strings(["", "", "no-op"]));
        return vec![row];
    }
    entry
        .commands
        .iter()
        .enumerate()
        .map(|(k, c)| {
            // Later commands of the same slot leave slot, state and ballot blank.
            let mut row = if k == 0 {
                first.to_vec()
            } else {
                strings(["", "", ""])
            };
            row.push(c.client.0.to_string());
            row.push(c.request.0.to_string());
            row.push(describe_op(&c.op));
            row
        })
        .collect()
}

/// PrintStatus of one slot on several replicas: one row per replica.
pub fn render_slot(slot: u64, answers: &[(NodeId, Answer)]) -> String {
    let header = strings(["replica", "slot", "state"]);
    let rows: Vec<Vec<String>> = answers
        .iter()
        .map(|(node, answer)| match answer {
            Ok(ClientResponse::SlotStatus { state, .. }) => {
                vec![
                    node.to_string(),
                    slot.to_string(),
                    state_word(*state).into(),
                ]
            }
            other => vec![node.to_string(), slot.to_string(), unexpected(other)],
        })
        .collect();
    table(&header, &rows)
}

/// Slot states of every slot the replicas' logs hold (from their PrintLog answers): one row per
/// slot, one column per replica, letters A/C/E/X; `.` where a replica holds nothing.
pub fn render_slots(answers: &[(NodeId, Answer)], most: usize) -> String {
    let mut by_slot: BTreeMap<u64, BTreeMap<NodeId, char>> = BTreeMap::new();
    let mut notes = String::new();
    for (node, answer) in answers {
        match answer {
            Ok(ClientResponse::Log { entries, .. }) => {
                for e in entries {
                    by_slot
                        .entry(e.slot.0)
                        .or_default()
                        .insert(*node, e.state.letter());
                }
            }
            other => {
                let _ = writeln!(notes, "{node}: {}", unexpected(other));
            }
        }
    }
    if by_slot.is_empty() {
        return format!("no slot above the replicas' checkpoints\n{notes}");
    }
    let skipped = by_slot.len().saturating_sub(most);
    let mut header = vec!["slot".to_string()];
    header.extend(answers.iter().map(|(n, _)| n.to_string()));
    let rows: Vec<Vec<String>> = by_slot
        .iter()
        .skip(skipped)
        .map(|(slot, states)| {
            let mut row = vec![slot.to_string()];
            row.extend(
                answers
                    .iter()
                    .map(|(n, _)| states.get(n).map_or(".".into(), char::to_string)),
            );
            row
        })
        .collect();
    let mut out = String::new();
    if skipped > 0 {
        let _ = writeln!(
            out,
            "(the last {most} slots; printstatus SLOT for an earlier one)"
        );
    }
    out.push_str(&table(&header, &rows));
    out.push_str("A accepted, C committed, E executed, X unknown, . not in the log\n");
    out.push_str(&notes);
    out
}

/// PrintView of several replicas: one row per view each has seen.
pub fn render_views(answers: &[(NodeId, Answer)]) -> String {
    let header = strings(["replica", "ballot", "leader", "from slot"]);
    let mut rows = Vec::new();
    for (node, answer) in answers {
        match answer {
            Ok(ClientResponse::Views { views, .. }) if views.is_empty() => {
                rows.push(vec![node.to_string(), "-".into(), "-".into(), "-".into()]);
            }
            Ok(ClientResponse::Views { views, .. }) => {
                for v in views {
                    rows.push(vec![
                        node.to_string(),
                        v.ballot.to_string(),
                        v.leader.to_string(),
                        v.next_slot.to_string(),
                    ]);
                }
            }
            other => rows.push(vec![node.to_string(), unexpected(other)]),
        }
    }
    table(&header, &rows)
}

/// The replicas' status answers, with the harness's own view of each process.
pub fn render_status(rows_in: &[(NodeId, &'static str, Option<NodeStatus>)]) -> String {
    let header = strings([
        "replica",
        "process",
        "role",
        "ballot",
        "leader",
        "committed",
        "executed",
    ]);
    let rows: Vec<Vec<String>> = rows_in
        .iter()
        .map(|(node, process, status)| match status {
            Some(s) => vec![
                node.to_string(),
                process.to_string(),
                role_word(s.role).into(),
                s.ballot.to_string(),
                s.leader.map_or("-".into(), |l| l.to_string()),
                s.commit_slot.to_string(),
                s.executed_slot.to_string(),
            ],
            None => vec![node.to_string(), process.to_string(), "no answer".into()],
        })
        .collect();
    table(&header, &rows)
}

fn role_word(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Candidate => "candidate",
        Role::Backup => "backup",
    }
}

fn unexpected(answer: &Answer) -> String {
    match answer {
        Err(e) => format!("no answer ({e})"),
        Ok(ClientResponse::Error { message, .. }) => format!("error: {message}"),
        Ok(other) => format!("unexpected answer {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use replica::bank::Command;
    use replica::types::{Ballot, ClientId, RequestId, Slot};

    #[test]
    fn commands_parse() {
        use ReplCommand::*;
        let n = NodeId;
        assert_eq!(parse_command(""), Ok(Next));
        assert_eq!(parse_command("  next "), Ok(Next));
        assert_eq!(parse_command("QUIT"), Ok(Quit));
        assert_eq!(
            parse_command("PrintDB n2"),
            Ok(Ask(Inspect::Db(Some(n(2)))))
        );
        assert_eq!(parse_command("print-log"), Ok(Ask(Inspect::Log(None))));
        assert_eq!(
            parse_command("printstatus"),
            Ok(Ask(Inspect::Position {
                at: None,
                node: None
            }))
        );
        assert_eq!(
            parse_command("printstatus 3 n1"),
            Ok(Ask(Inspect::Position {
                at: Some(3),
                node: Some(n(1))
            }))
        );
        assert_eq!(
            parse_command("printstatus n4"),
            Ok(Ask(Inspect::Position {
                at: None,
                node: Some(n(4))
            }))
        );
        assert_eq!(parse_command("kill n3"), Ok(Kill(KillTarget::Node(n(3)))));
        assert_eq!(parse_command("kill leader"), Ok(Kill(KillTarget::Leader)));
        assert_eq!(parse_command("restart n3"), Ok(Restart(n(3))));
        assert_eq!(parse_command("cut n1 n2"), Ok(Cut(n(1), n(2))));
        assert_eq!(parse_command("heal"), Ok(Heal));
        assert!(parse_command("cut n1 n1")
            .unwrap_err()
            .contains("two different"));
        assert!(parse_command("kill bob")
            .unwrap_err()
            .contains("not a replica"));
        assert!(parse_command("dance")
            .unwrap_err()
            .contains("unknown command"));
        for short in ["cut n1", "cut", "kill", "restart"] {
            let e = parse_command(short).unwrap_err();
            assert!(e.contains("missing argument"), "{short}: {e}");
        }
        let e = parse_command("kill n1 n2").unwrap_err();
        assert!(e.contains("too many arguments"), "{e}");
    }

    fn log_answer() -> Answer {
        let command = |request, op| Command {
            client: ClientId(1),
            request: RequestId(request),
            op,
        };
        Ok(ClientResponse::Log {
            node: NodeId(1),
            checkpoint_slot: Slot(0),
            entries: vec![
                LogEntryView {
                    slot: Slot(1),
                    ballot: Ballot {
                        round: 2,
                        node: NodeId(1),
                    },
                    commands: vec![
                        command(
                            1,
                            Op::Transfer {
                                from: "B".into(),
                                to: "C".into(),
                                amount: 3,
                            },
                        ),
                        command(2, Op::ReadAll),
                    ],
                    noop: false,
                    state: SlotState::Executed,
                },
                LogEntryView {
                    slot: Slot(2),
                    ballot: Ballot {
                        round: 2,
                        node: NodeId(1),
                    },
                    commands: vec![],
                    noop: true,
                    state: SlotState::Accepted,
                },
            ],
        })
    }

    #[test]
    fn the_log_is_a_table_with_one_command_per_row() {
        let text = render_log(NodeId(1), &log_answer());
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("n1: 2 slots"), "{text}");
        assert!(
            lines[1].contains("slot") && lines[1].contains("command"),
            "{text}"
        );
        assert!(
            lines[2].contains("E executed") && lines[2].ends_with("transfer B→C 3"),
            "{text}"
        );
        assert!(
            lines[3].ends_with("read_all") && !lines[3].contains('E'),
            "{text}"
        );
        assert!(
            lines[4].contains("A accepted") && lines[4].ends_with("no-op"),
            "{text}"
        );
        assert!(!text.contains("Transfer {"), "no Rust debug text: {text}");
    }

    #[test]
    fn slot_states_are_a_matrix_of_slots_by_replicas() {
        let answers = vec![
            (NodeId(1), log_answer()),
            (NodeId(2), Err("timed out".to_string())),
        ];
        let text = render_slots(&answers, 10);
        let words = |k: usize| {
            text.lines()
                .nth(k)
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        assert_eq!(words(0), ["slot", "n1", "n2"], "{text}");
        assert_eq!(words(1), ["1", "E", "."], "{text}");
        assert_eq!(words(2), ["2", "A", "."], "{text}");
        assert!(text.contains("n2: no answer (timed out)"), "{text}");
    }

    #[test]
    fn balances_are_a_table_with_totals() {
        let mut all = BTreeMap::new();
        let b: BTreeMap<String, i64> = [("A".to_string(), 7), ("B".to_string(), 13)].into();
        all.insert("n1".to_string(), Some(b.clone()));
        all.insert("n2".to_string(), Some(b));
        all.insert("n3".to_string(), None);
        all.insert("n1:1-7".to_string(), None);
        let text = render_balances(&all, "replica");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["replica", "A", "B", "total"]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["n1", "7", "13", "20"]
        );
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            ["n2", "7", "13", "20"]
        );
        assert!(lines[3].starts_with("n3: no answer"), "{text}");
        assert_eq!(lines.len(), 4, "journal segments are not replicas: {text}");
    }
}
