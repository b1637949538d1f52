//! Assemble the Pingora server: its own settings, the proxy service with one
//! listener per `listeners` entry, and the background services.

use crate::config::Settings;
use crate::proxy::Parapet;
use crate::runtime::Runtime;
use pingora::server::configuration::Opt;
use pingora::server::Server;
use std::sync::Arc;

/// Build a ready-to-run server. `opt.conf` is ignored: the configuration has
/// already been read into `settings`.
pub fn build(mut opt: Opt, mut settings: Settings) -> pingora::Result<Server> {
    opt.conf = None;
    let listeners = std::mem::take(&mut settings.listeners);
    let server_conf = std::mem::take(&mut settings.server);
    let mut server = Server::new_with_opt_and_conf(opt, server_conf);
    server.bootstrap();

    let (runtime, services) = Runtime::build(settings)?;
    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Parapet::new(Arc::new(runtime)),
        "parapet",
    );
    for address in &listeners {
        proxy.add_tcp(address);
    }
    server.add_service(proxy);
    server.add_services(services);
    Ok(server)
}
