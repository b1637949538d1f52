//! The request path's side of retries: what it knows of a failed attempt, handed
//! to the upstream's `RetryPolicy` (`upstream::retry`), and the decision written
//! into the error the way Pingora reads it (`Error::retry`).

use super::{Parapet, RequestCtx};
use crate::upstream::retry::{Attempt, RetryReason};
use crate::upstream::Outcome;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource, ErrorType, RetryType};

/// Ends an attempt whose answer (a status listed in `retry_on`) is dropped so that
/// another backend is asked; it never reaches the client.
pub(super) const RETRY_ANSWER: ErrorType = ErrorType::Custom("answer to be retried");

impl Parapet {
    fn attempt<'a>(session: &'a Session, ctx: &RequestCtx) -> Attempt<'a> {
        Attempt {
            method: &session.req_header().method,
            attempts: ctx.attempts.count,
            body_truncated: session.as_ref().retry_buffer_truncated(),
            response_started: session.response_written().is_some(),
        }
    }

    /// Whether to try another backend after the attempt failed for `reason`.
    fn retry(&self, session: &Session, ctx: &RequestCtx, reason: RetryReason) -> bool {
        let Ok(upstream) = self.upstream(ctx) else {
            return false;
        };
        let elsewhere = || upstream.has_untried_healthy(ctx.attempts.tried);
        upstream
            .retry
            .decide(&Self::attempt(session, ctx), reason, elsewhere)
    }

    /// After a response head of `status`: an error when the answer is to be
    /// dropped and another backend asked. The last answer goes to the client when
    /// no other backend, retry or budget is left.
    pub(super) fn retry_answer(
        &self,
        session: &Session,
        ctx: &RequestCtx,
        status: u16,
    ) -> pingora::Result<()> {
        let listed = self
            .upstream(ctx)
            .is_ok_and(|u| u.retry.retries_status(status));
        if listed && self.retry(session, ctx, RetryReason::Status(status)) {
            let mut e = Error::explain(RETRY_ANSWER, format!("the backend answered {status}"));
            e.set_retry(true);
            return Err(e);
        }
        Ok(())
    }

    /// Connecting failed: nothing reached the backend, but a POST is still
    /// answered at once (README: What Parapet answers itself).
    pub(super) fn after_connect_failure(
        &self,
        session: &Session,
        ctx: &mut RequestCtx,
        e: &mut Error,
    ) {
        ctx.attempts.end(Outcome::of(e), Some(e));
        e.set_retry(self.retry(session, ctx, RetryReason::ConnectError));
    }

    /// Proxying failed after the connection was made.
    pub(super) fn after_failure(
        &self,
        session: &Session,
        ctx: &mut RequestCtx,
        e: &mut Error,
        client_reused: bool,
    ) {
        if e.etype() == &RETRY_ANSWER {
            return; // decided when the answer came
        }
        let upstream_failed = e.esource() == &ErrorSource::Upstream;
        if !upstream_failed {
            e.set_retry(false);
            return;
        }
        ctx.attempts.end(Outcome::of(e), Some(e));
        let retry = self.retry(session, ctx, RetryReason::of_failure(e));
        // A pooled connection the backend had closed: the request never reached
        // it, so connect again, even to the same backend (Pingora's own rule).
        let stale = matches!(e.retry, RetryType::ReusedOnly) && client_reused;
        let reconnect = stale
            && self
                .upstream(ctx)
                .is_ok_and(|u| u.retry.may_retry(&Self::attempt(session, ctx)));
        e.set_retry(retry || reconnect);
    }
}
