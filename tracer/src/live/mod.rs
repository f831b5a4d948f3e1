//! Reading a session while it runs: interval summaries, limit
//! projections, and the live views (`threads` lines, the `top` terminal).

pub mod interval;
pub mod limits;
pub mod top;
pub mod view;
