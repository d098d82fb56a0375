//! placeholder, replaced by the harness work
