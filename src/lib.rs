//! dualgate: a stateless SIP gateway that maps legacy hotline numbers and 12356 to the same
//! call-centre queues.

pub mod number;
pub mod peer;
pub mod prometheus;
pub mod report;
pub mod sip;
