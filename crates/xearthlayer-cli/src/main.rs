//! `xearthlayer`: the command line. Parsing and output only; the work lives
//! in the `xearthlayer` library.

mod args;
mod generate;
mod info;
mod start;
mod status;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xearthlayer", version, about = "Satellite orthophotos streamed into X-Plane")]
struct Cli {
    /// More logging (-v: debug, -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate one texture and write it to a file.
    Generate(generate::GenerateArgs),
    /// Show a texture's bounds, zoom and chunk URLs.
    Info(info::InfoArgs),
    /// Mount one scenery package and serve its textures until Ctrl-C.
    Start(start::StartArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Generate(args) => generate::run(args).await,
        Command::Info(args) => info::run(args),
        Command::Start(args) => start::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn,xearthlayer=info",
        1 => "info,xearthlayer=debug",
        _ => "debug,xearthlayer=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("XEARTHLAYER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
