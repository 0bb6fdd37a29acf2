//! The clock Raft runs on: the wall clock, held still instead of stepping back.
//!
//! Clock faults (the nemesis's `clock` faults, through libfaketime) move a node's wall clock
//! (`CLOCK_REALTIME`), as NTP steps and Jepsen's `bump-time` do on a real machine; the raft
//! target starts nodes with `FAKETIME_DONT_FAKE_MONOTONIC=1`, so their monotonic clock, and
//! with it every tokio timer (HTTP timeouts, sleeps), runs true. Raft's own notion of time —
//! election and heartbeat deadlines, openraft's leader lease, and the lease of `--unsafe
//! lease-reads` — is this wall clock, made steady: a step back reads as a clock that stands
//! still until the wall clock catches up (openraft rightly refuses a clock that goes
//! backwards: it panics in its vote timer), while forward jumps and rate skew pass through,
//! so they move election timers and leases as the fault intends.
//!
//! Why not fake the monotonic clock instead: tokio keeps the latest instant its timer wheel
//! has seen, so after a step back every timer whose deadline falls before it fires at once;
//! a node stepped back by a minute then times out every HTTP request it sends, which no real
//! clock fault does.

use std::future::Future;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use openraft::{AsyncRuntime, OptionalSend, TokioRuntime};

/// The latest reading any thread has taken, as time since the Unix epoch; `now()` never
/// returns less.
static LATEST: Mutex<Duration> = Mutex::new(Duration::ZERO);

/// An instant of the node's wall clock that never goes backwards, even under a faked clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SteadyInstant(Duration);

impl SteadyInstant {
    /// How long tokio (on the true monotonic clock) should wait to reach `self`, judged now.
    fn time_left(self) -> Duration {
        self - <SteadyInstant as openraft::Instant>::now()
    }
}

impl openraft::Instant for SteadyInstant {
    fn now() -> Self {
        // Before the epoch only under an absurd fault: then the clock stands still.
        let read = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        // A poisoned lock only means another thread panicked mid-update of a plain value.
        let mut latest = LATEST
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if read > *latest {
            *latest = read;
        }
        SteadyInstant(*latest)
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
        SteadyInstant(self.0.saturating_sub(rhs))
    }
}

impl SubAssign<Duration> for SteadyInstant {
    fn sub_assign(&mut self, rhs: Duration) {
        self.0 = self.0.saturating_sub(rhs);
    }
}

impl Sub<SteadyInstant> for SteadyInstant {
    type Output = Duration;
    fn sub(self, rhs: SteadyInstant) -> Duration {
        self.0.saturating_sub(rhs.0)
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
        // Judged once, now: a later jump of the wall clock is seen at the next deadline
        // openraft sets (its ticks come every heartbeat interval).
        tokio::time::sleep(deadline.time_left())
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
        tokio::time::timeout(deadline.time_left(), future)
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
        assert_eq!(
            SteadyInstant(Duration::ZERO) - Duration::from_secs(1),
            SteadyInstant(Duration::ZERO)
        );
    }

    #[test]
    fn a_step_back_holds_the_clock_still() {
        // Pretend another thread already read a wall clock one minute ahead of this one.
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970");
        let ahead = now + Duration::from_secs(60);
        *LATEST.lock().expect("not poisoned") = ahead;
        assert_eq!(SteadyInstant::now(), SteadyInstant(ahead));
        assert!(
            SteadyInstant(ahead + Duration::from_millis(10)).time_left()
                <= Duration::from_millis(10)
        );
    }
}
