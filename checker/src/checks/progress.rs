//! Progress: while a majority of the replicas is up and connected, some operation is
//! answered `ok` at least every `progress_bound_ms`, during the run as well as after
//! the heal. A stall the liveness check cannot see (it judges only after the `stable`
//! event) shows here: a cluster that stops answering with a majority up.
//!
//! It applies when run.toml has an integer `progress_bound_ms` and says who the replicas
//! are: a classic run's `nodes` (the cluster's size; the harness writes it under
//! `[params]`, for real and simulated runs alike), or a sharded run's `[[shards]]` (each
//! shard's `nodes`). Otherwise the check is not applicable, and says why.
//!
//! Which replicas are up is followed from the nemesis events, conservatively: the rule
//! only ever judges stretches where the majority is surely there. `restart` and `resume`
//! bring their `nodes` back (but not those a restart lists as `refused`), `heal-all` and
//! `stable` bring all back; any other event that names replicas (`nodes`, or `node`:
//! kills, pauses, power cuts, disk and clock faults, an armed failpoint) takes them down
//! until then. While a partition is in force (an event whose value has non-empty
//! `cuts`), up to the next `heal`, `heal-all` or `stable`, and after a nemesis `error`
//! (a fault maybe half done), up to the next `heal-all` or `stable`, nothing is judged.
//! A sharded bank needs a majority of every shard (a shard's accounts stay locked while
//! another shard cannot finish their transactions).
//!
//! Each group (the classic cluster, or one shard) is judged on its own operations: those
//! naming one of its accounts (`read_all` names them all). Its stretch owed progress
//! starts at the latest of: its last `ok`, the moment a majority was last surely up and
//! connected, and the moment its operations started being continuously in flight. One
//! that passes the bound with an operation still in flight is a `no-progress` anomaly.

use super::{Anomaly, AnomalyKind, Check, CheckResult};
use crate::history::{Event, EventType, HistoryReader, Process};
use crate::load::run_files::CheckError;
use crate::ops::CheckEvent;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// Who the replicas are, as run.toml says.
#[derive(Debug, Clone)]
pub(crate) enum Replicas {
    /// A classic cluster of this many replicas.
    Classic(usize),
    /// A sharded bank: per shard, its id, replicas and accounts.
    Sharded(Vec<(u32, Vec<String>, Vec<String>)>),
}

/// One group whose majority must be up and whose operations are judged together.
#[derive(Debug)]
struct Group {
    /// `None` for the classic cluster, else the shard id.
    shard: Option<u32>,
    /// The replicas by name (empty for a classic cluster, known only by its size).
    members: BTreeSet<String>,
    size: usize,
    watch: Watch,
}

/// The stretch being judged for one group.
#[derive(Debug, Default)]
struct Watch {
    last_ok_ns: u64,
    /// Since when the group's operations have been continuously in flight.
    busy_since_ns: Option<u64>,
    /// Per client, its operation of this group in flight: (invoke time, index).
    open: HashMap<u64, (u64, u64)>,
    reported: bool,
}

/// Who is down, and whether the nemesis leaves the cluster's state in doubt.
#[derive(Debug, Default)]
struct Faults {
    down: BTreeSet<String>,
    partitioned: bool,
    in_doubt: bool,
}

impl Faults {
    fn nemesis(&mut self, f: &str, value: &Value) {
        let names = |key: &str| -> Vec<String> {
            match value.get(key) {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
                Some(Value::String(s)) => vec![s.clone()],
                _ => Vec::new(),
            }
        };
        match f {
            "restart" | "resume" => {
                // A refused restart ("n3: why") leaves its replica down.
                let refused: Vec<String> = names("refused")
                    .iter()
                    .map(|r| r.split(':').next().unwrap_or_default().trim().to_string())
                    .collect();
                for n in names("nodes") {
                    if !refused.contains(&n) {
                        self.down.remove(&n);
                    }
                }
            }
            "heal" => self.partitioned = false,
            "heal-all" | "stable" => *self = Faults::default(),
            "skip" => {}
            "error" => self.in_doubt = true,
            _ => {
                let cuts = value.get("cuts").and_then(Value::as_array);
                if cuts.is_some_and(|c| !c.is_empty()) {
                    // A partition names replicas too (a one-way cut's `node`): they are
                    // up, and back in touch at the heal.
                    self.partitioned = true;
                } else {
                    self.down.extend(names("nodes"));
                    self.down.extend(names("node"));
                }
            }
        }
    }
}

/// The rule, fed one event at a time.
#[derive(Debug)]
struct Judge {
    bound_ns: u64,
    groups: Vec<Group>,
    account_group: HashMap<String, usize>,
    faults: Faults,
    /// Since when a majority of every group has surely been up and connected.
    majority_since_ns: Option<u64>,
    /// Time so far with a majority surely up and connected, and the last event's time.
    judged_ns: u64,
    last_ns: u64,
    out: Vec<Anomaly>,
}

impl Judge {
    fn new(bound_ms: u64, replicas: &Replicas) -> Judge {
        let mut account_group = HashMap::new();
        let groups = match replicas {
            Replicas::Classic(size) => vec![Group {
                shard: None,
                members: BTreeSet::new(),
                size: *size,
                watch: Watch::default(),
            }],
            Replicas::Sharded(shards) => shards
                .iter()
                .enumerate()
                .map(|(g, (id, nodes, accounts))| {
                    account_group.extend(accounts.iter().map(|a| (a.clone(), g)));
                    Group {
                        shard: Some(*id),
                        members: nodes.iter().cloned().collect(),
                        size: nodes.len(),
                        watch: Watch::default(),
                    }
                })
                .collect(),
        };
        Judge {
            bound_ns: bound_ms.saturating_mul(1_000_000),
            groups,
            account_group,
            faults: Faults::default(),
            majority_since_ns: Some(0),
            judged_ns: 0,
            last_ns: 0,
            out: Vec::new(),
        }
    }

    fn majority(&self) -> bool {
        let f = &self.faults;
        !f.partitioned
            && !f.in_doubt
            && self.groups.iter().all(|g| {
                let down = if g.members.is_empty() {
                    f.down.len()
                } else {
                    g.members.intersection(&f.down).count()
                };
                g.size.saturating_sub(down) > g.size / 2
            })
    }

    /// The groups an invocation's operation belongs to: those holding an account it
    /// names, or all (a classic cluster, `read_all`, an account no shard holds).
    fn groups_of(&self, named_accounts: &[Option<&str>; 3]) -> Vec<usize> {
        let named: BTreeSet<usize> = named_accounts
            .iter()
            .flatten()
            .filter_map(|a| self.account_group.get(*a).copied())
            .collect();
        if self.groups.len() == 1 || named.is_empty() {
            (0..self.groups.len()).collect()
        } else {
            named.into_iter().collect()
        }
    }

    fn event(&mut self, e: &Step<'_>) {
        if self.majority_since_ns.is_some() {
            self.judged_ns += e.time_ns.saturating_sub(self.last_ns);
        }
        self.last_ns = self.last_ns.max(e.time_ns);
        for g in 0..self.groups.len() {
            self.check_stretch(g, e.time_ns);
        }
        match (e.process, e.kind) {
            (Process::Nemesis, _) => {
                let had = self.majority();
                if let Some((f, value)) = e.nemesis {
                    self.faults.nemesis(f, value);
                }
                match (had, self.majority()) {
                    (false, true) => self.majority_since_ns = Some(e.time_ns),
                    (true, false) => self.majority_since_ns = None,
                    _ => {}
                }
                for g in &mut self.groups {
                    g.watch.reported = false;
                }
            }
            (Process::Client(c), EventType::Invoke) => {
                for g in self.groups_of(&e.accounts) {
                    let w = &mut self.groups[g].watch;
                    if w.busy_since_ns.is_none() {
                        w.busy_since_ns = Some(e.time_ns);
                        w.reported = false;
                    }
                    w.open.insert(c, (e.time_ns, e.index));
                }
            }
            (Process::Client(c), kind) => {
                for g in &mut self.groups {
                    let w = &mut g.watch;
                    if w.open.remove(&c).is_none() {
                        continue;
                    }
                    if w.open.is_empty() {
                        w.busy_since_ns = None;
                    }
                    if kind == EventType::Ok {
                        w.last_ok_ns = e.time_ns;
                        w.reported = false;
                    }
                }
            }
        }
    }

    /// At `now`, whether group `g`'s stretch owed progress has passed the bound.
    fn check_stretch(&mut self, g: usize, now: u64) {
        let bound = self.bound_ns;
        let group = &mut self.groups[g];
        let w = &mut group.watch;
        let (Some(majority), Some(busy), false) =
            (self.majority_since_ns, w.busy_since_ns, w.reported)
        else {
            return;
        };
        let Some(&(_, index)) = w.open.values().min() else {
            return;
        };
        let since = w.last_ok_ns.max(majority).max(busy);
        if now.saturating_sub(since) <= bound {
            return;
        }
        w.reported = true;
        let secs = |ns: u64| format!("{:.3} s", ns as f64 / 1e9);
        let (what, whose) = match group.shard {
            None => ("No operation", "a majority of the replicas"),
            Some(_) => (
                "No operation on this shard's accounts",
                "a majority of every shard's replicas",
            ),
        };
        let on = group
            .shard
            .map_or(String::new(), |s| format!("Shard {s}: "));
        self.out.push(Anomaly::new(
            AnomalyKind::NoProgress,
            format!(
                "{on}{what} was answered ok from {} to {} into the run ({}), though {whose} was up and no partition was in force, and operations were in flight all along (the oldest now invoked at history index {index}): with a majority up and connected, some operation must succeed within {}.",
                secs(since),
                secs(now),
                secs(now - since),
                secs(bound)
            ),
            vec![index],
        ));
    }
}

/// The `progress` check of a run whose history is at `path` (read once more, streaming:
/// the sharded check's way, and a classic one's when [`Fold`] sends it back), when it
/// applies; `rule` is the bound and the replicas, or why it does not apply.
pub(crate) fn run_streaming(
    path: &Path,
    rule: Result<(u64, Replicas), String>,
) -> Result<CheckResult, CheckError> {
    let (bound_ms, replicas) = match rule {
        Ok(r) => r,
        Err(why) => return Ok(not_applicable(&why)),
    };
    let mut judge = Judge::new(bound_ms, &replicas);
    let mut r = HistoryReader::open(path)?;
    while let Some(line) = r.next_checked(Line::fast, |_| Ok(()))? {
        judge.event(&line.step());
    }
    Ok(finish(judge))
}

/// The rule judged within the history pass the other checks make (`crate::ops`), so a
/// classic run's history is read once: the pass hands each line over with its text.
/// A line it read other than through the fast reader is read here as [`run_streaming`]
/// reads it (through serde, as a whole [`Event`]); should serde refuse it, the rule is
/// judged by [`run_streaming`] after all, which words the error as before.
pub(crate) struct Fold {
    rule: Result<(u64, Replicas), String>,
    /// `None` when the rule does not apply, or serde refused a line (then the rule is
    /// judged again from the file).
    judge: Option<Judge>,
}

impl Fold {
    pub fn new(rule: Result<(u64, Replicas), String>) -> Fold {
        let judge = rule
            .as_ref()
            .ok()
            .map(|(bound_ms, replicas)| Judge::new(*bound_ms, replicas));
        Fold { rule, judge }
    }

    /// One line: `ev` as the pass read it from `text`, `fast` when the fast reader did.
    pub fn line(&mut self, ev: &CheckEvent<'_>, text: &[u8], fast: bool) {
        let Some(judge) = &mut self.judge else { return };
        if fast && ev.process != Process::Nemesis {
            judge.event(&client_step(ev));
            return;
        }
        match serde_json::from_slice::<Event>(text) {
            Ok(e) => judge.event(&Line::Whole(Box::new(e)).step()),
            Err(_) => self.judge = None,
        }
    }

    /// One line as another pass read it (the sharded one, which reads no
    /// [`CheckEvent`]): what the rule needs of it, as [`Line::step`] would give it.
    pub fn parts(&mut self, at: (u64, u64), who: (Process, EventType), parts: LineParts<'_>) {
        let Some(judge) = &mut self.judge else { return };
        judge.event(&Step {
            index: at.0,
            time_ns: at.1,
            process: who.0,
            kind: who.1,
            accounts: parts.0,
            nemesis: parts.1,
        });
    }

    /// The result, reading `path` again only if serde refused a line.
    pub fn finish(self, path: &Path) -> Result<CheckResult, CheckError> {
        match (self.judge, self.rule) {
            (_, Err(why)) => Ok(not_applicable(&why)),
            (Some(judge), Ok(_)) => Ok(finish(judge)),
            (None, rule) => run_streaming(path, rule),
        }
    }
}

/// What [`Fold::parts`] takes of a line: its value's `account`, `from` and `to`, and a
/// nemesis line's function and value.
pub(crate) type LineParts<'e> = ([Option<&'e str>; 3], Option<(&'e str, &'e Value)>);

/// A client line the fast reader read, as the rule sees it.
fn client_step<'e>(e: &'e CheckEvent<'_>) -> Step<'e> {
    let v = &e.value.fields;
    Step {
        index: e.index,
        time_ns: e.time_ns,
        process: e.process,
        kind: e.kind,
        accounts: [v.account.as_deref(), v.from.as_deref(), v.to.as_deref()],
        nemesis: None,
    }
}

/// What the rule needs of one event: when, whose, which accounts an invocation names,
/// and a nemesis event's function and value.
struct Step<'e> {
    index: u64,
    time_ns: u64,
    process: Process,
    kind: EventType,
    /// An invocation's `account`, `from` and `to`.
    accounts: [Option<&'e str>; 3],
    nemesis: Option<(&'e str, &'e Value)>,
}

/// A history line as this check reads it. A client's line goes through the checker's
/// fast reader (`ops::CheckEvent`: no `Value` built: through serde this second read of the
/// history was 8.5% of a simulated seed's instructions); a nemesis line, rare and of many shapes,
/// and any line the fast reader leaves, through serde as a whole [`Event`].
// One line is alive at a time, on the stack: boxing the common variant would allocate per line.
#[allow(clippy::large_enum_variant)]
enum Line<'a> {
    Client(CheckEvent<'a>),
    Whole(Box<Event>),
}

impl<'a> Line<'a> {
    fn fast(text: &'a [u8]) -> Option<Line<'a>> {
        CheckEvent::fast(text)
            .filter(|e| e.process != Process::Nemesis)
            .map(Line::Client)
    }

    fn step(&self) -> Step<'_> {
        match self {
            Line::Client(e) => client_step(e),
            Line::Whole(e) => {
                let named = |k: &str| e.value.get(k).and_then(Value::as_str);
                Step {
                    index: e.index,
                    time_ns: e.time_ns,
                    process: e.process,
                    kind: e.kind,
                    accounts: [named("account"), named("from"), named("to")],
                    nemesis: (e.process == Process::Nemesis).then_some((e.f.as_str(), &e.value)),
                }
            }
        }
    }
}

impl<'de> Deserialize<'de> for Line<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Event::deserialize(d).map(|e| Line::Whole(Box::new(e)))
    }
}

fn not_applicable(why: &str) -> CheckResult {
    let mut check = Check::default();
    check.not_applicable(why);
    check.finish()
}

fn finish(judge: Judge) -> CheckResult {
    let mut check = Check::default();
    let bound_ms = judge.bound_ns / 1_000_000;
    let (whom, what) = match judge.groups.as_slice() {
        [g] if g.shard.is_none() => (
            format!("a majority of the {} replicas", g.size),
            "some operation",
        ),
        groups => (
            format!(
                "a majority of every shard's replicas ({} shards)",
                groups.len()
            ),
            "each shard some operation on its accounts",
        ),
    };
    check.note(format!(
        "judged over the whole run: with {whom} up and no partition, {what} must be answered ok within {bound_ms} ms"
    ));
    check.count("groups judged", judge.groups.len() as u64);
    check.count(
        "ms with a majority surely up and connected",
        judge.judged_ns / 1_000_000,
    );
    for a in judge.out {
        check.anomaly(|| a);
    }
    check.finish()
}

/// run.toml's `progress_bound_ms` (`bound`, as written) in milliseconds, or why the rule
/// does not apply.
pub(crate) fn bound_ms(bound: Option<&toml::Value>) -> Result<u64, String> {
    match bound {
        None => Err("run.toml has no progress_bound_ms".to_string()),
        Some(toml::Value::Integer(ms)) if *ms >= 0 => Ok(*ms as u64),
        Some(other) => Err(format!(
            "run.toml's progress_bound_ms is {other}, not a non-negative integer of milliseconds"
        )),
    }
}
