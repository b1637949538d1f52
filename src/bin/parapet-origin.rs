//! `parapet-origin --listen 127.0.0.1:8081 [--listen ...]`: the demo origin of the
//! README. Each listener answers as its own origin, named after its port.

use parapet::demo::origin::Origin;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut addresses: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(addr)) => addresses.push(addr),
            _ => {
                eprintln!("usage: parapet-origin --listen ADDR [--listen ADDR ...]");
                std::process::exit(2);
            }
        }
    }
    if addresses.is_empty() {
        addresses.push("127.0.0.1:8081".into());
    }
    let mut origins = Vec::new();
    for addr in &addresses {
        let name = format!("origin-{}", addr.rsplit(':').next().unwrap_or(addr));
        match Origin::start(&name, addr).await {
            Ok(origin) => {
                eprintln!("parapet-origin: {name} listening on {}", origin.addr);
                origins.push(origin);
            }
            Err(e) => {
                eprintln!("parapet-origin: cannot listen on {addr}: {e}");
                std::process::exit(1);
            }
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
