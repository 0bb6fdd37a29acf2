//! Workloads: the operations Faultline's clients send.
//!
//! It owns the generators for the register and cas-register workloads over many keys: the
//! read/write/CAS mix, values unique per key, rate limits, key rotation and seeded randomness,
//! so that a run's operation stream is reproducible from its seed.
//!
//! # Never
//! A generator does no I/O and knows nothing of targets or of the network.
