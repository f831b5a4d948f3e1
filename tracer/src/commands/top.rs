//! `tracer top -p PID`: `tracer threads` drawn as a live terminal view.

use std::{
    io::IsTerminal as _,
    ops::ControlFlow,
    time::{Duration, Instant},
};

use super::live_target::LiveTarget;
use crate::{
    cli::Config,
    live::{top, view::LiveState},
    session::{Session, SignalPolicy, Ticker},
};

/// How often keys are checked.
const KEY_POLL: Duration = Duration::from_millis(100);

pub fn execute(config: &Config, pid: u32) -> anyhow::Result<i32> {
    if !std::io::stdout().is_terminal() {
        anyhow::bail!(
            "`tracer top` draws in a terminal, and stdout is not one: use `tracer threads -p {pid}` \
             or `tracer attach -p {pid} --interval 1s` for line output"
        );
    }
    let mut target = LiveTarget::prepare(config, pid)?;
    let every = config.interval.unwrap_or(Duration::from_secs(1));
    let header = format!("pid {pid} ({})", target.process.comm);
    let rt = super::runtime()?;
    rt.block_on(async {
        let (mut session, pidfd) = target.start(false)?;
        let mut live = LiveState::new(pid, target.symbolizer.as_ref().map(|(s, _)| s));
        target.seed(&mut live);
        let facts = &mut target.facts;
        let mut terminal = ratatui::init();
        let mut last: Option<crate::live::view::LiveFrame> = None;
        let mut drawn_at = Instant::now();
        let _ = terminal.draw(|f| top::draw(f, &header, None));
        let mut on_tick = |s: &mut Session| {
            if top::quit_pressed() {
                return ControlFlow::Break(());
            }
            if drawn_at.elapsed() + KEY_POLL / 2 >= every {
                drawn_at = Instant::now();
                match live.frame(s, facts) {
                    Ok(frame) => last = Some(frame),
                    Err(e) => log::warn!("cannot read the session: {e}"),
                }
                let _ = terminal.draw(|f| top::draw(f, &header, last.as_ref()));
            }
            ControlFlow::Continue(())
        };
        let ticker = Ticker {
            every: KEY_POLL,
            on_tick: &mut on_tick,
        };
        let result = session
            .run(pidfd, config.duration, SignalPolicy::Stop, Some(ticker))
            .await;
        ratatui::restore();
        let reason = result?;
        drop(session);
        eprintln!("tracer: top stopped ({reason:?}); probes detached");
        anyhow::Ok(())
    })?;
    Ok(0)
}
