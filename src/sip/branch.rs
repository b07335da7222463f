//! Deterministic branch parameters (RFC 3261 §16.11): derived from the request, so a
//! retransmission, its CANCEL and a non-2xx ACK get the same branch. No randomness here.

/// The RFC 3261 magic cookie plus the gateway's marker.
pub const BRANCH_PREFIX: &str = "z9hG4bK";

/// The two halves of a gateway branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Branch {
    /// Identifies the transaction: same for INVITE, its CANCEL and its non-2xx ACK.
    pub txn: u64,
    /// Identifies the request's routing state, for loop detection (RFC 3261 §16.3 step 4).
    pub loop_key: u64,
}
