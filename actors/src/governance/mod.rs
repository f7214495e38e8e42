//! The governance engine's state: the policy that decides who may call what, and the
//! tamper-evident audit log of every decision and call.

pub mod audit;
pub mod checkpoint;
pub mod policy;
pub mod wal;
