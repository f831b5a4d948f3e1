//! The userspace side of the tracer. Data flows
//! `probes` (kernel programs, maps) → `session` (event loop) → `model`
//! (aggregation) → `report` (sinks); `target` handles the traced process and
//! `commands` wires it all per subcommand.

// The report's schema tests include the integration suite's report checker,
// which names this crate `tracer`.
#[cfg(test)]
extern crate self as tracer;

pub mod analysis;
pub mod cli;
pub mod commands;
pub mod facts;
pub mod gobin;
pub mod goruntime;
pub mod live;
pub mod model;
pub mod probes;
pub mod procinfo;
pub mod record;
pub mod report;
#[cfg(test)]
mod seed_corpus;
pub mod serve;
pub mod session;
pub mod syscall_names;
pub mod target;
pub mod units;
