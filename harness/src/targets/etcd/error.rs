//! What can go wrong with etcd members, apart from the etcd code that raises it: the target
//! trait's error ([`crate::targets::TargetError`]) wraps it without depending on the target.

use replica::types::NodeId;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error(
        "etcd binary {0} not found: install it with `apt-get install etcd-server etcd-client`, \
         or pass --etcd-bin"
    )]
    NoBinary(PathBuf),
    #[error("cannot prepare {path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot pick free ports: {0}")]
    Ports(std::io::Error),
    #[error("cannot start etcd member {node} ({bin}): {cause}")]
    Spawn {
        node: NodeId,
        bin: PathBuf,
        cause: std::io::Error,
    },
    #[error("etcd: {0}")]
    Client(String),
    #[error("no etcd leader within {0:?}")]
    NoLeader(Duration),
    #[error("unknown etcd member {0}")]
    UnknownNode(NodeId),
    #[error("cannot write {path}: {cause}")]
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },
}
