//! `parapet -c FILE [-d] [-u] [-t]`: parse the command line, load the configuration,
//! build the server, run it.

use clap::Parser;
use pingora::server::configuration::Opt;
use std::process::ExitCode;

#[cfg(not(any(feature = "count-alloc", feature = "system-alloc")))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The bench-only build counts allocations (see `make bench`).
#[cfg(feature = "count-alloc")]
#[global_allocator]
static GLOBAL: parapet::alloc_count::Counting<mimalloc::MiMalloc> =
    parapet::alloc_count::Counting(mimalloc::MiMalloc);

/// Parapet: an edge reverse proxy and origin shield.
#[derive(Parser)]
#[command(name = "parapet", version)]
struct Cli {
    #[command(flatten)]
    opt: Opt,
}

const DEFAULT_CONF: &str = "conf/parapet.yaml";

fn main() -> ExitCode {
    ignore_sigusr1_until_handled();
    parapet::memory::no_transparent_huge_pages();
    #[cfg(feature = "count-alloc")]
    parapet::alloc_count::report_from_env();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut opt = Cli::parse().opt;
    let path = opt
        .conf
        .get_or_insert_with(|| DEFAULT_CONF.to_string())
        .clone();
    let settings = match parapet::load::load(&path) {
        Ok(settings) => settings,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{path}: configuration invalid ({} errors)", errors.count());
            return ExitCode::FAILURE;
        }
    };
    if opt.test {
        println!("{path}: configuration OK");
        return ExitCode::SUCCESS;
    }
    match parapet::server::build(opt, settings) {
        Ok(server) => server.run_forever(),
        Err(e) => {
            eprintln!("{path}: cannot start: {e}");
            ExitCode::FAILURE
        }
    }
}

/// SIGUSR1 reopens the access log, but its default action kills the process. Until
/// the log writer installs its handler, ignore it, so that a logrotate run during
/// start-up does not stop Parapet.
fn ignore_sigusr1_until_handled() {
    // SAFETY: setting a signal's disposition to SIG_IGN before any thread exists.
    unsafe {
        libc::signal(libc::SIGUSR1, libc::SIG_IGN);
    }
}
