//! The transcript language: one command per line, in the words of `harness run`'s prompt where
//! the prompt has one (`kill n3`, `restart n3`, `cut n1 n2`, `heal`, `status`), plus the
//! simulator's own faults and the queries a scenario asserts on. A line starting with `# ` is a
//! comment.
//!
//! A node is `n3`, `leader` (the current leader; an error if there is none), or a name bound
//! earlier by `... as NAME` or `let A B = others X`. A submitted command is named `#K` by its
//! order of submission.
//!
//! | command | prints |
//! |---|---|
//! | `run MS` | the virtual time reached |
//! | `run-until-leader MS [as NAME]` | the leader, its ballot and when |
//! | `run-until-reply #K MS`, `run-until-executed #K MS`, `run-until-commit X S MS` | when |
//! | `run-until-converged MS` (every live node executed the same) | when |
//! | `let A B ... = others X ...` | the nodes bound, in id order |
//! | `kill X`, `power-cut X`, `restart X`, `pause X`, `resume X` | what was done |
//! | `isolate X`, `cut X Y` (both ways), `cut X -> Y` (one way), `partition X Y \| Z`, `heal` | |
//! | `submit X transfer A B N`, `submit X read A`, `submit X read-all`, `resubmit #K to X` | `#K` |
//! | `reply #K`, `status`, `log X`, `slot X S`, `balances X`, `executions #K` | the answer |
//! | `check`, `expect executions #K N`, `expect no-reply #K`, `expect commit X S` | `ok`, or fail |
//!
//! A `run-until-*` that runs out of time, and every `check` or `expect` that does not hold,
//! fails the script: those lines are assertions, not observations.

use replica::bank::{Command, Op, OpResult};
use replica::client_proto::{ClientResponse, SlotState};
use replica::core::ReplyToken;
use replica::types::{ClientId, NodeId, RequestId, Slot};
use sim::{Sim, SimOptions};
use std::collections::BTreeMap;
use std::fmt::Write;

/// A simulated cluster and the names a script gave to its nodes and commands.
pub struct Transcript {
    sim: Sim,
    names: BTreeMap<String, NodeId>,
    /// `#K` (1-based) -> the simulator's reply token.
    submitted: Vec<(ReplyToken, Command)>,
    next_client: u64,
}

type Outcome = Result<String, String>;

impl Transcript {
    pub fn new(nodes: u32, seed: u64) -> Transcript {
        Transcript {
            sim: Sim::new(SimOptions::new(nodes, seed)),
            names: BTreeMap::new(),
            submitted: Vec::new(),
            next_client: 1,
        }
    }

    pub fn describe(&self) -> String {
        let ids: Vec<String> = self.sim.node_ids().iter().map(|n| n.to_string()).collect();
        format!("{} up, no leader yet\n", ids.join(" "))
    }

    /// Runs every command of `input`; the output has a line per command (a table for a few).
    pub fn run_script(&mut self, input: &str) -> Outcome {
        let mut out = String::new();
        for (k, line) in input.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line == "#" || line.starts_with("# ") {
                continue;
            }
            let printed = self
                .run_line(line)
                .map_err(|e| format!("line {} `{line}`: {e}", k + 1))?;
            out.push_str(&printed);
            if !printed.ends_with('\n') {
                out.push('\n');
            }
        }
        Ok(out)
    }

    fn run_line(&mut self, line: &str) -> Outcome {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["run", ms] => {
                self.sim.run_for(ms_arg(ms)?);
                Ok(format!("ran to {} ms", self.sim.now_ms))
            }
            ["run-until-leader", ms, rest @ ..] => self.run_until_leader(ms_arg(ms)?, rest),
            ["run-until-reply", k, ms] => {
                let token = self.token(k)?;
                self.run_until(ms, |sim| sim.reply_to(token).is_some(), "an answer")?;
                Ok(format!("{k} answered at {} ms", self.sim.now_ms))
            }
            ["run-until-executed", k, ms] => {
                let command = self.command(k)?.clone();
                self.run_until(ms, |sim| executions(sim, &command) > 0, "execution")?;
                Ok(format!("{k} executed by {} ms", self.sim.now_ms))
            }
            ["run-until-commit", x, s, ms] => {
                let x = self.node(x)?;
                let want = slot_arg(s)?;
                let reached =
                    |sim: &Sim| sim.core(x).is_some_and(|c| c.status().commit_slot >= want);
                self.run_until(ms, reached, "such commit")?;
                Ok(format!(
                    "{x} committed slot {want} by {} ms",
                    self.sim.now_ms
                ))
            }
            ["run-until-converged", ms] => {
                let ms = ms_arg(ms)?;
                if !self.sim.run_until_converged(ms) {
                    return Err(format!("not converged: {:?}", self.sim.check_converged()));
                }
                Ok(format!("converged by {} ms", self.sim.now_ms))
            }
            ["let", rest @ ..] => self.bind_others(rest),
            [fault, node] if is_node_fault(fault) => self.node_fault(fault, node),
            ["isolate", x] => {
                let x = self.node(x)?;
                self.sim.isolate(x);
                Ok(format!("isolated {x}"))
            }
            ["cut", x, "->", y] => {
                let (x, y) = (self.node(x)?, self.node(y)?);
                self.sim.cut_link(x, y);
                Ok(format!("cut {x} -> {y}"))
            }
            ["cut", x, y] => {
                let (x, y) = (self.node(x)?, self.node(y)?);
                self.sim.cut_link(x, y);
                self.sim.cut_link(y, x);
                Ok(format!("cut {x} <-> {y}"))
            }
            ["partition", rest @ ..] => self.partition(rest),
            ["heal"] => {
                self.sim.heal();
                Ok("healed".into())
            }
            ["submit", x, op @ ..] => {
                let x = self.node(x)?;
                let command = self.new_command(op)?;
                Ok(self.submit(x, command, ""))
            }
            ["resubmit", k, "to", x] => {
                let (x, command) = (self.node(x)?, self.command(k)?.clone());
                Ok(self.submit(x, command, ", again"))
            }
            ["reply", k] => {
                let token = self.token(k)?;
                Ok(match self.sim.reply_to(token) {
                    Some(response) => format!("{k}: {}", describe_response(response)),
                    None => format!("{k}: no answer"),
                })
            }
            ["status"] => Ok(self.status()),
            ["log", x] => self.log(x),
            ["slot", x, s] => {
                let x = self.node(x)?;
                let slot = slot_arg(s)?;
                let state = self.core(x)?.slot_state(slot);
                Ok(format!("{x} slot {slot}: {}", slot_state(state)))
            }
            ["balances", x] => {
                let x = self.node(x)?;
                let (exec, balances) = self.core(x)?.balances();
                let list: Vec<String> = balances.iter().map(|(a, v)| format!("{a} {v}")).collect();
                Ok(format!("{x} at exec {exec}: {}", list.join(", ")))
            }
            ["executions", k] => {
                let n = executions(&self.sim, self.command(k)?);
                Ok(format!(
                    "{k} executed {n} time{}",
                    if n == 1 { "" } else { "s" }
                ))
            }
            ["check"] => {
                self.sim.check_safety()?;
                self.sim.check_replies()?;
                Ok("ok: the logs agree and every answer matches them".into())
            }
            ["expect", rest @ ..] => self.expect(rest),
            _ => Err("unknown command (see the table in script.rs)".into()),
        }
    }

    fn run_until(&mut self, ms: &str, done: impl FnMut(&Sim) -> bool, what: &str) -> Outcome {
        let ms = ms_arg(ms)?;
        if !self.sim.run_until(ms, done) {
            return Err(format!("no {what} within {ms} ms"));
        }
        Ok(String::new())
    }

    fn run_until_leader(&mut self, ms: u64, rest: &[&str]) -> Outcome {
        let leader = self
            .sim
            .run_until_leader(ms)
            .ok_or_else(|| format!("no leader within {ms} ms"))?;
        let ballot = self.core(leader)?.status().ballot;
        let mut line = format!(
            "leader {leader} at ballot {ballot} by {} ms",
            self.sim.now_ms
        );
        match rest {
            [] => {}
            ["as", name] => {
                self.names.insert(name.to_string(), leader);
                let _ = write!(line, " (named {name})");
            }
            _ => return Err("expected `as NAME` or nothing after the time".into()),
        }
        Ok(line)
    }

    /// `let A B ... = others X ...`: binds the nodes other than X ..., in id order.
    fn bind_others(&mut self, words: &[&str]) -> Outcome {
        let split = words
            .iter()
            .position(|w| *w == "=")
            .ok_or("expected `let A B = others X`")?;
        let (names, rhs) = (&words[..split], &words[split + 1..]);
        let ["others", excluded @ ..] = rhs else {
            return Err("expected `others X ...` after `=`".into());
        };
        let excluded = excluded
            .iter()
            .map(|x| self.node(x))
            .collect::<Result<Vec<_>, _>>()?;
        let rest: Vec<NodeId> = self
            .sim
            .node_ids()
            .into_iter()
            .filter(|n| !excluded.contains(n))
            .collect();
        if names.len() > rest.len() {
            return Err(format!("{} names for {} nodes", names.len(), rest.len()));
        }
        let bound: Vec<String> = names
            .iter()
            .zip(&rest)
            .map(|(name, id)| {
                self.names.insert(name.to_string(), *id);
                format!("{name}={id}")
            })
            .collect();
        Ok(bound.join(" "))
    }

    fn node_fault(&mut self, fault: &str, node: &str) -> Outcome {
        let x = self.node(node)?;
        match fault {
            "kill" => self.sim.crash(x),
            "power-cut" => self.sim.power_cut(x),
            "restart" => self.sim.restart(x),
            "pause" => self.sim.pause(x),
            _ => self.sim.resume(x),
        }
        let done = match fault {
            "kill" => "killed",
            "power-cut" => "cut the power of",
            "restart" => "restarted",
            "pause" => "paused",
            _ => "resumed",
        };
        Ok(format!("{done} {x}"))
    }

    /// `partition X Y | Z W`: cuts every link between the groups.
    fn partition(&mut self, words: &[&str]) -> Outcome {
        let mut groups: Vec<Vec<NodeId>> = vec![Vec::new()];
        for word in words {
            match *word {
                "|" => groups.push(Vec::new()),
                x => {
                    let id = self.node(x)?;
                    groups.last_mut().expect("one group at least").push(id);
                }
            }
        }
        if groups.len() < 2 || groups.iter().any(Vec::is_empty) {
            return Err("expected two or more groups: partition X Y | Z".into());
        }
        let slices: Vec<&[NodeId]> = groups.iter().map(Vec::as_slice).collect();
        self.sim.partition(&slices);
        let shown: Vec<String> = groups.iter().map(|g| node_list(g)).collect();
        Ok(format!("partitioned {}", shown.join(" | ")))
    }

    fn new_command(&mut self, op: &[&str]) -> Result<Command, String> {
        let client = self.next_client;
        self.next_client += 1;
        let op = match op {
            ["transfer", from, to, amount] => {
                let amount = amount
                    .parse()
                    .map_err(|_| format!("{amount:?} is not an amount"))?;
                return Ok(Command::transfer(client, 1, from, to, amount));
            }
            ["read", account] => Op::Read {
                account: (*account).into(),
            },
            ["read-all"] => Op::ReadAll,
            _ => return Err("expected transfer A B N, read A or read-all".into()),
        };
        Ok(Command {
            client: ClientId(client),
            request: RequestId(1),
            op,
        })
    }

    fn submit(&mut self, to: NodeId, command: Command, again: &str) -> String {
        let token = self.sim.submit(to, command.clone());
        let line = format!(
            "#{} to {to}: {} ({}, request {}{again})",
            self.submitted.len() + 1,
            describe_op(&command.op),
            command.client,
            command.request
        );
        self.submitted.push((token, command));
        line
    }

    fn status(&self) -> String {
        let mut out = String::new();
        for id in self.sim.node_ids() {
            let line = match self.sim.core(id) {
                None => "down".to_string(),
                Some(core) => {
                    let s = core.status();
                    let leader = s.leader.map_or("-".into(), |l| l.to_string());
                    format!(
                        "{:<9} ballot {:<5} leader {:<3} commit {:<3} exec {}",
                        format!("{:?}", s.role).to_lowercase(),
                        s.ballot.to_string(),
                        leader,
                        s.commit_slot.to_string(),
                        s.exec_index
                    )
                }
            };
            let paused = if self.sim.node(id).is_paused() {
                " (paused)"
            } else {
                ""
            };
            let _ = writeln!(out, "{id}: {line}{paused}");
        }
        out
    }

    fn log(&self, x: &str) -> Outcome {
        let x = self.node(x)?;
        let (_, entries) = self.core(x)?.log_view(Slot(1), 1_000);
        if entries.is_empty() {
            return Ok(format!("{x}: empty log"));
        }
        let mut out = String::new();
        for entry in entries {
            let what = if entry.noop {
                "no-op".to_string()
            } else {
                let commands: Vec<String> = entry.commands.iter().map(describe_command).collect();
                commands.join("; ")
            };
            let state = slot_state(entry.state);
            let _ = writeln!(
                out,
                "{x} slot {} {state} at {}: {what}",
                entry.slot, entry.ballot
            );
        }
        Ok(out)
    }

    fn expect(&mut self, words: &[&str]) -> Outcome {
        match words {
            ["executions", k, n] => {
                let want: usize = n.parse().map_err(|_| format!("{n:?} is not a count"))?;
                let got = executions(&self.sim, self.command(k)?);
                (got == want)
                    .then(|| "ok".to_string())
                    .ok_or_else(|| format!("{k} executed {got} times, expected {want}"))
            }
            ["no-reply", k] => match self.sim.reply_to(self.token(k)?) {
                None => Ok("ok".into()),
                Some(r) => Err(format!("{k} was answered: {}", describe_response(r))),
            },
            ["commit", x, s] => {
                let x = self.node(x)?;
                let want = slot_arg(s)?;
                let got = self.core(x)?.status().commit_slot;
                (got == want)
                    .then(|| "ok".to_string())
                    .ok_or_else(|| format!("{x} committed up to {got}, expected {want}"))
            }
            _ => Err("expect what? executions #K N, no-reply #K or commit X S".into()),
        }
    }

    fn node(&self, word: &str) -> Result<NodeId, String> {
        if word == "leader" {
            return self.sim.leader().ok_or_else(|| "there is no leader".into());
        }
        if let Some(id) = self.names.get(word) {
            return Ok(*id);
        }
        let id: NodeId = word
            .parse()
            .map_err(|_| format!("{word:?} is not a node: n1, leader or a bound name"))?;
        if !self.sim.node_ids().contains(&id) {
            return Err(format!("{id} is not in the cluster"));
        }
        Ok(id)
    }

    fn core(&self, id: NodeId) -> Result<&replica::core::Core, String> {
        self.sim.core(id).ok_or_else(|| format!("{id} is down"))
    }

    fn token(&self, k: &str) -> Result<ReplyToken, String> {
        self.submitted_at(k).map(|(token, _)| *token)
    }

    fn command(&self, k: &str) -> Result<&Command, String> {
        self.submitted_at(k).map(|(_, command)| command)
    }

    fn submitted_at(&self, k: &str) -> Result<&(ReplyToken, Command), String> {
        let index: usize = k
            .strip_prefix('#')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("{k:?} is not a submitted command like #1"))?;
        index
            .checked_sub(1)
            .and_then(|i| self.submitted.get(i))
            .ok_or_else(|| format!("{k} was never submitted"))
    }
}

fn is_node_fault(word: &str) -> bool {
    matches!(word, "kill" | "power-cut" | "restart" | "pause" | "resume")
}

fn slot_arg(word: &str) -> Result<Slot, String> {
    word.parse()
        .map(Slot)
        .map_err(|_| format!("{word:?} is not a slot number"))
}

fn ms_arg(word: &str) -> Result<u64, String> {
    word.parse()
        .map_err(|_| format!("{word:?} is not a time in milliseconds"))
}

/// How many times `command` appears in the agreed executed order.
fn executions(sim: &Sim, command: &Command) -> usize {
    sim.executed_log()
        .iter()
        .filter(|e| e.command.client == command.client && e.command.request == command.request)
        .count()
}

fn node_list(nodes: &[NodeId]) -> String {
    let names: Vec<String> = nodes.iter().map(NodeId::to_string).collect();
    names.join(" ")
}

fn slot_state(state: SlotState) -> &'static str {
    match state {
        SlotState::Accepted => "accepted",
        SlotState::Committed => "committed",
        SlotState::Executed => "executed",
        SlotState::Unknown => "unknown",
    }
}

fn describe_op(op: &Op) -> String {
    match op {
        Op::Transfer { from, to, amount } => format!("transfer {from} {to} {amount}"),
        Op::Read { account } => format!("read {account}"),
        Op::ReadAll => "read-all".into(),
    }
}

fn describe_command(command: &Command) -> String {
    format!(
        "{} ({}, request {})",
        describe_op(&command.op),
        command.client,
        command.request
    )
}

fn describe_response(response: &ClientResponse) -> String {
    match response {
        ClientResponse::Reply { node, reply } => format!(
            "{} at exec {} (from {node})",
            describe_result(&reply.result),
            reply.exec_index
        ),
        ClientResponse::NotLeader { node, leader_hint } => match leader_hint {
            Some(hint) => format!("not leader (from {node}; try {hint})"),
            None => format!("not leader (from {node}; no hint)"),
        },
        other => format!("{other:?}"),
    }
}

fn describe_result(result: &OpResult) -> String {
    match result {
        OpResult::Transferred {
            from_balance,
            to_balance,
        } => format!("transferred, balances now {from_balance} and {to_balance}"),
        OpResult::InsufficientFunds { from_balance } => {
            format!("insufficient funds ({from_balance})")
        }
        OpResult::Balance { balance } => format!("balance {balance}"),
        OpResult::Balances { balances } => {
            let list: Vec<String> = balances.iter().map(|(a, v)| format!("{a} {v}")).collect();
            format!("balances {}", list.join(", "))
        }
        other => format!("{other:?}"),
    }
}
