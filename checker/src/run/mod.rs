//! Checking one saved run from end to end: lay its final.json into agreed logs, comparing the
//! replicas as they are read ([`final_load`], [`shard_load`]), stream its history, run the
//! checks (`crate::checks`) and assemble the [`crate::results::Results`]. A classic or etcd
//! run goes through [`classic`], a sharded bank's (run.toml with `[[shards]]`) through
//! [`sharded`]. This room imports the checks and the readers (`crate::load`); none of them
//! imports back.

pub(crate) mod classic;
pub(crate) mod final_load;
pub(crate) mod memory;
pub(crate) mod shard_load;
pub(crate) mod sharded;
pub(crate) mod streamed;
mod summary;
