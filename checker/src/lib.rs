//! placeholder, replaced by the checker work
