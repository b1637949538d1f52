use super::*;

fn settings() -> CacheSettings {
    CacheSettings {
        max_size: 1 << 20,
        max_object_size: 1 << 20,
        default_ttl: None,
        heuristic: None,
        stale_while_revalidate: Duration::ZERO,
        stale_if_error: Duration::from_secs(60),
        lock_timeout: Duration::from_secs(1),
        disk: None,
    }
}

fn resp(status: u16, fields: &[(&str, &str)]) -> ResponseHeader {
    let mut r = ResponseHeader::build(status, None).unwrap();
    for (n, v) in fields {
        r.append_header(n.to_string(), *v).unwrap();
    }
    r
}

fn now() -> SystemTime {
    httpdate::parse_http_date("Wed, 02 Dec 2026 10:00:00 GMT").unwrap()
}

/// Seconds of freshness left, or the reason it is not stored.
fn decide(
    status: u16,
    fields: &[(&str, &str)],
    auth: bool,
    s: &CacheSettings,
) -> Result<i64, String> {
    match cacheable(&resp(status, fields), auth, SetCookie::Refuse, s, now()) {
        RespCacheable::Cacheable(meta) => Ok(match meta.fresh_until().duration_since(now()) {
            Ok(d) => d.as_secs() as i64,
            Err(_) => -1,
        }),
        RespCacheable::Uncacheable(r) => Err(r.as_str().to_string()),
    }
}

fn ttl(fields: &[(&str, &str)]) -> Result<i64, String> {
    decide(200, fields, false, &settings())
}

#[test]
fn freshness_prefers_s_maxage_then_max_age_then_expires() {
    assert_eq!(ttl(&[("cache-control", "max-age=60, s-maxage=30")]), Ok(30));
    assert_eq!(ttl(&[("cache-control", "max-age=60")]), Ok(60));
    let date = ("date", "Wed, 02 Dec 2026 09:00:00 GMT");
    // Expires - Date, not Expires - now: an origin an hour behind still gives 120 s.
    let expires = ("expires", "Wed, 02 Dec 2026 09:02:00 GMT");
    // ...minus the hour the response is already old by its Date.
    assert_eq!(ttl(&[date, expires]), Ok(-1));
    let date = ("date", "Wed, 02 Dec 2026 10:00:00 GMT");
    let expires = ("expires", "Wed, 02 Dec 2026 10:02:00 GMT");
    assert_eq!(ttl(&[date, expires]), Ok(120));
    assert_eq!(
        ttl(&[("expires", "soon")]),
        Ok(-1),
        "invalid Expires is stale"
    );
    assert_eq!(ttl(&[("cache-control", "max-age=-5")]), Ok(-1));
    // RFC 9111 §5.2: recipients accept the quoted form of an argument too.
    assert_eq!(ttl(&[("cache-control", "max-age=\"60\"")]), Ok(60));
    assert_eq!(ttl(&[("cache-control", "max-age=6.5")]), Ok(-1));
    assert_eq!(ttl(&[("cache-control", "no-cache, max-age=60")]), Ok(-1));
    assert!(ttl(&[]).is_err(), "no freshness, no default: not stored");
}

#[test]
fn age_shortens_freshness_and_bad_age_is_ignored() {
    let cc = ("cache-control", "max-age=60");
    assert_eq!(ttl(&[cc, ("age", "20")]), Ok(40));
    assert_eq!(ttl(&[cc, ("age", "abc")]), Ok(60));
    assert_eq!(ttl(&[cc, ("age", "-7")]), Ok(60));
    assert_eq!(ttl(&[cc, ("age", "7.5")]), Ok(60));
    assert_eq!(ttl(&[cc, ("age", "600")]), Ok(-1));
    assert_eq!(ttl(&[cc, ("age", "20, 0")]), Ok(40), "the first of a list");
    assert_eq!(ttl(&[cc, ("age", "0, 20")]), Ok(60));
    assert_eq!(ttl(&[cc, ("age", "20;x=1")]), Ok(40), "a member's value");
    let RespCacheable::Cacheable(meta) = cacheable(
        &resp(200, &[cc, ("age", "20")]),
        false,
        SetCookie::Refuse,
        &settings(),
        now(),
    ) else {
        panic!("cacheable")
    };
    assert!(
        meta.headers().get("age").is_none(),
        "the origin's Age is not stored"
    );
    assert_eq!(meta.epoch(), now() - Duration::from_secs(20));
}

#[test]
fn what_a_shared_cache_must_not_store() {
    let s = settings();
    let not = |fields: &[(&str, &str)]| ttl(fields).is_err();
    assert!(not(&[("cache-control", "no-store, max-age=60")]));
    assert!(not(&[("cache-control", "private, max-age=60")]));
    assert!(not(&[
        ("cache-control", "max-age=60"),
        ("vary", "accept, *")
    ]));
    assert!(not(&[
        ("cache-control", "max-age=60"),
        ("set-cookie", "a=1")
    ]));
    assert!(not(&[
        ("cache-control", "public, max-age=60"),
        ("set-cookie", "a=1")
    ]));
    assert!(decide(206, &[("cache-control", "max-age=60")], false, &s).is_err());
    let cc = [("cache-control", "max-age=60")];
    assert!(
        decide(200, &cc, true, &s).is_err(),
        "Authorization needs permission"
    );
    for allowed in [
        "public, max-age=60",
        "s-maxage=60",
        "max-age=60, must-revalidate",
    ] {
        assert!(
            decide(200, &[("cache-control", allowed)], true, &s).is_ok(),
            "{allowed}"
        );
    }
}

#[test]
fn cdn_cache_control_overrides_cache_control() {
    let cc = ("cache-control", "no-store");
    assert_eq!(ttl(&[cc, ("cdn-cache-control", "max-age=30")]), Ok(30));
    let both = [
        ("cache-control", "max-age=5"),
        ("cdn-cache-control", "max-age=30"),
        ("parapet-cdn-cache-control", "max-age=90"),
    ];
    assert_eq!(ttl(&both), Ok(90));
    assert!(ttl(&[
        ("cache-control", "max-age=60"),
        ("cdn-cache-control", "private")
    ])
    .is_err());
}

#[test]
fn heuristic_freshness_only_when_configured_and_for_cacheable_statuses() {
    let mut s = settings();
    s.default_ttl = Some(Duration::from_secs(300));
    assert_eq!(decide(200, &[], false, &s), Ok(300));
    assert_eq!(decide(404, &[], false, &s), Ok(300));
    assert!(decide(302, &[], false, &s).is_err());
    assert!(decide(503, &[], false, &s).is_err());
    assert_eq!(
        decide(302, &[("cache-control", "max-age=10")], false, &s),
        Ok(10)
    );
}

#[test]
fn heuristic_freshness_is_a_capped_share_of_the_time_since_last_modified() {
    let mut s = settings();
    s.heuristic = Some((0.1, Duration::from_secs(3600)));
    let lm = |secs: u64| httpdate::fmt_http_date(now() - Duration::from_secs(secs));
    let recent = lm(10_000);
    let old = lm(1_000_000);
    let future = httpdate::fmt_http_date(now() + Duration::from_secs(60));
    assert_eq!(
        decide(200, &[("last-modified", &recent)], false, &s),
        Ok(1000)
    );
    assert_eq!(
        decide(200, &[("last-modified", &old)], false, &s),
        Ok(3600),
        "capped"
    );
    assert!(decide(200, &[("last-modified", &future)], false, &s).is_err());
    assert!(decide(201, &[("last-modified", &recent)], false, &s).is_err());
    assert!(decide(200, &[], false, &s).is_err(), "no Last-Modified");
    s.default_ttl = Some(Duration::from_secs(300));
    assert_eq!(
        decide(200, &[], false, &s),
        Ok(300),
        "default_ttl without one"
    );
    assert_eq!(
        decide(
            200,
            &[("last-modified", &recent), ("cache-control", "max-age=5")],
            false,
            &s
        ),
        Ok(5),
        "explicit freshness first"
    );
}

#[test]
fn stale_only_with_permission() {
    let windows = |cc: &str| match cacheable(
        &resp(200, &[("cache-control", cc)]),
        false,
        SetCookie::Refuse,
        &settings(),
        now(),
    ) {
        RespCacheable::Cacheable(m) => (m.stale_while_revalidate_sec(), m.stale_if_error_sec()),
        RespCacheable::Uncacheable(_) => panic!("{cc}"),
    };
    assert_eq!(windows("max-age=1"), (0, 60), "the configured defaults");
    assert_eq!(
        windows("max-age=1, stale-while-revalidate=9, stale-if-error=3"),
        (9, 3)
    );
    assert_eq!(
        windows("max-age=1, must-revalidate, stale-if-error=3"),
        (0, 0)
    );
    assert_eq!(windows("max-age=1, proxy-revalidate"), (0, 0));
    assert_eq!(windows("s-maxage=1"), (0, 0));
    assert_eq!(windows("no-cache, stale-if-error=3"), (0, 0));
}

#[test]
fn hop_by_hop_and_private_fields_are_not_stored() {
    let fields = [
        ("cache-control", "max-age=60, private=\"x-user\""),
        ("connection", "x-secret"),
        ("x-secret", "1"),
        ("keep-alive", "timeout=5"),
        ("x-user", "alice"),
        ("x-kept", "yes"),
    ];
    let RespCacheable::Cacheable(meta) = cacheable(
        &resp(200, &fields),
        false,
        SetCookie::Refuse,
        &settings(),
        now(),
    ) else {
        panic!("a field-scoped private still allows storing")
    };
    let names: Vec<_> = meta
        .headers()
        .keys()
        .map(|k| k.as_str().to_string())
        .collect();
    assert_eq!(names, ["cache-control", "x-kept"]);
}

/// The names of the stored fields, or the reason it is not stored.
fn stored_names(fields: &[(&str, &str)], set_cookie: SetCookie) -> Result<Vec<String>, String> {
    match cacheable(&resp(200, fields), false, set_cookie, &settings(), now()) {
        RespCacheable::Cacheable(meta) => {
            Ok(meta.headers().keys().map(|k| k.to_string()).collect())
        }
        RespCacheable::Uncacheable(r) => Err(r.as_str().to_string()),
    }
}

#[test]
fn a_cookie_is_never_stored() {
    let cookie = ("set-cookie", "session=1");
    let public = ("cache-control", "public, max-age=60");
    assert_eq!(
        stored_names(&[public, cookie], SetCookie::Refuse),
        Err(SET_COOKIE.to_string())
    );
    assert_eq!(
        stored_names(&[public, cookie], SetCookie::Strip),
        Ok(vec!["cache-control".to_string()])
    );
    for cc in [
        "max-age=60, no-cache=\"Set-Cookie\"",
        "max-age=60, private=\"x-a, set-cookie\"",
    ] {
        let names = stored_names(&[("cache-control", cc), cookie], SetCookie::Refuse);
        assert_eq!(names, Ok(vec!["cache-control".to_string()]), "{cc}");
    }
    let fields = [
        ("cache-control", "max-age=60, private=\"X-A\""),
        cookie,
        ("x-a", "1"),
    ];
    let RespCacheable::Cacheable(meta) = cacheable(
        &resp(200, &fields),
        false,
        SetCookie::Strip,
        &settings(),
        now(),
    ) else {
        panic!("stored without them")
    };
    let kept = withheld(&resp(200, &fields), meta.headers()).expect("withheld");
    let names: Vec<_> = kept.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["set-cookie", "x-a"]);
    // A qualified no-cache is about its fields, not the whole response.
    assert_eq!(
        ttl(&[("cache-control", "max-age=60, no-cache=\"x-a\"")]),
        Ok(60)
    );
}
