use super::config::normalize_origin;
use super::*;
use crate::config::ConfigErrors;
use std::time::Duration;

fn load(yaml: &str) -> (Option<Cors>, Vec<String>) {
    let config: CorsConfig = serde_yaml::from_str(yaml).unwrap();
    let mut errors = ConfigErrors::default();
    let cors = Cors::from_config(config, "routes[0]", &mut errors);
    (cors, errors.paths())
}

fn cors(yaml: &str) -> Cors {
    let (cors, problems) = load(yaml);
    assert!(problems.is_empty(), "{problems:?}");
    cors.unwrap()
}

const APP: &str = "{allow_origins: ['https://app.example.com', 'http://localhost:3000'], \
    allow_methods: [GET, POST, PUT, DELETE], allow_headers: [Content-Type, Authorization], \
    expose_headers: [X-Request-Id], allow_credentials: true, max_age: 10m}";

fn map(fields: &[(&'static str, &'static str)]) -> HeaderMap {
    fields
        .iter()
        .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
        .collect()
}

fn preflight(origin: &'static str, method: &'static str, headers: &'static str) -> HeaderMap {
    let mut req = map(&[
        ("origin", origin),
        ("access-control-request-method", method),
    ]);
    if !headers.is_empty() {
        req.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static(headers),
        );
    }
    req
}

fn fields<'a>(it: impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)>) -> Vec<String> {
    it.map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
        .collect()
}

/// The response fields of a forwarded request with `origin`, sorted.
fn answered(cors: &Cors, origin: Option<&'static str>, resp: &mut HeaderMap) -> Vec<String> {
    let origin = origin.map(HeaderValue::from_static);
    cors.apply(origin.as_ref(), resp);
    let mut got = fields(resp.iter());
    got.sort();
    got
}

#[test]
fn an_allowed_preflight_is_answered_with_exact_fields() {
    let cors = cors(APP);
    let req = preflight(
        "https://app.example.com",
        "PUT",
        "authorization,content-type",
    );
    let Some(Verdict::Preflight(p)) = cors.classify(&req, &Method::OPTIONS) else {
        panic!("not answered");
    };
    assert_eq!(
        fields(cors.preflight_headers(p)),
        [
            "access-control-allow-origin: https://app.example.com",
            "access-control-allow-methods: GET, POST, PUT, DELETE",
            "access-control-allow-headers: Content-Type, Authorization",
            "access-control-max-age: 600",
            "access-control-allow-credentials: true",
            "vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        ]
    );
    assert_eq!(cors.preflight_headers(p).count(), Cors::PREFLIGHT_FIELDS);

    // Without headers requested, credentials or allowed headers.
    let cors = self::cors("{allow_origins: ['*']}");
    let req = preflight("https://any.example", "POST", "");
    let Some(Verdict::Preflight(p)) = cors.classify(&req, &Method::OPTIONS) else {
        panic!("not answered");
    };
    assert_eq!(
        fields(cors.preflight_headers(p)),
        [
            "access-control-allow-origin: *",
            "access-control-allow-methods: GET, HEAD, POST",
            "access-control-max-age: 300",
            "vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        ]
    );
}

#[test]
fn preflights_from_foreign_origins_or_for_other_methods_or_headers_are_refused() {
    let cors = cors(APP);
    let refused = |req: HeaderMap| cors.classify(&req, &Method::OPTIONS);
    let refuse = Some(Verdict::Refuse);
    assert_eq!(
        refused(preflight("https://evil.example", "GET", "")),
        refuse
    );
    assert_eq!(
        refused(preflight("https://app.example.com.evil", "GET", "")),
        refuse
    );
    assert_eq!(
        refused(preflight("https://app.example.com:8443", "GET", "")),
        refuse
    );
    assert_eq!(refused(preflight("null", "GET", "")), refuse);
    assert_eq!(
        refused(preflight("https://app.example.com", "PATCH", "")),
        refuse
    );
    // Methods are compared as sent, byte for byte.
    assert_eq!(
        refused(preflight("https://app.example.com", "put", "")),
        refuse
    );
    assert_eq!(
        refused(preflight(
            "https://app.example.com",
            "PUT",
            "content-type, x-secret"
        )),
        refuse
    );
    // Each requested header must be allowed, in any case and over several lines.
    let mut req = preflight("https://app.example.com", "PUT", "CONTENT-TYPE");
    req.append(
        header::ACCESS_CONTROL_REQUEST_HEADERS,
        HeaderValue::from_static(" authorization ,"),
    );
    assert!(matches!(refused(req), Some(Verdict::Preflight(_))));
}

#[test]
fn requests_without_origin_and_plain_options_are_not_preflights() {
    let cors = cors(APP);
    let req = map(&[("access-control-request-method", "PUT")]);
    assert_eq!(cors.classify(&req, &Method::OPTIONS), None);
    assert_eq!(cors.classify(&HeaderMap::new(), &Method::GET), None);
    let req = map(&[("origin", "https://app.example.com")]);
    let allowed = Some(Verdict::Actual);
    assert_eq!(cors.classify(&req, &Method::OPTIONS), allowed);
    // A GET with Access-Control-Request-Method is an actual request.
    let req = preflight("https://evil.example", "PUT", "");
    let foreign = Some(Verdict::Actual);
    assert_eq!(cors.classify(&req, &Method::GET), foreign);
}

#[test]
fn an_allowed_actual_request_gets_our_fields_and_vary_appended() {
    let cors = cors(APP);
    let req = map(&[("origin", "https://app.example.com")]);
    let allowed = Some(Verdict::Actual);
    assert_eq!(cors.classify(&req, &Method::POST), allowed);
    let mut resp = map(&[
        ("vary", "Accept-Encoding"),
        ("access-control-allow-origin", "*"),
        ("access-control-allow-methods", "PATCH"),
        ("content-type", "text/plain"),
    ]);
    assert_eq!(
        answered(&cors, Some("https://app.example.com"), &mut resp),
        [
            "access-control-allow-credentials: true",
            "access-control-allow-origin: https://app.example.com",
            "access-control-expose-headers: X-Request-Id",
            "content-type: text/plain",
            "vary: Accept-Encoding, Origin",
        ]
    );
    // Applied twice (or to a response already varying on Origin): no duplicate.
    cors.apply(req.get(header::ORIGIN), &mut resp);
    assert_eq!(resp.get_all(header::VARY).iter().count(), 1);
    assert_eq!(resp["vary"], "Accept-Encoding, Origin");
    let mut resp = map(&[("vary", "origin")]);
    cors.apply(None, &mut resp);
    assert_eq!(resp["vary"], "origin");
    let mut resp = map(&[("vary", "*")]);
    cors.apply(None, &mut resp);
    assert_eq!(resp["vary"], "*");
    // Vary over two lines becomes one list.
    let mut resp = map(&[("vary", "Accept-Encoding")]);
    resp.append(header::VARY, HeaderValue::from_static("Accept-Language"));
    cors.apply(None, &mut resp);
    assert_eq!(
        resp.get_all(header::VARY).iter().collect::<Vec<_>>(),
        ["Accept-Encoding, Accept-Language, Origin"]
    );
}

#[test]
fn credentials_are_never_answered_with_a_star() {
    let cors = cors("{allow_origins: ['https://a.example'], allow_credentials: true}");
    let mut resp = HeaderMap::new();
    let got = answered(&cors, Some("https://a.example"), &mut resp);
    assert!(got.contains(&"access-control-allow-origin: https://a.example".into()));
    assert!(got.contains(&"access-control-allow-credentials: true".into()));
    let (cors, problems) = load("{allow_origins: ['*'], allow_credentials: true}");
    assert!(cors.is_none());
    assert_eq!(problems, ["routes[0].cors.allow_credentials"]);
}

#[test]
fn a_star_without_credentials_answers_star() {
    let cors = cors("{allow_origins: ['*'], expose_headers: [X-A, x-b]}");
    let mut resp = HeaderMap::new();
    assert_eq!(
        answered(&cors, Some("https://whoever.example"), &mut resp),
        [
            "access-control-allow-origin: *",
            "access-control-expose-headers: X-A, x-b",
            "vary: Origin",
        ]
    );
    // `null` only when listed literally.
    let mut resp = HeaderMap::new();
    assert_eq!(answered(&cors, Some("null"), &mut resp), ["vary: Origin"]);
    let cors = self::cors("{allow_origins: ['null']}");
    let mut resp = HeaderMap::new();
    let got = answered(&cors, Some("null"), &mut resp);
    assert_eq!(got[0], "access-control-allow-origin: null");
}

#[test]
fn foreign_or_absent_origins_get_no_cors_fields_but_the_origins_are_stripped() {
    let cors = cors(APP);
    for origin in [Some("https://evil.example"), None] {
        let mut resp = map(&[
            ("access-control-allow-origin", "https://evil.example"),
            ("access-control-allow-credentials", "true"),
            ("access-control-allow-private-network", "true"),
            ("x-kept", "1"),
        ]);
        resp.append(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        assert_eq!(
            answered(&cors, origin, &mut resp),
            ["vary: Origin", "x-kept: 1"]
        );
    }
}

#[test]
fn origins_match_case_insensitively_as_normalized() {
    let cors = cors("{allow_origins: ['HTTPS://App.Example.COM:443/', 'http://[0:0::1]:8080']}");
    let mut resp = HeaderMap::new();
    let got = answered(&cors, Some("https://APP.example.com"), &mut resp);
    assert_eq!(
        got[0],
        "access-control-allow-origin: https://app.example.com"
    );
    let req = preflight("http://[::1]:8080", "GET", "");
    let Some(Verdict::Preflight(p)) = cors.classify(&req, &Method::OPTIONS) else {
        panic!("not answered");
    };
    let first = cors.preflight_headers(p).next().unwrap();
    assert_eq!(first.1, "http://[::1]:8080");
}

#[test]
fn origins_are_normalized_or_refused() {
    let ok = |t: &str| normalize_origin(t).unwrap();
    assert_eq!(ok("https://a.example.com"), "https://a.example.com");
    assert_eq!(ok("HTTPS://A.Example.com/"), "https://a.example.com");
    assert_eq!(ok("https://a.example.com:443"), "https://a.example.com");
    assert_eq!(ok("http://a.example.com:80"), "http://a.example.com");
    assert_eq!(ok("http://a.example.com:443"), "http://a.example.com:443");
    assert_eq!(ok("http://127.0.0.1:3000"), "http://127.0.0.1:3000");
    assert_eq!(ok("https://[2001:DB8::0:1]"), "https://[2001:db8::1]");
    assert_eq!(ok("app-scheme://local_host"), "app-scheme://local_host");
    assert_eq!(ok("null"), "null");
    for bad in [
        "https://a.example.com/x",
        "https://a.example.com?q",
        "https://u@a.example.com",
        "a.example.com",
        "https://",
        "https://:443",
        "https://a.example.com:",
        "https://a.example.com:0",
        "https://a.example.com:70000",
        "https://a.example.com:+80",
        "https://bücher.example",
        "https://a b.example",
        "https://[::1",
        "https://[nope]",
        "1https://a.example",
    ] {
        assert!(normalize_origin(bad).is_err(), "{bad}");
    }
}

#[test]
fn each_problem_names_its_field() {
    let (cors, problems) = load(
        "{allow_origins: ['https://a.example.com/x', 'https://b.example', '*'], \
         allow_methods: [GET, 'BAD METHOD', '*'], allow_headers: [X-Ok, 'Bad Header', '*'], \
         expose_headers: ['x:y']}",
    );
    assert!(cors.is_none());
    assert_eq!(
        problems,
        [
            "routes[0].cors.allow_origins[0]",
            "routes[0].cors.allow_origins[2]",
            "routes[0].cors.allow_methods[1]",
            "routes[0].cors.allow_methods[2]",
            "routes[0].cors.allow_headers[1]",
            "routes[0].cors.allow_headers[2]",
            "routes[0].cors.expose_headers[0]",
        ]
    );
    assert_eq!(load("{}").1, ["routes[0].cors.allow_origins"]);
    assert_eq!(
        load("{allow_origins: []}").1,
        ["routes[0].cors.allow_origins"]
    );
    assert_eq!(
        load("{allow_origins: ['*', 'https://a.example']}").1,
        ["routes[0].cors.allow_origins[0]"]
    );
    assert_eq!(
        load("{allow_origins: ['*'], allow_methods: []}").1,
        ["routes[0].cors.allow_methods"]
    );
    assert!(serde_yaml::from_str::<CorsConfig>("{allow_origin: ['*']}").is_err());
}

#[test]
fn defaults_allow_the_safelisted_methods_for_five_minutes() {
    let config = CorsConfig::default();
    assert_eq!(config.allow_methods, ["GET", "HEAD", "POST"]);
    assert!(config.allow_headers.is_empty() && config.expose_headers.is_empty());
    assert!(!config.allow_credentials);
    assert_eq!(config.max_age.0, Duration::from_secs(300));

    let cors = cors("{allow_origins: ['https://a.example'], allow_methods: [get, Put, GET]}");
    assert_eq!(cors.methods, [Method::GET, Method::PUT]);
    assert!(cors.headers.is_empty() && cors.expose.is_none() && !cors.credentials);
    let mut resp = HeaderMap::new();
    assert_eq!(
        answered(&cors, Some("https://a.example"), &mut resp),
        [
            "access-control-allow-origin: https://a.example",
            "vary: Origin"
        ]
    );
}
