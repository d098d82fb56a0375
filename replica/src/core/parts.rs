//! Messages too large for one network frame, cut into parts and put back together.
//!
//! Why: the network drops any message above `max_frame_bytes` (it is only counted), so a
//! PROMISE, catch-up answer or snapshot that outgrew it used to be retried forever and the
//! election or catch-up behind it never finished. Entries are cut at entry boundaries by their
//! encoded size; a checkpoint (the bank with its reply table) is encoded once with postcard and
//! sent as byte slices. The receiver keeps the parts of one message per sender, bounded in
//! count, and uses the whole once every part is in. Lost parts come back with the sender's
//! next answer (candidates resend PREPARE, lagging replicas repeat catch-up requests).

use super::wire::{encoded_len, Checkpoint, SlotEntry};
use crate::types::{Ballot, NodeId, Slot};
use std::collections::BTreeMap;

/// Most parts one message may be cut into; a message announcing more is malformed. With the
/// smallest frame allowed this still carries a checkpoint of several megabytes.
pub(super) const MAX_PARTS: u32 = 16_384;

/// One part as received.
pub(super) struct Part {
    pub index: u32,
    pub count: u32,
    pub entries: Vec<SlotEntry>,
    pub bytes: Vec<u8>,
}

/// The payloads of the parts of one message: entry groups first, then checkpoint slices, each
/// within `budget` encoded bytes (an entry larger than the budget travels alone). `None` if
/// that takes more than [`MAX_PARTS`] parts.
pub(super) fn split(
    entries: Vec<SlotEntry>,
    checkpoint: Option<&Checkpoint>,
    budget: usize,
) -> Option<Vec<(Vec<SlotEntry>, Vec<u8>)>> {
    let budget = budget.max(1);
    let mut payloads: Vec<(Vec<SlotEntry>, Vec<u8>)> = Vec::new();
    let mut group: Vec<SlotEntry> = Vec::new();
    let mut group_bytes = 0;
    for entry in entries {
        let size = encoded_len(&entry);
        if !group.is_empty() && group_bytes + size > budget {
            payloads.push((std::mem::take(&mut group), Vec::new()));
            group_bytes = 0;
        }
        group_bytes += size;
        group.push(entry);
    }
    if !group.is_empty() {
        payloads.push((group, Vec::new()));
    }
    if let Some(checkpoint) = checkpoint {
        let bytes = postcard::to_allocvec(checkpoint).ok()?;
        for slice in bytes.chunks(budget) {
            payloads.push((Vec::new(), slice.to_vec()));
        }
    }
    (payloads.len() <= MAX_PARTS as usize).then_some(payloads)
}

/// The longest prefix of `entries` whose encoded size stays within `budget` (at least one).
pub(super) fn prefix_within(entries: Vec<SlotEntry>, budget: usize) -> Vec<SlotEntry> {
    let mut total = 0;
    let mut kept = Vec::new();
    for entry in entries {
        total += encoded_len(&entry);
        if !kept.is_empty() && total > budget {
            break;
        }
        kept.push(entry);
    }
    kept
}

/// The parts of one message received so far.
pub(super) struct Parts {
    count: u32,
    got: BTreeMap<u32, (Vec<SlotEntry>, Vec<u8>)>,
}

impl Parts {
    /// `None` for a part count no sender uses.
    pub fn new(count: u32) -> Option<Parts> {
        (1..=MAX_PARTS).contains(&count).then(|| Parts {
            count,
            got: BTreeMap::new(),
        })
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// Keeps `part` (a repeat replaces the earlier copy). False if it does not belong here.
    pub fn add(&mut self, part: Part) -> bool {
        if part.count != self.count || part.index >= self.count {
            return false;
        }
        self.got.insert(part.index, (part.entries, part.bytes));
        true
    }

    pub fn complete(&self) -> bool {
        self.got.len() == self.count as usize
    }

    /// The entries and the checkpoint bytes, in part order.
    pub fn into_whole(self) -> (Vec<SlotEntry>, Vec<u8>) {
        let mut entries = Vec::new();
        let mut bytes = Vec::new();
        for (_, (e, b)) in self.got {
            entries.extend(e);
            bytes.extend(b);
        }
        (entries, bytes)
    }
}

/// Decodes checkpoint bytes put back together from parts; `Ok(None)` when there were none.
pub(super) fn decode_checkpoint(bytes: &[u8]) -> Result<Option<Checkpoint>, postcard::Error> {
    if bytes.is_empty() {
        return Ok(None);
    }
    postcard::from_bytes(bytes).map(Some)
}

/// A PROMISE arriving in parts at a candidate.
pub(super) struct PartialPromise {
    pub commit: Slot,
    pub parts: Parts,
}

/// A snapshot arriving in parts: one at a time, from one sender.
pub(super) struct Assembly {
    pub from: NodeId,
    pub slot: Slot,
    pub ballot: Ballot,
    pub parts: Parts,
}
