//! `seatsync-local`: seatsync on this machine, end to end, through the real handlers.
//!
//! - `seatsync-local demo` (what `scripts/demo` runs): connect Box through OAuth (simulated consent),
//!   a scheduled sync through the queue, the license report, a dry-run and a real deactivation of the
//!   most inactive user, and the audit trail — against the Box simulator, or against a real enterprise
//!   when `BOX_CLIENT_ID`, `BOX_CLIENT_SECRET` and `BOX_ENTERPRISE_ID` are set (then read-only: no
//!   user is changed).
//! - `seatsync-local serve --dev-identity [--port 8080]` (what `scripts/local-api` runs): the same
//!   stack, connected and synced, with the HTTP API on loopback for curl; the development identity
//!   header `x-seatsync-dev-tenant: acme` stands in for API Gateway's JWT authorizer.
//!
//! Both expect the local AWS endpoint in `AWS_ENDPOINT_URL` (the scripts start it) and stop
//! everything they started on exit and on Ctrl-C.

mod demo;
mod dev_identity;
mod stack;

use std::net::SocketAddr;

use anyhow::bail;

struct Args {
    command: String,
    users: usize,
    port: u16,
    dev_identity: bool,
}

fn parse() -> anyhow::Result<Args> {
    let mut args = Args {
        command: "demo".into(),
        users: 3_000,
        port: 8080,
        dev_identity: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "demo" | "serve" => args.command = arg,
            "--users" => args.users = it.next().unwrap_or_default().parse()?,
            "--port" => args.port = it.next().unwrap_or_default().parse()?,
            "--dev-identity" => args.dev_identity = true,
            "-h" | "--help" => {
                println!("usage: seatsync-local [demo | serve [--dev-identity] [--port 8080]] [--users 3000]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if !(1..=200_000).contains(&args.users) {
        bail!("--users must be 1 to 200,000");
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse()?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SEATSYNC_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let work = async {
        match args.command.as_str() {
            "serve" => serve(&args).await,
            _ => demo::run(args.users).await,
        }
    };
    tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("\ninterrupted: stopping (the simulator and the local AWS endpoint go with this run)");
            Ok(())
        }
    }
}

async fn serve(args: &Args) -> anyhow::Result<()> {
    let target = stack::BoxTarget::from_env(args.users).await?;
    println!("→ Box: {}", target.describe());
    let stack = stack::Stack::start(target).await?;
    let (addr, _server) = stack
        .serve(SocketAddr::from(([127, 0, 0, 1], args.port)), args.dev_identity)
        .await?;
    let base = format!("http://{addr}");
    demo::connect_and_sync(&stack, &base, args.dev_identity).await?;
    println!("\nThe seatsync API is listening on {base} (Ctrl-C stops it).");
    if args.dev_identity {
        println!(
            "Development identity ON: the header `{}: acme` stands in for the JWT authorizer.",
            dev_identity::TENANT_HEADER
        );
        println!("  curl -s -H '{}: acme' {base}/licenses", dev_identity::TENANT_HEADER);
        println!(
            "  curl -s -H '{}: acme' '{base}/licenses/users?state=inactive&limit=5'",
            dev_identity::TENANT_HEADER
        );
        println!(
            "  curl -s -H '{}: acme' -H 'accept: text/csv' '{base}/licenses/users?limit=20'",
            dev_identity::TENANT_HEADER
        );
        println!("  curl -s {base}/licenses        # no identity: 401");
    } else {
        println!("Development identity OFF: every authenticated route answers 401 (start with --dev-identity).");
    }
    std::future::pending::<()>().await;
    Ok(())
}
