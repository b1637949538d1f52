//! The request path's side of compression: the route's policy picks the coding
//! and says which answers qualify; Pingora's compression module (added only when
//! some route compresses) does the work, told the coding through
//! `pingora_compat::compression`.

use super::{level, Compression};
use crate::pingora_compat as compat;
use http::header::ACCEPT_ENCODING;
use http::{HeaderMap, StatusCode};
use pingora::modules::http::compression::ResponseCompression;
use pingora::modules::http::HttpModuleCtx;

/// Tell the module the one coding to use: the client's preference among the
/// route's. False when the answer goes out as it is.
pub(crate) fn start(
    policy: &Compression,
    request: &HeaderMap,
    modules: &mut HttpModuleCtx,
) -> bool {
    let Some(algorithm) = policy.negotiate(request.get_all(ACCEPT_ENCODING)) else {
        return false;
    };
    let Some(module) = modules.get_mut::<ResponseCompression>() else {
        return false;
    };
    compat::compression::choose(module, algorithm, level(algorithm))
}

/// An answer that does not qualify (type, size, a range) goes out as it is.
pub(crate) fn settle(
    policy: &Compression,
    status: StatusCode,
    response: &HeaderMap,
    modules: &mut HttpModuleCtx,
) {
    if !policy.applies_to(status, response) {
        stop(modules);
    }
}

/// Parapet's own answers (error pages) go out as they are.
pub(crate) fn stop(modules: &mut HttpModuleCtx) {
    if let Some(module) = modules.get_mut::<ResponseCompression>() {
        if module.is_header_phase() {
            module.adjust_level(0);
        }
    }
}
