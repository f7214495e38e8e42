//! Governance at the edge: who is calling (bearer token, API key, the stdio identity), whether
//! they may, and the HTTP side of the MCP authorization spec.

pub mod token;
