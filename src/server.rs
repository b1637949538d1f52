//! Assemble the Pingora server: its own settings, the proxy service with one
//! listener per `listeners` entry, and the background services.

use crate::admin::dashboard::Dashboard;
use crate::admin::Admin;
use crate::connection::ConnectionGate;
use crate::listener::tls::TlsListeners;
use crate::listener::Listener;
use crate::load::{self, Settings};
use crate::policy::limits::RequestLimits;
use crate::proxy::Parapet;
use pingora::apps::HttpServerOptions;
use pingora::listeners::ListenerConfig;
use pingora::protocols::http::v2::server::{default_h2_options, H2Options};
use pingora::protocols::l4::stream::L4BufferSettings;
use pingora::server::configuration::Opt;
use pingora::server::Server;
use pingora::services::listening::Service;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Build a ready-to-run server. The configuration has already been read into
/// `settings` from `opt.conf`, which only names the file on the dashboard.
///
/// Bootstrap (taking the listening sockets over from the old instance on `-u`) runs
/// as a service, after daemonizing, and the proxy waits for it. So `parapet -u -d`
/// returns at once and the new instance waits on `upgrade_sock` in the background,
/// where `parapet-reload` sees it before sending SIGQUIT to the old one.
/// Bootstrapping before `run` would block `-u -d` in the foreground until the
/// sockets arrive, which makes "start the new one, then SIGQUIT the old one"
/// impossible. (`daemon_wait_for_ready` is not used: in Pingora 0.9.1 the parent
/// installs its SIGUSR1 handler only after forking, and a fast child kills it.)
pub fn build(mut opt: Opt, mut settings: Settings) -> pingora::Result<Server> {
    if !opt.upgrade {
        let admin = settings.admin.as_ref().map(|a| a.address);
        check_addresses_free(settings.listeners.iter().map(|l| l.address).chain(admin))?;
    }
    let config_file = opt.conf.take().map_or_else(String::new, |path| {
        std::fs::canonicalize(&path).map_or(path, |p| p.display().to_string())
    });
    let listeners = settings.listeners.clone();
    let server_conf = std::mem::take(&mut settings.server);
    let mut server = Server::new_with_opt_and_conf(opt, server_conf);
    let bootstrap = server.bootstrap_as_a_service();

    // Pingora's default when unset: EXIT_TIMEOUT, 300 s.
    let grace = Duration::from_secs(server.configuration.grace_period_seconds.unwrap_or(300));
    let built = load::assemble(settings, grace)?;
    let runtime = Arc::new(built.runtime);
    // Cleartext HTTP/2 by prior knowledge is a setting of the whole service in
    // Pingora: h2c listeners get a service of their own.
    let (h2c, others): (Vec<_>, Vec<_>) = listeners.iter().partition(|l| l.h2c);
    let tls = Arc::new(TlsListeners::new(&listeners));
    for (name, group, h2c) in [("parapet", others, false), ("parapet-h2c", h2c, true)] {
        if group.is_empty() {
            continue;
        }
        let mut proxy =
            pingora::proxy::http_proxy(&server.configuration, Parapet::new(runtime.clone()));
        let mut options = HttpServerOptions::default();
        options.h2c = h2c;
        options.keepalive_request_limit = runtime.limits.keepalive_reuses;
        // An HTTP/2 connection with no open stream for this long is closed
        // (pingora-core apps/mod.rs; dropped without a GOAWAY, protocols/http/v2/
        // server.rs `accept_downstream_sessions`), as an idle HTTP/1 one is.
        options.h2_idle_timeout = Some(Duration::from_secs(runtime.limits.keepalive_timeout));
        proxy.server_options = Some(options);
        proxy.h2_options = Some(http2_options(&runtime.limits));
        let limits = &runtime.limits;
        let keepalive = Duration::from_secs(limits.keepalive_timeout);
        let gates = runtime.connections.clone();
        let app = ConnectionGate::new(proxy, limits.header_timeout, keepalive, gates, tls.clone());
        let mut service = Service::new(name.to_string(), app);
        for listener in group {
            listen(&mut service, listener);
        }
        server.add_service(service).add_dependency(&bootstrap);
    }
    if let Some(admin) = built.admin {
        let (dashboard, sampler) = Dashboard::new(runtime.clone(), config_file);
        server.add_service(sampler);
        let app = Admin::new(runtime.clone(), admin.token, dashboard);
        let mut service = Service::new("admin".to_string(), app);
        service.add_tcp(&admin.address.to_string());
        server.add_service(service).add_dependency(&bootstrap);
    }
    if runtime.store.is_some() {
        let follower = crate::admin::PurgeFollower::new(runtime.clone());
        server.add_service(pingora::services::background::background_service(
            "fleet purges",
            follower,
        ));
    }
    server.add_services(built.services);
    Ok(server)
}

/// HTTP/2 to clients: Pingora's bounded defaults with `limits`' stream count and
/// head size (as the header list size).
fn http2_options(limits: &RequestLimits) -> H2Options {
    let mut options = default_h2_options();
    options.max_concurrent_streams(limits.http2_streams);
    options.max_header_list_size(u32::try_from(limits.header_bytes).unwrap_or(u32::MAX));
    options
}

/// Add one listener to a proxy service, as plain TCP: the connection gate
/// terminates TLS (`pingora_compat::tls`).
fn listen<A>(service: &mut Service<A>, listener: &Listener) {
    let buffer = L4BufferSettings {
        read: Some(listener.read_buffer),
        write: None,
    };
    let config = ListenerConfig::tcp(listener.address.to_string()).l4_buffer(buffer);
    service.add_listener(config);
}

/// Fail at once, before daemonizing, when a listening address cannot be bound.
/// Pingora retries a busy address for a while and then panics in a service thread,
/// which leaves a process that serves nothing; an operator needs an error and a
/// non-zero exit instead. (On `-u` the sockets come from the old instance.)
fn check_addresses_free(addresses: impl Iterator<Item = SocketAddr>) -> pingora::Result<()> {
    for address in addresses {
        if let Err(e) = std::net::TcpListener::bind(address) {
            return pingora::Error::e_because(
                pingora::ErrorType::BindError,
                format!("cannot listen on {address}"),
                e,
            );
        }
    }
    Ok(())
}
