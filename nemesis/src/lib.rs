//! The nemesis: Faultline's local fault lab and the faults that run in it.
//!
//! It owns the lab (one network namespace per node, a bridge namespace, a client namespace
//! without a default route), the process supervisor (start, kill, pause, resume, restart
//! nodes inside their namespaces), the fault kinds (partitions with nftables, kills, pauses,
//! clock faults through libfaketime, packet loss and bandwidth, delay via netem where the
//! kernel has it), fault schedules, and the same faults on remote hosts over SSH.
//!
//! # Never
//! Nothing here sends traffic to a lab address from the root network namespace, signals a
//! process it did not start, or leaves a namespace, rule or process behind: teardown runs on
//! every path and `faultline clean` removes what a killed run left.
