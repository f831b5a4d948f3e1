use std::process::ExitCode;

use clap::Parser as _;
use tracer::cli::{Cli, Config};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // -v: what the kernel programs log (aya-log) and the tracer's own
    // debug lines; RUST_LOG, when set, decides instead.
    let level = match cli.verbose {
        0 => "warn",
        1 => "warn,tracer=debug,tracer_ebpf=debug",
        _ => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    let result = Config::try_from(cli)
        .map_err(anyhow::Error::from)
        .and_then(tracer::commands::execute);
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(err) => {
            // One line: the error and its causes, outermost first, each
            // said once (many errors already quote their cause).
            let mut line = String::new();
            for cause in err.chain().map(|c| c.to_string()) {
                if line.contains(&cause) {
                    continue;
                }
                if !line.is_empty() {
                    line.push_str(": ");
                }
                line.push_str(&cause);
            }
            eprintln!("tracer: error: {line}");
            ExitCode::FAILURE
        }
    }
}
