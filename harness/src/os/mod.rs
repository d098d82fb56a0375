//! The operating-system plumbing both targets stand on: supervised child processes
//! ([`process`]), the UDP relay that can cut and slow links between replicas ([`relay`]), its
//! TCP twin for etcd ([`relay_tcp`]), the client transport trait ([`transport`]) and the port
//! range replicas are given ([`ports`]). Nothing here knows a target, a run or a fault: the
//! layers above it ([`crate::targets`], [`crate::faults`], [`crate::run`]) say what to do with a
//! process or a link.

pub mod ports;
pub mod process;
pub mod relay;
pub mod relay_tcp;
pub mod transport;
