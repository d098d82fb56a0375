//! Client commands: validation, the reply table, forwarding, waiting for execution.
//!
//! A command reaches the log only through the leader. The leader queues it (bounded) for the
//! next `flush`; a backup that knows the leader forwards it there. Either way the receiving
//! replica parks the client's reply token as a *waiter* keyed by `(client, request)` and
//! answers it when it executes that request itself, so the answer always carries the command's
//! real exec index and result. Waiters are bounded and expire silently: a client that hears
//! nothing retries with the same request id, and execution-time dedup makes that safe.

use super::effect::{send, Effect};
use super::{Core, PeerMsg, ReplyToken, RoleState};
use crate::bank::{Command, Op, OpResult, Reply};
use crate::client_proto::ClientResponse;
use crate::types::{ClientId, NodeId, RequestId};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Identity of a client request.
pub(super) type RequestKey = (ClientId, RequestId);

/// Most client streams waiting on the same request (a retrying client opens a new stream per
/// attempt); the oldest is forgotten beyond this.
const MAX_TOKENS_PER_REQUEST: usize = 4;

pub(super) fn key_of(command: &Command) -> RequestKey {
    (command.client, command.request)
}

/// Client streams waiting for a request to execute here.
pub(super) struct Waiters {
    by_key: BTreeMap<RequestKey, Vec<ReplyToken>>,
    /// (deadline, key, token) in arrival order; deadlines grow with the clock, so the front
    /// expires first. Entries of already answered tokens are skipped when they come up.
    expiry: VecDeque<(u64, RequestKey, ReplyToken)>,
    tokens: usize,
    max_tokens: usize,
}

/// The waiter table is full.
#[derive(Debug)]
pub(super) struct Full;

impl Waiters {
    pub fn new(max_tokens: usize) -> Waiters {
        Waiters {
            by_key: BTreeMap::new(),
            expiry: VecDeque::new(),
            tokens: 0,
            max_tokens,
        }
    }

    pub fn add(&mut self, key: RequestKey, token: ReplyToken, deadline: u64) -> Result<(), Full> {
        if self.tokens >= self.max_tokens {
            return Err(Full);
        }
        let list = self.by_key.entry(key).or_default();
        if list.len() >= MAX_TOKENS_PER_REQUEST {
            list.remove(0);
            self.tokens -= 1;
        }
        list.push(token);
        self.tokens += 1;
        self.expiry.push_back((deadline, key, token));
        if self.expiry.len() > 4 * self.max_tokens + 16 {
            self.compact();
        }
        Ok(())
    }

    /// Removes and returns every token waiting for `key`.
    pub fn take(&mut self, key: RequestKey) -> Vec<ReplyToken> {
        let tokens = self.by_key.remove(&key).unwrap_or_default();
        self.tokens -= tokens.len();
        tokens
    }

    /// Forgets (without answering) every wait whose deadline has passed.
    pub fn expire(&mut self, now_ms: u64) {
        while let Some(&(deadline, key, token)) = self.expiry.front() {
            if deadline > now_ms {
                break;
            }
            self.expiry.pop_front();
            self.forget(key, token);
        }
    }

    pub fn keys(&self) -> Vec<RequestKey> {
        self.by_key.keys().copied().collect()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.tokens
    }

    pub fn is_full(&self) -> bool {
        self.tokens >= self.max_tokens
    }

    fn forget(&mut self, key: RequestKey, token: ReplyToken) {
        if let Some(list) = self.by_key.get_mut(&key) {
            if let Some(pos) = list.iter().position(|t| *t == token) {
                list.remove(pos);
                self.tokens -= 1;
            }
            if list.is_empty() {
                self.by_key.remove(&key);
            }
        }
    }

    /// Drops expiry entries of tokens already answered, so the queue stays bounded.
    fn compact(&mut self) {
        let by_key = &self.by_key;
        self.expiry
            .retain(|(_, key, token)| by_key.get(key).is_some_and(|l| l.contains(token)));
    }
}

/// The leader's queue of commands waiting for a slot, and the identities of every command it
/// queued or proposed that has not executed yet (so a retry is not proposed twice).
#[derive(Default)]
pub(super) struct Proposals {
    pending: VecDeque<Command>,
    keys: BTreeSet<RequestKey>,
}

pub(super) enum Enqueued {
    Queued,
    AlreadyProposed,
    Full,
}

impl Proposals {
    pub fn enqueue(&mut self, command: Command, max_pending: usize, dedup: bool) -> Enqueued {
        let key = key_of(&command);
        if dedup && self.keys.contains(&key) {
            return Enqueued::AlreadyProposed;
        }
        if self.pending.len() >= max_pending {
            return Enqueued::Full;
        }
        self.keys.insert(key);
        self.pending.push_back(command);
        Enqueued::Queued
    }

    /// Takes the next batch: at most `max` commands and, past the first, at most `max_bytes`
    /// encoded bytes (so every log entry fits in one message).
    pub fn next_batch(&mut self, max: usize, max_bytes: usize) -> Vec<Command> {
        let mut bytes = 0;
        let mut n = 0;
        for command in self.pending.iter().take(max) {
            bytes += super::wire::encoded_len(command);
            if n > 0 && bytes > max_bytes {
                break;
            }
            n += 1;
        }
        self.pending.drain(..n).collect()
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether `key` is queued or proposed and has not executed yet.
    pub fn contains(&self, key: RequestKey) -> bool {
        self.keys.contains(&key)
    }

    /// Forgets the identities of requests `done` says have executed (after installing a
    /// checkpoint, they never execute here one by one).
    pub fn forget_executed(&mut self, done: impl Fn(ClientId, RequestId) -> bool) {
        self.keys
            .retain(|(client, request)| !done(*client, *request));
    }

    /// The request executed (or was found a duplicate): a retry may be queued again (it will
    /// then be answered from the reply table before reaching the queue).
    pub fn executed(&mut self, key: RequestKey) {
        self.keys.remove(&key);
    }
}

fn is_read(op: &Op) -> bool {
    matches!(op, Op::Read { .. } | Op::ReadAll)
}

impl Core {
    /// A client submitted `command` on stream `token`. Answers at once (rejected, cached reply,
    /// not leader, overloaded) or parks a waiter answered when the command executes here.
    pub fn on_client(
        &mut self,
        now_ms: u64,
        token: ReplyToken,
        command: Command,
        out: &mut Vec<Effect>,
    ) {
        self.accept_command(now_ms, token, command, out);
        self.assert_invariants("on_client");
    }

    fn accept_command(
        &mut self,
        now_ms: u64,
        token: ReplyToken,
        command: Command,
        out: &mut Vec<Effect>,
    ) {
        let me = self.me();
        let reply = |response| Effect::Reply { token, response };
        if is_read(&command.op) && self.answers_reads_locally() {
            out.push(reply(ClientResponse::Reply {
                node: me,
                reply: self.local_read(&command.op),
            }));
            return;
        }
        if let Err(reason) = self.bank.validate(&command.op) {
            out.push(reply(ClientResponse::Rejected { node: me, reason }));
            return;
        }
        if !self.cfg.bugs.no_dedup() {
            if let Some(cached) = self.bank.cached_reply(command.client, command.request) {
                out.push(reply(ClientResponse::Reply {
                    node: me,
                    reply: cached.clone(),
                }));
                return;
            }
            if self.bank.last_request(command.client) > Some(command.request) {
                // The client has moved past this request; its reply is gone. It is not waiting.
                tracing::debug!(node = %me, client = %command.client, "dropping a stale request");
                return;
            }
            if let Some(floor) = self.bank.expired(command.client, command.request) {
                // Evicted from the reply table: it may have executed; never execute it again.
                out.push(reply(ClientResponse::Expired {
                    node: me,
                    client: command.client,
                    floor,
                }));
                return;
            }
        }
        let key = key_of(&command);
        let deadline = now_ms.saturating_add(self.cfg.client_wait_timeout_ms);
        if self.is_leader() && !self.waiters.is_full() && self.wait_for_locks(now_ms, &command) {
            // Parked behind a lock (see `locks`): answered when it executes, like a queued one.
            let _ = self.waiters.add(key, token, deadline);
            return;
        }
        match (&mut self.role, self.leader) {
            (RoleState::Leader(leader), _) => {
                let max = self.cfg.max_pending_commands as usize;
                let dedup = !self.cfg.bugs.no_dedup();
                if self.waiters.is_full() {
                    // Checked before queueing: `Overloaded` promises the command was not proposed.
                    out.push(reply(ClientResponse::Overloaded { node: me }));
                    return;
                }
                match leader.proposals.enqueue(command, max, dedup) {
                    Enqueued::Full => out.push(reply(ClientResponse::Overloaded { node: me })),
                    Enqueued::Queued | Enqueued::AlreadyProposed => {
                        let _ = self.waiters.add(key, token, deadline);
                    }
                }
            }
            (_, Some(leader)) if leader != me => {
                if self.waiters.add(key, token, deadline).is_err() {
                    out.push(reply(ClientResponse::Overloaded { node: me }));
                    return;
                }
                send(out, leader, PeerMsg::Forward { command });
            }
            _ => out.push(reply(ClientResponse::NotLeader {
                node: me,
                leader_hint: None,
            })),
        }
    }

    /// A backup forwarded a client command. Only the leader queues it; the backup keeps the
    /// client's waiter and answers when it executes the command. Anything else is dropped (the
    /// backup's waiter expires and the client retries).
    pub(super) fn on_forward(&mut self, now_ms: u64, from: NodeId, command: Command) {
        let me = self.me();
        if !self.is_leader() {
            tracing::debug!(node = %me, %from, "not leader: dropping a forwarded command");
            return;
        }
        if self.bank.validate(&command.op).is_err() {
            tracing::debug!(node = %me, %from, "dropping an invalid forwarded command");
            return;
        }
        let dedup = !self.cfg.bugs.no_dedup();
        if dedup && self.bank.last_request(command.client) >= Some(command.request) {
            // Already executed: the forwarder executes it too once it has the log.
            return;
        }
        if dedup && self.bank.expired(command.client, command.request).is_some() {
            // The forwarder answered or will answer it `Expired` when its waiter runs out.
            return;
        }
        if self.wait_for_locks(now_ms, &command) {
            return;
        }
        let max = self.cfg.max_pending_commands as usize;
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        if let Enqueued::Full = leader.proposals.enqueue(command, max, dedup) {
            tracing::debug!(node = %me, %from, "pending queue full: dropping a forwarded command");
        }
    }

    /// Answers every client waiting for `key` with `reply`.
    pub(super) fn answer_waiters(&mut self, key: RequestKey, reply: &Reply, out: &mut Vec<Effect>) {
        let node = self.me();
        for token in self.waiters.take(key) {
            let response = ClientResponse::Reply {
                node,
                reply: reply.clone(),
            };
            out.push(Effect::Reply { token, response });
        }
    }

    /// Answers every client waiting for `key` that its request expired (see `bank`'s docs).
    pub(super) fn answer_expired(
        &mut self,
        key: RequestKey,
        floor: RequestId,
        out: &mut Vec<Effect>,
    ) {
        let node = self.me();
        for token in self.waiters.take(key) {
            let response = ClientResponse::Expired {
                node,
                client: key.0,
                floor,
            };
            out.push(Effect::Reply { token, response });
        }
    }

    /// After installing a checkpoint, requests that executed inside it will never execute here:
    /// answer their waiters from the reply table, forget those the client has moved past.
    pub(super) fn answer_waiters_from_reply_table(&mut self, out: &mut Vec<Effect>) {
        for key in self.waiters.keys() {
            if let Some(reply) = self.bank.cached_reply(key.0, key.1).cloned() {
                self.answer_waiters(key, &reply, out);
            } else if self.bank.last_request(key.0) > Some(key.1) {
                self.waiters.take(key);
            } else if let Some(floor) = self.bank.expired(key.0, key.1) {
                self.answer_expired(key, floor, out);
            }
        }
    }

    fn answers_reads_locally(&self) -> bool {
        // PLANTED BUG local_reads: any replica answers reads from its own state.
        // PLANTED BUG stale_leader: a leader answers reads from its own state, believing itself
        // the only leader.
        self.cfg.bugs.local_reads() || (self.cfg.bugs.stale_leader() && self.is_leader())
    }

    /// A read answered from local state, numbered with the local exec index (only reachable
    /// through a planted bug: real reads go through the log).
    fn local_read(&self, op: &Op) -> Reply {
        let result = match op {
            Op::Read { account } => OpResult::Balance {
                balance: self.bank.balance(account),
            },
            _ => OpResult::Balances {
                balances: self.bank.balances().clone(),
            },
        };
        Reply {
            exec_index: self.bank.exec_index(),
            result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: u64, r: u64) -> RequestKey {
        (ClientId(c), RequestId(r))
    }

    #[test]
    fn waiters_are_bounded_and_expire() {
        let mut w = Waiters::new(3);
        w.add(key(1, 1), 10, 100).unwrap();
        w.add(key(1, 1), 11, 150).unwrap();
        w.add(key(2, 1), 12, 200).unwrap();
        assert!(w.add(key(3, 1), 13, 200).is_err());
        w.expire(120);
        assert_eq!(w.len(), 2);
        assert_eq!(w.take(key(1, 1)), vec![11]);
        w.expire(1_000);
        assert_eq!(w.len(), 0);
        assert!(w.keys().is_empty());
    }

    #[test]
    fn one_request_keeps_at_most_a_few_streams() {
        let mut w = Waiters::new(100);
        for token in 0..10 {
            w.add(key(1, 1), token, 100).unwrap();
        }
        assert_eq!(w.take(key(1, 1)), vec![6, 7, 8, 9]);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn answered_waits_do_not_pile_up_in_the_expiry_queue() {
        let mut w = Waiters::new(2);
        for r in 0..1_000 {
            w.add(key(1, r), r, 10_000).unwrap();
            w.take(key(1, r));
        }
        assert!(w.expiry.len() <= 4 * 2 + 16 + 1);
    }

    #[test]
    fn proposals_dedup_unless_told_not_to() {
        let cmd = Command {
            client: ClientId(1),
            request: RequestId(1),
            op: Op::ReadAll,
        };
        let mut p = Proposals::default();
        assert!(matches!(p.enqueue(cmd.clone(), 10, true), Enqueued::Queued));
        assert!(matches!(
            p.enqueue(cmd.clone(), 10, true),
            Enqueued::AlreadyProposed
        ));
        assert!(matches!(
            p.enqueue(cmd.clone(), 10, false),
            Enqueued::Queued
        ));
        assert_eq!(p.next_batch(8, usize::MAX).len(), 2);
        p.executed(key_of(&cmd));
        assert!(matches!(p.enqueue(cmd, 10, true), Enqueued::Queued));
    }
}
