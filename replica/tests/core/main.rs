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
mod prevote;
mod new_view;
mod prepare;
mod promise;
mod promise_part;
mod recovery;
mod sim_liveness;
mod sim_messages;
mod sim_random;
mod sim_scenarios;
mod snapshot_part;
mod sim_stall;
mod tick;
