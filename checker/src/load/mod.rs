//! Reading a saved run's files fast: `history.jsonl` line by line and `final.json` through a
//! sliding window, each record parsed in place by [`fastjson`] (serde where the fast path
//! gives up), so no file is ever held whole. The checks never read files themselves: the
//! runners in `crate::run` read through these and hand the checks what they laid.
//!
//! - [`run_files`]: where a run's files are, and why a run could not be checked at all.
//! - [`window`], [`final_doc`]: the sliding window and final.json's outer shape, shared by
//!   `crate::run::final_load` (a classic or etcd run's agreed log) and
//!   `crate::run::shard_load` (one agreed log per shard).
//! - [`fastjson`], [`fields`], [`event_parts`]: a history line's and a log entry's parts.

pub(crate) mod event_parts;
pub(crate) mod fastjson;
pub(crate) mod fields;
pub(crate) mod final_doc;
pub(crate) mod run_files;
pub(crate) mod window;
