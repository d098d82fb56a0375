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
mod hostile;
mod nack;
mod new_view;
mod prepare;
mod promise;
mod recovery;
mod reply_table;
mod sim_random;
mod sim_scenarios;
mod tick;
