//! Telling Pingora's compression module which coding to use. In Pingora 0.9.1 the
//! module (`ResponseCompression`, pingora-core `modules/http/compression.rs`, a
//! `ResponseCompressionCtx` underneath) picks the coding from the request's
//! `Accept-Encoding` (pingora-core `protocols/http/compression/mod.rs`,
//! `ResponseCompressionCtx::request_filter`) and offers no way to set it, while
//! Parapet negotiates it itself against the route's list (`policy::compression`).
//! So the module is handed a made-up request head whose `Accept-Encoding` is that
//! one coding.

use http::header::ACCEPT_ENCODING;
use pingora::http::RequestHeader;
use pingora::modules::http::compression::ResponseCompression;
use pingora::protocols::http::compression::Algorithm;

/// Make `module` compress with `algorithm` at `level`; false when it could not
/// be told (the made-up head could not be built).
pub(crate) fn choose(module: &mut ResponseCompression, algorithm: Algorithm, level: u32) -> bool {
    let Ok(mut chosen) = RequestHeader::build("GET", b"/", Some(1)) else {
        return false;
    };
    if chosen
        .insert_header(ACCEPT_ENCODING, algorithm.as_str())
        .is_err()
    {
        return false;
    }
    module.adjust_algorithm_level(algorithm, level);
    module.request_filter(&chosen);
    true
}
