//! Fault kinds and how each is installed and undone.

use crate::lab::{Lab, lock};

/// What is currently broken in a lab, so stop and heal know what to undo.
#[derive(Default)]
pub(crate) struct FaultState {
    /// Background tasks (clock strobes) to abort at stop/teardown.
    pub(crate) tasks: Vec<tokio::task::AbortHandle>,
}

impl Lab {
    pub(crate) fn abort_fault_tasks(&self) {
        for task in lock(&self.faults).tasks.drain(..) {
            task.abort();
        }
    }
}
