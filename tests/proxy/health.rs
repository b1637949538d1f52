//! Active health checks eject a failing backend and readmit it when it recovers.

use crate::support::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhealthy_backend_leaves_and_rejoins() {
    let (a, b) = (origin("a").await, origin("b").await);
    let check = json!({
        "type": "http",
        "path": "/health",
        "interval": "100ms",
        "timeout": "500ms",
        "healthy_threshold": 2,
        "unhealthy_threshold": 2
    });
    let config = Config::new()
        .upstream(
            "app",
            json!({"backends": backends(&[a.addr, b.addr]), "health_check": check}),
        )
        .route(json!({"upstream": "app"}));
    let proxy = Proxy::start(&config).await;
    let origins_seen = async |n: usize| {
        let mut seen = Vec::new();
        let mut conn = Conn::open(proxy.addr).await.unwrap();
        for _ in 0..n {
            let r = conn.get("/page", &[]).await.unwrap();
            assert_eq!(r.status(), 200);
            seen.push(r.header("x-origin").unwrap().to_string());
        }
        seen
    };
    assert!(origins_seen(4).await.contains(&"a".to_string()));

    a.state.set_healthy(false);
    let ejected = eventually(Duration::from_secs(10), async || {
        origins_seen(6).await.iter().all(|o| o == "b")
    })
    .await;
    assert!(ejected, "a was never ejected");
    let before = a.state.count("/page");
    origins_seen(10).await;
    assert_eq!(
        a.state.count("/page"),
        before,
        "an ejected backend got traffic"
    );

    a.state.set_healthy(true);
    let rejoined = eventually(Duration::from_secs(10), async || {
        origins_seen(4).await.contains(&"a".to_string())
    })
    .await;
    assert!(rejoined, "a never rejoined");
}
