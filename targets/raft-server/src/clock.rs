//! The clock Raft runs on: the process's monotonic clock, held still instead of stepping back.
//!
//! The server reads time through libc so that libfaketime clock faults reach it (the nemesis's
//! `clock` faults). libfaketime shifts CLOCK_MONOTONIC along with the wall clock, so a negative
//! bump or a strobe makes `Instant::now()` go backwards — something a real kernel never does,
//! and which openraft treats as a broken invariant (it panics in its vote timer). Here a step
//! back reads as a clock that stands still until real time catches up; forward jumps and rate
//! skew pass through unchanged, so they still move election timers and leases as the fault
//! intends.

use std::future::Future;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::sync::Mutex;
use std::time::Duration;

use openraft::{AsyncRuntime, OptionalSend, TokioRuntime};

/// The latest instant any thread has read; `now()` never returns less.
static LATEST: Mutex<Option<tokio::time::Instant>> = Mutex::new(None);

/// A monotonic instant that never goes backwards, even under a faked clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SteadyInstant(tokio::time::Instant);

impl SteadyInstant {
    /// The clock as tokio's timers see it (what `sleep_until` needs).
    fn as_tokio(self) -> tokio::time::Instant {
        self.0
    }
}

impl openraft::Instant for SteadyInstant {
    fn now() -> Self {
        let read = tokio::time::Instant::now();
        // A poisoned lock only means another thread panicked mid-update of a plain value.
        let mut latest = LATEST
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = match *latest {
            Some(previous) if previous > read => previous,
            _ => read,
        };
        *latest = Some(now);
        SteadyInstant(now)
    }
}

impl Add<Duration> for SteadyInstant {
    type Output = SteadyInstant;
    fn add(self, rhs: Duration) -> SteadyInstant {
        SteadyInstant(self.0 + rhs)
    }
}

impl AddAssign<Duration> for SteadyInstant {
    fn add_assign(&mut self, rhs: Duration) {
        self.0 += rhs;
    }
}

impl Sub<Duration> for SteadyInstant {
    type Output = SteadyInstant;
    fn sub(self, rhs: Duration) -> SteadyInstant {
        SteadyInstant(self.0 - rhs)
    }
}

impl SubAssign<Duration> for SteadyInstant {
    fn sub_assign(&mut self, rhs: Duration) {
        self.0 -= rhs;
    }
}

impl Sub<SteadyInstant> for SteadyInstant {
    type Output = Duration;
    fn sub(self, rhs: SteadyInstant) -> Duration {
        self.0.saturating_duration_since(rhs.0)
    }
}

/// Tokio, with [`SteadyInstant`] as its clock.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SteadyTokioRuntime;

impl AsyncRuntime for SteadyTokioRuntime {
    type JoinError = <TokioRuntime as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::JoinHandle<T>;
    type Sleep = tokio::time::Sleep;
    type Instant = SteadyInstant;
    type TimeoutError = tokio::time::error::Elapsed;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = tokio::time::Timeout<T>;
    type ThreadLocalRng = <TokioRuntime as AsyncRuntime>::ThreadLocalRng;
    type OneshotSender<T: OptionalSend> = <TokioRuntime as AsyncRuntime>::OneshotSender<T>;
    type OneshotReceiverError = <TokioRuntime as AsyncRuntime>::OneshotReceiverError;
    type OneshotReceiver<T: OptionalSend> = <TokioRuntime as AsyncRuntime>::OneshotReceiver<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        TokioRuntime::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        tokio::time::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        tokio::time::sleep_until(deadline.as_tokio())
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        tokio::time::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        tokio::time::timeout_at(deadline.as_tokio(), future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        TokioRuntime::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        TokioRuntime::thread_rng()
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        TokioRuntime::oneshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::Instant as _;

    #[test]
    fn never_goes_backwards_and_differences_saturate() {
        let a = SteadyInstant::now();
        let b = SteadyInstant::now();
        assert!(b >= a);
        assert_eq!(a - (a + Duration::from_millis(5)), Duration::ZERO);
        assert_eq!((a + Duration::from_millis(5)) - a, Duration::from_millis(5));
    }

    #[test]
    fn a_step_back_holds_the_clock_still() {
        // Pretend another thread already saw a time one second ahead of the real clock.
        let ahead = tokio::time::Instant::now() + Duration::from_secs(1);
        *LATEST.lock().expect("not poisoned") = Some(ahead);
        assert_eq!(SteadyInstant::now(), SteadyInstant(ahead));
    }
}
