//! Tests of the Paxos core (`replica::core`): one file per handler, then whole-cluster
//! scenarios and randomized runs in the deterministic simulator. One test binary, so the suite
//! links once.

mod util;

mod accept;
mod accepted;
mod bugs;
mod catchup;
mod client;
mod commit;
mod heartbeat_ack;
mod nack;
mod new_view;
mod prepare;
mod prevote;
mod promise;
mod promise_part;
mod recovery;
mod sim_liveness;
mod sim_messages;
mod sim_random;
mod sim_scenarios;
mod sim_stall;
mod snapshot_part;
mod tick;
