//! Tests of the Paxos core (`replica::core`): one file per handler. Whole-cluster scenarios
//! and randomized runs live with the simulator and the harness (`sim/tests`,
//! `harness/tests/sim_cluster`, the `harness/tests/sim_*.rs` sweeps). One test binary, so the
//! suite links once.

mod util;

mod accept;
mod accepted;
mod ballot_bounds;
#[cfg(feature = "bugs")]
mod bugs;
mod catchup;
mod client;
mod commit;
mod heartbeat_ack;
mod hostile;
mod nack;
mod new_view;
mod prepare;
mod prevote;
mod promise;
mod promise_part;
mod recovery;
mod reply_table;
mod snapshot_part;
mod tick;
mod twopc;
