use std::process::ExitCode;

use clap::Parser as _;
use tracer::cli::{Cli, Config};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = Config::try_from(cli)
        .map_err(anyhow::Error::from)
        .and_then(tracer::commands::execute);
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(err) => {
            // One line: the error and its causes, outermost first.
            let causes: Vec<String> = err.chain().map(ToString::to_string).collect();
            eprintln!("tracer: error: {}", causes.join(": "));
            ExitCode::FAILURE
        }
    }
}
