//! Reading a session while it runs: interval summaries, process facts
//! refreshed on each tick, thread sampling and the live terminal view.

pub mod interval;
pub mod limits;
pub mod threads;
pub mod top;
pub mod view;
