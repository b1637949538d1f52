//! The upstream attempts of one request: how many were made, which backends they
//! went to, and the one in progress. An attempt in progress is counted in its
//! backend's in-flight gauge by an `InFlight` guard, so the count ends exactly once
//! however the attempt ends: with an outcome (`end`), or when the request goes away
//! first (the guard is dropped with the context).

use crate::upstream::{tried_bit, BackendState, Outcome};
use pingora::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Attempts {
    /// Attempts made so far.
    pub count: u8,
    /// Backends tried, a bit per backend index.
    pub tried: u64,
    /// The backend of the latest attempt.
    pub backend: Option<usize>,
    /// When the first attempt started, and how long until a response head arrived.
    pub started: Option<Instant>,
    pub elapsed: Option<Duration>,
    /// The status of the latest response head from a backend.
    pub status: Option<u16>,
    current: Option<InFlight>,
}

/// One attempt in progress at its backend.
struct InFlight(Arc<BackendState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

impl Attempts {
    /// Start an attempt at backend `index`. An attempt still in progress ends
    /// uncounted (Pingora does not start one without ending the last).
    pub fn begin(&mut self, index: usize, state: &Arc<BackendState>) {
        state.begin();
        self.current = Some(InFlight(state.clone()));
        self.count = self.count.saturating_add(1);
        self.tried |= tried_bit(index);
        self.backend = Some(index);
        self.started.get_or_insert_with(Instant::now);
    }

    /// Whether an attempt is in progress.
    pub fn in_progress(&self) -> bool {
        self.current.is_some()
    }

    /// The backend answered with a response head of `status`.
    pub fn answered(&mut self, status: u16) {
        self.elapsed = self.started.map(|s| s.elapsed());
        self.status = Some(status);
        self.end(Outcome::Success, None);
    }

    /// End the attempt in progress with its outcome; nothing when none is.
    pub fn end(&mut self, outcome: Outcome, error: Option<&Error>) {
        if let Some(InFlight(state)) = &self.current {
            state.attempted(outcome, error);
        }
        self.current = None;
    }

    /// End the attempt in progress, if any, without counting an outcome: the
    /// request is over.
    pub fn release(&mut self) {
        self.current = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::BackendFamilies;
    use pingora::ErrorType;

    fn backend() -> Arc<BackendState> {
        let families = BackendFamilies::register(&prometheus::Registry::new()).unwrap();
        Arc::new(families.state("app", "127.0.0.1:1"))
    }

    #[test]
    fn the_in_flight_count_ends_once_however_the_attempt_ends() {
        let (a, b) = (backend(), backend());
        let mut attempts = Attempts::default();
        attempts.begin(0, &a);
        assert_eq!((a.in_flight(), attempts.in_progress()), (1, true));
        let refused = Error::new_up(ErrorType::ConnectRefused);
        attempts.end(Outcome::ConnectError, Some(&refused));
        attempts.end(Outcome::ConnectError, Some(&refused));
        assert_eq!(a.in_flight(), 0);
        assert_eq!(a.last_error(), Some("ConnectRefused"));

        attempts.begin(1, &b);
        assert_eq!(
            (attempts.count, attempts.tried, attempts.backend),
            (2, 0b11, Some(1))
        );
        attempts.answered(200);
        assert!(attempts.elapsed.is_some() && !attempts.in_progress());
        assert_eq!(attempts.status, Some(200));
        assert_eq!(b.in_flight(), 0);

        attempts.begin(1, &b);
        drop(attempts);
        assert_eq!(b.in_flight(), 0, "dropping the request ends its attempt");
    }
}
