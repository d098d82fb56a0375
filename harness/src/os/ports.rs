//! Where replica ports come from: below the kernel's ephemeral range, so a port the harness
//! reserved for a replica is not handed to some other socket while the replica restarts.

/// Ports to draw replica ports from: 10000 up to the start of the ephemeral range.
pub fn reservable_range() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    if ephemeral_low > 11_000 {
        (10_000, ephemeral_low)
    } else {
        (ephemeral_low.max(1_024), u16::MAX)
    }
}
