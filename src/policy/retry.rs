//! Which failed attempts may be tried again. Only idempotent methods (SPEC §4:
//! GET, HEAD, OPTIONS, PUT, DELETE), only while nothing has been sent to the client,
//! only when the request body is still fully buffered, and at most `retries` times.

use http::Method;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Extra attempts after the first.
    pub retries: u8,
}

/// What the request path knows about a failed attempt.
pub struct Attempt<'a> {
    pub method: &'a Method,
    /// Attempts made so far, the failed one included.
    pub attempts: u8,
    /// Part of the body went upstream and is no longer buffered for a replay.
    pub body_truncated: bool,
    /// The response head already went to the client.
    pub response_started: bool,
}

impl RetryPolicy {
    pub fn may_retry(&self, attempt: &Attempt) -> bool {
        is_idempotent(attempt.method)
            && !attempt.body_truncated
            && !attempt.response_started
            && attempt.attempts <= self.retries
    }
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(method: &Method, attempts: u8) -> Attempt<'_> {
        Attempt {
            method,
            attempts,
            body_truncated: false,
            response_started: false,
        }
    }

    #[test]
    fn idempotent_methods_retry_within_budget() {
        let policy = RetryPolicy { retries: 2 };
        assert!(policy.may_retry(&attempt(&Method::GET, 1)));
        assert!(policy.may_retry(&attempt(&Method::DELETE, 2)));
        assert!(!policy.may_retry(&attempt(&Method::GET, 3)));
    }

    #[test]
    fn post_is_never_replayed() {
        let policy = RetryPolicy { retries: 5 };
        assert!(!policy.may_retry(&attempt(&Method::POST, 1)));
        assert!(!policy.may_retry(&attempt(&Method::PATCH, 1)));
    }

    #[test]
    fn nothing_is_retried_once_the_client_saw_a_response() {
        let policy = RetryPolicy { retries: 2 };
        let mut a = attempt(&Method::GET, 1);
        a.response_started = true;
        assert!(!policy.may_retry(&a));
        let mut a = attempt(&Method::PUT, 1);
        a.body_truncated = true;
        assert!(!policy.may_retry(&a));
    }
}
