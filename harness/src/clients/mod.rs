//! The clients of a run: what each one asks next ([`workload`]), the closed loops that ask
//! and record ([`worker`]), and submitting one command until it has a definite answer
//! ([`caller`]).

pub mod caller;
pub mod worker;
pub mod workload;
