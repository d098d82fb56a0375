//! Any target, chosen by its [`TargetKind`]: the one place that knows every implementation,
//! so the trait ([`crate::targets`]) need not know them and they need not know each other.

use crate::params::TargetKind;
use crate::targets::etcd::EtcdTarget;
use crate::targets::faultline::FaultlineTarget;
use crate::targets::{PrepareSpec, Target, TargetError};

/// Prepares and starts the cluster `spec.params.target` names; returns once it has a leader.
pub async fn prepare(spec: PrepareSpec<'_>) -> Result<Box<dyn Target>, TargetError> {
    match spec.params.target {
        TargetKind::Faultline => Ok(Box::new(FaultlineTarget::prepare(&spec).await?)),
        TargetKind::Etcd => Ok(Box::new(EtcdTarget::prepare(&spec).await?)),
    }
}
