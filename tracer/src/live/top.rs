//! `tracer top`: the live view drawn in the terminal (ratatui), refreshed
//! in place every interval; q, Esc or Ctrl-C quits and restores the
//! terminal.

use std::time::Duration;

use ratatui::{
    Frame,
    crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers},
    layout::{Constraint, Layout},
    style::{Modifier, Style},
    text::Line,
    widgets::{Block, Paragraph, Row, Table},
};

use super::view::LiveFrame;
use crate::{facts::Holder, units::human_ns};

/// Whether a quit key is waiting (never blocks).
pub fn quit_pressed() -> bool {
    while event::poll(Duration::ZERO).unwrap_or(false) {
        if let Ok(Event::Key(k)) = event::read()
            && k.kind == KeyEventKind::Press
        {
            let ctrl_c =
                k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
            if ctrl_c || matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) {
                return true;
            }
        }
    }
    false
}

/// Draws one frame of the live view.
pub fn draw(f: &mut Frame, header: &str, live: Option<&LiveFrame>) {
    let [top, syscalls, holders, footer] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Min(7),
        Constraint::Min(7),
        Constraint::Length(4),
    ])
    .areas(f.area());
    let Some(l) = live else {
        f.render_widget(
            Paragraph::new(format!("{header}\nwaiting for the first interval...")),
            top,
        );
        return;
    };
    let i = &l.interval;
    let gomaxprocs = l
        .gomaxprocs
        .map_or_else(|| "?".to_owned(), |n| n.to_string());
    f.render_widget(
        Paragraph::new(vec![
            Line::from(header.to_owned()),
            Line::from(format!(
                "+{:.1}s  threads {} (+{} -{})  GOMAXPROCS {gomaxprocs}  syscalls {}/s  \
                 P handoffs {}  slow exits {}  vDSO fallbacks {}  lost {}",
                i.elapsed_seconds,
                l.threads,
                i.spawned,
                i.exited,
                (i.calls as f64 / i.interval_seconds.max(1e-3)) as u64,
                i.p_handoffs,
                i.slow_exits,
                i.vdso_fallbacks,
                i.lost
            )),
        ])
        .block(Block::bordered().title(" tracer top (q quits) ")),
        top,
    );
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let rows = i.top.iter().map(|s| {
        Row::new(vec![
            s.name.clone(),
            s.calls.to_string(),
            human_ns(s.p99_ns),
            human_ns(s.total_ns),
        ])
    });
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(18),
                Constraint::Length(10),
                Constraint::Length(10),
                Constraint::Length(10),
            ],
        )
        .header(Row::new(vec!["syscall", "calls", "p99", "total"]).style(bold))
        .block(Block::bordered().title(" syscalls, last interval ")),
        syscalls,
    );
    let rows = l.sample.holders.iter().map(|h| {
        Row::new(vec![
            h.threads.to_string(),
            h.holder.label().to_owned(),
            h.syscall.clone().unwrap_or_default(),
            h.call_site
                .as_ref()
                .map_or_else(String::new, ToString::to_string),
        ])
    });
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(7),
                Constraint::Length(30),
                Constraint::Length(14),
                Constraint::Fill(1),
            ],
        )
        .header(Row::new(vec!["threads", "held by", "syscall", "call site"]).style(bold))
        .block(Block::bordered().title(format!(
            " threads now: {} in syscalls, {} in C, {} idle ",
            l.sample.count(Holder::Syscall),
            l.sample.count(Holder::Cgo),
            l.sample.count(Holder::Idle)
        ))),
        holders,
    );
    let mut lines: Vec<Line> = l
        .spawn_causes
        .iter()
        .take(1)
        .map(|c| Line::from(format!("spawned {}: {}", c.threads, c.label)))
        .collect();
    lines.extend(
        l.limits
            .iter()
            .filter(|s| s.warning)
            .map(|s| Line::from(format!("WARNING: {}", s.describe()))),
    );
    if lines.is_empty() {
        lines.push(Line::from("no limit in sight"));
    }
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" spawns and limits ")),
        footer,
    );
}
