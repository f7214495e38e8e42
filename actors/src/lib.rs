//! Ensemble's engines and learning servers, each a supervised ractor actor, and the sled store
//! they persist to.
