//! How a command ends: the exit codes beside the verdict's 0/1/2 (docs/exit-codes.md), the
//! usage error (exit 64) that commands raise for what was asked wrongly, and the one line an
//! error prints (each cause once: an error type either prints its cause or chains it).

use crate::fleet::merge::MergeError;
use crate::fleet::slice::SliceError;
use crate::run::shared::RunError;

// Exit codes beside the verdict's 0/1/2; every binary's are in docs/exit-codes.md.
pub const EXIT_USAGE: i32 = 64;

pub const EXIT_ERROR: i32 = 70;

pub const EXIT_INTERRUPTED: i32 = 130;

/// A mistake in what was asked (exit 64), not a failure of the harness.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// 64 for a usage error (bad flag values, a bad scenario, not a run directory), else 70.
pub fn exit_code_for(e: &anyhow::Error) -> i32 {
    let usage = e.chain().any(|cause| {
        cause.downcast_ref::<UsageError>().is_some()
            || cause.downcast_ref::<SliceError>().is_some()
            || matches!(
                cause.downcast_ref::<MergeError>(),
                Some(MergeError::Mixed { .. })
            )
            || matches!(cause.downcast_ref::<RunError>(), Some(RunError::Invalid(_)))
    });
    if usage {
        EXIT_USAGE
    } else {
        EXIT_ERROR
    }
}

/// The error and its causes on one line. Each error type of the workspace either prints its
/// cause or chains it (never both), so anyhow's alternate form shows every cause once.
pub fn render_error(e: &anyhow::Error) -> String {
    format!("{e:#}")
}
