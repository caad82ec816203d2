//! Adapters: the HTTP edge (inbound) and the implementations of the ports (outbound).

pub mod inbound;
pub mod outbound;
